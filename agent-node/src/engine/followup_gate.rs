//! The follow-up gate: what the channels tell the runtime about follow-up messages they
//! cannot deliver as plain text when due (WhatsApp past its 24-hour window). The channel
//! either sends it its own way (a template the follow-up carries) or holds it: a held
//! follow-up stays pending and is sent by a later round once the gate lets it go; its
//! conversation says so once.

use super::agent::{AgentError, Runtime};
use crate::domain::content::{ContentError, Followup};
use std::sync::Arc;

/// What the gate decides for a due follow-up message.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Write its text into the conversation now, like any staff reply.
    Open,
    /// Hold it; the note tells staff why.
    Hold(String),
    /// The channel wrote it into the conversation itself (a WhatsApp template).
    Sent,
}

/// Decides for a due follow-up message going into a conversation (by id).
pub type FollowupGate = Arc<dyn Fn(&Followup, &str) -> Result<Gate, ContentError> + Send + Sync>;

impl Runtime {
    /// Sets the follow-up gate (the first call only; the channels set it).
    pub fn set_followup_gate(&self, gate: FollowupGate) {
        let _ = self.followup_gate.set(gate);
    }

    /// What the gate says of follow-up `f`, due in `conversation_id`; a held one's
    /// conversation gets the gate's note the first time.
    pub(super) fn gate(&self, f: &Followup, conversation_id: &str) -> Result<Gate, AgentError> {
        let Some(gate) = self.followup_gate.get() else {
            return Ok(Gate::Open);
        };
        let decision = gate(f, conversation_id)?;
        if let Gate::Hold(note) = &decision {
            self.content().hold_followup(&f.id, conversation_id, note)?;
        }
        Ok(decision)
    }
}
