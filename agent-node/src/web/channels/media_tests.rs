//! Files customers send, against a fake Graph API and a fake Bot API speaking their wire
//! formats: downloaded with the token, sealed at rest, refused in words when too large
//! or missing, gone with the contact.

use super::super::testkit::{contains, kit, Kit};
use super::super::ChannelUrls;
use crate::domain::content::{Author, MAX_MEDIA_BYTES};
use crate::domain::secrets::SecretKind;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::super::testkit::{WA_ACCESS_TOKEN as ACCESS_TOKEN, WA_PHONE_ID as PHONE_ID};
const BOT_TOKEN: &str = "123456:AAE-canary-bot-token-xyz";

/// A "picture": a JPEG header and a canary no sealed copy may show.
fn picture() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend_from_slice(b"JFIF CANARY-PIXELS-7f3a9 ");
    b.extend((0..2048u32).map(|i| (i % 251) as u8));
    b
}

fn sha256_hex(b: &[u8]) -> String {
    outpost_common::hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

/// The `messages` webhook value of Meta's Cloud API for a media message.
fn media_webhook(wamid: &str, kind: &str, media: serde_json::Value) -> serde_json::Value {
    let mut message = serde_json::json!({
        "from": "16315551181",
        "id": wamid,
        "timestamp": crate::platform::store::now().to_string(),
        "type": kind,
    });
    message[kind] = media;
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
                    "messages": [message]
                }
            }]
        }]
    })
}

/// `GET /{media id}` answering like the Graph API (file_size as a string, as Meta sends it),
/// and the download URL, both only with the access token.
async fn graph_media(server: &MockServer, media_id: &str, mime: &str, bytes: &[u8], size: usize) {
    Mock::given(method("GET"))
        .and(path(format!("/{media_id}")))
        .and(header("Authorization", format!("Bearer {ACCESS_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/whatsapp_business/attachments/?mid={media_id}&ext=1700000300&hash=ATuX", server.uri()),
            "mime_type": mime,
            "sha256": sha256_hex(bytes),
            "file_size": size.to_string(),
            "id": media_id
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .and(query_param("mid", media_id))
        .and(header(
            "Authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), mime))
        .mount(server)
        .await;
}

fn whatsapp_kit(server: &MockServer) -> Kit {
    super::super::testkit::whatsapp_kit(&server.uri())
}

/// The only conversation's messages (body, media size) and its contact.
fn stored(k: &Kit) -> (String, Vec<(i64, Author, String)>) {
    let (conv, contact): (String, String) = k
        .store
        .with(|c| {
            Ok(
                c.query_row("SELECT id, contact_id FROM conversations", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?,
            )
        })
        .expect("one conversation");
    let content = k.channels.runtime.content();
    let msgs = content
        .recent_messages(&conv, 50)
        .expect("messages")
        .into_iter()
        .map(|m| (m.id, m.author, m.body))
        .collect();
    (contact, msgs)
}

fn media_rows(k: &Kit) -> i64 {
    k.store
        .with(|c| Ok(c.query_row("SELECT COUNT(*) FROM message_media", [], |r| r.get(0))?))
        .expect("count")
}

#[actix_web::test]
async fn a_whatsapp_image_is_downloaded_sealed_shown_and_erased_with_the_contact() {
    let server = MockServer::start().await;
    let bytes = picture();
    graph_media(
        &server,
        "1037543291543636",
        "image/jpeg",
        &bytes,
        bytes.len(),
    )
    .await;
    let k = whatsapp_kit(&server);
    let payload = media_webhook(
        "wamid.IMG1",
        "image",
        serde_json::json!({
            "caption": "Is this tooth chipped?",
            "mime_type": "image/jpeg",
            "sha256": sha256_hex(&bytes),
            "id": "1037543291543636"
        }),
    );
    k.channels
        .whatsapp_payload(serde_json::from_value(payload.clone()).expect("payload"))
        .await
        .expect("stored");

    let (contact, msgs) = stored(&k);
    assert_eq!(
        msgs[0].2, "Is this tooth chipped?",
        "the caption is the text"
    );
    let content = k.channels.runtime.content();
    let file = content.media(msgs[0].0).expect("read").expect("a file");
    assert_eq!(file.data, bytes);
    assert_eq!(file.info.content_type, "image/jpeg");
    assert_eq!(file.info.kind, "image");
    assert!(
        !contains(&k.db_bytes(), "CANARY-PIXELS-7f3a9"),
        "the bytes on disk are not the picture"
    );

    // Meta redelivers: nothing is downloaded or stored again.
    let downloads = || async {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().starts_with("/whatsapp_business"))
            .count()
    };
    assert_eq!(downloads().await, 1);
    k.channels
        .whatsapp_payload(serde_json::from_value(payload).expect("payload"))
        .await
        .expect("redelivery");
    assert_eq!(downloads().await, 1);
    assert_eq!(media_rows(&k), 1);

    content.erase_contact(&contact, "user-1").expect("erase");
    assert!(content.media(msgs[0].0).expect("read").is_none());
    assert_eq!(media_rows(&k), 0, "gone with the contact");
}

#[actix_web::test]
async fn an_oversized_or_missing_whatsapp_file_is_refused_in_words_and_nothing_is_stored() {
    let server = MockServer::start().await;
    let bytes = picture();
    // Declared larger than the limit: refused before the download.
    graph_media(&server, "2001", "video/mp4", &bytes, MAX_MEDIA_BYTES + 1).await;
    // The Graph API no longer has this one.
    Mock::given(method("GET"))
        .and(path("/2002"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100, "error_subcode": 33}
        })))
        .mount(&server)
        .await;
    let k = whatsapp_kit(&server);
    for (wamid, kind, media) in [
        (
            "wamid.BIG",
            "video",
            serde_json::json!({"mime_type": "video/mp4", "sha256": "x", "id": "2001"}),
        ),
        (
            "wamid.GONE",
            "document",
            serde_json::json!({"caption": "my x-ray", "filename": "xray.pdf", "mime_type": "application/pdf", "sha256": "x", "id": "2002"}),
        ),
        (
            "wamid.SVG",
            "document",
            serde_json::json!({"filename": "logo.svg", "mime_type": "image/svg+xml", "sha256": "x", "id": "2003"}),
        ),
    ] {
        let payload = media_webhook(wamid, kind, media);
        k.channels
            .whatsapp_payload(serde_json::from_value(payload).expect("payload"))
            .await
            .expect("the message is still stored");
    }
    let (_, msgs) = stored(&k);
    let from_contact: Vec<&str> = msgs
        .iter()
        .filter(|m| m.1 == Author::Contact)
        .map(|m| m.2.as_str())
        .collect();
    assert_eq!(
        from_contact,
        [
            "[video could not be fetched: larger than 16 MB]",
            "[document: xray.pdf could not be fetched]\nmy x-ray",
            "[document: logo.svg could not be fetched: this file type is not accepted]",
        ]
    );
    assert_eq!(media_rows(&k), 0);
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(
        !requests
            .iter()
            .any(|r| r.url.path().starts_with("/whatsapp_business") || r.url.path() == "/2003"),
        "neither the oversized file nor the refused type was downloaded"
    );
}

#[tokio::test]
async fn a_telegram_photo_is_fetched_with_get_file_and_sealed() {
    let server = MockServer::start().await;
    let bytes = picture();
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT_TOKEN}/getFile")))
        .and(body_json(
            serde_json::json!({"file_id": "AgACAgQAAxkBAAIBLARGE"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "result": {
                "file_id": "AgACAgQAAxkBAAIBLARGE",
                "file_unique_id": "AQADlarge",
                "file_size": bytes.len(),
                "file_path": "photos/file_12.jpg"
            }
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/file/bot{BOT_TOKEN}/photos/file_12.jpg")))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(bytes.clone(), "application/octet-stream"),
        )
        .mount(&server)
        .await;
    let k = kit(ChannelUrls {
        telegram: server.uri(),
        graph: "http://127.0.0.1:9".into(),
        twilio: "http://127.0.0.1:9".into(),
    });
    k.put(SecretKind::TelegramBotToken, BOT_TOKEN);
    let update = serde_json::json!({
        "update_id": 5001,
        "message": {
            "message_id": 9,
            "from": {"id": 4242, "is_bot": false, "first_name": "Ana"},
            "chat": {"id": 4242, "type": "private", "first_name": "Ana"},
            "date": 1_700_000_000,
            "photo": [
                {"file_id": "AgACAgQAAxkBAAIBLSMALL", "file_unique_id": "AQADsmall", "file_size": 1200, "width": 90, "height": 67},
                {"file_id": "AgACAgQAAxkBAAIBLARGE", "file_unique_id": "AQADlarge", "file_size": bytes.len(), "width": 1280, "height": 960}
            ],
            "caption": "Here is the rash"
        }
    });
    let new = k
        .channels
        .telegram_update(serde_json::from_value(update).expect("update"))
        .await
        .expect("stored");
    assert!(new);
    let (_, msgs) = stored(&k);
    assert_eq!(msgs[0].2, "Here is the rash");
    let file = k
        .channels
        .runtime
        .content()
        .media(msgs[0].0)
        .expect("read")
        .expect("a file");
    assert_eq!((file.data, file.info.kind.as_str()), (bytes, "photo"));
    assert_eq!(file.info.content_type, "image/jpeg");
    assert!(!contains(&k.db_bytes(), "CANARY-PIXELS-7f3a9"));
}
