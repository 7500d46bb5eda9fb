//! A contact's timeline: events (changes, notes) sealed under the contact's key, merged
//! with their messages and follow-ups.

use super::messages::{SealedMessage, MESSAGE_COLUMNS};
use super::sealing::{event_aad, open_opt, seal};
use super::*;
use crate::platform::store;
use rusqlite::{params, Connection};

/// What [`SealedEvent::from_row`] reads, in its order, for a `SELECT`.
pub(super) const EVENT_COLUMNS: &str = "id, kind, detail_ct, actor, created_at";

/// A `contact_events` row, its detail still sealed.
pub(super) struct SealedEvent {
    pub(super) id: i64,
    pub(super) kind: String,
    pub(super) detail_ct: Option<Vec<u8>>,
    pub(super) actor: Option<String>,
    pub(super) created_at: i64,
}

impl SealedEvent {
    /// Reads [`EVENT_COLUMNS`] by position.
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            kind: r.get(1)?,
            detail_ct: r.get(2)?,
            actor: r.get(3)?,
            created_at: r.get(4)?,
        })
    }
}

pub(super) fn insert_event(
    c: &Connection,
    dek: &Dek,
    contact_id: &str,
    kind: &str,
    detail: Option<&str>,
    actor: Option<&str>,
    at: i64,
) -> Result<i64> {
    let id: i64 = c.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM contact_events",
        [],
        |r| r.get(0),
    )?;
    let detail_ct = detail.map(|d| seal(dek, d, &event_aad(id)));
    c.execute(
        "INSERT INTO contact_events (id, contact_id, kind, detail_ct, actor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, contact_id, kind, detail_ct, actor, at],
    )?;
    Ok(id)
}

impl Content {
    /// Adds a note to the contact's timeline.
    pub fn add_note(&self, id: &str, text: &str, actor: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Err(ContentError::Invalid("The note is empty."));
        }
        self.run(|c| {
            let tx = begin(c)?;
            let dek = self.dek(&tx, id)?;
            insert_event(
                &tx,
                &dek,
                id,
                "note",
                Some(text.trim()),
                Some(actor),
                store::now(),
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The contact's messages (all conversations), events and follow-ups merged, newest
    /// first, at most `limit`.
    pub fn timeline(&self, id: &str, limit: usize) -> Result<Vec<TimelineEntry>> {
        let lim = limit_i64(limit);
        let mut out = self.run(|c| {
            let dek = self.dek(c, id)?;
            let mut out = Vec::new();
            let mut stmt = c.prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE contact_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            for row in stmt.query_map(params![id, lim], SealedMessage::from_row)? {
                let m = row?;
                out.push(TimelineEntry {
                    at: m.created_at,
                    kind: TimelineKind::Message(m.author),
                    text: m.open_body(&dek)?,
                    actor: None,
                    seq: m.id,
                    conversation_id: Some(m.conversation_id),
                });
            }
            let mut stmt = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM contact_events
                 WHERE contact_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            for row in stmt.query_map(params![id, lim], SealedEvent::from_row)? {
                let e = row?;
                let text = open_opt(&dek, e.detail_ct, &event_aad(e.id))?.unwrap_or_default();
                out.push(TimelineEntry {
                    at: e.created_at,
                    kind: TimelineKind::Event(e.kind),
                    text,
                    actor: e.actor,
                    conversation_id: None,
                    seq: e.id,
                });
            }
            Ok(out)
        })?;
        for f in self.followups(id, limit)? {
            out.push(TimelineEntry {
                at: f.created_at,
                text: f.text,
                actor: f.created_by,
                conversation_id: None,
                seq: 0,
                kind: TimelineKind::Followup {
                    kind: f.kind,
                    due_at: f.due_at,
                    status: f.status,
                },
            });
        }
        out.sort_by(|a, b| b.at.cmp(&a.at).then(b.seq.cmp(&a.seq)));
        out.truncate(limit);
        Ok(out)
    }
}
