//! WhatsApp Cloud API: the verify-token handshake (`GET /channels/whatsapp/webhook`), and
//! webhooks (`POST`) whose raw body must carry a valid `X-Hub-Signature-256` (HMAC-SHA256
//! under the app secret, checked in constant time) before anything is parsed or stored.
//! Text messages are stored and answered; other types are stored as a placeholder such
//! as `[image]` and answered like text (usually the fallback message, so a person follows
//! up). Statuses of our messages (sent, delivered, read, failed) are recorded by a hash
//! of their id. Free-form replies go out only within 24 hours of the customer's last
//! message; templates are not supported yet, so later replies are not sent and the
//! conversation says so.

use super::{Channels, SendError, WHATSAPP};
use crate::domain::secrets::SecretKind;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Largest webhook body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// The customer-service window: free-form messages only this long after the customer's
/// last message.
pub const WINDOW_SECS: i64 = 24 * 3600;
/// Longest text body the Cloud API accepts, in characters.
const MAX_TEXT: usize = 4096;
/// Graph error code for "more than 24 hours since the customer last replied".
const REENGAGEMENT_ERROR: i64 = 131_047;

/// `GET` parameters of the verification handshake.
#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Default, Deserialize)]
struct Value {
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<WaMessage>,
    #[serde(default)]
    statuses: Vec<WaStatus>,
}

#[derive(Debug, Deserialize)]
struct WaContact {
    #[serde(default)]
    wa_id: String,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WaMessage {
    from: String,
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<Text>,
}

#[derive(Debug, Deserialize)]
struct Text {
    body: String,
}

#[derive(Debug, Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Debug, Deserialize)]
struct WaError {
    #[serde(default)]
    code: i64,
}

#[derive(Debug, Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentId>,
}

#[derive(Debug, Deserialize)]
struct SentId {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ErrorResponse {
    error: GraphError,
}

#[derive(Debug, Deserialize)]
struct GraphError {
    #[serde(default)]
    code: i64,
}

/// The status names we keep (anything else is recorded as `other`).
fn status_name(s: &str) -> &'static str {
    match s {
        "sent" => "sent",
        "delivered" => "delivered",
        "read" => "read",
        "failed" => "failed",
        _ => "other",
    }
}

impl Channels {
    fn whatsapp_secret(
        &self,
        kind: SecretKind,
    ) -> Result<Option<outpost_crypto::Secret>, SendError> {
        self.secrets.get(kind).map_err(|e| {
            tracing::error!(error = %e, "reading a WhatsApp secret failed");
            SendError::Retry("storage")
        })
    }

    /// Sends `text` to the WhatsApp user `to`, unless the 24-hour window since
    /// `last_inbound` (unix seconds) has closed.
    pub(super) async fn whatsapp_send(
        &self,
        to: &str,
        text: &str,
        last_inbound: i64,
    ) -> Result<(), SendError> {
        if crate::platform::store::now() - last_inbound > WINDOW_SECS {
            return Err(SendError::Permanent("outside_24h_window"));
        }
        let (Some(token), Some(phone_id)) = (
            self.whatsapp_secret(SecretKind::WhatsappAccessToken)?,
            self.whatsapp_secret(SecretKind::WhatsappPhoneNumberId)?,
        ) else {
            return Err(SendError::Retry("not_configured"));
        };
        let text: String = text.chars().take(MAX_TEXT).collect();
        let resp = self
            .http
            .post(format!(
                "{}/{}/messages",
                self.urls.graph,
                phone_id.expose()
            ))
            .bearer_auth(token.expose())
            .json(&serde_json::json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": false, "body": text},
            }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|_| SendError::Retry("unreachable"))?;
        let status = resp.status();
        if status.is_success() {
            if let Ok(sent) = resp.json::<SendResponse>().await {
                for m in sent.messages {
                    self.record_status(WHATSAPP, &m.id, "accepted");
                }
            }
            return Ok(());
        }
        let code = resp
            .json::<ErrorResponse>()
            .await
            .map(|e| e.error.code)
            .unwrap_or_default();
        Err(match status.as_u16() {
            _ if code == REENGAGEMENT_ERROR => SendError::Permanent("outside_24h_window"),
            401 => SendError::Retry("token_revoked"),
            429 => SendError::Retry("rate_limited"),
            400..=499 => SendError::Permanent("rejected"),
            _ => SendError::Retry("unreachable"),
        })
    }

    /// Handles a verified webhook body: messages are stored (once per `wamid`) and
    /// answered, statuses recorded.
    async fn whatsapp_payload(
        self: &Arc<Self>,
        payload: Payload,
    ) -> Result<(), super::ChannelError> {
        for change in payload.entry.into_iter().flat_map(|e| e.changes) {
            let v = change.value;
            for m in &v.messages {
                let name = v
                    .contacts
                    .iter()
                    .find(|c| c.wa_id == m.from)
                    .or(v.contacts.first())
                    .and_then(|c| c.profile.as_ref())
                    .and_then(|p| p.name.as_deref());
                let body = match (&m.text, m.kind.as_str()) {
                    (Some(t), "text") if !t.body.trim().is_empty() => t.body.clone(),
                    (_, kind) if !kind.is_empty() => format!("[{kind}]"),
                    _ => "[unsupported message]".to_owned(),
                };
                self.receive(WHATSAPP, &m.id, &m.from, name, &body).await?;
            }
            for s in &v.statuses {
                let status = status_name(&s.status);
                self.record_status(WHATSAPP, &s.id, status);
                if status == "failed" {
                    let code = s.errors.first().map_or(0, |e| e.code);
                    tracing::warn!(
                        status,
                        error_code = code,
                        "WhatsApp could not deliver a message"
                    );
                    self.health.record_error(
                        WHATSAPP,
                        if code == REENGAGEMENT_ERROR {
                            "outside_24h_window"
                        } else {
                            "delivery_failed"
                        },
                    );
                } else {
                    tracing::debug!(status, "WhatsApp delivery status");
                }
            }
        }
        Ok(())
    }
}

/// `GET /channels/whatsapp/webhook`: echoes `hub.challenge` iff the verify token matches.
pub(super) async fn verify(ch: web::Data<Channels>, q: web::Query<VerifyQuery>) -> HttpResponse {
    let expected = match ch.whatsapp_secret(SecretKind::WhatsappVerifyToken) {
        Ok(Some(t)) => t,
        Ok(None) => return HttpResponse::Forbidden().finish(),
        Err(_) => return HttpResponse::ServiceUnavailable().finish(),
    };
    let given = q.verify_token.as_deref().unwrap_or_default();
    let ok = q.mode.as_deref() == Some("subscribe")
        && outpost_crypto::ct_eq(given.as_bytes(), expected.expose().as_bytes());
    match (&q.challenge, ok) {
        (Some(challenge), true) if challenge.len() <= 256 => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(challenge.clone()),
        _ => {
            tracing::warn!("WhatsApp webhook verification refused");
            HttpResponse::Forbidden().finish()
        }
    }
}

/// `POST /channels/whatsapp/webhook`: 401 unless `X-Hub-Signature-256` signs the raw body.
pub(super) async fn webhook(
    ch: web::Data<Channels>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let secret = match ch.whatsapp_secret(SecretKind::WhatsappAppSecret) {
        Ok(Some(s)) => s,
        Ok(None) => return HttpResponse::Unauthorized().finish(),
        Err(_) => return HttpResponse::ServiceUnavailable().finish(),
    };
    let header = req.headers().get("X-Hub-Signature-256");
    let tag = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(outpost_common::hex::decode);
    let valid = tag.is_some_and(|tag| {
        outpost_crypto::hmac_verify(secret.expose().as_bytes(), &body, &tag).is_ok()
    });
    if !valid {
        ch.health
            .record_webhook_refused(WHATSAPP, "webhook_signature_invalid", header.is_some());
        tracing::warn!("WhatsApp webhook with a bad signature refused");
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(payload) = serde_json::from_slice::<Payload>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    ch.health.record_webhook_ok(WHATSAPP);
    match ch.whatsapp_payload(payload).await {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(e) => {
            tracing::error!(error = %e, "storing a WhatsApp webhook failed");
            // Meta redelivers non-2xx webhooks; ids already stored are skipped then.
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[cfg(test)]
mod tests {
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
                            "timestamp": "1700000000",
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
}
