//! Telegram Bot API: `getUpdates` long polling when the node has no public https URL
//! (the offset is persisted after each update, and update ids are deduplicated), or a
//! webhook (`setWebhook` with a `secret_token` derived from the master key, checked on
//! every `POST /channels/telegram/webhook`). Private chats only; text is answered; photos,
//! documents, audio, voice notes, videos and stickers are downloaded (`getFile`) and
//! stored with their message (see `media`), their caption (or a placeholder such as
//! `[photo]`) being its text; other messages are stored as a placeholder and answered
//! like text (the agent usually says its fallback message, so a person follows up).

use super::media::{body_for, Attachment};
use super::{Channels, SendError, TELEGRAM};
use crate::domain::content::{MediaIn, MAX_MEDIA_BYTES};
use crate::domain::secrets::SecretKind;
use crate::platform::backoff::Backoff;
use crate::platform::store::Store;
use actix_web::{web, HttpRequest, HttpResponse};
use outpost_crypto::Secret;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `meta` key of the next `getUpdates` offset.
const OFFSET_KEY: &str = "telegram_offset";
/// Longest message Telegram accepts, in characters.
const MAX_TEXT: usize = 4096;
/// Header carrying the webhook's secret token.
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
}

/// One update (only what is used).
#[derive(Debug, Deserialize)]
pub struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<TgMessage>,
}

#[derive(Debug, Deserialize)]
struct TgMessage {
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

/// What a non-text message is stored as.
fn placeholder(rest: &serde_json::Map<String, serde_json::Value>) -> String {
    const KINDS: [&str; 10] = [
        "photo",
        "video",
        "voice",
        "audio",
        "document",
        "sticker",
        "animation",
        "video_note",
        "location",
        "contact",
    ];
    let kind = KINDS
        .iter()
        .find(|k| rest.contains_key(**k))
        .copied()
        .unwrap_or("unsupported message");
    format!("[{kind}]")
}

/// A file a Telegram message carries.
struct TgFileRef {
    kind: &'static str,
    file_id: String,
    content_type: Option<String>,
    size: Option<u64>,
    file_name: Option<String>,
}

/// The file of a photo, document, audio, voice, video, video note, animation or sticker
/// message: the largest size of a photo, and the content type Telegram declares (a photo
/// is always JPEG, a video note MP4; a sticker is WebP unless animated or a video).
fn file_of(rest: &serde_json::Map<String, serde_json::Value>) -> Option<TgFileRef> {
    let str_of =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let size_of = |v: &serde_json::Value| v.get("file_size").and_then(serde_json::Value::as_u64);
    if let Some(sizes) = rest.get("photo").and_then(|p| p.as_array()) {
        // Sizes come smallest first; keep the largest that fits.
        let best = sizes
            .iter()
            .rfind(|p| size_of(p).is_none_or(|s| s <= MAX_MEDIA_BYTES as u64))
            .or(sizes.last())?;
        return Some(TgFileRef {
            kind: "photo",
            file_id: str_of(best, "file_id")?,
            content_type: Some("image/jpeg".to_owned()),
            size: size_of(best),
            file_name: None,
        });
    }
    for kind in [
        "document",
        "audio",
        "voice",
        "video",
        "video_note",
        "animation",
        "sticker",
    ] {
        let Some(v) = rest.get(kind) else { continue };
        let content_type = match kind {
            "video_note" => Some("video/mp4".to_owned()),
            "sticker" => {
                let flag = |k: &str| {
                    v.get(k)
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false)
                };
                (!flag("is_animated") && !flag("is_video")).then(|| "image/webp".to_owned())
            }
            _ => str_of(v, "mime_type"),
        };
        return Some(TgFileRef {
            kind,
            file_id: str_of(v, "file_id")?,
            content_type: content_type.or_else(|| Some("application/octet-stream".to_owned())),
            size: size_of(v),
            file_name: str_of(v, "file_name"),
        });
    }
    None
}

fn classify(status: reqwest::StatusCode) -> SendError {
    match status.as_u16() {
        401 | 404 => SendError::Retry("token_revoked"),
        403 => SendError::Permanent("blocked_by_user"),
        409 => SendError::Retry("webhook_conflict"),
        429 => SendError::Retry("rate_limited"),
        400..=499 => SendError::Permanent("rejected"),
        _ => SendError::Retry("unreachable"),
    }
}

impl Channels {
    pub(super) fn telegram_token(&self) -> Result<Option<Secret>, SendError> {
        self.secrets.get(SecretKind::TelegramBotToken).map_err(|e| {
            tracing::error!(error = %e, "reading the Telegram token failed");
            SendError::Retry("storage")
        })
    }

    fn bot_url(&self, token: &Secret, method: &str) -> String {
        format!("{}/bot{}/{method}", self.urls.telegram, token.expose())
    }

    /// The webhook secret token: HMAC of the bot token under a master-derived key (hex, 64
    /// characters), so it changes with the token and dies with the master key.
    pub fn telegram_webhook_secret(&self, token: &Secret) -> String {
        let key = self.master.derive("telegram-webhook-secret");
        outpost_common::hex(&outpost_crypto::hmac_sign(
            key.as_ref(),
            token.expose().as_bytes(),
        ))
    }

    fn webhook_mode(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Calls a Bot API method with a JSON body; `Ok(result)` when Telegram says ok.
    pub(super) async fn telegram_call(
        &self,
        token: &Secret,
        method: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, SendError> {
        // Errors are never formatted: their URL carries the token.
        let resp = self
            .http
            .post(self.bot_url(token, method))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|_| SendError::Retry("unreachable"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(classify(status));
        }
        let env: Envelope<serde_json::Value> = resp
            .json()
            .await
            .map_err(|_| SendError::Retry("bad_response"))?;
        match (env.ok, env.result) {
            (true, Some(r)) => Ok(r),
            _ => Err(SendError::Retry("bad_response")),
        }
    }

    /// Sends `text` to the private chat `chat_id`.
    pub(super) async fn telegram_send(&self, chat_id: &str, text: &str) -> Result<(), SendError> {
        let Some(token) = self.telegram_token()? else {
            return Err(SendError::Retry("not_configured"));
        };
        let chat: serde_json::Value = chat_id
            .parse::<i64>()
            .map_or_else(|_| chat_id.into(), Into::into);
        let text: String = text.chars().take(MAX_TEXT).collect();
        self.telegram_call(
            &token,
            "sendMessage",
            &serde_json::json!({"chat_id": chat, "text": text}),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }

    /// Handles one update (polling or webhook): private text chats are stored and
    /// answered; a redelivered update id changes nothing. Returns whether it was new.
    pub async fn telegram_update(
        self: &Arc<Self>,
        update: Update,
    ) -> Result<bool, super::ChannelError> {
        let Some(m) = update.message else {
            return Ok(false);
        };
        if m.chat.kind != "private" {
            return Ok(false);
        }
        let name = [m.chat.first_name.as_deref(), m.chat.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let provider_id = update.update_id.to_string();
        let (body, media) = match (m.text, file_of(&m.rest)) {
            (Some(t), _) if !t.trim().is_empty() => (t, None),
            (_, Some(file)) => {
                if self.seen(TELEGRAM, &provider_id).await {
                    return Ok(false);
                }
                let outcome = self
                    .telegram_media(&file.file_id, file.content_type.as_deref(), file.size)
                    .await
                    .map(|f| MediaIn {
                        kind: file.kind.to_owned(),
                        ..f
                    });
                let caption = m.rest.get("caption").and_then(|c| c.as_str());
                let attachment = Attachment {
                    kind: file.kind,
                    caption,
                    file_name: file.file_name.as_deref(),
                };
                (body_for(&attachment, &outcome), outcome.ok())
            }
            _ => (placeholder(&m.rest), None),
        };
        self.receive(
            TELEGRAM,
            &provider_id,
            &m.chat.id.to_string(),
            Some(name.as_str()).filter(|n| !n.is_empty()),
            &body,
            media,
        )
        .await
    }

    /// One `getUpdates` round: handles the updates in order, persisting the offset after
    /// each. Returns how many updates came back, or a check code.
    pub async fn telegram_poll_once(
        self: &Arc<Self>,
        token: &Secret,
    ) -> Result<usize, &'static str> {
        let offset: i64 = self
            .store
            .meta(OFFSET_KEY)
            .map_err(|_| "storage")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let resp = self
            .http
            .get(self.bot_url(token, "getUpdates"))
            .query(&[
                ("offset", offset.to_string()),
                ("timeout", self.poll_timeout_secs.to_string()),
                ("allowed_updates", r#"["message"]"#.to_owned()),
            ])
            .timeout(Duration::from_secs(self.poll_timeout_secs + 15))
            .send()
            .await
            .map_err(|_| "unreachable")?;
        let status = resp.status();
        if !status.is_success() {
            return Err(match classify(status) {
                SendError::Retry(c) | SendError::Permanent(c) => c,
            });
        }
        let env: Envelope<Vec<Update>> = resp.json().await.map_err(|_| "bad_response")?;
        let updates = match (env.ok, env.result) {
            (true, Some(u)) => u,
            _ => return Err("bad_response"),
        };
        self.health.record_ok(TELEGRAM);
        let n = updates.len();
        for u in updates {
            let next = u.update_id + 1;
            if let Err(e) = self.telegram_update(u).await {
                tracing::error!(error = %e, "storing a Telegram update failed");
                return Err("storage");
            }
            if next > offset {
                self.store
                    .with(|c| Store::set_meta(c, OFFSET_KEY, &next.to_string()))
                    .map_err(|_| "storage")?;
            }
        }
        Ok(n)
    }

    async fn telegram_set_webhook(&self, token: &Secret) -> Result<(), SendError> {
        let body = serde_json::json!({
            "url": format!("{}/channels/telegram/webhook", self.public_url),
            "secret_token": self.telegram_webhook_secret(token),
            "allowed_updates": ["message"],
        });
        self.telegram_call(token, "setWebhook", &body, Duration::from_secs(30))
            .await
            .map(|_| ())
    }

    async fn telegram_delete_webhook(&self, token: &Secret) -> Result<(), SendError> {
        self.telegram_call(
            token,
            "deleteWebhook",
            &serde_json::json!({}),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }
}

/// Receives Telegram messages until aborted: registers the webhook (public https URL) or
/// long-polls. The token is read each round, so a token saved later applies without a
/// restart; failures back off with full jitter (cap 60 s) and set the `telegram` check.
pub async fn run(ch: Arc<Channels>) {
    let mut backoff = Backoff::new(Duration::from_secs(1), super::MAX_BACKOFF);
    let mut webhook_for: Option<String> = None;
    loop {
        let token = match ch.telegram_token() {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
        };
        let fingerprint = ch.secrets.fingerprint(&token);
        if ch.webhook_mode() {
            if webhook_for.as_deref() != Some(fingerprint.as_str()) {
                match ch.telegram_set_webhook(&token).await {
                    Ok(()) => {
                        ch.health.record_ok(TELEGRAM);
                        webhook_for = Some(fingerprint);
                        backoff.reset();
                    }
                    Err(SendError::Retry(code) | SendError::Permanent(code)) => {
                        ch.health.record_error(TELEGRAM, code);
                        tracing::warn!(code, "registering the Telegram webhook failed");
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
            continue;
        }
        match ch.telegram_poll_once(&token).await {
            Ok(_) => backoff.reset(),
            Err(code) => {
                ch.health.record_error(TELEGRAM, code);
                tracing::warn!(code, "Telegram polling failed");
                if code == "webhook_conflict" {
                    // A webhook left from an earlier setup blocks getUpdates.
                    let _ = ch.telegram_delete_webhook(&token).await;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// `POST /channels/telegram/webhook`: 401 unless the secret token header matches.
pub(super) async fn webhook(
    ch: web::Data<Channels>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let token = match ch.telegram_token() {
        Ok(Some(t)) => t,
        Ok(None) => return HttpResponse::Unauthorized().finish(),
        Err(_) => return HttpResponse::ServiceUnavailable().finish(),
    };
    let expected = ch.telegram_webhook_secret(&token);
    let given = req
        .headers()
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !outpost_crypto::ct_eq(given, expected.as_bytes()) {
        ch.health
            .record_webhook_refused(TELEGRAM, "webhook_secret_invalid", !given.is_empty());
        tracing::warn!("Telegram webhook with a wrong secret token refused");
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(update) = serde_json::from_slice::<Update>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    ch.health.record_webhook_ok(TELEGRAM);
    match ch.telegram_update(update).await {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(e) => {
            tracing::error!(error = %e, "storing a Telegram update failed");
            // Telegram retries non-2xx deliveries.
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[cfg(test)]
#[path = "telegram_tests.rs"]
mod tests;
