//! Conversations: finding or opening the current one, the inbox list, and the hourly
//! usage counts (the only thing about conversations the CP ever sees).

use super::sealing::{msg_aad, name_aad, open, open_opt};
use super::*;
use crate::platform::store;
use rusqlite::{params, Connection, OptionalExtension as _};
use std::collections::HashMap;

/// The contact's latest non-closed conversation with the agent on the channel, or a new
/// one (counted), inside a transaction.
pub(super) fn conversation_in(
    tx: &Connection,
    contact_id: &str,
    agent_id: &str,
    channel: &str,
    now: i64,
) -> Result<Conversation> {
    let found = tx
        .query_row(
            &format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations
                         WHERE contact_id = ?1 AND agent_id = ?2 AND channel = ?3
                           AND status != 'closed'
                         ORDER BY updated_at DESC, rowid DESC LIMIT 1"
            ),
            params![contact_id, agent_id, channel],
            conversation_row,
        )
        .optional()?;
    if let Some(conv) = found {
        return Ok(conv);
    }
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE id = ?1)",
        [contact_id],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(ContentError::NotFound);
    }
    let conv = Conversation {
        id: uuid::Uuid::new_v4().to_string(),
        contact_id: contact_id.to_owned(),
        agent_id: agent_id.to_owned(),
        channel: channel.to_owned(),
        status: ConversationStatus::Open,
        created_at: now,
        updated_at: now,
        waiting_since: None,
    };
    tx.execute(
                "INSERT INTO conversations (id, contact_id, agent_id, channel, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![conv.id, conv.contact_id, conv.agent_id, conv.channel, conv.status, now],
            )?;
    count(tx, channel, now, 0, 0, 1)?;
    Ok(conv)
}

pub(super) fn count(
    c: &Connection,
    channel: &str,
    at: i64,
    inbound: i64,
    outbound: i64,
    convs: i64,
) -> Result<()> {
    // Staff trying an agent on the console's "Try it here" page are not customers: their
    // conversations are kept (they appear in the inbox, marked as tests) but not counted.
    if channel == TEST_CHANNEL {
        return Ok(());
    }
    c.execute(
        "INSERT INTO usage_counts (channel, hour, inbound, outbound, conversations)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (channel, hour) DO UPDATE SET
            inbound = inbound + excluded.inbound,
            outbound = outbound + excluded.outbound,
            conversations = conversations + excluded.conversations",
        params![channel, hour_of(at), inbound, outbound, convs],
    )?;
    Ok(())
}

pub(super) const CONVERSATION_COLUMNS: &str =
    "id, contact_id, agent_id, channel, status, created_at, updated_at, waiting_since";

pub(super) fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        contact_id: r.get(1)?,
        agent_id: r.get(2)?,
        channel: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        waiting_since: r.get(7)?,
    })
}

pub(super) fn load_conversation(c: &Connection, id: &str) -> Result<Option<Conversation>> {
    Ok(c.query_row(
        &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
        [id],
        conversation_row,
    )
    .optional()?)
}

/// A row of the inbox list: the conversation, its contact's sealed name and its last
/// message, sealed.
struct SummaryRow {
    id: String,
    contact_id: String,
    agent_id: String,
    channel: String,
    status: ConversationStatus,
    updated_at: i64,
    waiting_since: Option<i64>,
    name_ct: Option<Vec<u8>>,
    last_id: Option<i64>,
    last_author: Option<Author>,
    last_body_ct: Option<Vec<u8>>,
}

impl SummaryRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            contact_id: r.get("contact_id")?,
            agent_id: r.get("agent_id")?,
            channel: r.get("channel")?,
            status: r.get("status")?,
            updated_at: r.get("updated_at")?,
            waiting_since: r.get("waiting_since")?,
            name_ct: r.get("name_ct")?,
            last_id: r.get("last_id")?,
            last_author: r.get("last_author")?,
            last_body_ct: r.get("last_body_ct")?,
        })
    }
}

impl Content {
    /// The contact's latest non-closed conversation with this agent on this channel, or a
    /// new one (status open; counts one conversation for the current hour).
    pub fn current_conversation(
        &self,
        contact_id: &str,
        agent_id: &str,
        channel: &str,
    ) -> Result<Conversation> {
        self.run(|c| {
            let tx = begin(c)?;
            let conv = conversation_in(&tx, contact_id, agent_id, channel, store::now())?;
            tx.commit()?;
            Ok(conv)
        })
    }

    /// A conversation by id.
    pub fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        self.run(|c| load_conversation(c, id))
    }

    /// Conversations, newest activity first, with the contact's display name and a
    /// preview of the last message.
    pub fn list_conversations(
        &self,
        status: Option<ConversationStatus>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>> {
        self.run(|c| {
            let mut stmt = c.prepare(
                "SELECT v.id, v.contact_id, v.agent_id, v.channel, v.status, v.updated_at,
                        v.waiting_since, k.name_ct, m.id AS last_id, m.author AS last_author,
                        m.body_ct AS last_body_ct
                 FROM conversations v
                 JOIN contacts k ON k.id = v.contact_id
                 LEFT JOIN messages m ON m.id = (
                     SELECT MAX(id) FROM messages WHERE conversation_id = v.id)
                 WHERE ?1 IS NULL OR v.status = ?1
                 ORDER BY v.updated_at DESC, v.rowid DESC LIMIT ?2",
            )?;
            let rows: Vec<SummaryRow> = stmt
                .query_map(params![status, limit_i64(limit)], SummaryRow::from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut keys = HashMap::new();
            let mut out = Vec::with_capacity(rows.len());
            for SummaryRow {
                id,
                contact_id,
                agent_id,
                channel,
                status,
                updated_at,
                waiting_since,
                name_ct,
                last_id,
                last_author: author,
                last_body_ct,
            } in rows
            {
                let dek = self.dek_cached(c, &mut keys, &contact_id)?;
                let name = open_opt(dek, name_ct, &name_aad(&contact_id))?;
                let last = match (last_id, last_body_ct) {
                    (Some(mid), Some(body)) => Some(open(dek, &body, &msg_aad(mid))?),
                    _ => None,
                };
                out.push(ConversationSummary {
                    contact_name: display_name(name.as_deref(), &channel, &contact_id),
                    id,
                    contact_id,
                    agent_id,
                    channel,
                    status,
                    last_author: author,
                    preview: last.map(|b| preview(&b, PREVIEW_CHARS)).unwrap_or_default(),
                    updated_at,
                    waiting_since,
                });
            }
            Ok(out)
        })
    }

    /// The contact's conversations, newest activity first.
    pub fn contact_conversations(
        &self,
        contact_id: &str,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE contact_id = ?1
                 ORDER BY updated_at DESC, rowid DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![contact_id, limit_i64(limit)], conversation_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Hourly usage rows with `hour >= since_hour` (hour = unix seconds at the start of
    /// the hour, as in [`outpost_protocol::CountBucket`]), oldest first.
    pub fn counts_since(&self, since_hour: i64) -> Result<Vec<outpost_protocol::CountBucket>> {
        self.run(|c| {
            let mut stmt = c.prepare(
                "SELECT channel, hour, inbound, outbound, conversations FROM usage_counts
                 WHERE hour >= ?1 ORDER BY hour ASC, channel ASC",
            )?;
            let rows = stmt.query_map([since_hour], |r| {
                Ok(outpost_protocol::CountBucket {
                    channel: r.get(0)?,
                    hour: r.get(1)?,
                    inbound: r.get(2)?,
                    outbound: r.get(3)?,
                    conversations: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

impl Content {
    /// Conversations newest first by creation, a page at a time: those created before
    /// `before` (`(created_at, id)` of the last one of the previous page), at most
    /// `limit`. Creation order does not move while a client pages, unlike activity.
    pub fn conversations_page(
        &self,
        status: Option<ConversationStatus>,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        let (at, id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations
                 WHERE (?1 IS NULL OR status = ?1)
                   AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3))
                 ORDER BY created_at DESC, id DESC LIMIT ?4"
            ))?;
            let rows =
                stmt.query_map(params![status, at, id, limit_i64(limit)], conversation_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
