//! Telegram and WhatsApp through the real binaries (issue 19, part 3): the owner saves the
//! channel credentials on the CP, which checks them with the provider and seals them to
//! the node; the node then takes a Telegram update from a fake Bot API (long polling, as
//! a node without a public https address does) and a WhatsApp webhook signed by this
//! test's own HMAC code, and answers both from its knowledge base through the fakes.
//! Neither the customers' words nor their ids nor the tokens reach the CP.

use crate::agents::{contains, files_under, node_answering_from, pg_rows_text};
use crate::harness::*;
use std::time::Duration;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const BOT_TOKEN: &str = "123456:AAE-e2e-canary-bot";
const WA_TOKEN: &str = "EAAG-e2e-canary-access";
const APP_SECRET: &str = "e2e-canary-app-secret-77";
const PHONE_ID: &str = "1098765";
const TG_QUESTION: &str = "Are you open on Saturdays?";
const WA_QUESTION: &str = "Where can I park my car?";
const WA_FROM: &str = "15557654321";

const KB: &str = "# Opening hours\n\nAcme Dental is open Monday to Friday from 8am to 6pm. \
On Saturdays we open from 9am to 1pm for emergencies only.\n\n# Parking\n\nFree parking is \
available behind the building on Elm Street.\n";

async fn fake_telegram() -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/bot{BOT_TOKEN}/getMe")))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"ok":true,"result":{"id":123456,"is_bot":true,"first_name":"Acme","username":"acme_bot"}}"#,
        ))
        .mount(&s)
        .await;
    // One update, then long polls that come back empty (as Telegram's do after their
    // timeout; shortened here).
    Mock::given(method("GET"))
        .and(path(format!("/bot{BOT_TOKEN}/getUpdates")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "result": [{
                "update_id": 500_001,
                "message": {
                    "message_id": 11,
                    "from": {"id": 4242, "is_bot": false, "first_name": "Ana"},
                    "chat": {"id": 4242, "type": "private", "first_name": "Ana"},
                    "date": 1_700_000_000,
                    "text": TG_QUESTION
                }
            }]
        })))
        .up_to_n_times(1)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/bot{BOT_TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(500))
                .set_body_string(r#"{"ok":true,"result":[]}"#),
        )
        .mount(&s)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT_TOKEN}/sendMessage")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "result": {"message_id": 12, "chat": {"id": 4242, "type": "private"}, "date": 1_700_000_001, "text": "…"}
        })))
        .mount(&s)
        .await;
    s
}

async fn fake_graph() -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{PHONE_ID}")))
        .and(query_param("fields", "id"))
        .and(header(
            "authorization",
            format!("Bearer {WA_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"id":"1098765"}"#))
        .mount(&s)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PHONE_ID}/messages")))
        .and(header(
            "authorization",
            format!("Bearer {WA_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": WA_FROM, "wa_id": WA_FROM}],
            "messages": [{"id": "wamid.OUT-1"}]
        })))
        .mount(&s)
        .await;
    s
}

/// The requests `server` received whose path ends with `suffix`.
async fn received(server: &MockServer, suffix: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().ends_with(suffix))
        .collect()
}

/// `X-Hub-Signature-256` as Meta computes it: HMAC-SHA256 of the raw body under the app
/// secret, hex. Written here with `ring` directly, not with the node's code.
fn meta_signature(body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, APP_SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn whatsapp_webhook() -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "880001",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                    "contacts": [{"profile": {"name": "Bea"}, "wa_id": WA_FROM}],
                    "messages": [{
                        "from": WA_FROM,
                        "id": "wamid.IN-e2e-1",
                        // Now: the 24-hour window counts from it.
                        "timestamp": std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs()
                            .to_string(),
                        "type": "text",
                        "text": {"body": WA_QUESTION}
                    }]
                }
            }]
        }]
    })
    .to_string()
}

#[tokio::test]
async fn telegram_and_whatsapp_customers_are_answered_by_the_node_and_the_cp_sees_none_of_it() {
    let (telegram, graph) = (fake_telegram().await, fake_graph().await);
    let graph_base = format!("{}/v21.0", graph.uri());
    let cp = Cp::start_with(Opts {
        env: vec![
            ("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into()),
            ("OUTPOST_TELEGRAM_BASE_URL", telegram.uri()),
            ("OUTPOST_GRAPH_BASE_URL", graph_base.clone()),
            // The local provisioner's nodes inherit these.
            ("OUTPOST_NODE_TELEGRAM_BASE_URL", telegram.uri()),
            ("OUTPOST_NODE_GRAPH_BASE_URL", graph_base),
        ],
        ..Opts::default()
    });
    let (browser, _, ws_id, node) = node_answering_from(&cp, KB).await;

    let page = format!("/workspaces/{ws_id}/secrets");
    for form in [
        vec![("kind", "telegram_bot_token"), ("value", BOT_TOKEN)],
        vec![
            ("kind", "whatsapp_access_token"),
            ("value", WA_TOKEN),
            ("phone_number_id", PHONE_ID),
        ],
        vec![("kind", "whatsapp_app_secret"), ("value", APP_SECRET)],
    ] {
        let r = browser.post_csrf(&page, &form).await;
        assert_eq!(
            r.status(),
            303,
            "{:?}: {}",
            form[0],
            r.text().await.unwrap()
        );
    }

    // Telegram: the node polls with the delivered token, stores the update and answers it.
    let sent = wait_for("the Telegram answer", 60, || async {
        received(&telegram, "/sendMessage").await.into_iter().next()
    })
    .await;
    let body: serde_json::Value = sent.body_json().unwrap();
    assert_eq!(body["chat_id"], 4242);
    let answer = body["text"].as_str().unwrap();
    assert!(
        answer.contains("9am to 1pm"),
        "answered from the KB: {answer}"
    );
    assert!(!answer.contains("clinic.md"), "no file name: {answer}");

    // WhatsApp: a webhook Meta signed is stored and answered; unsigned or wrongly signed
    // ones are refused and leave nothing.
    let webhook = format!("{}/channels/whatsapp/webhook", node.base);
    let payload = whatsapp_webhook();
    let post = |signature: Option<String>, body: String| {
        let mut req = node
            .client
            .post(&webhook)
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        req.send()
    };
    wait_for("the WhatsApp secrets on the node", 30, || async {
        let r = post(Some(meta_signature(&payload)), payload.clone())
            .await
            .unwrap();
        (r.status() == 200).then_some(())
    })
    .await;
    let sent = wait_for("the WhatsApp answer", 60, || async {
        received(&graph, "/messages").await.into_iter().next()
    })
    .await;
    let body: serde_json::Value = sent.body_json().unwrap();
    assert_eq!(body["to"], WA_FROM);
    let answer = body["text"]["body"].as_str().unwrap();
    assert!(
        answer.contains("Elm Street"),
        "answered from the KB: {answer}"
    );

    let forged = payload.replace("wamid.IN-e2e-1", "wamid.IN-e2e-2");
    assert_eq!(post(None, forged.clone()).await.unwrap().status(), 401);
    let wrong = meta_signature(&payload); // signs other bytes
    assert_eq!(post(Some(wrong), forged).await.unwrap().status(), 401);
    // Meta redelivers the first webhook: stored and answered once.
    assert_eq!(
        post(Some(meta_signature(&payload)), payload.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        received(&graph, "/messages").await.len(),
        1,
        "answered once"
    );
    assert_eq!(
        received(&telegram, "/sendMessage").await.len(),
        1,
        "answered once"
    );

    // Both conversations are in the node's inbox.
    let inbox = node.get("/inbox?status=all").await.text().await.unwrap();
    assert!(inbox.contains("Ana") && inbox.contains("Bea"), "{inbox}");

    // The CP has none of it: words, customer ids, tokens (files, log, PostgreSQL rows).
    let canaries = [
        TG_QUESTION,
        WA_QUESTION,
        WA_FROM,
        "Elm Street",
        BOT_TOKEN,
        WA_TOKEN,
        APP_SECRET,
    ];
    let node_root = cp.data_dir().join("nodes");
    for f in files_under(&cp.data_dir(), Some(&node_root))
        .iter()
        .chain([cp.log_path()].iter())
    {
        let bytes = std::fs::read(f).unwrap();
        for c in canaries {
            assert!(!contains(&bytes, c), "{c:?} in CP file {}", f.display());
        }
    }
    if cp.db_url.starts_with("postgres") {
        let rows = pg_rows_text(&cp);
        for c in canaries {
            assert!(!rows.contains(c), "{c:?} in a CP table");
        }
    }
}
