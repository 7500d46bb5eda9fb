//! Whole-store reads for exports and bulk deletes for retention.
//!
//! Reads are paged by key (`id > after`) so an export of any size holds one page in
//! memory and takes the database lock once per page, never for the whole export.

use super::conversations::{conversation_in, conversation_row, CONVERSATION_COLUMNS};
use super::media::CALL_AUDIO_KINDS_SQL;
use super::messages::{SealedMessage, MESSAGE_COLUMNS};
use super::sealing::*;
use super::timeline::{SealedEvent, EVENT_COLUMNS};
use super::*;
use crate::platform::store;
use rusqlite::params;

/// Order of messages to page through: the whole node by id, or one conversation.
#[derive(Clone, Copy, Debug)]
pub enum MessageScope<'a> {
    /// Every message, by id (chronological).
    All,
    /// One conversation's messages, by id.
    Conversation(&'a str),
}

/// A message with the ids an export needs, decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    /// Message id.
    pub id: i64,
    /// The conversation.
    pub conversation_id: String,
    /// The contact.
    pub contact_id: String,
    /// Who wrote it.
    pub author: Author,
    /// The text.
    pub body: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A timeline event, decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// `created`, `note`, `stage_changed`, …
    pub kind: String,
    /// What happened (a note's text, the new stage…), if anything.
    pub detail: Option<String>,
    /// CP user id of who did it (or `agent`), if anyone.
    pub actor: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Data keys already unwrapped while paging through messages: one unwrap per contact
/// per export, not per message. Zeroized when dropped.
#[derive(Default)]
pub struct KeyCache(pub(super) HashMap<String, Dek>);

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCache({} keys)", self.0.len())
    }
}

/// Rows an export will write, for its progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Contacts.
    pub contacts: i64,
    /// Conversations.
    pub conversations: i64,
    /// Messages.
    pub messages: i64,
}

impl Content {
    /// How many contacts, conversations and messages there are (of one contact).
    pub fn totals(&self, contact: Option<&str>) -> Result<Totals> {
        self.run(|c| {
            let one = |sql_all: &str, sql_one: &str| -> Result<i64> {
                Ok(match contact {
                    None => c.query_row(sql_all, [], |r| r.get(0))?,
                    Some(id) => c.query_row(sql_one, [id], |r| r.get(0))?,
                })
            };
            Ok(Totals {
                contacts: one(
                    "SELECT COUNT(*) FROM contacts",
                    "SELECT COUNT(*) FROM contacts WHERE id = ?1",
                )?,
                conversations: one(
                    "SELECT COUNT(*) FROM conversations",
                    "SELECT COUNT(*) FROM conversations WHERE contact_id = ?1",
                )?,
                messages: one(
                    "SELECT COUNT(*) FROM messages",
                    "SELECT COUNT(*) FROM messages WHERE conversation_id IN
                       (SELECT id FROM conversations WHERE contact_id = ?1)",
                )?,
            })
        })
    }

    /// Contact ids greater than `after`, in order, at most `limit`.
    pub fn contact_ids_after(&self, after: &str, limit: usize) -> Result<Vec<String>> {
        self.run(|c| {
            let mut st = c.prepare("SELECT id FROM contacts WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = st.query_map(params![after, limit_i64(limit)], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Conversations with an id greater than `after` (of one contact), in id order.
    pub fn conversations_after(
        &self,
        contact: Option<&str>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        self.run(|c| {
            let sql = format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations
                 WHERE id > ?1 AND (?2 IS NULL OR contact_id = ?2) ORDER BY id LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params![after, contact, limit_i64(limit)], conversation_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Messages with an id greater than `after` in `scope`, oldest first, decrypted with
    /// keys from (and added to) `keys`. A message whose contact was erased meanwhile
    /// is gone with its key and is skipped.
    pub fn messages_page(
        &self,
        scope: MessageScope<'_>,
        after: i64,
        limit: usize,
        keys: &mut KeyCache,
    ) -> Result<Vec<MessageRecord>> {
        self.run(|c| {
            let rows: Vec<SealedMessage> = match scope {
                MessageScope::All => c
                    .prepare_cached(&format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2"
                    ))?
                    .query_map(params![after, limit_i64(limit)], SealedMessage::from_row)?
                    .collect::<rusqlite::Result<_>>()?,
                MessageScope::Conversation(conv) => c
                    .prepare_cached(&format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND id > ?2
                         ORDER BY id LIMIT ?3"
                    ))?
                    .query_map(params![conv, after, limit_i64(limit)], SealedMessage::from_row)?
                    .collect::<rusqlite::Result<_>>()?,
            };
            let mut out = Vec::with_capacity(rows.len());
            for m in rows {
                let dek = match self.dek_cached(c, &mut keys.0, &m.contact_id) {
                    Ok(k) => k,
                    Err(ContentError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                out.push(MessageRecord {
                    body: m.open_body(dek)?,
                    id: m.id,
                    conversation_id: m.conversation_id,
                    contact_id: m.contact_id,
                    author: m.author,
                    created_at: m.created_at,
                });
            }
            Ok(out)
        })
    }

    /// A contact's timeline events (notes, stage changes…), oldest first.
    pub fn contact_events(&self, contact_id: &str) -> Result<Vec<EventRecord>> {
        self.run(|c| {
            let dek = self.dek(c, contact_id)?;
            let mut st = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM contact_events WHERE contact_id = ?1 ORDER BY id"
            ))?;
            let rows: Vec<SealedEvent> = st
                .query_map([contact_id], SealedEvent::from_row)?
                .collect::<rusqlite::Result<_>>()?;
            rows.into_iter()
                .map(|e| {
                    Ok(EventRecord {
                        detail: open_opt(&dek, e.detail_ct, &event_aad(e.id))?,
                        kind: e.kind,
                        actor: e.actor,
                        created_at: e.created_at,
                    })
                })
                .collect()
        })
    }

    // ------------------------------------------------------------------ retention

    /// How many messages of `class` are older than `cutoff` (what
    /// [`Self::delete_messages_before`] would delete now).
    pub fn count_messages_before(&self, class: MessageClass, cutoff: i64) -> Result<i64> {
        self.run(|c| {
            Ok(c.query_row(
                &format!("SELECT COUNT(*) FROM ({})", class.selection()),
                [cutoff],
                |r| r.get(0),
            )?)
        })
    }

    /// Deletes messages of `class` older than `cutoff`, `batch` per transaction so the
    /// console and the widget are never held up for long, then conversations of the class
    /// left without messages and without activity since `cutoff` (a call's log goes with
    /// its conversation). Returns the number of messages deleted.
    pub fn delete_messages_before(
        &self,
        class: MessageClass,
        cutoff: i64,
        batch: usize,
    ) -> Result<i64> {
        let mut total = 0i64;
        loop {
            let n = self.run(|c| {
                let tx = begin(c)?;
                let n = tx.execute(
                    &format!(
                        "DELETE FROM messages WHERE id IN ({} ORDER BY m.id LIMIT ?2)",
                        class.selection()
                    ),
                    params![cutoff, limit_i64(batch)],
                )?;
                tx.commit()?;
                Ok(n)
            })?;
            total += i64::try_from(n).unwrap_or(i64::MAX);
            if n < batch {
                break;
            }
        }
        self.run(|c| {
            c.execute(
                &format!(
                    "DELETE FROM conversations WHERE updated_at < ?1 AND channel {} ?2
                       AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id)",
                    class.channel_op()
                ),
                params![cutoff, VOICE_CHANNEL],
            )?;
            Ok(())
        })?;
        Ok(total)
    }

    /// Contacts with no activity since `cutoff` (`last_seen_at` and every conversation
    /// older), oldest first.
    pub fn inactive_contacts(&self, cutoff: i64) -> Result<Vec<String>> {
        self.run(|c| {
            let mut st = c.prepare(
                "SELECT id FROM contacts WHERE last_seen_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM conversations v
                                   WHERE v.contact_id = contacts.id AND v.updated_at >= ?1)
                 ORDER BY last_seen_at, id",
            )?;
            let rows = st.query_map([cutoff], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

/// One inbound message for [`Content::ingest_batch`].
#[derive(Clone, Copy, Debug)]
pub struct Inbound<'a> {
    /// Channel name.
    pub channel: &'a str,
    /// The sender's id on the channel.
    pub external_id: &'a str,
    /// The sender's display name, if the channel gives one.
    pub name: Option<&'a str>,
    /// The agent answering on that channel.
    pub agent_id: &'a str,
    /// The text.
    pub body: &'a str,
}

impl Content {
    /// [`Content::ingest`] for several messages in one transaction (channels that
    /// deliver updates in batches, imports, benchmarks). All or nothing.
    pub fn ingest_batch(&self, items: &[Inbound<'_>]) -> Result<Vec<(Conversation, Message)>> {
        self.run(|c| {
            let tx = begin(c)?;
            let now = store::now();
            let mut out = Vec::with_capacity(items.len());
            for m in items {
                let contact = self.contact_in(&tx, m.channel, m.external_id, m.name, now)?;
                let conv = conversation_in(&tx, &contact, m.agent_id, m.channel, now)?;
                let msg = self.append_in(&tx, &conv.id, Author::Contact, m.body)?;
                out.push((conv, msg));
            }
            tx.commit()?;
            Ok(out)
        })
    }
}

/// Which messages a retention period covers. Call transcripts (channel
/// [`VOICE_CHANNEL`]) have their own period, and a message that carries a call recording
/// or a voicemail is kept for the recordings' period (see
/// [`Content::delete_call_audio_before`]), whatever its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageClass {
    /// Every conversation but calls.
    Chat,
    /// The turns of phone calls.
    CallTranscripts,
}

impl MessageClass {
    fn channel_op(self) -> &'static str {
        match self {
            MessageClass::Chat => "!=",
            MessageClass::CallTranscripts => "=",
        }
    }

    /// `SELECT m.id …` of the messages older than `?1` this class covers.
    fn selection(self) -> String {
        format!(
            "SELECT m.id FROM messages m JOIN conversations v ON v.id = m.conversation_id
             WHERE m.created_at < ?1 AND v.channel {} '{VOICE_CHANNEL}'
               AND NOT EXISTS (SELECT 1 FROM message_media f
                               WHERE f.message_id = m.id AND f.kind IN {CALL_AUDIO_KINDS_SQL})",
            self.channel_op()
        )
    }
}
