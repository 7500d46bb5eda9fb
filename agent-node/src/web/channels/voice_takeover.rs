//! Taking over a live call from the inbox. A call's TwiML runs at Twilio, so the node
//! cannot simply stop answering as it does for a chat: it tells Twilio to replace the
//! call's TwiML at once (`POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json` with
//! `Twiml=<Response><Say>…</Say><Dial action=…/voice/dialed>staff number</Dial></Response>`, Twilio's "modify a
//! call in progress"), then marks the conversation taken over like a chat (same status,
//! system message and timeline event), so the assistant stays silent for any later step
//! of the call. A call cannot be handed back: once dialled to staff, Twilio no longer asks
//! the node what to say (except, when staff do not answer, `/voice/dialed`, which offers
//! the voicemail).
//!
//! Twilio's CallSid is needed for that request, so it is kept with the call while the
//! call is live and cleared once Twilio reports the end (or once it is taken over).

use super::voice::{xml, VoiceSettings};
use super::{blocking, hash_id, Channels, VOICE};
use crate::domain::content::{Author, ConversationStatus};
use crate::platform::store::{self, Store};
use rusqlite::{params, OptionalExtension as _};
use std::time::Duration;

/// Migration: the live call's CallSid and when staff took it over.
pub const SCHEMA: &str = r#"
ALTER TABLE calls ADD COLUMN call_sid TEXT;
ALTER TABLE calls ADD COLUMN taken_over_at INTEGER;
"#;

/// How long Twilio gets to accept the redirect; the caller is waiting.
const TWILIO_TIMEOUT: Duration = Duration::from_secs(10);
/// Twilio's error code for "Call is not in-progress. Cannot redirect."
const NOT_IN_PROGRESS: i64 = 21_220;
/// What the caller hears before the staff number rings.
const HOLD: &str = "Please hold while I transfer you to a member of the team.";

/// Why a call could not be taken over, in words for the team member.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// No call of this conversation is in progress.
    #[error("This call has already ended: there is nothing to take over.")]
    Ended,
    /// Not a phone conversation.
    #[error("Only phone conversations have calls to take.")]
    NotACall,
    /// No staff number to dial.
    #[error(
        "Set the staff number under Settings → Phone calls first: the call is transferred there."
    )]
    NoStaffNumber,
    /// No Twilio credentials on this node.
    #[error("Save the Twilio auth token and Account SID first.")]
    NotConfigured,
    /// Twilio refused the request.
    #[error("Twilio refused to transfer the call; the assistant is still on it.")]
    Refused,
    /// Twilio did not answer in time.
    #[error("Twilio could not be reached; the assistant is still on the call. Try again.")]
    Unreachable,
    /// The node database failed.
    #[error("The node could not read or save the call.")]
    Store,
}

impl From<store::StoreError> for TakeoverError {
    fn from(_: store::StoreError) -> Self {
        Self::Store
    }
}

impl From<crate::domain::content::ContentError> for TakeoverError {
    fn from(_: crate::domain::content::ContentError) -> Self {
        Self::Store
    }
}

impl From<super::ChannelError> for TakeoverError {
    fn from(_: super::ChannelError) -> Self {
        Self::Store
    }
}

/// A conversation's call as the inbox shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    /// Unix seconds.
    pub started_at: i64,
    /// Seconds, as Twilio counted them, once ended.
    pub duration_secs: Option<i64>,
    /// Twilio's last status.
    pub status: String,
    /// Whether the call is still going and the node can redirect it.
    pub live: bool,
    /// When a team member took it over.
    pub taken_over_at: Option<i64>,
    /// Whether Twilio reported its end.
    pub ended: bool,
}

/// Keeps the CallSid of a call while it is live (the call's row exists).
pub(super) fn remember_live_call(store: &Store, call_sid: &str) -> store::Result<()> {
    let hash = hash_id(VOICE, call_sid);
    store.with(|c| {
        c.execute(
            "UPDATE calls SET call_sid = ?1
             WHERE sid_hash = ?2 AND ended_at IS NULL AND taken_over_at IS NULL",
            params![call_sid, hash],
        )?;
        Ok(())
    })
}

/// Drops the CallSid of a call that ended.
pub(super) fn forget_ended_call(store: &Store, call_sid: &str) -> store::Result<()> {
    let hash = hash_id(VOICE, call_sid);
    store.with(|c| {
        c.execute(
            "UPDATE calls SET call_sid = NULL WHERE sid_hash = ?1 AND ended_at IS NOT NULL",
            [hash],
        )?;
        Ok(())
    })
}

/// The calls of a conversation, newest first.
pub fn call_states(store: &Store, conversation_id: &str) -> store::Result<Vec<CallState>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT started_at, duration_secs, status,
                    call_sid IS NOT NULL AND ended_at IS NULL, taken_over_at,
                    ended_at IS NOT NULL
             FROM calls WHERE conversation_id = ?1 ORDER BY started_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([conversation_id], |r| {
            Ok(CallState {
                started_at: r.get(0)?,
                duration_secs: r.get(1)?,
                status: r.get(2)?,
                live: r.get(3)?,
                taken_over_at: r.get(4)?,
                ended: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
}

/// The TwiML that replaces the call's: a word to the caller, then the staff number; when
/// nobody there takes it, `/voice/dialed` offers the voicemail, as after the assistant's
/// own transfers.
fn transfer_twiml(settings: &VoiceSettings, staff: &str, public_url: &str) -> String {
    let voice = if settings.voice.is_empty() {
        String::new()
    } else {
        format!(r#" voice="{}""#, xml(&settings.voice))
    };
    format!(
        r#"<Response><Say{voice}>{HOLD}</Say><Dial timeout="25" method="POST" action="{}/channels/twilio/voice/dialed">{}</Dial></Response>"#,
        xml(public_url.trim_end_matches('/')),
        xml(staff)
    )
}

#[derive(serde::Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: i64,
}

impl Channels {
    /// Transfers the live call of `conversation_id` to the staff number and marks the
    /// conversation taken over by `actor`. On any refusal nothing changes on the node.
    pub async fn take_over_call(
        &self,
        conversation_id: &str,
        actor: &str,
    ) -> Result<(), TakeoverError> {
        let content = self.runtime.content().clone();
        let conv = content
            .conversation(conversation_id)?
            .ok_or(TakeoverError::Ended)?;
        if conv.channel != VOICE {
            return Err(TakeoverError::NotACall);
        }
        let call_sid: Option<(i64, String)> = self.store.with(|c| {
            Ok(c.query_row(
                "SELECT id, call_sid FROM calls
                 WHERE conversation_id = ?1 AND call_sid IS NOT NULL AND ended_at IS NULL
                 ORDER BY started_at DESC, id DESC LIMIT 1",
                [conversation_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        let Some((call_id, call_sid)) = call_sid else {
            return Err(TakeoverError::Ended);
        };
        let settings = VoiceSettings::load(&self.store)?;
        let Some(staff) = settings
            .transfer_number
            .clone()
            .filter(|n| !n.trim().is_empty())
        else {
            return Err(TakeoverError::NoStaffNumber);
        };
        let Some((sid, token)) = self.twilio_credentials()? else {
            return Err(TakeoverError::NotConfigured);
        };
        let resp = self
            .http
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Calls/{}.json",
                self.urls.twilio,
                sid.expose(),
                call_sid
            ))
            .basic_auth(sid.expose(), Some(token.expose()))
            .form(&[(
                "Twiml",
                transfer_twiml(&settings, staff.trim(), &self.public_url),
            )])
            .timeout(TWILIO_TIMEOUT)
            .send()
            .await
            .map_err(|_| TakeoverError::Unreachable)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let code = resp
                .json::<TwilioError>()
                .await
                .map(|e| e.code)
                .unwrap_or_default();
            tracing::warn!(status, code, "Twilio refused to redirect a call");
            return Err(match status {
                404 => TakeoverError::Ended,
                _ if code == NOT_IN_PROGRESS => TakeoverError::Ended,
                500.. => TakeoverError::Unreachable,
                _ => TakeoverError::Refused,
            });
        }
        let (store, conv_id, actor) = (
            self.store.clone(),
            conversation_id.to_owned(),
            actor.to_owned(),
        );
        blocking(move || -> Result<(), TakeoverError> {
            store.with(|c| {
                c.execute(
                    "UPDATE calls SET call_sid = NULL, taken_over_at = ?2 WHERE id = ?1",
                    params![call_id, store::now()],
                )?;
                Ok(())
            })?;
            if !content
                .conversation(&conv_id)?
                .is_some_and(|c| c.taken_over())
            {
                content.set_status(&conv_id, ConversationStatus::Human, &actor)?;
            }
            content.append_message(
                &conv_id,
                Author::System,
                "A team member took the call: it was transferred to the staff number.",
            )?;
            Ok(())
        })
        .await
        .map_err(|_| TakeoverError::Store)??;
        tracing::info!("live call taken over");
        Ok(())
    }
}

#[cfg(test)]
#[path = "voice_takeover_tests.rs"]
mod tests;
