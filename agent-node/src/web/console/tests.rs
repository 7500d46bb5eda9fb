use super::*;
use crate::platform::store::{self, Store};
use actix_web::{http::StatusCode, test as at};
use outpost_crypto::{CapabilityClaims, CapabilitySigner};

pub(crate) struct Fixture {
    pub _dir: tempfile::TempDir,
    pub data: web::Data<ConsoleState>,
    pub signer: CapabilitySigner,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    fixture_on(dir, store, Arc::new(MasterKey::from_bytes([7; 32])))
}

/// A console over an existing node database (a channels test kit's, say).
pub(crate) fn fixture_on(
    dir: tempfile::TempDir,
    store: Arc<Store>,
    master: Arc<MasterKey>,
) -> Fixture {
    let (signer, _) = CapabilitySigner::generate().expect("signer");
    let state = NodeState {
        node_id: NodeId::new_random(),
        workspace: WorkspaceInfo {
            id: "ws-1".into(),
            slug: "acme-dental".into(),
            name: "Acme Dental".into(),
        },
        gateway_url: "https://127.0.0.1:1".into(),
        ca_pem: String::new(),
        public_url: "http://acme-dental.localhost:40123".into(),
        listen_addr: "127.0.0.1:0".into(),
        report_interval_secs: 30.0,
        capability_public_key: signer.public_key_b64(),
        enrolled_at: 1_700_000_000,
        renew_at: 0,
    };
    let data =
        web::Data::new(ConsoleState::new(store, master, &state, Instant::now()).expect("state"));
    Fixture {
        _dir: dir,
        data,
        signer,
    }
}

pub(crate) fn token(f: &Fixture, node: &str, exp_in: i64) -> String {
    token_with_scopes(f, node, exp_in, MEMBER)
}

/// A capability token carrying `scopes` (the CP derives them from the role).
pub(crate) fn token_with_scopes(f: &Fixture, node: &str, exp_in: i64, scopes: &[&str]) -> String {
    f.signer.sign(&CapabilityClaims {
        sub: "user-1".into(),
        ws: "ws-1".into(),
        node: node.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        exp: store::now() + exp_in,
        jti: outpost_crypto::random_token(),
    })
}

/// The sign-in link the CP hands a member: a capability token carrying `scopes`.
pub(crate) fn handoff(f: &Fixture, scopes: &[&str]) -> at::TestRequest {
    let t = token_with_scopes(f, f.data.node_id.as_str(), 120, scopes);
    at::TestRequest::get().uri(&format!("/auth/handoff?token={t}"))
}

/// The session cookie a handoff answered with (which must be the sign-in page).
pub(crate) fn session_cookie(
    r: &actix_web::dev::ServiceResponse,
) -> actix_web::cookie::Cookie<'static> {
    assert_eq!(r.status(), StatusCode::OK, "the handoff signs in");
    r.response()
        .cookies()
        .find(|c| c.name() == session::SESSION_COOKIE)
        .expect("session cookie")
        .into_owned()
}

/// Signs in through the handoff with a token carrying `scopes`; the session cookie.
macro_rules! sign_in {
    ($app:expr, $f:expr, $scopes:expr) => {{
        let handoff = crate::web::console::tests::handoff(&$f, $scopes).to_request();
        let r = actix_web::test::call_service(&$app, handoff).await;
        crate::web::console::tests::session_cookie(&r)
    }};
}
pub(crate) use sign_in;

macro_rules! app {
    ($data:expr) => {
        at::init_service(
            actix_web::App::new()
                .app_data($data.clone())
                .wrap(security_headers())
                .configure(routes),
        )
        .await
    };
}

#[actix_web::test]
async fn healthz_and_headers() {
    let f = fixture();
    let app = app!(f.data);
    let r = at::call_service(&app, at::TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get("content-security-policy")
        .expect("content-security-policy")
        .to_str()
        .expect("ascii")
        .starts_with("default-src 'self'"));
    let body: serde_json::Value = at::read_body_json(r).await;
    assert_eq!(body["status"], "ok");
    let r = at::call_service(&app, at::TestRequest::get().uri("/nope").to_request()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn handoff_opens_a_session_once_and_the_console_shows_the_node() {
    let f = fixture();
    let app = app!(f.data);
    let t = token(&f, f.data.node_id.as_str(), 120);
    let uri = format!("/auth/handoff?token={t}");
    let r = at::call_service(&app, at::TestRequest::get().uri(&uri).to_request()).await;
    // A page of the node's own that moves on to `/`, not a redirect: see `handoff`.
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("location").is_none());
    assert_eq!(
        r.headers().get("referrer-policy").expect("referrer-policy"),
        "no-referrer"
    );
    assert_eq!(
        r.headers().get("cache-control").expect("cache-control"),
        "no-store"
    );
    let cookie = r
        .response()
        .cookies()
        .find(|c| c.name() == session::SESSION_COOKIE)
        .expect("session cookie")
        .into_owned();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site(),
        Some(actix_web::cookie::SameSite::Strict)
    );
    assert_eq!(cookie.path(), Some("/"));
    assert_ne!(cookie.secure(), Some(true), "http public URL: no Secure");
    let landing = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
    assert!(
        landing.contains(r#"<meta http-equiv="refresh" content="0; url=/">"#)
            && landing.contains(r#"<a href="/">Continue to the console</a>"#),
        "{landing}"
    );
    assert!(
        !landing.contains("<script"),
        "no script: the CSP allows none inline"
    );

    // replay of the same link
    let r = at::call_service(&app, at::TestRequest::get().uri(&uri).to_request()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
    assert!(body.contains("This sign-in link is invalid or expired"));

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
    assert!(
        body.contains("<title>Acme Dental — Outpost node</title>"),
        "{body}"
    );
    assert!(body.contains("acme-dental") && body.contains(f.data.node_id.as_str()));
    assert_eq!(
        body.matches("<script").count(),
        body.matches(r#"<script src="/static/htmx.min.js" defer></script>"#)
            .count(),
        "only the vendored htmx, no inline script"
    );

    // suspended shows
    let (ack, _) = crate::uplink::phone_home::commands::execute_once(
        &f.data.store,
        "c1",
        &outpost_protocol::CommandKind::Suspend {
            reason_code: "payment_failed".into(),
        },
    )
    .expect("suspend");
    assert!(ack.ok);
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let body = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
    assert!(body.contains("Suspended"), "{body}");

    // logout from another origin is refused, from ours works
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri("/logout")
            .insert_header(("origin", "http://evil.localhost"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri("/logout")
            .insert_header(("origin", "http://acme-dental.localhost:40123"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = at::call_service(
        &app,
        at::TestRequest::get().uri("/").cookie(cookie).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "session ended");
}

#[actix_web::test]
async fn bad_links_are_refused() {
    let f = fixture();
    let app = app!(f.data);
    let other_node = token(&f, NodeId::new_random().as_str(), 120);
    let expired = token(&f, f.data.node_id.as_str(), -(CLOCK_SKEW_SECS + 10));
    let (stranger, _) = CapabilitySigner::generate().expect("signer");
    let foreign = stranger.sign(&CapabilityClaims {
        sub: "u".into(),
        ws: "ws-1".into(),
        node: f.data.node_id.to_string(),
        scopes: vec!["console".into()],
        exp: store::now() + 60,
        jti: "j".into(),
    });
    for uri in [
        format!("/auth/handoff?token={other_node}"),
        format!("/auth/handoff?token={expired}"),
        format!("/auth/handoff?token={foreign}"),
        "/auth/handoff?token=garbage".to_owned(),
        "/auth/handoff".to_owned(),
    ] {
        let r = at::call_service(&app, at::TestRequest::get().uri(&uri).to_request()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            r.response().cookies().next().is_none(),
            "no cookie for {uri}"
        );
    }
}

/// The console's source files, in its folder and below, except test modules kept in
/// their own `tests.rs`.
fn console_sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("console dir").flatten() {
        let path = e.path();
        if path.is_dir() {
            console_sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// Every route registered in the console's sources (method and path of each `route`
/// call outside the tests). Registering any other way (`web::resource`, another
/// `service`) would hide a route from this scan, so it fails the scan instead.
fn console_routes() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/console");
    let mut files = vec![];
    console_sources(&dir, &mut files);
    assert!(files.len() > 10, "the console's sources are found");
    let mut out = vec![];
    let mut services = 0;
    for path in files {
        let source = std::fs::read_to_string(&path).expect("source");
        // Routes registered by tests are not console routes.
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let text: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(
                !text.contains("web::resource(") && !text.contains("web::service("),
                "{}: register console routes with `.route(\"…\", web::get()|post())` so the route scan sees them",
                path.display()
            );
        services += text.matches(".service(").count();
        for part in text.split(".route(\"").skip(1) {
            let (path, rest) = part.split_once('"').expect("path");
            let method = rest
                .strip_prefix(",web::")
                .and_then(|r| r.split_once('('))
                .map(|(m, _)| m.to_owned())
                .expect("method");
            out.push((method, path.to_owned()));
        }
    }
    assert_eq!(services, 1, "one `.service`: the guarded scope in `routes`");
    out.sort();
    out.dedup();
    out
}

/// A session stored as the handoff stores one, with exactly `scopes`; its cookie.
pub(crate) fn session_with(f: &Fixture, scopes: &[&str]) -> actix_web::cookie::Cookie<'static> {
    let value = outpost_crypto::random_token();
    let now = store::now();
    let stored = store::Session {
        user_id: "user-1".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_at: now + 600,
    };
    assert!(f
        .data
        .store
        .sign_in(
            &outpost_crypto::random_token(),
            now + 60,
            &outpost_crypto::token_hash(&value),
            &stored
        )
        .expect("sign in"));
    actix_web::cookie::Cookie::new(session::SESSION_COOKIE, value)
}

/// Invariant 2 on the node: every route the console's sources register is declared
/// in `access::ROUTES` (and nothing else is), and each answers as declared: a page
/// answers 401 without a session, the 403 page naming its scope to a session with
/// every other scope, and lets a session with just `console` and its scope through;
/// export downloads answer 403 without a signed link. A new route without a declared
/// scope fails here.
#[actix_web::test]
async fn every_console_route_declares_its_scope() {
    let f = fixture();
    let app = app!(f.data);
    let registered = console_routes();
    assert!(
        registered.len() >= 25,
        "the scan still works: {registered:?}"
    );
    for (method, pattern) in &registered {
        assert!(
                access::need_of(&method.to_uppercase(), pattern).is_some(),
                "{method} {pattern} is registered but not in console::access::ROUTES: declare what it needs"
            );
    }
    for r in access::ROUTES {
        assert!(
            registered.contains(&(r.method.to_lowercase(), r.pattern.to_owned())),
            "console::access::ROUTES declares {} {} but no section registers it",
            r.method,
            r.pattern
        );
    }

    // The policy said a second way, by section, so a slip in the table shows.
    let expected = |r: &access::Route| -> access::Need {
        use access::{Need::*, Scope::*};
        let p = r.pattern;
        match p {
            "/healthz"
            | "/static/outpost.css"
            | "/static/htmx.min.js"
            | "/static/favicon.svg"
            | "/auth/handoff" => Public,
            "/exports/{id}/download" => SignedLink,
            "/appointments" => Session(Inbox),
            _ if p.starts_with("/appointments/{id}/") || p.starts_with("/appointments/feed/") => {
                SignedLink
            }
            _ if p.starts_with("/appointments/") => Session(Settings),
            "/" | "/logout" => Session(Console),
            "/contacts/{id}/erase" | "/erasures" => Session(Settings),
            "/contacts/{id}/export" => Session(Exports),
            _ if p.starts_with("/inbox") || p.starts_with("/contacts") => Session(Inbox),
            _ if p.starts_with("/kb") => Session(KnowledgeBase),
            _ if p.starts_with("/settings")
                || p.starts_with("/agents")
                || p.starts_with("/integrations") =>
            {
                Session(Settings)
            }
            _ if p.starts_with("/exports") => Session(Exports),
            _ => panic!("no rule in this test for {} {p}: add one", r.method),
        }
    };
    for r in access::ROUTES {
        assert_eq!(r.need, expected(r), "{} {}", r.method, r.pattern);
    }

    for r in access::ROUTES {
        let uri = r
            .pattern
            .replace("{id}", "3f1c2a9e-7b7d-4c1e-9a57-1f0f4f3f2a10")
            .replace("{fid}", "3f1c2a9e-7b7d-4c1e-9a57-1f0f4f3f2a11")
            .replace("{kind}", "openai_api_key")
            .replace("{action}", "cancel")
            .replace("{staff}", "all");
        let call = |cookie: Option<actix_web::cookie::Cookie<'static>>| {
            let req = match r.method {
                "GET" => at::TestRequest::get(),
                "POST" => at::TestRequest::post(),
                other => panic!("unexpected method {other} for {}", r.pattern),
            };
            let req = req.uri(&uri);
            match cookie {
                Some(c) => req.cookie(c).to_request(),
                None => req.to_request(),
            }
        };
        let what = format!("{} {}", r.method, r.pattern);
        let anonymous = at::call_service(&app, call(None)).await.status();
        match r.need {
            access::Need::Public => {}
            access::Need::SignedLink => assert_eq!(anonymous, StatusCode::FORBIDDEN, "{what}"),
            access::Need::Session(scope) => {
                assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{what}");

                let others: Vec<&str> = access::Scope::ALL
                    .iter()
                    .filter(|s| **s != scope)
                    .map(|s| s.as_str())
                    .collect();
                let refused = at::call_service(&app, call(Some(session_with(&f, &others)))).await;
                assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{what}");
                let page = String::from_utf8(at::read_body(refused).await.to_vec()).expect("utf8");
                assert!(
                        page.contains(&format!(
                            "Your role in this workspace does not include {}. Ask a workspace owner or admin.",
                            scope.what()
                        )),
                        "{what}: {page}"
                    );

                let through = at::call_service(
                    &app,
                    call(Some(session_with(&f, &["console", scope.as_str()]))),
                )
                .await
                .status();
                assert!(
                    ![
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                        StatusCode::INTERNAL_SERVER_ERROR
                    ]
                    .contains(&through),
                    "{what} with its scope: {through}"
                );
            }
        }
    }
}

/// A page outside the table is refused, not served: its `ConsoleSession` argument
/// only exists when the guard found the session.
#[actix_web::test]
async fn a_page_the_guard_did_not_check_is_refused() {
    let f = fixture();
    let app = at::init_service(
        actix_web::App::new()
            .app_data(f.data.clone())
            .route(
                "/undeclared",
                web::get().to(|_: ConsoleSession| async { HttpResponse::Ok().finish() }),
            )
            .configure(routes),
    )
    .await;
    let cookie = session_with(&f, &access::Scope::ALL.map(|s| s.as_str()));
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/undeclared")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// Scopes per role, as `control-plane` `workspaces::console_link` signs them.
pub(crate) const MEMBER: &[&str] = &["console", "inbox"];
/// See [`MEMBER`].
pub(crate) const ADMIN: &[&str] = &["console", "inbox", "settings", "knowledge_base", "exports"];
/// See [`MEMBER`].
pub(crate) const OWNER: &[&str] = &[
    "console",
    "inbox",
    "settings",
    "knowledge_base",
    "exports",
    "billing",
];

#[actix_web::test]
async fn members_get_the_inbox_and_contacts_admins_and_owners_everything() {
    let f = fixture();
    let content = crate::domain::content::Content::new(f.data.store.clone(), &f.data.master);
    let contact = content
        .contact_for_identity("telegram", "777", Some("Maria Lopez"))
        .expect("contact");
    let app = app!(f.data);
    let member = sign_in!(app, f, MEMBER);
    let admin = sign_in!(app, f, ADMIN);
    let owner = sign_in!(app, f, OWNER);
    let get = |uri: &str, cookie: &actix_web::cookie::Cookie<'static>| {
        at::TestRequest::get()
            .uri(uri)
            .cookie(cookie.clone())
            .to_request()
    };
    let contact_page = format!("/contacts/{contact}");
    let everyone = ["/", "/inbox", "/contacts", contact_page.as_str()];
    let admins_only = [
        ("/kb", "the knowledge base"),
        ("/kb?q=parking", "the knowledge base"),
        ("/agents", "settings"),
        ("/settings", "settings"),
        ("/settings/retention", "settings"),
        ("/erasures", "settings"),
        ("/exports", "exports"),
    ];

    for uri in everyone {
        let r = at::call_service(&app, get(uri, &member)).await;
        assert_eq!(r.status(), StatusCode::OK, "member {uri}");
    }
    for (uri, what) in admins_only {
        let r = at::call_service(&app, get(uri, &member)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "member {uri}");
        assert!(
            r.headers().contains_key("content-security-policy"),
            "the 403 page has the usual headers"
        );
        let body = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
        assert!(body.contains("Not allowed for your role"), "{body}");
        assert!(
                body.contains(&format!(
                    "Your role in this workspace does not include {what}. Ask a workspace owner or admin."
                )),
                "{uri}: {body}"
            );
    }
    for cookie in [&admin, &owner] {
        for uri in everyone
            .into_iter()
            .chain(admins_only.iter().map(|(u, _)| *u))
        {
            let r = at::call_service(&app, get(uri, cookie)).await;
            assert_eq!(r.status(), StatusCode::OK, "admin/owner {uri}");
        }
    }

    // the navigation shows what the role may open, the contact page what it may do
    let nav = |body: &str| -> Vec<String> {
        let nav = body
            .split(r#"<nav class="tabs" aria-label="Console">"#)
            .nth(1)
            .and_then(|rest| rest.split("</nav>").next())
            .expect("console nav")
            .to_owned();
        nav.split("href=\"")
            .skip(1)
            .filter_map(|h| h.split('"').next())
            .map(str::to_owned)
            .collect()
    };
    let body = |r| async move { String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8") };
    let member_home = body(at::call_service(&app, get("/", &member)).await).await;
    assert_eq!(
        nav(&member_home),
        ["/", "/inbox", "/contacts", "/appointments"]
    );
    let admin_home = body(at::call_service(&app, get("/inbox", &admin)).await).await;
    assert_eq!(
        nav(&admin_home),
        [
            "/",
            "/inbox",
            "/contacts",
            "/appointments",
            "/kb",
            "/agents",
            "/exports",
            "/integrations",
            "/settings"
        ]
    );
    let erase_form = format!(r#"action="/contacts/{contact}/erase""#);
    let export_form = format!(r#"action="/contacts/{contact}/export""#);
    let page = body(at::call_service(&app, get(&contact_page, &member)).await).await;
    assert!(page.contains("Maria Lopez"));
    assert!(
        !page.contains(&erase_form) && !page.contains(&export_form),
        "{page}"
    );
    let page = body(at::call_service(&app, get(&contact_page, &admin)).await).await;
    assert!(
        page.contains(&erase_form) && page.contains(&export_form),
        "{page}"
    );

    // erasing is an admin's decision: a member's request changes nothing
    let erase = |cookie: &actix_web::cookie::Cookie<'static>| {
        at::TestRequest::post()
            .uri(&format!("/contacts/{contact}/erase"))
            .insert_header(("origin", "http://acme-dental.localhost:40123"))
            .cookie(cookie.clone())
            .set_form([("confirm", "erase")])
            .to_request()
    };
    let r = at::call_service(&app, erase(&member)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        content.contact(&contact).expect("get").is_some(),
        "still there"
    );
    let r = at::call_service(&app, erase(&admin)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(content.contact(&contact).expect("get").is_none(), "erased");
}

#[test]
fn origin_is_scheme_and_authority() {
    assert_eq!(
        origin_of("http://Acme.localhost:40123/x"),
        "http://acme.localhost:40123"
    );
    assert_eq!(origin_of("https://n.example"), "https://n.example");
}
