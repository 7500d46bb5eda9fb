//! Follow-ups: reminders for the team and messages to send a contact later.

use super::sealing::{followup_aad, followup_template_aad, open, seal};
use super::timeline::insert_event;
use super::*;
use crate::platform::store;
use rusqlite::{params, Connection, OptionalExtension as _};
use std::collections::HashMap;

/// What [`FollowupRow::from_row`] reads, for a `SELECT`.
const FOLLOWUP_COLUMNS: &str =
    "id, contact_id, kind, due_at, body_ct, status, created_by, created_at, done_at";

/// A `followups` row, its text still sealed.
struct FollowupRow {
    id: String,
    contact_id: String,
    kind: FollowupKind,
    due_at: i64,
    body_ct: Vec<u8>,
    status: FollowupStatus,
    created_by: Option<String>,
    created_at: i64,
    done_at: Option<i64>,
}

impl FollowupRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            contact_id: r.get("contact_id")?,
            kind: r.get("kind")?,
            due_at: r.get("due_at")?,
            body_ct: r.get("body_ct")?,
            status: r.get("status")?,
            created_by: r.get("created_by")?,
            created_at: r.get("created_at")?,
            done_at: r.get("done_at")?,
        })
    }
}

impl Content {
    /// Schedules a follow-up (a reminder for the team, or a message to send the
    /// contact); returns its id.
    pub fn add_followup(
        &self,
        id: &str,
        kind: FollowupKind,
        due_at: i64,
        text: &str,
        actor: &str,
    ) -> Result<String> {
        self.add_followup_with_template(id, kind, due_at, text, actor, None)
    }

    /// Schedules a follow-up message that carries, besides its text, how its channel
    /// sends it when free-form text is not allowed (`template`: the channel's JSON, a
    /// WhatsApp template and its variables), sealed under the contact's key.
    pub fn add_followup_with_template(
        &self,
        id: &str,
        kind: FollowupKind,
        due_at: i64,
        text: &str,
        actor: &str,
        template: Option<&str>,
    ) -> Result<String> {
        if text.trim().is_empty() {
            return Err(ContentError::Invalid("The follow-up text is empty."));
        }
        self.run(|c| {
            let tx = begin(c)?;
            let dek = self.dek(&tx, id)?;
            let fid = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "INSERT INTO followups (id, contact_id, kind, due_at, body_ct, status, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
                params![fid, id, kind, due_at, seal(&dek, text.trim(), &followup_aad(&fid)), actor, store::now()],
            )?;
            if let Some(template) = template {
                tx.execute(
                    "INSERT INTO followup_templates (followup_id, template_ct) VALUES (?1, ?2)",
                    params![fid, seal(&dek, template, &followup_template_aad(&fid))],
                )?;
            }
            tx.commit()?;
            Ok(fid)
        })
    }

    /// The template a follow-up carries (see [`Self::add_followup_with_template`]),
    /// opened; `None` for a follow-up without one.
    pub fn followup_template(&self, followup_id: &str) -> Result<Option<String>> {
        self.run(|c| {
            let row: Option<(String, Vec<u8>)> = c
                .query_row(
                    "SELECT f.contact_id, t.template_ct FROM followup_templates t
                     JOIN followups f ON f.id = t.followup_id WHERE t.followup_id = ?1",
                    [followup_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((contact_id, sealed)) = row else {
                return Ok(None);
            };
            let dek = self.dek(c, &contact_id)?;
            open(&dek, &sealed, &followup_template_aad(followup_id)).map(Some)
        })
    }

    /// Holds a due follow-up message that its channel cannot deliver now (WhatsApp past
    /// its 24-hour window): it stays pending, and the conversation gets `note` as a system
    /// message the first time only. Returns whether the note was written.
    pub fn hold_followup(
        &self,
        followup_id: &str,
        conversation_id: &str,
        note: &str,
    ) -> Result<bool> {
        self.run(|c| {
            let tx = begin(c)?;
            let new = tx.execute(
                "INSERT OR IGNORE INTO followup_holds (followup_id, held_at) VALUES (?1, ?2)",
                params![followup_id, store::now()],
            )? == 1;
            if new {
                self.append_in(&tx, conversation_id, Author::System, note)?;
            }
            tx.commit()?;
            Ok(new)
        })
    }

    /// Marks a follow-up done (records who did it); done twice changes nothing.
    pub fn complete_followup(&self, followup_id: &str, actor: &str) -> Result<()> {
        self.set_followup_status(followup_id, FollowupStatus::Done, actor)
    }

    /// Sets a pending follow-up's final status (`done`, `sent`, `failed`, `cancelled`)
    /// and records it on the timeline; a follow-up no longer pending is left as is.
    pub fn set_followup_status(
        &self,
        followup_id: &str,
        status: FollowupStatus,
        actor: &str,
    ) -> Result<()> {
        self.run(|c| {
            let tx = begin(c)?;
            let (contact_id, current): (String, FollowupStatus) = tx
                .query_row(
                    "SELECT contact_id, status FROM followups WHERE id = ?1",
                    [followup_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or(ContentError::NotFound)?;
            if current != FollowupStatus::Pending || status == FollowupStatus::Pending {
                return Ok(());
            }
            let now = store::now();
            tx.execute(
                "UPDATE followups SET status = ?2, done_at = ?3 WHERE id = ?1",
                params![followup_id, status, now],
            )?;
            let dek = self.dek(&tx, &contact_id)?;
            let detail = format!("Follow-up marked {}", status.as_str());
            insert_event(
                &tx,
                &dek,
                &contact_id,
                "followup_done",
                Some(&detail),
                Some(actor),
                now,
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    pub(super) fn read_followups(
        &self,
        c: &Connection,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<Followup>> {
        let mut stmt = c.prepare(sql)?;
        let rows: Vec<FollowupRow> = stmt
            .query_map(p, FollowupRow::from_row)?
            .collect::<rusqlite::Result<_>>()?;
        let mut keys = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let dek = self.dek_cached(c, &mut keys, &row.contact_id)?;
            out.push(Followup {
                text: open(dek, &row.body_ct, &followup_aad(&row.id))?,
                id: row.id,
                contact_id: row.contact_id,
                kind: row.kind,
                due_at: row.due_at,
                status: row.status,
                created_by: row.created_by,
                created_at: row.created_at,
                done_at: row.done_at,
            });
        }
        Ok(out)
    }

    /// Pending follow-ups due at or before `now`, earliest first.
    pub fn due_followups(&self, now: i64) -> Result<Vec<Followup>> {
        self.run(|c| {
            self.read_followups(
                c,
                &format!(
                    "SELECT {FOLLOWUP_COLUMNS} FROM followups
                     WHERE status = 'pending' AND due_at <= ?1 ORDER BY due_at ASC, id"
                ),
                [now],
            )
        })
    }

    /// A contact's follow-ups: pending ones first (earliest due first), then the rest.
    pub fn followups(&self, contact_id: &str, limit: usize) -> Result<Vec<Followup>> {
        self.run(|c| {
            self.read_followups(
                c,
                &format!(
                    "SELECT {FOLLOWUP_COLUMNS} FROM followups WHERE contact_id = ?1
                     ORDER BY status != 'pending', due_at ASC LIMIT ?2"
                ),
                params![contact_id, limit_i64(limit)],
            )
        })
    }
}
