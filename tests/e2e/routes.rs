//! Route coverage (architecture invariant 2): every route the control plane registers (its
//! route tables) is called as an anonymous client and as a signed-in stranger. A route
//! that is neither on the public list below nor refuses both fails this test, so a new
//! route without an authentication or membership check cannot land; and the tables'
//! public rows must be exactly that list, so making a route public is a change here too.

use crate::harness::*;

/// `GET` → `get`, as the lists below spell methods.
pub(crate) fn lower(method: &str) -> &'static str {
    match method {
        "GET" => "get",
        "POST" => "post",
        "PUT" => "put",
        "DELETE" => "delete",
        "PATCH" => "patch",
        other => panic!("a method the tables do not use: {other}"),
    }
}

/// Every route both listeners register: the route tables are the only place routes are
/// registered (`control_plane::app::routes`).
pub(crate) fn registered_routes() -> Vec<(String, String)> {
    use control_plane::app::routes::{GATEWAY, UI};
    UI.iter()
        .chain(GATEWAY)
        .map(|r| (lower(r.method.as_str()).to_owned(), r.path.to_owned()))
        .collect()
}

/// Routes anyone may call: sign-in, static assets, health, the node enrollment endpoint
/// (which checks its single-use token itself).
pub(crate) const PUBLIC: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/healthz"),
    ("get", "/static/htmx.min.js"),
    ("get", "/static/outpost.css"),
    ("get", "/static/favicon.svg"),
    ("get", "/signin"),
    ("post", "/signin"),
    ("get", "/auth/verify"),
    ("post", "/auth/verify"),
    // The link sent to a new address: the token is the credential, as for sign-in links.
    ("get", "/account/email/confirm"),
    ("post", "/account/email/confirm"),
    // Sign in with a provider: they check state, PKCE and the provider's tokens themselves;
    // anonymous callers get 404 for a provider that is off (below), a refusal page otherwise.
    ("get", "/auth/oauth/{provider}"),
    ("get", "/auth/oauth/{provider}/callback"),
    ("post", "/auth/oauth/{provider}/callback"),
    ("post", "/v1/enroll"),
    // Stripe's webhook: it checks its own Stripe-Signature (unsigned calls get 400; with
    // billing off, as here, the route answers 404).
    ("post", "/stripe/webhook"),
    // An invitation link: the token is the credential (single use, 7 days), like a
    // magic link; the GET only shows what is offered.
    ("get", "/invitations/accept"),
    ("post", "/invitations/accept"),
    // The API's OpenAPI document: a client reads it before it has a token.
    ("get", "/api/v1/openapi.json"),
];

#[tokio::test]
async fn every_route_refuses_anonymous_callers_and_strangers() {
    let routes = registered_routes();
    let mut declared_public: Vec<(&str, &str)> = control_plane::app::routes::UI
        .iter()
        .chain(control_plane::app::routes::GATEWAY)
        .filter(|r| r.access == control_plane::app::routes::Access::Public)
        .map(|r| (lower(r.method.as_str()), r.path))
        .collect();
    declared_public.sort();
    let mut expected = PUBLIC.to_vec();
    expected.sort();
    assert_eq!(declared_public, expected, "the tables' public routes");
    let cp = Cp::start();
    // The victim's workspace, with an agent and a pending secret-free setup.
    let owner = Api::new(&cp, "owner@acme.test");
    let ws = owner.create_workspace("Acme Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let r = owner
        .req(reqwest::Method::POST, &format!("/api/v1/workspaces/{ws_id}/agents"))
        .json(&serde_json::json!({"name": "Ava", "language": "en", "fallback_message": "Sorry.", "open": "09:00", "close": "17:00", "provider": "retrieval"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let agent_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let stranger = Browser::signin(&cp, "stranger@elsewhere.test").await;
    let stranger_api = Api::new(&cp, "stranger@elsewhere.test");
    let anonymous = no_redirect_client();
    let ca = std::fs::read_to_string(cp.data_dir().join("ca.crt")).unwrap();
    let gateway = gateway_client(&ca, None);

    let mut checked = 0;
    for (method, pattern) in &routes {
        let path = pattern
            .replace("{id}", &ws_id)
            .replace("{agent}", &agent_id)
            .replace("{kind}", "openai_api_key");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        if PUBLIC.contains(&(method.as_str(), pattern.as_str())) {
            if pattern.starts_with("/auth/oauth/") {
                // No provider is configured here: each is off, so its routes do not exist.
                for p in ["google", "github", "apple"] {
                    let status = anonymous
                        .request(
                            m.clone(),
                            format!("{}{}", cp.ui, path.replace("{provider}", p)),
                        )
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert_eq!(status, 404, "{method} {pattern} for {p} while it is off");
                }
            }
            continue;
        }
        checked += 1;
        if pattern.starts_with("/v1/") {
            // Node gateway: a TLS client without a certificate.
            let status = gateway
                .request(m, format!("{}{path}", cp.gateway))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert_eq!(
                status, 401,
                "{method} {pattern} without a client certificate"
            );
            continue;
        }
        // Anonymous: 401 for the API, a redirect to sign-in (or 401/403) for pages.
        let r = anonymous
            .request(m.clone(), format!("{}{path}", cp.ui))
            .header("origin", &cp.ui)
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let to_signin = r
            .headers()
            .get("location")
            .is_some_and(|l| l.to_str().unwrap().starts_with("/signin"));
        assert!(
            status == 401 || status == 403 || (status == 303 && to_signin),
            "{method} {pattern} as anonymous answered {status}"
        );
        // A signed-in stranger: routes naming the victim's workspace answer 404.
        if pattern.contains("{id}") {
            let status = if pattern.starts_with("/api/") {
                stranger_api
                    .req(m, &path)
                    .json(&serde_json::json!({"name": "x", "kind": "openai_api_key", "value": "x", "email": "x@y.test", "role": "member"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            } else if m == reqwest::Method::GET {
                stranger.get(&path).await.status().as_u16()
            } else {
                stranger
                    .post_csrf(
                        &path,
                        &[
                            ("name", "x"),
                            ("kind", "openai_api_key"),
                            ("value", "x"),
                            ("email", "x@y.test"),
                            ("role", "member"),
                        ],
                    )
                    .await
                    .status()
                    .as_u16()
            };
            assert_eq!(status, 404, "{method} {pattern} as a stranger");
        }
    }
    assert!(checked >= 25, "{checked} protected routes checked");
}
