//! Messages: appending (sealed, counted), a channel's inbound message in one transaction,
//! and reading a conversation's transcript.

use super::conversations::{conversation_in, count, load_conversation};
use super::sealing::{message_extra_aad, msg_aad, open, seal};
use super::timeline::insert_event;
use super::*;
use crate::platform::store;
use rusqlite::{params, Connection, OptionalExtension as _};

/// What [`SealedMessage::from_row`] reads, in its order, for a `SELECT`.
pub(super) const MESSAGE_COLUMNS: &str =
    "id, conversation_id, contact_id, author, body_ct, created_at";

/// A `messages` row, its body still sealed.
pub(super) struct SealedMessage {
    pub(super) id: i64,
    pub(super) conversation_id: String,
    pub(super) contact_id: String,
    pub(super) author: Author,
    pub(super) body_ct: Vec<u8>,
    pub(super) created_at: i64,
}

impl SealedMessage {
    /// Reads [`MESSAGE_COLUMNS`] by position: exports page through every message with it.
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            conversation_id: r.get(1)?,
            contact_id: r.get(2)?,
            author: r.get(3)?,
            body_ct: r.get(4)?,
            created_at: r.get(5)?,
        })
    }

    /// The body, opened with the contact's data key.
    pub(super) fn open_body(&self, dek: &Dek) -> Result<String> {
        open(dek, &self.body_ct, &msg_aad(self.id))
    }
}

impl Content {
    /// Inserts a sealed message; the id is picked inside the caller's transaction so it
    /// can be bound into the associated data before the row is written.
    pub(super) fn insert_message(
        &self,
        c: &Connection,
        dek: &Dek,
        conv: &Conversation,
        author: Author,
        body: &str,
        at: i64,
    ) -> Result<Message> {
        let id: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM messages", [], |r| {
            r.get(0)
        })?;
        c.execute(
            "INSERT INTO messages (id, conversation_id, contact_id, author, body_ct, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                conv.id,
                conv.contact_id,
                author,
                seal(dek, body, &msg_aad(id)),
                at
            ],
        )?;
        Ok(Message {
            id,
            conversation_id: conv.id.clone(),
            author,
            body: body.to_owned(),
            created_at: at,
        })
    }

    /// Appends a message (sealed), bumps `conversation.updated_at` and, for
    /// [`Author::Contact`], `contact.last_seen_at`, and counts it (contact → inbound,
    /// agent/human → outbound, system → not counted). A closed conversation is reopened
    /// when the contact writes.
    pub fn append_message(
        &self,
        conversation_id: &str,
        author: Author,
        body: &str,
    ) -> Result<Message> {
        self.run(|c| {
            let tx = begin(c)?;
            let msg = self.append_in(&tx, conversation_id, author, body)?;
            tx.commit()?;
            Ok(msg)
        })
    }

    /// [`Self::append_message`] with something a channel needs to send it (a WhatsApp
    /// template's variables), sealed like the body and bound to the new message: `then`
    /// stores the sealed `extra` in the same transaction, so the message is never seen
    /// without it.
    pub fn append_message_with_extra(
        &self,
        conversation_id: &str,
        author: Author,
        body: &str,
        extra: &str,
        then: impl FnOnce(&Connection, &Message, Vec<u8>) -> rusqlite::Result<()>,
    ) -> Result<Message> {
        self.run(|c| {
            let tx = begin(c)?;
            let msg = self.append_in(&tx, conversation_id, author, body)?;
            let contact: String = tx.query_row(
                "SELECT contact_id FROM messages WHERE id = ?1",
                [msg.id],
                |r| r.get(0),
            )?;
            let dek = self.dek(&tx, &contact)?;
            then(&tx, &msg, seal(&dek, extra, &message_extra_aad(msg.id)))?;
            tx.commit()?;
            Ok(msg)
        })
    }

    /// Opens what [`Self::append_message_with_extra`] sealed for message `message_id`.
    pub fn open_message_extra(&self, message_id: i64, sealed: &[u8]) -> Result<String> {
        self.run(|c| {
            let contact: String = c
                .query_row(
                    "SELECT contact_id FROM messages WHERE id = ?1",
                    [message_id],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(ContentError::NotFound)?;
            let dek = self.dek(c, &contact)?;
            open(&dek, sealed, &message_extra_aad(message_id))
        })
    }

    pub(super) fn append_in(
        &self,
        tx: &Connection,
        conversation_id: &str,
        author: Author,
        body: &str,
    ) -> Result<Message> {
        let mut conv = load_conversation(tx, conversation_id)?.ok_or(ContentError::NotFound)?;
        let dek = self.dek(tx, &conv.contact_id)?;
        let now = store::now().max(conv.updated_at);
        let msg = self.insert_message(tx, &dek, &conv, author, body, now)?;
        if author == Author::Contact && conv.status == ConversationStatus::Closed {
            conv.status = ConversationStatus::Open;
            insert_event(
                tx,
                &dek,
                &conv.contact_id,
                "conversation_reopened",
                Some("The contact wrote again; the conversation was reopened"),
                None,
                now,
            )?;
        }
        tx.execute(
            "UPDATE conversations SET updated_at = ?2, status = ?3 WHERE id = ?1",
            params![conv.id, now, conv.status],
        )?;
        match author {
            Author::Contact => {
                tx.execute(
                    "UPDATE contacts SET last_seen_at = MAX(last_seen_at, ?2) WHERE id = ?1",
                    params![conv.contact_id, now],
                )?;
                count(tx, &conv.channel, now, 1, 0, 0)?;
            }
            Author::Agent | Author::Human => count(tx, &conv.channel, now, 0, 1, 0)?,
            Author::System => {}
        }
        Ok(msg)
    }

    /// A message from a channel in one transaction (one fsync): finds or creates the
    /// contact for the sender's identity, finds or opens the conversation with the agent,
    /// and appends the message — what [`Content::contact_for_identity`],
    /// [`Content::current_conversation`] and [`Content::append_message`] do one by one.
    pub fn ingest(
        &self,
        channel: &str,
        external_id: &str,
        name: Option<&str>,
        agent_id: &str,
        body: &str,
    ) -> Result<(Conversation, Message)> {
        let stored = self.ingest_once(
            Inbound {
                channel,
                external_id,
                name,
                agent_id,
                body,
            },
            |_| Ok(true),
            |_, _, _| Ok(()),
        )?;
        stored.ok_or(ContentError::NotFound)
    }

    /// [`Content::ingest`] with the channel's own bookkeeping in the same transaction:
    /// `claim` runs first (marking the provider's message id as seen) and returns whether
    /// the message is new; `then` records what the channel keeps about the stored
    /// message. Either all of it is written or none of it, so a crash can neither lose a
    /// message whose id was marked seen nor store one twice. `None` when not new.
    pub fn ingest_once(
        &self,
        m: Inbound<'_>,
        claim: impl FnOnce(&Connection) -> rusqlite::Result<bool>,
        then: impl FnOnce(&Connection, &Conversation, &Message) -> rusqlite::Result<()>,
    ) -> Result<Option<(Conversation, Message)>> {
        self.ingest_once_with_media(m, None, claim, then)
    }

    /// [`Content::ingest_once`] with a file the message carried, stored (sealed) in the
    /// same transaction.
    pub fn ingest_once_with_media(
        &self,
        m: Inbound<'_>,
        media: Option<&MediaIn>,
        claim: impl FnOnce(&Connection) -> rusqlite::Result<bool>,
        then: impl FnOnce(&Connection, &Conversation, &Message) -> rusqlite::Result<()>,
    ) -> Result<Option<(Conversation, Message)>> {
        self.run(|c| {
            let tx = begin(c)?;
            if !claim(&tx)? {
                return Ok(None);
            }
            let now = store::now();
            let contact = self.contact_in(&tx, m.channel, m.external_id, m.name, now)?;
            let conv = conversation_in(&tx, &contact, m.agent_id, m.channel, now)?;
            let msg = self.append_in(&tx, &conv.id, Author::Contact, m.body)?;
            if let Some(media) = media {
                let dek = self.dek(&tx, &contact)?;
                self.insert_media(&tx, &dek, msg.id, &contact, media)?;
            }
            then(&tx, &conv, &msg)?;
            tx.commit()?;
            Ok(Some((conv, msg)))
        })
    }

    pub(super) fn read_messages(
        &self,
        c: &Connection,
        conversation_id: &str,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<Message>> {
        let conv = load_conversation(c, conversation_id)?.ok_or(ContentError::NotFound)?;
        let dek = self.dek(c, &conv.contact_id)?;
        let mut stmt = c.prepare(sql)?;
        let rows = stmt.query_map(p, SealedMessage::from_row)?;
        let mut out = Vec::new();
        for row in rows {
            let m = row?;
            out.push(Message {
                body: m.open_body(&dek)?,
                id: m.id,
                conversation_id: conv.id.clone(),
                author: m.author,
                created_at: m.created_at,
            });
        }
        Ok(out)
    }

    /// Messages with `id > after_id`, oldest first, at most `limit`.
    pub fn messages_after(
        &self,
        conversation_id: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.run(|c| {
            self.read_messages(
                c,
                conversation_id,
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE conversation_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3"
                ),
                params![conversation_id, after_id, limit_i64(limit)],
            )
        })
    }

    /// The last `limit` messages, oldest first (LLM context, transcripts).
    pub fn recent_messages(&self, conversation_id: &str, limit: usize) -> Result<Vec<Message>> {
        let mut out = self.run(|c| {
            self.read_messages(
                c,
                conversation_id,
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2"
                ),
                params![conversation_id, limit_i64(limit)],
            )
        })?;
        out.reverse();
        Ok(out)
    }
}

impl Content {
    /// One message by id, decrypted; `None` when it is gone (erased, or deleted by
    /// retention).
    pub fn message(&self, id: i64) -> Result<Option<Message>> {
        self.run(|c| {
            let conv: Option<String> = c
                .query_row(
                    "SELECT conversation_id FROM messages WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(conv) = conv else {
                return Ok(None);
            };
            Ok(self
                .read_messages(
                    c,
                    &conv,
                    &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                    [id],
                )?
                .pop())
        })
    }
}
