//! Contacts (the CRM): finding or creating a contact for a channel identity, web-chat
//! visitors, the contact list and page, and edits to a contact's fields.

use super::sealing::{
    email_aad, identity_aad, key_aad, name_aad, open, open_opt, open_tags, phone_aad, seal,
    tags_aad, Detail,
};
use super::timeline::insert_event;
use super::*;
use crate::platform::store::{self, StoreError};
use rusqlite::{params, Connection, OptionalExtension as _};

/// The label shown for a contact without a name: never its channel identity.
pub fn display_name(name: Option<&str>, channel: &str, contact_id: &str) -> String {
    if let Some(n) = name.filter(|n| !n.trim().is_empty()) {
        return n.to_owned();
    }
    let short: String = contact_id.chars().take(4).collect();
    match channel {
        "web" => format!("Web visitor {short}"),
        "telegram" => format!("Telegram contact {short}"),
        "whatsapp" => format!("WhatsApp contact {short}"),
        _ => format!("Contact {short}"),
    }
}

/// Tags as stored: trimmed, non-empty, at most 40 characters each, de-duplicated, at most 20.
pub fn normalize_tags<I, S>(tags: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t: String = t.as_ref().trim().chars().take(40).collect();
        if !t.is_empty() && !out.contains(&t) && out.len() < 20 {
            out.push(t);
        }
    }
    out
}

/// The columns of a contact that its list, its page and an edit read; sealed columns
/// still sealed.
struct ContactRow {
    channel: String,
    name_ct: Option<Vec<u8>>,
    stage: Stage,
    score: i64,
    tags_ct: Option<Vec<u8>>,
    created_at: i64,
    last_seen_at: i64,
    email_ct: Option<Vec<u8>>,
    phone_ct: Option<Vec<u8>>,
}

impl ContactRow {
    /// What [`ContactRow::from_row`] reads, for a `SELECT`.
    const COLUMNS: &'static str =
        "channel, name_ct, stage, score, tags_ct, created_at, last_seen_at, email_ct, phone_ct";

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            channel: r.get("channel")?,
            name_ct: r.get("name_ct")?,
            stage: r.get("stage")?,
            score: r.get("score")?,
            tags_ct: r.get("tags_ct")?,
            created_at: r.get("created_at")?,
            last_seen_at: r.get("last_seen_at")?,
            email_ct: r.get("email_ct")?,
            phone_ct: r.get("phone_ct")?,
        })
    }

    /// The contact `id` as the list shows it, opened with its data key, and its name.
    fn open_summary(self, dek: &Dek, id: String) -> Result<(ContactSummary, Option<String>)> {
        let name = open_opt(dek, self.name_ct, &name_aad(&id))?;
        let summary = ContactSummary {
            display_name: display_name(name.as_deref(), &self.channel, &id),
            email: open_opt(dek, self.email_ct, &email_aad(&id))?,
            phone: open_opt(dek, self.phone_ct, &phone_aad(&id))?,
            tags: open_tags(dek, self.tags_ct, &id)?,
            id,
            channel: self.channel,
            stage: self.stage,
            score: self.score,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
        };
        Ok((summary, name))
    }
}

impl Content {
    /// Creates a contact (new data key) inside a transaction.
    pub(super) fn create_contact(
        &self,
        tx: &Connection,
        channel: &str,
        external_id: &str,
        hash: &str,
        name: Option<&str>,
        at: i64,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let dek: Dek = Zeroizing::new(outpost_crypto::random_bytes::<32>());
        let (kek_id, kek) = self.keyring.current()?;
        let wrapped = outpost_crypto::aead_seal(&kek, dek.as_ref(), &key_aad(&id, kek_id));
        tx.execute(
            "INSERT INTO contact_keys (contact_id, kek_id, wrapped_key) VALUES (?1, ?2, ?3)",
            params![id, kek_id, wrapped],
        )?;
        let name_ct = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| seal(&dek, n, &name_aad(&id)));
        tx.execute(
            "INSERT INTO contacts (id, channel, identity_hash, identity_ct, name_ct, created_at, last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![id, channel, hash, seal(&dek, external_id, &identity_aad(&id)), name_ct, at],
        )?;
        insert_event(tx, &dek, &id, "created", None, None, at)?;
        Ok(id)
    }

    /// Finds the contact for a channel identity or creates it (new DEK); updates
    /// `last_seen_at`. A name is stored only when the contact has none yet (a name set in
    /// the console wins over the channel's).
    pub fn contact_for_identity(
        &self,
        channel: &str,
        external_id: &str,
        name: Option<&str>,
    ) -> Result<String> {
        self.run(|c| {
            let tx = begin(c)?;
            let id = self.contact_in(&tx, channel, external_id, name, store::now())?;
            tx.commit()?;
            Ok(id)
        })
    }

    pub(super) fn contact_in(
        &self,
        tx: &Connection,
        channel: &str,
        external_id: &str,
        name: Option<&str>,
        now: i64,
    ) -> Result<String> {
        let hash = self.identity_hash(channel, external_id);
        let found: Option<(String, Option<Vec<u8>>)> = tx
            .query_row(
                "SELECT id, name_ct FROM contacts WHERE identity_hash = ?1",
                [&hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let id = match found {
            Some((id, name_ct)) => {
                tx.execute(
                    "UPDATE contacts SET last_seen_at = MAX(last_seen_at, ?2) WHERE id = ?1",
                    params![id, now],
                )?;
                if let (None, Some(n)) = (name_ct, name.map(str::trim).filter(|n| !n.is_empty())) {
                    let dek = self.dek(tx, &id)?;
                    tx.execute(
                        "UPDATE contacts SET name_ct = ?2 WHERE id = ?1",
                        params![id, seal(&dek, n, &name_aad(&id))],
                    )?;
                }
                id
            }
            None => self.create_contact(tx, channel, external_id, &hash, name, now)?,
        };
        Ok(id)
    }

    /// Web-chat visitors: creates a contact (channel `web`, external id = a new random
    /// visitor id) and returns `(visitor token, contact id)`. Only the token's hash is
    /// stored.
    pub fn create_visitor(&self, agent_id: &str) -> Result<(String, String)> {
        let visitor_id = uuid::Uuid::new_v4().to_string();
        let token = outpost_crypto::random_token();
        let hash = self.identity_hash("web", &visitor_id);
        let contact = self.run(|c| {
            let tx = begin(c)?;
            let now = store::now();
            let id = self.create_contact(&tx, "web", &visitor_id, &hash, None, now)?;
            tx.execute(
                "INSERT INTO visitors (token_hash, contact_id, agent_id, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![outpost_crypto::token_hash(&token), id, agent_id, now],
            )?;
            tx.commit()?;
            Ok(id)
        })?;
        Ok((token, contact))
    }

    /// The contact id behind a visitor token for that agent, if any.
    pub fn visitor_contact(&self, token: &str, agent_id: &str) -> Result<Option<String>> {
        let hash = outpost_crypto::token_hash(token);
        self.run(|c| {
            Ok(c.query_row(
                "SELECT contact_id FROM visitors WHERE token_hash = ?1 AND agent_id = ?2",
                params![hash, agent_id],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Contacts, most recently seen first.
    pub fn list_contacts(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<ContactSummary>> {
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, {} FROM contacts WHERE ?1 IS NULL OR stage = ?1
                 ORDER BY last_seen_at DESC, rowid DESC LIMIT ?2",
                ContactRow::COLUMNS
            ))?;
            let rows: Vec<(String, ContactRow)> = stmt
                .query_map(params![stage, limit_i64(limit)], |r| {
                    Ok((r.get("id")?, ContactRow::from_row(r)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, row) in rows {
                let dek = self.dek(c, &id)?;
                out.push(row.open_summary(&dek, id)?.0);
            }
            Ok(out)
        })
    }

    /// One contact, decrypted.
    pub fn contact(&self, id: &str) -> Result<Option<ContactDetail>> {
        self.run(|c| {
            let row: Option<(Vec<u8>, ContactRow)> = c
                .query_row(
                    &format!(
                        "SELECT identity_ct, {} FROM contacts WHERE id = ?1",
                        ContactRow::COLUMNS
                    ),
                    [id],
                    |r| Ok((r.get("identity_ct")?, ContactRow::from_row(r)?)),
                )
                .optional()?;
            let Some((identity_ct, row)) = row else {
                return Ok(None);
            };
            let dek = self.dek(c, id)?;
            let identity = open(&dek, &identity_ct, &identity_aad(id))?;
            let (summary, name) = row.open_summary(&dek, id.to_owned())?;
            Ok(Some(ContactDetail {
                id: summary.id,
                name,
                display_name: summary.display_name,
                email: summary.email,
                phone: summary.phone,
                channel: summary.channel,
                identity,
                stage: summary.stage,
                score: summary.score,
                tags: summary.tags,
                created_at: summary.created_at,
                last_seen_at: summary.last_seen_at,
            }))
        })
    }

    /// Applies the fields set in `update`; each actual change becomes a timeline event
    /// with `actor`. An empty name clears the name.
    pub fn update_contact(&self, id: &str, update: ContactUpdate, actor: &str) -> Result<()> {
        if update.score.is_some_and(|s| !(0..=100).contains(&s)) {
            return Err(ContentError::Invalid(
                "The score must be between 0 and 100.",
            ));
        }
        // Every check before the transaction: a refused form changes nothing.
        let email = update
            .email
            .as_deref()
            .map(check_email)
            .transpose()
            .map_err(ContentError::Invalid)?;
        let phone = update
            .phone
            .as_deref()
            .map(check_phone)
            .transpose()
            .map_err(ContentError::Invalid)?;
        self.run(|c| {
            let tx = begin(c)?;
            let ContactRow {
                name_ct,
                stage,
                score,
                tags_ct,
                email_ct,
                phone_ct,
                ..
            } = tx
                .query_row(
                    &format!("SELECT {} FROM contacts WHERE id = ?1", ContactRow::COLUMNS),
                    [id],
                    ContactRow::from_row,
                )
                .optional()?
                .ok_or(ContentError::NotFound)?;
            let dek = self.dek(&tx, id)?;
            let now = store::now();
            if let Some(new) = update.name {
                let new = new.trim().chars().take(200).collect::<String>();
                let old = open_opt(&dek, name_ct, &name_aad(id))?.unwrap_or_default();
                if new != old {
                    let ct = (!new.is_empty()).then(|| seal(&dek, &new, &name_aad(id)));
                    tx.execute(
                        "UPDATE contacts SET name_ct = ?2 WHERE id = ?1",
                        params![id, ct],
                    )?;
                    let detail = if new.is_empty() {
                        "Name removed".to_owned()
                    } else {
                        format!("Name set to {new}")
                    };
                    insert_event(
                        &tx,
                        &dek,
                        id,
                        "name_changed",
                        Some(&detail),
                        Some(actor),
                        now,
                    )?;
                }
            }
            let details = [
                (Detail::Email, email, email_ct),
                (Detail::Phone, phone, phone_ct),
            ];
            for (field, new, old_ct) in details {
                let Some(new) = new else { continue };
                let aad = field.aad(id);
                let old = open_opt(&dek, old_ct, &aad)?.unwrap_or_default();
                if new == old {
                    continue;
                }
                let ct = (!new.is_empty()).then(|| seal(&dek, &new, &aad));
                tx.execute(
                    &format!("UPDATE contacts SET {} = ?2 WHERE id = ?1", field.column()),
                    params![id, ct],
                )?;
                // The event detail is sealed under the same key, so it goes with an erasure.
                let what = field.label();
                let detail = if new.is_empty() {
                    format!("{what} removed")
                } else {
                    format!("{what} set to {new}")
                };
                insert_event(
                    &tx,
                    &dek,
                    id,
                    field.event(),
                    Some(&detail),
                    Some(actor),
                    now,
                )?;
            }
            if let Some(new) = update.stage.filter(|s| *s != stage) {
                tx.execute(
                    "UPDATE contacts SET stage = ?2 WHERE id = ?1",
                    params![id, new],
                )?;
                let detail = format!("Stage: {} → {}", stage.label(), new.label());
                insert_event(
                    &tx,
                    &dek,
                    id,
                    "stage_changed",
                    Some(&detail),
                    Some(actor),
                    now,
                )?;
            }
            if let Some(new) = update.score.filter(|s| *s != score) {
                tx.execute(
                    "UPDATE contacts SET score = ?2 WHERE id = ?1",
                    params![id, new],
                )?;
                let detail = format!("Score: {score} → {new}");
                insert_event(
                    &tx,
                    &dek,
                    id,
                    "score_changed",
                    Some(&detail),
                    Some(actor),
                    now,
                )?;
            }
            if let Some(new) = update.tags {
                let new = normalize_tags(new);
                let old = open_tags(&dek, tags_ct, id)?;
                if new != old {
                    let ct = if new.is_empty() {
                        None
                    } else {
                        let json = serde_json::to_string(&new).map_err(StoreError::from)?;
                        Some(seal(&dek, &json, &tags_aad(id)))
                    };
                    tx.execute(
                        "UPDATE contacts SET tags_ct = ?2 WHERE id = ?1",
                        params![id, ct],
                    )?;
                    let detail = if new.is_empty() {
                        "Tags removed".to_owned()
                    } else {
                        format!("Tags: {}", new.join(", "))
                    };
                    insert_event(
                        &tx,
                        &dek,
                        id,
                        "tags_changed",
                        Some(&detail),
                        Some(actor),
                        now,
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}

impl Content {
    /// Contacts newest first by creation, a page at a time (see
    /// [`Content::conversations_page`]).
    pub fn contacts_page(
        &self,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<ContactSummary>> {
        let (at, cursor) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, {} FROM contacts
                 WHERE ?1 IS NULL OR created_at < ?1 OR (created_at = ?1 AND id < ?2)
                 ORDER BY created_at DESC, id DESC LIMIT ?3",
                ContactRow::COLUMNS
            ))?;
            let rows: Vec<(String, ContactRow)> = stmt
                .query_map(params![at, cursor, limit_i64(limit)], |r| {
                    Ok((r.get("id")?, ContactRow::from_row(r)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, row) in rows {
                let dek = self.dek(c, &id)?;
                out.push(row.open_summary(&dek, id)?.0);
            }
            Ok(out)
        })
    }
}
