//! WhatsApp against a local fake Graph API: the handshake, signatures, the 24-hour window.

use super::super::testkit::{contains, deliver_until, kit, Kit};
use super::super::{routes, ChannelUrls};
use super::*;
use crate::domain::content::Author;
use crate::test_support::LogBuffer;
use actix_web::test as at;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP_SECRET: &str = "canary-app-secret-5f2c";
const ACCESS_TOKEN: &str = "EAAGcanaryAccessToken123";
const PHONE_ID: &str = "106540352242922";
const VERIFY: &str = "verify-me-please";

fn configure(k: &Kit) {
    k.put(SecretKind::WhatsappAppSecret, APP_SECRET);
    k.put(SecretKind::WhatsappAccessToken, ACCESS_TOKEN);
    k.put(SecretKind::WhatsappPhoneNumberId, PHONE_ID);
    k.put(SecretKind::WhatsappVerifyToken, VERIFY);
}

fn text_message(wamid: &str, text: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                    "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551181"}],
                    "messages": [{
                        "from": "16315551181",
                        "id": wamid,
                        "timestamp": crate::platform::store::now().to_string(),
                        "type": "text",
                        "text": {"body": text}
                    }]
                }
            }]
        }]
    })
    .to_string()
}

fn sign(body: &str) -> String {
    format!(
        "sha256={}",
        outpost_common::hex(&outpost_crypto::hmac_sign(
            APP_SECRET.as_bytes(),
            body.as_bytes()
        ))
    )
}

async fn graph() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{PHONE_ID}/messages")))
        .and(header(
            "Authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "16315551181", "wa_id": "16315551181"}],
            "messages": [{"id": "wamid.HBgLMTYzMTU1NTExODEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]
        })))
        .mount(&server)
        .await;
    server
}

fn urls(server: &MockServer) -> ChannelUrls {
    ChannelUrls {
        telegram: "http://127.0.0.1:9".into(),
        graph: server.uri(),
        twilio: "http://127.0.0.1:9".into(),
    }
}

macro_rules! app {
    ($k:expr) => {
        at::init_service(
            actix_web::App::new()
                .app_data(web::Data::from($k.channels.clone()))
                .configure(routes),
        )
        .await
    };
}

macro_rules! post {
    ($app:expr, $body:expr, $signature:expr) => {{
        let sig: Option<&str> = $signature;
        let mut req = at::TestRequest::post()
            .uri("/channels/whatsapp/webhook")
            .insert_header(("Content-Type", "application/json"))
            .set_payload($body.to_owned());
        if let Some(s) = sig {
            req = req.insert_header(("X-Hub-Signature-256", s));
        }
        at::call_service(&$app, req.to_request())
            .await
            .status()
            .as_u16()
    }};
}

#[actix_web::test]
async fn the_verify_handshake_echoes_the_challenge_only_for_the_right_token() {
    let k = kit(ChannelUrls::default());
    configure(&k);
    let app = app!(k);
    let req = at::TestRequest::get()
        .uri(&format!(
            "/channels/whatsapp/webhook?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444"
        ))
        .to_request();
    let resp = at::call_service(&app, req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(at::read_body(resp).await, "1158201444");
    for uri in [
        "/channels/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
        "/channels/whatsapp/webhook?hub.mode=subscribe&hub.challenge=1",
        "/channels/whatsapp/webhook",
    ] {
        let resp = at::call_service(&app, at::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(resp.status(), 403, "{uri}");
    }
}

#[actix_web::test]
async fn a_signed_message_is_stored_answered_once_and_secrets_stay_sealed() {
    let logs = LogBuffer::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .finish(),
    );
    let server = graph().await;
    let k = kit(urls(&server));
    configure(&k);
    let app = app!(k);

    let body = text_message("wamid.IN1", "What are your opening hours?");
    assert_eq!(post!(app, &body, Some(&sign(&body))), 200);
    let sent = deliver_until(&k.channels, &server, "/messages", 1).await;
    let json: serde_json::Value = sent[0].body_json().expect("json");
    assert_eq!(json["messaging_product"], "whatsapp");
    assert_eq!(json["to"], "16315551181");
    assert_eq!(json["type"], "text");
    let answer = json["text"]["body"].as_str().expect("body");
    assert!(answer.contains("Monday to Friday"), "{answer}");
    assert_eq!(k.message_count(), 2);

    // Meta redelivers the same wamid: processed once.
    assert_eq!(post!(app, &body, Some(&sign(&body))), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(k.message_count(), 2);
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1,
        "answered once"
    );

    // A status for our message is recorded by id, without content.
    let sent_id = "wamid.HBgLMTYzMTU1NTExODEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";
    assert_eq!(
        k.channels
            .status_of(WHATSAPP, sent_id)
            .expect("status")
            .as_deref(),
        Some("accepted")
    );
    let status = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "statuses": [{"id": sent_id, "status": "delivered", "timestamp": "1700000005", "recipient_id": "16315551181"}]
    }}]}]})
    .to_string();
    assert_eq!(post!(app, &status, Some(&sign(&status))), 200);
    assert_eq!(
        k.channels
            .status_of(WHATSAPP, sent_id)
            .expect("status")
            .as_deref(),
        Some("delivered")
    );
    assert_eq!(
        k.channels.health().check("whatsapp").map(|c| c.ok),
        Some(true)
    );

    // Canaries: secrets are sealed in node.db and never logged.
    let db = k.db_bytes();
    let logged = logs.text();
    for secret in [APP_SECRET, ACCESS_TOKEN] {
        assert!(!contains(&db, secret), "{secret} in node.db");
        assert!(!logged.contains(secret), "{secret} logged");
    }
    assert!(!logged.contains("opening hours"), "content logged");
    assert!(
        logged.contains("duplicate inbound message ignored"),
        "the canary sees the logs"
    );
}

#[actix_web::test]
async fn a_wrong_or_missing_signature_stores_nothing() {
    let k = kit(ChannelUrls::default());
    configure(&k);
    let app = app!(k);
    let body = text_message("wamid.BAD", "Hello");
    let wrong = format!(
        "sha256={}",
        outpost_common::hex(&outpost_crypto::hmac_sign(
            b"another secret",
            body.as_bytes()
        ))
    );
    assert_eq!(post!(app, &body, None), 401);
    assert_eq!(post!(app, &body, Some(&wrong)), 401);
    assert_eq!(post!(app, &body, Some("sha256=zz")), 401);
    // Signed, then altered.
    let signed = sign(&body);
    let altered = body.replace("Hello", "Hellp");
    assert_eq!(post!(app, &altered, Some(&signed)), 401);
    // Larger than the limit: refused before anything is read into memory.
    let huge = "x".repeat(MAX_BODY + 1);
    assert_eq!(post!(app, &huge, Some(&sign(&huge))), 413);
    assert_eq!(k.message_count(), 0);
    assert_eq!(
        k.channels.health().check("whatsapp"),
        None,
        "forged requests do not make the channel look broken"
    );
}

#[actix_web::test]
async fn a_reply_outside_the_24_hour_window_is_not_sent() {
    let server = graph().await;
    let k = kit(urls(&server));
    configure(&k);
    let app = app!(k);
    let body = text_message("wamid.OLD", "What are your opening hours?");
    assert_eq!(post!(app, &body, Some(&sign(&body))), 200);
    deliver_until(&k.channels, &server, "/messages", 1).await;

    // The customer's last message is now 25 hours old.
    let conv: String = k
        .store
        .with(|c| {
            c.execute(
                "UPDATE channel_conversations SET last_inbound_at = last_inbound_at - 90000",
                [],
            )?;
            Ok(c.query_row(
                "SELECT conversation_id FROM channel_conversations",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("conversation");
    let content = k.channels.runtime.content();
    content
        .append_message(&conv, Author::Human, "Are you still there?")
        .expect("reply");
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1,
        "not sent"
    );
    let last = content.recent_messages(&conv, 1).expect("messages");
    assert_eq!(last[0].author, Author::System);
    assert!(last[0].body.contains("24 hours"), "{}", last[0].body);
    assert_eq!(
        k.channels
            .health()
            .check("whatsapp")
            .and_then(|c| c.detail_code),
        Some("outside_24h_window".to_owned())
    );
    // Recorded once, not retried.
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(
        content.recent_messages(&conv, 10).expect("messages").len(),
        4
    );
}

#[actix_web::test]
async fn the_window_counts_from_when_the_customer_wrote_not_from_a_late_redelivery() {
    let server = graph().await;
    let k = kit(urls(&server));
    configure(&k);
    let app = app!(k);
    // Meta redelivers, now, a message the customer sent 25 hours ago.
    let written = crate::platform::store::now() - 25 * 3600;
    let mut v: serde_json::Value =
        serde_json::from_str(&text_message("wamid.LATE", "What are your opening hours?"))
            .expect("json");
    v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = written.to_string().into();
    let body = v.to_string();
    assert!(body.contains(&written.to_string()), "{body}");
    assert_eq!(post!(app, &body, Some(&sign(&body))), 200);
    let conv: String = k
        .store
        .with(|c| {
            Ok(c.query_row(
                "SELECT conversation_id FROM channel_conversations",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("conversation");
    assert!(!crate::web::channels::wa_templates::window_open(
        &k.store, &conv
    ));
    // The answer is not sent as free text: WhatsApp would refuse it.
    for _ in 0..20 {
        k.channels.deliver_pending(&[]).await.expect("deliver");
        let content = k.channels.runtime.content();
        if content
            .recent_messages(&conv, 10)
            .expect("messages")
            .iter()
            .any(|m| m.author == Author::System)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .all(|r| !r.url.path().ends_with("/messages")));
}

#[actix_web::test]
async fn nothing_is_delivered_while_the_workspace_is_suspended() {
    let server = graph().await;
    let k = kit(urls(&server));
    configure(&k);
    k.store
        .with(|c| {
            crate::platform::store::Store::set_meta(
                c,
                crate::platform::store::SUSPENDED_KEY,
                "billing",
            )
        })
        .expect("suspend");
    let app = app!(k);
    let body = text_message("wamid.SUSP", "What are your opening hours?");
    assert_eq!(post!(app, &body, Some(&sign(&body))), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(k.message_count(), 1, "kept, not answered");
    let conv: String = k
        .store
        .with(|c| {
            Ok(c.query_row(
                "SELECT conversation_id FROM channel_conversations",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("conversation");
    k.channels
        .runtime
        .content()
        .append_message(&conv, Author::Human, "Hello from staff")
        .expect("reply");
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
    // Resumed: the backlog goes out.
    k.store
        .with(|c| {
            crate::platform::store::Store::delete_meta(c, crate::platform::store::SUSPENDED_KEY)
        })
        .expect("resume");
    let sent = deliver_until(&k.channels, &server, "/messages", 1).await;
    let json: serde_json::Value = sent[0].body_json().expect("json");
    assert_eq!(json["text"]["body"], "Hello from staff");
}
