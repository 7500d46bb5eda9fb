//! Twilio: SMS (`POST /channels/twilio/sms`) and the signature every Twilio webhook
//! carries. A webhook is read only once `X-Twilio-Signature` matches: base64 of
//! HMAC-SHA1 under the account's auth token over the URL Twilio called (the node's public
//! URL and the path) followed by every POST parameter, sorted by name, as name and value
//! concatenated (Twilio's "Validating requests" scheme), compared in constant time.
//! Anything else gets 403 and nothing is stored.
//!
//! An SMS is a conversation like Telegram's and WhatsApp's (channel `sms`, the contact is
//! the sender's number, kept sealed and found by its hash), deduplicated by `MessageSid`,
//! answered through the Messages API from the number the customer wrote to. STOP and its
//! synonyms opt the contact out (recorded on the contact; nothing more is sent until
//! START or UNSTOP); Twilio answers those keywords itself.

use super::{Channels, InboundExtra, SendError, SMS};
use crate::domain::secrets::SecretKind;
use crate::platform::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::Deserialize;
use std::time::Duration;

/// Migration adding what Twilio needs: the SMS opt-out on the contact, the number a
/// conversation came in on (our own number, not the customer's), and the calls.
pub const SCHEMA: &str = r#"
ALTER TABLE contacts ADD COLUMN sms_opted_out_at INTEGER;
ALTER TABLE channel_conversations ADD COLUMN local_address TEXT;
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sid_hash TEXT NOT NULL UNIQUE,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    duration_secs INTEGER,
    status TEXT NOT NULL
);
CREATE INDEX calls_conversation ON calls (conversation_id);
CREATE INDEX calls_started ON calls (started_at);
"#;

/// Longest SMS body sent (Twilio's limit for one message, split into segments by Twilio).
const MAX_SMS: usize = 1600;
/// Twilio's error code for "the recipient replied STOP".
const UNSUBSCRIBED_ERROR: i64 = 21_610;
/// The empty TwiML answer: Twilio sends nothing back by itself.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

/// Words that opt a contact out of SMS (whole message, any case), as Twilio's own
/// opt-out handling recognises them.
const STOP_WORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Words that opt a contact back in.
const START_WORDS: &[&str] = &["START", "UNSTOP"];

/// `X-Twilio-Signature` for a request to `url` with the POST `params`.
pub fn signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(url.as_bytes());
    for (name, value) in sorted {
        ctx.update(name.as_bytes());
        ctx.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
}

/// Whether `header` is the signature of the request, compared in constant time.
pub fn verify(
    auth_token: &[u8],
    url: &str,
    params: &[(String, String)],
    header: Option<&str>,
) -> bool {
    header.is_some_and(|h| {
        outpost_crypto::ct_eq(
            h.trim().as_bytes(),
            signature(auth_token, url, params).as_bytes(),
        )
    })
}

/// `Some(true)` for an opt-out keyword, `Some(false)` for an opt-in one.
pub fn opt_keyword(body: &str) -> Option<bool> {
    let word = body.trim().to_ascii_uppercase();
    if STOP_WORDS.contains(&word.as_str()) {
        Some(true)
    } else if START_WORDS.contains(&word.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// Records (`Some(when)`) or lifts (`None`) a contact's SMS opt-out.
pub(super) fn set_opted_out(
    c: &Connection,
    contact_id: &str,
    at: Option<i64>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE contacts SET sms_opted_out_at = ?2 WHERE id = ?1",
        params![contact_id, at],
    )?;
    Ok(())
}

/// Whether a contact opted out of SMS.
pub(super) fn opted_out(c: &Connection, contact_id: &str) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT sms_opted_out_at FROM contacts WHERE id = ?1",
        [contact_id],
        |r| r.get::<_, Option<i64>>(0),
    )
    .optional()?
    .flatten()
    .is_some())
}

/// A webhook's POST parameters.
pub(super) struct Params(pub Vec<(String, String)>);

impl Params {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Deserialize)]
struct Created {
    #[serde(default)]
    sid: String,
}

#[derive(Debug, Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: i64,
}

impl Channels {
    /// The account SID and auth token, if both were delivered.
    pub(super) fn twilio_credentials(
        &self,
    ) -> Result<Option<(outpost_crypto::Secret, outpost_crypto::Secret)>, StoreError> {
        let sid = self.secrets.get(SecretKind::TwilioAccountSid)?;
        let token = self.secrets.get(SecretKind::TwilioAuthToken)?;
        Ok(sid.zip(token))
    }

    /// The parameters of a webhook whose signature is valid, or the status to answer.
    pub(super) fn twilio_verified(
        &self,
        channel: &'static str,
        req: &HttpRequest,
        body: &[u8],
    ) -> Result<Params, StatusCode> {
        let token = match self.secrets.get(SecretKind::TwilioAuthToken) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(StatusCode::FORBIDDEN),
            Err(_) => return Err(StatusCode::SERVICE_UNAVAILABLE),
        };
        let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let url = format!(
            "{}{}",
            self.public_url,
            req.uri()
                .path_and_query()
                .map_or(req.path(), |pq| pq.as_str())
        );
        let header = req
            .headers()
            .get("X-Twilio-Signature")
            .and_then(|v| v.to_str().ok());
        if !verify(token.expose().as_bytes(), &url, &params, header) {
            self.health.record_webhook_refused(
                channel,
                "webhook_signature_invalid",
                header.is_some(),
            );
            tracing::warn!(channel, "Twilio webhook with a bad signature refused");
            return Err(StatusCode::FORBIDDEN);
        }
        self.health.record_webhook_ok(channel);
        Ok(Params(params))
    }

    /// Sends `text` by SMS to `to` from our number `from`, unless the contact opted out.
    pub(super) async fn sms_send(
        &self,
        contact_id: &str,
        to: &str,
        from: Option<&str>,
        text: &str,
    ) -> Result<(), SendError> {
        let out = self
            .store
            .with(|c| Ok(opted_out(c, contact_id)?))
            .map_err(|_| SendError::Retry("storage"))?;
        if out {
            return Err(SendError::Permanent("opted_out"));
        }
        let Some(from) = from else {
            return Err(SendError::Permanent("no_number"));
        };
        let Some((sid, token)) = self
            .twilio_credentials()
            .map_err(|_| SendError::Retry("storage"))?
        else {
            return Err(SendError::Retry("not_configured"));
        };
        let text: String = text.chars().take(MAX_SMS).collect();
        let resp = self
            .http
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.urls.twilio,
                sid.expose()
            ))
            .basic_auth(sid.expose(), Some(token.expose()))
            .form(&[("To", to), ("From", from), ("Body", text.as_str())])
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|_| SendError::Retry("unreachable"))?;
        let status = resp.status();
        if status.is_success() {
            if let Ok(created) = resp.json::<Created>().await {
                self.record_status(SMS, &created.sid, "accepted");
            }
            return Ok(());
        }
        let code = resp
            .json::<TwilioError>()
            .await
            .map(|e| e.code)
            .unwrap_or_default();
        Err(match status.as_u16() {
            _ if code == UNSUBSCRIBED_ERROR => SendError::Permanent("opted_out"),
            401 => SendError::Retry("token_revoked"),
            429 => SendError::Retry("rate_limited"),
            400..=499 => SendError::Permanent("rejected"),
            _ => SendError::Retry("unreachable"),
        })
    }
}

/// A TwiML answer.
pub(super) fn twiml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// `POST /channels/twilio/sms`: an inbound SMS, signed by Twilio.
pub(super) async fn sms(
    ch: web::Data<Channels>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let params = match ch.twilio_verified(SMS, &req, &body) {
        Ok(p) => p,
        Err(status) => return HttpResponse::new(status),
    };
    let (Some(sid), Some(from)) = (params.get("MessageSid"), params.get("From")) else {
        return HttpResponse::BadRequest().finish();
    };
    let text = params.get("Body").unwrap_or_default();
    let media = params
        .get("NumMedia")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    let text = match (text.trim().is_empty(), media) {
        (false, _) => text.to_owned(),
        (true, 0) => "[empty message]".to_owned(),
        (true, _) => "[media]".to_owned(),
    };
    let extra = InboundExtra {
        local_address: params.get("To").map(str::to_owned),
        opt_out: opt_keyword(&text),
        written_at: None,
    };
    match ch
        .receive_with(SMS, sid, from, None, &text, None, extra)
        .await
    {
        Ok(_) => twiml(EMPTY_TWIML.to_owned()),
        Err(e) => {
            tracing::error!(error = %e, "storing an SMS failed");
            // Twilio retries on errors; a stored MessageSid is skipped then.
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Twilio's webhook routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/channels/twilio/sms")
            .app_data(web::PayloadConfig::new(super::whatsapp::MAX_BODY))
            .route(web::post().to(sms)),
    )
    .service(
        web::resource("/channels/twilio/voice")
            .app_data(web::PayloadConfig::new(super::whatsapp::MAX_BODY))
            .route(web::post().to(super::voice::incoming)),
    )
    .service(
        web::resource("/channels/twilio/voice/gather")
            .app_data(web::PayloadConfig::new(super::whatsapp::MAX_BODY))
            .route(web::post().to(super::voice::gather)),
    )
    .service(
        web::resource("/channels/twilio/voice/status")
            .app_data(web::PayloadConfig::new(super::whatsapp::MAX_BODY))
            .route(web::post().to(super::voice::status)),
    )
    .service(
        web::resource("/channels/twilio/voice/dialed")
            .app_data(web::PayloadConfig::new(super::whatsapp::MAX_BODY))
            .route(web::post().to(super::voice::dialed)),
    )
    .service(
        web::resource("/channels/twilio/voice/voicemail")
            .app_data(web::PayloadConfig::new(super::whatsapp::MAX_BODY))
            .route(web::post().to(super::voice::voicemail_left)),
    )
    .service(
        web::resource("/channels/twilio/voice/recording")
            .app_data(web::PayloadConfig::new(super::whatsapp::MAX_BODY))
            .route(web::post().to(super::recording::callback)),
    );
}

#[cfg(test)]
#[path = "twilio_tests.rs"]
mod tests;
