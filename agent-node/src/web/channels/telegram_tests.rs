//! Telegram against a local fake Bot API: polling, webhooks, crash windows.

use super::super::testkit::{contains, deliver_until, kit};
use super::super::{routes, ChannelUrls};
use super::*;
use actix_web::test as at;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "123456:AAE-canary-bot-token-xyz";

fn update(id: i64, text: &str) -> serde_json::Value {
    serde_json::json!({
        "update_id": id,
        "message": {
            "message_id": 7,
            "from": {"id": 4242, "is_bot": false, "first_name": "Ana", "last_name": "Lima"},
            "chat": {"id": 4242, "type": "private", "first_name": "Ana", "last_name": "Lima"},
            "date": 1_700_000_000,
            "text": text
        }
    })
}

async fn fake(updates: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "result": updates})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "result": {"message_id": 8, "chat": {"id": 4242, "type": "private"}, "date": 1_700_000_001, "text": "…"}
        })))
        .mount(&server)
        .await;
    server
}

fn urls(server: &MockServer) -> ChannelUrls {
    ChannelUrls {
        telegram: server.uri(),
        graph: "http://127.0.0.1:9".into(),
        twilio: "http://127.0.0.1:9".into(),
    }
}

#[tokio::test]
async fn a_polled_message_is_stored_answered_and_processed_once() {
    let server = fake(serde_json::json!([update(
        1001,
        "What are your opening hours?"
    )]))
    .await;
    let k = kit(urls(&server));
    k.put(SecretKind::TelegramBotToken, TOKEN);
    let token = Secret::new(TOKEN.to_owned());
    assert_eq!(k.channels.telegram_poll_once(&token).await, Ok(1));
    let sent = deliver_until(&k.channels, &server, "/sendMessage", 1).await;
    let body: serde_json::Value = sent[0].body_json().expect("json");
    assert_eq!(body["chat_id"], 4242);
    let text = body["text"].as_str().expect("text");
    assert!(
        text.contains("Monday to Friday"),
        "answer from the KB: {text}"
    );
    assert_eq!(k.message_count(), 2, "question and answer");
    assert_eq!(
        k.store.meta(OFFSET_KEY).expect("meta").as_deref(),
        Some("1002")
    );

    // The fake ignores the offset and replays update 1001: processed once.
    assert_eq!(k.channels.telegram_poll_once(&token).await, Ok(1));
    k.channels.deliver_pending(&[]).await.expect("deliver");
    tokio::time::sleep(Duration::from_millis(200)).await;
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(k.message_count(), 2);
    let sends = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .count();
    assert_eq!(sends, 1, "answered once");
    let polls: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("/getUpdates"))
        .map(|r| r.url.query().unwrap_or_default().to_owned())
        .collect();
    assert!(polls[0].contains("offset=0"));
    assert!(polls[1].contains("offset=1002"));

    // The contact carries the chat id and name.
    let conv = conv_id(&k);
    let content = k.channels.runtime.content();
    let contact_id = content
        .conversation(&conv)
        .expect("conv")
        .expect("exists")
        .contact_id;
    let contact = content
        .contact(&contact_id)
        .expect("contact")
        .expect("exists");
    assert_eq!(
        (
            contact.channel.as_str(),
            contact.identity.as_str(),
            contact.name.as_deref()
        ),
        ("telegram", "4242", Some("Ana Lima"))
    );

    // A staff reply from the inbox is delivered too, once.
    k.channels
        .runtime
        .content()
        .append_message(
            &conv,
            crate::domain::content::Author::Human,
            "See you tomorrow!",
        )
        .expect("reply");
    let sent = deliver_until(&k.channels, &server, "/sendMessage", 2).await;
    let body: serde_json::Value = sent[1].body_json().expect("json");
    assert_eq!(body["text"], "See you tomorrow!");
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(
        deliver_until(&k.channels, &server, "/sendMessage", 2)
            .await
            .len(),
        2
    );

    // Canary: the token is sealed in node.db.
    assert!(!contains(&k.db_bytes(), TOKEN));
    assert_eq!(
        k.channels.health().check("telegram").map(|c| c.ok),
        Some(true)
    );
}

/// A failure between marking an update id as seen and storing its message (injected
/// with a trigger refusing the message's row) leaves the id unclaimed, so the
/// provider's redelivery is stored, once.
#[tokio::test]
async fn an_update_whose_storing_failed_is_stored_when_redelivered() {
    let server = fake(serde_json::json!([])).await;
    let k = kit(urls(&server));
    let upd = || serde_json::from_value::<Update>(update(3001, "Are you open today?"));
    k.store
        .with(|c| {
            c.execute_batch(
                "CREATE TEMP TRIGGER fail_here BEFORE INSERT ON messages
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )?;
            Ok(())
        })
        .expect("trigger");
    assert!(k
        .channels
        .telegram_update(upd().expect("update"))
        .await
        .is_err());
    assert_eq!(k.message_count(), 0);
    k.store
        .with(|c| Ok(c.execute_batch("DROP TRIGGER temp.fail_here")?))
        .expect("drop trigger");

    assert_eq!(
        k.channels
            .telegram_update(upd().expect("update"))
            .await
            .ok(),
        Some(true),
        "the redelivery is new to the node"
    );
    assert_eq!(
        k.channels
            .telegram_update(upd().expect("update"))
            .await
            .ok(),
        Some(false),
        "and the next one a duplicate"
    );
    let contact_messages: i64 = k
        .store
        .with(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM messages WHERE author = 'contact'",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("count");
    assert_eq!(contact_messages, 1);
}

/// The node stops (the delivery task is dropped) after Telegram received a message
/// and before it answered: the message may have arrived, so it is not sent again; the
/// conversation says so to staff, and later messages go out as usual.
#[tokio::test]
async fn a_send_interrupted_by_a_crash_is_not_repeated_and_staff_are_told() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(600)))
        .mount(&server)
        .await;
    let k = kit(urls(&server));
    k.put(SecretKind::TelegramBotToken, TOKEN);
    let upd = serde_json::from_value::<Update>(update(4001, "What are your opening hours?"))
        .expect("update");
    assert_eq!(k.channels.telegram_update(upd).await.ok(), Some(true));
    let conv = conv_id(&k);
    for _ in 0..100 {
        if k.message_count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(k.message_count(), 2, "the answer is written");

    let delivery = tokio::spawn({
        let ch = k.channels.clone();
        async move { ch.deliver_pending(&[]).await }
    });
    for _ in 0..200 {
        if !server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
    delivery.abort();
    let _ = delivery.await;

    // "Restarted": Telegram answers at once now.
    server.reset().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "result": {"message_id": 9, "chat": {"id": 4242, "type": "private"}, "date": 1_700_000_002, "text": "…"}
        })))
        .mount(&server)
        .await;
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        0,
        "not sent twice"
    );
    let messages = k
        .channels
        .runtime
        .content()
        .messages_after(&conv, 0, 10)
        .expect("messages");
    let last = messages.last().expect("a message");
    assert_eq!(last.author, crate::domain::content::Author::System);
    assert_eq!(last.body, super::super::INTERRUPTED_NOTE);

    k.channels
        .runtime
        .content()
        .append_message(
            &conv,
            crate::domain::content::Author::Human,
            "Sorry, we open at 8.",
        )
        .expect("reply");
    let sent = deliver_until(&k.channels, &server, "/sendMessage", 1).await;
    let body: serde_json::Value = sent[0].body_json().expect("json");
    assert_eq!(body["text"], "Sorry, we open at 8.");
}

fn conv_id(k: &super::super::testkit::Kit) -> String {
    k.store
        .with(|c| {
            Ok(c.query_row(
                "SELECT conversation_id FROM channel_conversations",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("conversation")
}

#[tokio::test]
async fn a_revoked_token_or_no_network_sets_the_check() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/bot{TOKEN}/getUpdates")))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "ok": false, "error_code": 401, "description": "Unauthorized"
        })))
        .mount(&server)
        .await;
    let k = kit(urls(&server));
    k.put(SecretKind::TelegramBotToken, TOKEN);
    let token = Secret::new(TOKEN.to_owned());
    assert_eq!(
        k.channels.telegram_poll_once(&token).await,
        Err("token_revoked")
    );
    // The loop records what poll_once returns; do the same here through `run`.
    let run = tokio::spawn(run(k.channels.clone()));
    for _ in 0..50 {
        if k.channels.health().check("telegram").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.abort();
    let check = k.channels.health().check("telegram").expect("check");
    assert!(!check.ok);
    assert_eq!(check.detail_code.as_deref(), Some("token_revoked"));

    let offline = kit(ChannelUrls {
        telegram: "http://127.0.0.1:9".into(),
        graph: "http://127.0.0.1:9".into(),
        twilio: "http://127.0.0.1:9".into(),
    });
    assert_eq!(
        offline.channels.telegram_poll_once(&token).await,
        Err("unreachable")
    );
}

#[actix_web::test]
async fn the_webhook_needs_the_secret_token() {
    let k = kit(ChannelUrls::default());
    k.put(SecretKind::TelegramBotToken, TOKEN);
    let app = at::init_service(
        actix_web::App::new()
            .app_data(web::Data::from(k.channels.clone()))
            .configure(routes),
    )
    .await;
    let body = update(55, "Hello").to_string();
    for secret in [None, Some("wrong")] {
        let mut req = at::TestRequest::post()
            .uri("/channels/telegram/webhook")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.clone());
        if let Some(s) = secret {
            req = req.insert_header((SECRET_HEADER, s));
        }
        let resp = at::call_service(&app, req.to_request()).await;
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(k.message_count(), 0, "nothing stored");
    assert_eq!(
        k.channels.health().check("telegram"),
        None,
        "a forged request does not make the channel look broken"
    );

    let secret = k
        .channels
        .telegram_webhook_secret(&Secret::new(TOKEN.to_owned()));
    assert!(secret.len() <= 256 && secret.chars().all(|c| c.is_ascii_alphanumeric()));
    // Groups are not answered.
    let mut group = update(54, "Hello all");
    group["message"]["chat"] = serde_json::json!({"id": -100, "type": "group", "title": "Team"});
    let req = at::TestRequest::post()
        .uri("/channels/telegram/webhook")
        .insert_header(("Content-Type", "application/json"))
        .insert_header((SECRET_HEADER, secret.clone()))
        .set_payload(group.to_string())
        .to_request();
    assert_eq!(at::call_service(&app, req).await.status(), 200);
    assert_eq!(k.message_count(), 0, "group ignored");

    let req = at::TestRequest::post()
        .uri("/channels/telegram/webhook")
        .insert_header(("Content-Type", "application/json"))
        .insert_header((SECRET_HEADER, secret))
        .set_payload(body)
        .to_request();
    let resp = at::call_service(&app, req).await;
    assert_eq!(resp.status(), 200);
    assert!(k.message_count() >= 1, "stored");
}

#[test]
fn non_text_messages_become_placeholders() {
    let m: TgMessage = serde_json::from_value(serde_json::json!({
        "message_id": 1, "chat": {"id": 1, "type": "private"}, "photo": [{"file_id": "x"}]
    }))
    .expect("message");
    assert_eq!(placeholder(&m.rest), "[photo]");
}
