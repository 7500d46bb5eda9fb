//! The calls of a phone conversation on its inbox page (when, status, duration) and
//! "Take this call", which transfers a live call to the staff number
//! ([`Channels::take_over_call`]). A call cannot be handed back to the assistant: once
//! Twilio dials staff it no longer asks the node what to say, and the page says so.

use super::super::{human_time, see_other, valid_id, ConsoleError, WriteSession};
use crate::platform::store::Store;
use crate::web::channels::voice_takeover::{call_states, CallState, TakeoverError};
use crate::web::channels::Channels;
use actix_web::{web, HttpResponse};
use std::sync::Arc;

/// One call in the conversation page's table.
pub(super) struct CallRow {
    pub started: String,
    pub status: &'static str,
    pub duration: String,
}

/// What the conversation page shows of its calls.
#[derive(Default)]
pub(super) struct Calls {
    pub rows: Vec<CallRow>,
    /// A call is going on with the assistant: it can be taken.
    pub live: bool,
    /// A call taken by the team is still going on: no hand back.
    pub with_team: bool,
    /// Some call of this conversation was taken by the team.
    pub taken: bool,
}

fn status_label(s: &str) -> &'static str {
    match s {
        "in-progress" => "In progress",
        "ringing" | "queued" => "Ringing",
        "completed" => "Ended",
        "busy" => "Busy",
        "no-answer" => "Not answered",
        "failed" => "Failed",
        "canceled" => "Cancelled",
        _ => "Unknown",
    }
}

/// `42 s`, `3 min 05 s`.
fn duration(secs: Option<i64>) -> String {
    match secs {
        None => "—".to_owned(),
        Some(s) if s < 60 => format!("{s} s"),
        Some(s) => format!("{} min {:02} s", s / 60, s % 60),
    }
}

impl From<Vec<CallState>> for Calls {
    fn from(states: Vec<CallState>) -> Self {
        Self {
            live: states.iter().any(|c| c.live),
            with_team: states.iter().any(|c| c.taken_over_at.is_some() && !c.ended),
            taken: states.iter().any(|c| c.taken_over_at.is_some()),
            rows: states
                .into_iter()
                .map(|c| CallRow {
                    started: human_time(c.started_at),
                    status: status_label(&c.status),
                    duration: duration(c.duration_secs),
                })
                .collect(),
        }
    }
}

/// The calls of `conversation_id` (none for other channels).
pub(super) async fn calls(
    store: Arc<Store>,
    conversation_id: String,
) -> Result<Calls, ConsoleError> {
    let states = web::block(move || call_states(&store, &conversation_id))
        .await?
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("reading the calls: {e}")))?;
    Ok(Calls::from(states))
}

/// `POST /inbox/{id}/call/takeover`: transfers the live call to the staff number; any
/// refusal is said in words and changes nothing.
pub async fn take_call(
    channels: Option<web::Data<Channels>>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let channels = channels
        .ok_or_else(|| ConsoleError::BadRequest("Channels are not running on this node.".into()))?;
    match channels.take_over_call(&id, &session.user_id).await {
        Ok(()) => {
            tracing::info!(user = %session.user_id, "call taken over in the console");
            Ok(see_other(&format!("/inbox/{id}")))
        }
        Err(TakeoverError::Store) => Err(ConsoleError::Internal(anyhow::anyhow!(
            "taking over a call: storage failed"
        ))),
        Err(e) => Err(ConsoleError::BadRequest(e.to_string())),
    }
}
