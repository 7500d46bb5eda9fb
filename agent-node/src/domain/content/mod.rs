//! Conversation content on the node: contacts (CRM), conversations, messages, the
//! per-contact timeline and follow-ups, and the hourly usage counts that are the only
//! thing about conversations the CP ever sees.
//!
//! Encryption at rest (DESIGN §2): every contact has its own 256-bit data key, stored
//! wrapped (AES-256-GCM) under a key-encryption key (KEK) kept outside the database in
//! `keys/`, sealed under the master key ([`keyring`]). Message bodies, the contact's
//! channel identity, name, email, phone, tags, notes and follow-up texts are sealed
//! under that data key with the row's id as associated data. Finding a contact by
//! its channel identity uses a keyed hash (`identity_hash`), never the plaintext.
//! Erasing a contact deletes its key and rows in one transaction that also re-wraps every
//! other key under a new KEK; the old KEK is then destroyed, so copies of the database
//! taken before the erasure cannot be read for that contact.
//!
//! One file per concern: `contacts` (and web-chat visitors), `conversations` (and
//! usage counts), `messages`, `handover` (who has a conversation, what waits for the
//! team), `followups`, `timeline` (events and notes), `erasure`; `schema` holds the
//! tables, `sealing` the associated data of every sealed column, [`keyring`] the KEKs,
//! `bulk` the paged reads of exports and the deletes of retention, `media` the files
//! customers send (sealed like message bodies, deleted with their message).

mod bulk;
mod contacts;
mod conversations;
mod erasure;
mod followups;
mod handover;
pub mod keyring;
mod media;
mod messages;
mod model;
mod schema;
mod sealing;
#[cfg(test)]
mod tests;
mod timeline;

pub use bulk::{EventRecord, Inbound, KeyCache, MessageClass, MessageRecord, MessageScope, Totals};
pub use contacts::{display_name, normalize_tags};
pub use erasure::Erasure;
pub use handover::waiting_count;
pub use media::{
    content_type_allowed, shown_inline, Media, MediaIn, MediaInfo, MAX_MEDIA_BYTES, MEDIA_SCHEMA,
    RECORDING_KIND, VOICEMAIL_KIND,
};
pub use model::*;
pub use schema::{
    CONTACT_DETAILS_SCHEMA, ERASURES_SCHEMA, FOLLOWUP_HOLDS_SCHEMA, FOLLOWUP_TEMPLATES_SCHEMA,
    SCHEMA, WAITING_SCHEMA,
};

use crate::platform::keys::MasterKey;
use crate::platform::store::{Store, StoreError};
use outpost_common::hex;
use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior};
use sealing::key_aad;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The actor recorded when the assistant (not a staff member) changes a conversation.
pub const AGENT_ACTOR: &str = "agent";

/// The channel of conversations held on the console's "Try it here" page: stored and
/// shown like any other, marked as tests, and left out of the usage counts.
pub const TEST_CHANNEL: &str = "test";

/// The channel of phone calls: their transcripts have their own retention period.
pub const VOICE_CHANNEL: &str = "voice";

/// What the console calls a channel.
pub fn channel_label(channel: &str) -> &str {
    match channel {
        TEST_CHANNEL => "Test (Try it here)",
        "web" => "Web chat",
        "telegram" => "Telegram",
        "whatsapp" => "WhatsApp",
        other => other,
    }
}

/// Characters of the last message shown in the inbox list.
pub const PREVIEW_CHARS: usize = 80;

/// Errors of the content store. Messages never quote content.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// No such contact, conversation or follow-up.
    #[error("not found")]
    NotFound,
    /// The node database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored content does not decrypt (wrong master key or a damaged row).
    #[error("stored content could not be decrypted")]
    Crypto,
    /// A value out of range (score outside 0–100, empty text); the message is safe to
    /// show to users.
    #[error("{0}")]
    Invalid(&'static str),
    /// The key-encryption key files could not be read or written.
    #[error("content keys: {0}")]
    Keys(std::io::Error),
}

impl From<rusqlite::Error> for ContentError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

type Result<T> = std::result::Result<T, ContentError>;
type Dek = Zeroizing<[u8; 32]>;

/// The encrypted content store. Cheap to construct and to clone (two key derivations,
/// an `Arc`); every method is synchronous (use `web::block` from handlers) and every
/// multi-row write runs in one `IMMEDIATE` transaction.
#[derive(Clone)]
pub struct Content {
    store: Arc<Store>,
    keyring: Arc<keyring::Keyring>,
    index_key: Arc<Dek>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Content(***)")
    }
}

/// The hour bucket (unix seconds at the start of the hour) of `at`.
pub fn hour_of(at: i64) -> i64 {
    at.div_euclid(3600) * 3600
}

/// First `n` characters of `s`, with an ellipsis when cut.
pub fn preview(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().nth(n).is_some() {
        out.push('…');
    }
    out
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn begin(c: &mut Connection) -> Result<Transaction<'_>> {
    Ok(c.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

impl Content {
    /// The store over `store`, with keys derived from `master`.
    pub fn new(store: Arc<Store>, master: &MasterKey) -> Self {
        Self {
            keyring: Arc::new(keyring::Keyring::new(
                store.dir(),
                master.derive("content-kek-files"),
            )),
            store,
            index_key: Arc::new(master.derive("contact-index")),
        }
    }

    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let result = self.store.with(|c| Ok(f(c)))?;
        if let Err(ContentError::Store(e)) = &result {
            self.store.note_if_full(e);
        }
        result
    }

    /// `hex(HMAC-SHA256(index key, channel || 0x00 || external id))`.
    fn identity_hash(&self, channel: &str, external_id: &str) -> String {
        let mut msg = Vec::with_capacity(channel.len() + 1 + external_id.len());
        msg.extend_from_slice(channel.as_bytes());
        msg.push(0);
        msg.extend_from_slice(external_id.as_bytes());
        hex(&outpost_crypto::hmac_sign(&self.index_key[..], &msg))
    }

    /// The contact's data key, unwrapped.
    fn dek(&self, c: &Connection, contact_id: &str) -> Result<Dek> {
        let (kek_id, wrapped): (i64, Vec<u8>) = c
            .query_row(
                "SELECT kek_id, wrapped_key FROM contact_keys WHERE contact_id = ?1",
                [contact_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(ContentError::NotFound)?;
        let kek = self.keyring.get(kek_id)?;
        let plain = Zeroizing::new(
            outpost_crypto::aead_open(&kek, &wrapped, &key_aad(contact_id, kek_id))
                .map_err(|_| ContentError::Crypto)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(ContentError::Crypto);
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }

    /// Data keys of several contacts, unwrapped once each.
    fn dek_cached<'a>(
        &self,
        c: &Connection,
        cache: &'a mut HashMap<String, Dek>,
        contact_id: &str,
    ) -> Result<&'a Dek> {
        if !cache.contains_key(contact_id) {
            let dek = self.dek(c, contact_id)?;
            cache.insert(contact_id.to_owned(), dek);
        }
        cache.get(contact_id).ok_or(ContentError::NotFound)
    }
}
