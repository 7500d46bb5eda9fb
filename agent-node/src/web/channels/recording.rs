//! Call recordings and voicemails: `POST /channels/twilio/voice/recording` (Twilio's
//! recording status callback, signed like every Twilio webhook).
//!
//! A recording is started by `<Start><Recording>` when the business turned recording
//! on, a voicemail by `<Record>` after hours or when nobody took a transfer (see
//! [`super::voice`]); both name this route as their `recordingStatusCallback`
//! (`?kind=voicemail` for a voicemail). When Twilio says the file is `completed`, the
//! node downloads `{twilio}/2010-04-01/Accounts/{sid}/Recordings/{RecordingSid}.mp3`
//! (built from the configured API base URL and the checked `RecordingSid`, never from
//! a URL in the request; at most [`crate::domain::content::MAX_MEDIA_BYTES`]) with the account's basic auth,
//! stores it as a file of the call's conversation, sealed under the contact's key like
//! every file a customer sends (so erasure, exports and retention treat it like one),
//! and then deletes it at Twilio (`DELETE …/Recordings/{RecordingSid}.json`) so it does
//! not stay with the sub-processor. A deletion that fails stays in
//! `twilio_recording_deletions` and is retried with a growing delay by
//! [`deletion_loop`]; the inbox shows it until it succeeds.
//!
//! A `RecordingSid` is stored once (a retried callback changes nothing). A download that
//! fails answers 503 and stores nothing, so the recording stays at Twilio for a retry.

use super::twilio::Params;
use super::{blocking, hash_id, ChannelError, Channels, VOICE};
use crate::domain::content::{
    Author, ConversationStatus, MediaIn, AGENT_ACTOR, RECORDING_KIND, VOICEMAIL_KIND,
};
use crate::platform::store::{self, Store};
use actix_web::{web, HttpRequest, HttpResponse};
use rusqlite::{params, OptionalExtension as _};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Migration adding the deletions at Twilio still to do (see `MIGRATIONS` in
/// `src/migrations.rs`). The recording's SID is Twilio's name for a file the node has
/// already copied; it says nothing about the caller.
pub const SCHEMA: &str = r#"
CREATE TABLE twilio_recording_deletions (
    recording_sid TEXT PRIMARY KEY,
    conversation_id TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX twilio_recording_deletions_due ON twilio_recording_deletions (next_attempt_at);
"#;

/// Longest delay between two attempts at deleting a recording at Twilio, seconds.
const MAX_RETRY_DELAY: i64 = 6 * 3600;
/// Seconds between two looks for deletions that are due.
const SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// A deletion at Twilio that has not succeeded yet, as the inbox shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingDeletion {
    /// Attempts made so far.
    pub attempts: i64,
    /// Unix seconds of the next attempt.
    pub next_attempt_at: i64,
    /// Why the last attempt failed (a code, such as `http_500` or `unreachable`).
    pub last_error: Option<String>,
}

/// The deletions at Twilio still to do for the recordings of a conversation.
pub fn pending_deletions(
    store: &Store,
    conversation_id: &str,
) -> store::Result<Vec<PendingDeletion>> {
    store.with(|c| {
        let mut st = c.prepare(
            "SELECT attempts, next_attempt_at, last_error FROM twilio_recording_deletions
             WHERE conversation_id = ?1 ORDER BY created_at",
        )?;
        let rows = st.query_map([conversation_id], |r| {
            Ok(PendingDeletion {
                attempts: r.get(0)?,
                next_attempt_at: r.get(1)?,
                last_error: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

/// "1:05" for 65 seconds.
fn minutes_seconds(secs: i64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// A Twilio resource SID: two letters and 32 hex digits (checked loosely: letters and
/// digits, so nothing can be smuggled into a URL).
fn valid_sid(sid: &str, prefix: &str) -> bool {
    sid.starts_with(prefix)
        && (10..=64).contains(&sid.len())
        && sid.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Debug, Deserialize)]
pub(super) struct KindQuery {
    #[serde(default)]
    kind: Option<String>,
}

/// What a stored recording becomes in the conversation.
fn labelled(voicemail: bool, duration: Option<i64>) -> (Author, &'static str, String) {
    let length = duration.map_or(String::new(), |d| format!(" ({})", minutes_seconds(d)));
    if voicemail {
        (
            Author::Contact,
            VOICEMAIL_KIND,
            format!("Voicemail{length}"),
        )
    } else {
        (
            Author::System,
            RECORDING_KIND,
            format!("Call recording{length}"),
        )
    }
}

impl Channels {
    /// Downloads recording `recording_sid` from Twilio.
    async fn download_recording(&self, recording_sid: &str) -> Result<Vec<u8>, &'static str> {
        let Some((sid, token)) = self.twilio_credentials().map_err(|_| "storage")? else {
            return Err("not_configured");
        };
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Recordings/{recording_sid}.mp3",
            self.urls.twilio,
            sid.expose()
        );
        self.download(
            self.http
                .get(url)
                .basic_auth(sid.expose(), Some(token.expose())),
        )
        .await
        .map_err(|e| e.code())
    }

    /// Deletes recording `recording_sid` at Twilio; `Err(code)` when it is still there.
    async fn delete_at_twilio(&self, recording_sid: &str) -> Result<(), String> {
        let Some((sid, token)) = self
            .twilio_credentials()
            .map_err(|_| "storage".to_owned())?
        else {
            return Err("not_configured".into());
        };
        let resp = self
            .http
            .delete(format!(
                "{}/2010-04-01/Accounts/{}/Recordings/{recording_sid}.json",
                self.urls.twilio,
                sid.expose()
            ))
            .basic_auth(sid.expose(), Some(token.expose()))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|_| "unreachable".to_owned())?;
        match resp.status().as_u16() {
            // 404: already gone, which is what was asked.
            200..=299 | 404 => Ok(()),
            s => Err(format!("http_{s}")),
        }
    }

    /// Tries the deletion of `recording_sid` at Twilio and records the outcome: the row
    /// goes once Twilio no longer has the file, else the next attempt is scheduled.
    async fn try_deletion(self: &Arc<Self>, recording_sid: String) -> Result<bool, ChannelError> {
        let outcome = self.delete_at_twilio(&recording_sid).await;
        let this = self.clone();
        let deleted = outcome.is_ok();
        blocking(move || {
            this.store.with(|c| {
                match outcome {
                    Ok(()) => {
                        c.execute(
                            "DELETE FROM twilio_recording_deletions WHERE recording_sid = ?1",
                            [&recording_sid],
                        )?;
                    }
                    Err(code) => {
                        let attempts: i64 = c
                            .query_row(
                                "SELECT attempts FROM twilio_recording_deletions
                                 WHERE recording_sid = ?1",
                                [&recording_sid],
                                |r| r.get(0),
                            )
                            .optional()?
                            .unwrap_or(0);
                        let delay = (60i64 << attempts.clamp(0, 16)).min(MAX_RETRY_DELAY);
                        c.execute(
                            "UPDATE twilio_recording_deletions SET attempts = attempts + 1,
                               next_attempt_at = ?2, last_error = ?3 WHERE recording_sid = ?1",
                            params![recording_sid, store::now() + delay, code],
                        )?;
                    }
                }
                Ok(())
            })
        })
        .await??;
        if deleted {
            tracing::info!("call recording deleted at Twilio");
        } else {
            tracing::warn!("deleting a call recording at Twilio failed; will retry");
        }
        Ok(deleted)
    }

    /// Retries the deletions at Twilio that are due; returns how many succeeded.
    pub async fn retry_recording_deletions(self: &Arc<Self>) -> Result<usize, ChannelError> {
        let this = self.clone();
        let due: Vec<String> = blocking(move || {
            this.store.with(|c| {
                let mut st = c.prepare(
                    "SELECT recording_sid FROM twilio_recording_deletions
                     WHERE next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT 50",
                )?;
                let rows = st.query_map([store::now()], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
        })
        .await??;
        let mut done = 0;
        for sid in due {
            if self.try_deletion(sid).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Schedules the deletion at Twilio of a recording the node will not keep (its call
    /// is unknown here).
    async fn schedule_deletion(self: &Arc<Self>, recording_sid: &str) -> Result<(), ChannelError> {
        let (this, rsid) = (self.clone(), recording_sid.to_owned());
        blocking(move || {
            this.store.with(|c| {
                let now = store::now();
                c.execute(
                    "INSERT OR IGNORE INTO twilio_recording_deletions
                       (recording_sid, next_attempt_at, created_at) VALUES (?1, ?2, ?2)",
                    params![rsid, now],
                )?;
                Ok(())
            })
        })
        .await??;
        Ok(())
    }

    async fn recording_done(
        self: &Arc<Self>,
        p: &Params,
        voicemail: bool,
    ) -> Result<HttpResponse, ChannelError> {
        let (Some(call), Some(rsid)) = (p.get("CallSid"), p.get("RecordingSid")) else {
            return Ok(HttpResponse::BadRequest().finish());
        };
        if !valid_sid(rsid, "RE") {
            return Ok(HttpResponse::BadRequest().finish());
        }
        // `absent` (too short, silent) and `failed` leave no file to fetch or delete.
        if p.get("RecordingStatus") != Some("completed") {
            return Ok(HttpResponse::NoContent().finish());
        }
        let claim = hash_id(VOICE, &format!("{rsid}\nrecording"));
        let (this, claim_check) = (self.clone(), claim.clone());
        let seen = blocking(move || {
            this.store.with(|c| {
                Ok(c.query_row(
                    "SELECT 1 FROM channel_inbound WHERE channel = ?1 AND id_hash = ?2",
                    params![VOICE, claim_check],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
            })
        })
        .await??;
        if seen {
            tracing::info!("duplicate recording callback ignored");
            return Ok(HttpResponse::NoContent().finish());
        }
        let Some(conv) = super::voice::call_conversation(&self.store, call)? else {
            // Not a call of this node (or erased since): keep nothing, leave nothing.
            self.schedule_deletion(rsid).await?;
            self.try_deletion(rsid.to_owned()).await?;
            return Ok(HttpResponse::NoContent().finish());
        };
        let data = match self.download_recording(rsid).await {
            Ok(d) => d,
            Err(code) => {
                tracing::warn!(code, "a call recording could not be downloaded");
                return Ok(HttpResponse::ServiceUnavailable().finish());
            }
        };
        let duration = p
            .get("RecordingDuration")
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|d| *d >= 0);
        let (author, kind, body) = labelled(voicemail, duration);
        let media = MediaIn {
            kind: kind.to_owned(),
            content_type: "audio/mpeg",
            data,
        };
        let (this, conv_id, rsid_owned) = (self.clone(), conv.clone(), rsid.to_owned());
        let stored = blocking(move || {
            let now = store::now();
            this.runtime.content().append_media_once(
                &conv_id,
                author,
                &body,
                &media,
                |c| {
                    Ok(c.execute(
                        "INSERT OR IGNORE INTO channel_inbound (channel, id_hash, received_at)
                         VALUES (?1, ?2, ?3)",
                        params![VOICE, claim, now],
                    )? == 1)
                },
                |c, _| {
                    c.execute(
                        "INSERT OR IGNORE INTO twilio_recording_deletions
                           (recording_sid, conversation_id, next_attempt_at, created_at)
                         VALUES (?1, ?2, ?3, ?3)",
                        params![rsid_owned, conv_id, now],
                    )?;
                    Ok(())
                },
            )
        })
        .await??;
        if stored.is_none() {
            return Ok(HttpResponse::NoContent().finish());
        }
        tracing::info!(kind, "call recording stored");
        if voicemail {
            // Staff see a voicemail in the inbox as a conversation waiting for them.
            let this = self.clone();
            blocking(move || {
                this.runtime
                    .content()
                    .set_status(&conv, ConversationStatus::Human, AGENT_ACTOR)
            })
            .await??;
        }
        self.try_deletion(rsid.to_owned()).await?;
        Ok(HttpResponse::NoContent().finish())
    }
}

/// `POST /channels/twilio/voice/recording[?kind=voicemail]`: a recording is ready.
pub(super) async fn callback(
    ch: web::Data<Channels>,
    req: HttpRequest,
    q: web::Query<KindQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let p = match ch.twilio_verified(VOICE, &req, &body) {
        Ok(p) => p,
        Err(status) => return HttpResponse::new(status),
    };
    let voicemail = q.kind.as_deref() == Some("voicemail");
    match ch.recording_done(&p, voicemail).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "storing a call recording failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Retries the deletions at Twilio that failed, every minute.
pub async fn deletion_loop(channels: Arc<Channels>) {
    let mut tick = tokio::time::interval(SWEEP_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = channels.retry_recording_deletions().await {
            tracing::error!(error = %e, "retrying recording deletions failed");
        }
    }
}

#[cfg(test)]
#[path = "recording_tests.rs"]
mod tests;
