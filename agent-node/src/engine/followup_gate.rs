//! The follow-up gate: what the channels tell the runtime about follow-up messages they
//! cannot deliver when due (WhatsApp past its 24-hour window). A held follow-up stays
//! pending and is sent by a later round once the gate lets it go; its conversation says
//! so once.

use super::agent::{AgentError, Runtime};
use std::sync::Arc;

/// Says whether a due follow-up message can go into a conversation (by id) now:
/// `Some(note)` holds it (`note` tells staff why), `None` lets it go.
pub type FollowupGate = Arc<dyn Fn(&str) -> Option<&'static str> + Send + Sync>;

impl Runtime {
    /// Sets the follow-up gate (the first call only; the channels set it).
    pub fn set_followup_gate(&self, gate: FollowupGate) {
        let _ = self.followup_gate.set(gate);
    }

    /// Whether follow-up `followup_id`, due in `conversation_id`, is held; the first time,
    /// the conversation gets the gate's note.
    pub(super) fn held(
        &self,
        followup_id: &str,
        conversation_id: &str,
    ) -> Result<bool, AgentError> {
        let Some(note) = self.followup_gate.get().and_then(|g| g(conversation_id)) else {
            return Ok(false);
        };
        self.content()
            .hold_followup(followup_id, conversation_id, note)?;
        Ok(true)
    }
}
