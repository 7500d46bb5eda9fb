//! Who has a conversation: the assistant, or the team. A conversation moves between open
//! and human (the assistant queues it for a person, a team member takes over or hands
//! back) and to closed; one that the assistant queued waits for the team until someone
//! takes it (`waiting_since`).

use super::conversations::load_conversation;
use super::timeline::insert_event;
use super::*;
use crate::platform::store;
use rusqlite::params;

/// How many conversations wait for the team (see [`WAITING_SCHEMA`]). Needs no key: it
/// reads no content.
pub fn waiting_count(store: &Store) -> store::Result<u32> {
    store.with(|c| {
        Ok(c.query_row(
            "SELECT COUNT(*) FROM conversations WHERE waiting_since IS NOT NULL",
            [],
            |r| r.get::<_, u32>(0),
        )?)
    })
}

impl Content {
    /// Moves a conversation between open ⇄ human (takeover, hand back) and → closed,
    /// recording a timeline event with the actor and a system message in the transcript.
    /// Setting the status it already has changes nothing.
    pub fn set_status(
        &self,
        conversation_id: &str,
        status: ConversationStatus,
        actor: &str,
    ) -> Result<Conversation> {
        self.run(|c| {
            let tx = begin(c)?;
            let mut conv =
                load_conversation(&tx, conversation_id)?.ok_or(ContentError::NotFound)?;
            // A team member taking over a conversation that waits for the team changes
            // who has it, though its status stays `human`.
            let claims_waiting = conv.waiting_since.is_some()
                && status == ConversationStatus::Human
                && actor != AGENT_ACTOR;
            if conv.status == status && !claims_waiting {
                return Ok(conv);
            }
            let (kind, text) = match (conv.status, status) {
                // The assistant itself queues the conversation when the customer asks
                // for a person: nobody has joined yet.
                (_, ConversationStatus::Human) if actor == AGENT_ACTOR => (
                    "conversation_handoff_requested",
                    "Waiting for a member of the team",
                ),
                (_, ConversationStatus::Human) => (
                    "conversation_takeover",
                    "A team member joined the conversation",
                ),
                (ConversationStatus::Human, ConversationStatus::Open) => (
                    "conversation_handback",
                    "A team member handed the conversation back to the assistant",
                ),
                (_, ConversationStatus::Open) => ("conversation_reopened", "Conversation reopened"),
                (_, ConversationStatus::Closed) => ("conversation_closed", "Conversation closed"),
            };
            let dek = self.dek(&tx, &conv.contact_id)?;
            let now = store::now().max(conv.updated_at);
            self.insert_message(&tx, &dek, &conv, Author::System, text, now)?;
            insert_event(
                &tx,
                &dek,
                &conv.contact_id,
                kind,
                Some(text),
                Some(actor),
                now,
            )?;
            // Waiting starts when the assistant queues the conversation for a person and
            // ends with any other change (taken over, handed back, closed).
            let waiting_since =
                (status == ConversationStatus::Human && actor == AGENT_ACTOR).then_some(now);
            tx.execute(
                "UPDATE conversations SET status = ?2, updated_at = ?3, waiting_since = ?4
                 WHERE id = ?1",
                params![conv.id, status, now, waiting_since],
            )?;
            tx.commit()?;
            conv.status = status;
            conv.waiting_since = waiting_since;
            conv.updated_at = now;
            Ok(conv)
        })
    }
}
