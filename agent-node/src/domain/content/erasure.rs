//! Erasing contacts (by hand or by retention) and the record of erasures.

use super::sealing::key_aad;
use super::*;
use crate::platform::store;
use rusqlite::{params, OptionalExtension as _};
use zeroize::Zeroizing;

/// One carried-out erasure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erasure {
    /// Record id (UUID), to quote to the person who asked.
    pub id: String,
    /// Keyed hash of the erased contact's channel identity.
    pub contact_hash: String,
    /// Channel of the erased contact.
    pub channel: String,
    /// CP user id of the staff member.
    pub erased_by: String,
    /// Unix seconds.
    pub erased_at: i64,
}

impl Content {
    /// Erases a contact: its data key and every row about it (conversations, messages,
    /// events, follow-ups, visitor tokens) in one transaction, which also re-wraps every
    /// other contact's key under a new KEK; the older KEK files are then destroyed (see
    /// [`keyring`]). A copy of the database taken before the erasure can no longer be
    /// read for that contact. Usage counts stay (they hold no contact data). Exports
    /// that hold the contact (the whole workspace's, or theirs) lose their file key in
    /// the same transaction.
    pub fn erase_contact(&self, id: &str, actor: &str) -> Result<Erasure> {
        self.erase_contacts(&[id.to_owned()], actor)?
            .pop()
            .ok_or(ContentError::NotFound)
    }

    /// [`Self::erase_contact`] for several contacts with one KEK rotation (retention).
    /// Contacts already gone are skipped.
    pub fn erase_contacts(&self, ids: &[String], actor: &str) -> Result<Vec<Erasure>> {
        self.run(|c| {
            let tx = begin(c)?;
            let now = store::now();
            let mut records = Vec::with_capacity(ids.len());
            for id in ids {
                let Some((contact_hash, channel)) = tx
                    .query_row(
                        "SELECT identity_hash, channel FROM contacts WHERE id = ?1",
                        [id],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()?
                else {
                    continue;
                };
                let record = Erasure {
                    id: uuid::Uuid::new_v4().to_string(),
                    contact_hash,
                    channel,
                    erased_by: actor.to_owned(),
                    erased_at: now,
                };
                tx.execute(
                    "INSERT INTO erasures (id, contact_hash, channel, erased_by, erased_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        record.id,
                        record.contact_hash,
                        record.channel,
                        record.erased_by,
                        record.erased_at
                    ],
                )?;
                // contact_keys has no foreign key to contacts: delete it explicitly
                tx.execute("DELETE FROM contact_keys WHERE contact_id = ?1", [id])?;
                tx.execute("DELETE FROM contacts WHERE id = ?1", [id])?;
                crate::domain::exports::forget_exports_of(&tx, id, now)?;
                records.push(record);
            }
            if records.is_empty() {
                return Ok(records);
            }
            // Rotate the KEK: every remaining data key is re-wrapped under a new one, so
            // the erased keys, still present in older copies of the database, are wrapped
            // under a KEK that is destroyed below.
            let (new_id, new_kek) = self.keyring.next()?;
            let rows: Vec<(String, i64, Vec<u8>)> = {
                let mut st =
                    tx.prepare("SELECT contact_id, kek_id, wrapped_key FROM contact_keys")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (contact, kek_id, wrapped) in rows {
                let old = self.keyring.get(kek_id)?;
                let dek = Zeroizing::new(
                    outpost_crypto::aead_open(&old, &wrapped, &key_aad(&contact, kek_id))
                        .map_err(|_| ContentError::Crypto)?,
                );
                let rewrapped =
                    outpost_crypto::aead_seal(&new_kek, &dek, &key_aad(&contact, new_id));
                tx.execute(
                    "UPDATE contact_keys SET kek_id = ?2, wrapped_key = ?3 WHERE contact_id = ?1",
                    params![contact, new_id, rewrapped],
                )?;
            }
            tx.commit()?;
            self.keyring.destroy_older_than(new_id)?;
            Ok(records)
        })
    }

    /// The erasures carried out, newest first.
    pub fn erasures(&self, limit: usize) -> Result<Vec<Erasure>> {
        self.run(|c| {
            let mut st = c.prepare(
                "SELECT id, contact_hash, channel, erased_by, erased_at FROM erasures
                 ORDER BY erased_at DESC, id LIMIT ?1",
            )?;
            let rows = st.query_map([limit_i64(limit)], |r| {
                Ok(Erasure {
                    id: r.get(0)?,
                    contact_hash: r.get(1)?,
                    channel: r.get(2)?,
                    erased_by: r.get(3)?,
                    erased_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
