//! Issue 19 part 4 through the real binaries: an owner makes a node API token and a
//! webhook endpoint on the node console's Integrations page; a visitor's message then
//! reaches a fake receiver as signed Standard Webhooks deliveries (checked here with
//! ring, not the node's code) and is readable over the node's API with the token, until
//! the token is revoked. The control plane never sees the message, the token or the
//! secret.

use crate::harness::*;
use base64::Engine as _;

fn shown_once(page: &str, id: &str) -> String {
    page.split(&format!("id=\"{id}\">"))
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("{id} on the page"))
        .to_owned()
}

/// The receiver's check (Standard Webhooks "Verifying webhooks"), with its own code.
fn verify(secret: &str, req: &wiremock::Request) -> serde_json::Value {
    let h = |n: &str| req.headers[n].to_str().unwrap().to_owned();
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts.parse::<i64>().unwrap()).abs() < 300, "fresh");
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&req.body);
    let expected = format!(
        "v1,{}",
        b64.encode(ring::hmac::sign(&key, &signed).as_ref())
    );
    assert!(sig.split(' ').any(|s| s == expected), "signature verifies");
    serde_json::from_slice(&req.body).unwrap()
}

#[tokio::test]
async fn webhooks_and_the_api_carry_a_visitors_message_to_the_customer_and_not_the_cp() {
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let cp = Cp::start_with(Opts {
        env: vec![("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into())],
        ..Opts::default()
    });
    let (_browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@hooks.test", "Hook Shop").await;
    let agent = create_agent(
        &api,
        &node,
        &ws_id,
        crate::agents::agent_body("Ava", "retrieval", "", ""),
    )
    .await;

    let r = node
        .post(
            "/integrations/webhooks",
            &[
                ("url", &format!("{}/outpost", receiver.uri())),
                ("event", "conversation.created"),
                ("event", "message.created"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let secret = shown_once(&r.text().await.unwrap(), "new-secret");
    assert!(secret.starts_with("whsec_"));
    let r = node
        .post(
            "/integrations/tokens",
            &[
                ("name", "CRM"),
                ("expires_days", "30"),
                ("scope", "conversations:read"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = shown_once(&r.text().await.unwrap(), "new-token");

    let canary = format!("HOOK-CANARY-{}", uuid::Uuid::new_v4().simple());
    let mut visitor = Visitor::new(&node, &agent, None);
    visitor.begin().await;
    visitor.say(&canary).await;

    let bodies = wait_for("the webhooks to arrive", 30, || async {
        let got = receiver.received_requests().await.unwrap();
        let bodies: Vec<serde_json::Value> = got.iter().map(|r| verify(&secret, r)).collect();
        bodies
            .iter()
            .any(|b| b["data"]["message"]["text"] == canary.as_str())
            .then_some(bodies)
    })
    .await;
    let conv = bodies
        .iter()
        .find(|b| b["type"] == "conversation.created")
        .expect("conversation.created")["data"]["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let call = |path: String, token: String| {
        let client = node.client.clone();
        let url = format!("{}{path}", node.base);
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let r = call(
        format!("/api/v1/conversations/{conv}/messages"),
        token.clone(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let page: serde_json::Value = r.json().await.unwrap();
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["text"] == canary.as_str()));
    let r = call("/api/v1/contacts".into(), token.clone()).await;
    assert_eq!(r.status(), 403, "conversations:read only");
    let doc: serde_json::Value = call("/api/v1/openapi.json".into(), String::new())
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/conversations"]["get"].is_object());

    // Revoked from the page: refused at once.
    let page = node.get("/integrations").await.text().await.unwrap();
    assert!(
        !page.contains(&token) && !page.contains(&secret),
        "shown once"
    );
    let revoke = page
        .split("action=\"/integrations/tokens/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a revoke form")
        .to_owned();
    let r = node
        .post(&format!("/integrations/tokens/{revoke}"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let r = call("/api/v1/conversations".into(), token.clone()).await;
    assert_eq!(r.status(), 401);

    let log = cp.log();
    for needle in [canary.as_str(), token.as_str(), secret.as_str()] {
        assert!(!log.contains(needle), "the CP never sees it");
    }
}
