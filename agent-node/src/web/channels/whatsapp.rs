//! WhatsApp Cloud API: the verify-token handshake (`GET /channels/whatsapp/webhook`), and
//! webhooks (`POST`) whose raw body must carry a valid `X-Hub-Signature-256` (HMAC-SHA256
//! under the app secret, checked in constant time) before anything is parsed or stored.
//! Text messages are stored and answered; images, audio, documents, videos and stickers
//! are downloaded and stored with their message (see `media`), their caption (or a
//! placeholder such as `[image]`) being its text; other types are stored as a placeholder
//! and answered like text (usually the fallback message, so a person follows up).
//! Statuses of our messages (sent, delivered, read, failed) are recorded by a hash of
//! their id. Free-form replies go out only within 24 hours of the customer's last
//! message; later, only a template staff picked in the inbox (`wa_templates`) is sent,
//! and any other reply is not sent and the conversation says so.

use super::media::{body_for, Attachment};
use super::{Channels, SendError, WHATSAPP};
use crate::domain::content::MediaIn;
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
pub(super) struct Payload {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    /// The WhatsApp Business Account id.
    #[serde(default)]
    id: String,
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
    /// When the customer sent it, unix seconds (a string, as Meta sends it).
    #[serde(default)]
    timestamp: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    image: Option<WaMedia>,
    #[serde(default)]
    audio: Option<WaMedia>,
    #[serde(default)]
    document: Option<WaMedia>,
    #[serde(default)]
    video: Option<WaMedia>,
    #[serde(default)]
    sticker: Option<WaMedia>,
}

/// The media object of an `image`, `audio`, `document`, `video` or `sticker` message.
#[derive(Debug, Deserialize)]
struct WaMedia {
    id: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

impl WaMessage {
    fn media(&self) -> Option<&WaMedia> {
        match self.kind.as_str() {
            "image" => self.image.as_ref(),
            "audio" => self.audio.as_ref(),
            "document" => self.document.as_ref(),
            "video" => self.video.as_ref(),
            "sticker" => self.sticker.as_ref(),
            _ => None,
        }
    }
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
    pub(super) fn whatsapp_secret(
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
        let text: String = text.chars().take(MAX_TEXT).collect();
        self.whatsapp_post(&serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": false, "body": text},
        }))
        .await
    }

    /// `POST {graph}/{phone number id}/messages` with `body`; records the accepted id.
    pub(super) async fn whatsapp_post(&self, body: &serde_json::Value) -> Result<(), SendError> {
        let (Some(token), Some(phone_id)) = (
            self.whatsapp_secret(SecretKind::WhatsappAccessToken)?,
            self.whatsapp_secret(SecretKind::WhatsappPhoneNumberId)?,
        ) else {
            return Err(SendError::Retry("not_configured"));
        };
        let resp = self
            .http
            .post(format!(
                "{}/{}/messages",
                self.urls.graph,
                phone_id.expose()
            ))
            .bearer_auth(token.expose())
            .json(body)
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
    pub(super) async fn whatsapp_payload(
        self: &Arc<Self>,
        payload: Payload,
    ) -> Result<(), super::ChannelError> {
        for entry in &payload.entry {
            self.remember_waba(&entry.id);
        }
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
                let (body, media) = match (&m.text, m.kind.as_str(), m.media()) {
                    (Some(t), "text", _) if !t.body.trim().is_empty() => (t.body.clone(), None),
                    (_, kind, Some(file)) => {
                        if self.seen(WHATSAPP, &m.id).await {
                            continue;
                        }
                        let outcome = self
                            .whatsapp_media(&file.id, file.mime_type.as_deref())
                            .await
                            .map(|f| MediaIn {
                                kind: kind.to_owned(),
                                ..f
                            });
                        let attachment = Attachment {
                            kind,
                            caption: file.caption.as_deref(),
                            file_name: file.filename.as_deref(),
                        };
                        (body_for(&attachment, &outcome), outcome.ok())
                    }
                    (_, kind, None) if !kind.is_empty() => (format!("[{kind}]"), None),
                    _ => ("[unsupported message]".to_owned(), None),
                };
                let extra = super::InboundExtra {
                    written_at: m.timestamp.parse().ok(),
                    ..Default::default()
                };
                self.receive_with(WHATSAPP, &m.id, &m.from, name, &body, media, extra)
                    .await?;
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
#[path = "whatsapp_tests.rs"]
mod tests;
