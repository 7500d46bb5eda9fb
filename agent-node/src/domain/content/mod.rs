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

/// The actor recorded when the assistant (not a staff member) changes a conversation.
pub const AGENT_ACTOR: &str = "agent";

/// Migration adding the record of erasures (see `MIGRATIONS` in `src/migrations.rs`): who erased which
/// contact (by its keyed identity hash, never the identity) and when, so the business can
/// show its own customer that the request was carried out.
pub const ERASURES_SCHEMA: &str = r#"
CREATE TABLE erasures (
    id TEXT PRIMARY KEY,
    contact_hash TEXT NOT NULL,
    channel TEXT NOT NULL,
    erased_by TEXT NOT NULL,
    erased_at INTEGER NOT NULL
);
"#;

/// Migration recording that a conversation waits for the team: the customer asked for a
/// person and nobody has taken it over yet. Its status is `human` (the assistant is
/// silent) either way; `waiting_since` tells the two apart, so the console can say "waiting
/// for the team" instead of "you have taken this over", and count what waits.
pub const WAITING_SCHEMA: &str = r#"
ALTER TABLE conversations ADD COLUMN waiting_since INTEGER;
CREATE INDEX conversations_waiting ON conversations (waiting_since) WHERE waiting_since IS NOT NULL;
"#;

/// The channel of conversations held on the console's "Try it here" page: stored and
/// shown like any other, marked as tests, and left out of the usage counts.
pub const TEST_CHANNEL: &str = "test";

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

/// Migration adding a contact's email address and phone number, entered by the team.
/// Both are sealed under the contact's data key like the name (their own associated
/// data), so erasing the contact leaves them unreadable in every copy.
pub const CONTACT_DETAILS_SCHEMA: &str = r#"
ALTER TABLE contacts ADD COLUMN email_ct BLOB;
ALTER TABLE contacts ADD COLUMN phone_ct BLOB;
"#;

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

/// Migration adding the content tables (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE contact_keys (
    contact_id TEXT PRIMARY KEY,
    kek_id INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL
);
CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    identity_hash TEXT NOT NULL UNIQUE,
    identity_ct BLOB NOT NULL,
    name_ct BLOB,
    stage TEXT NOT NULL DEFAULT 'new' CHECK (stage IN ('new', 'qualified', 'won', 'lost')),
    score INTEGER NOT NULL DEFAULT 0,
    tags_ct BLOB,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX contacts_last_seen ON contacts (last_seen_at DESC);
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'human', 'closed')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX conversations_contact ON conversations (contact_id);
CREATE INDEX conversations_updated ON conversations (updated_at DESC);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    author TEXT NOT NULL CHECK (author IN ('contact', 'agent', 'human', 'system')),
    body_ct BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_created ON messages (created_at);
CREATE TABLE contact_events (
    id INTEGER PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    detail_ct BLOB,
    actor TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX contact_events_contact ON contact_events (contact_id, id);
CREATE TABLE followups (
    id TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('reminder', 'message')),
    due_at INTEGER NOT NULL,
    body_ct BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'sent', 'failed', 'cancelled')),
    created_by TEXT,
    created_at INTEGER NOT NULL,
    done_at INTEGER
);
CREATE INDEX followups_due ON followups (status, due_at);
CREATE TABLE visitors (
    token_hash TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE usage_counts (
    channel TEXT NOT NULL,
    hour INTEGER NOT NULL,
    inbound INTEGER NOT NULL DEFAULT 0,
    outbound INTEGER NOT NULL DEFAULT 0,
    conversations INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, hour)
);
"#;

mod bulk;
pub mod keyring;
mod model;
#[cfg(test)]
mod tests;

pub use bulk::{EventRecord, Inbound, KeyCache, MessageRecord, MessageScope, Totals};
pub use model::*;

use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store, StoreError};
use outpost_common::hex;
use rusqlite::{params, Connection, OptionalExtension as _, Transaction, TransactionBehavior};
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

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

fn key_aad(contact_id: &str, kek_id: i64) -> Vec<u8> {
    format!("contact-key:{contact_id}:{kek_id}").into_bytes()
}
fn identity_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-identity:{contact_id}").into_bytes()
}
fn name_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-name:{contact_id}").into_bytes()
}
fn email_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-email:{contact_id}").into_bytes()
}
fn phone_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-phone:{contact_id}").into_bytes()
}

/// The contact fields the team types in besides the name, sealed like it.
#[derive(Clone, Copy)]
enum Detail {
    Email,
    Phone,
}

impl Detail {
    fn column(self) -> &'static str {
        match self {
            Detail::Email => "email_ct",
            Detail::Phone => "phone_ct",
        }
    }
    fn aad(self, contact_id: &str) -> Vec<u8> {
        match self {
            Detail::Email => email_aad(contact_id),
            Detail::Phone => phone_aad(contact_id),
        }
    }
    /// The timeline event a change records.
    fn event(self) -> &'static str {
        match self {
            Detail::Email => "email_changed",
            Detail::Phone => "phone_changed",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Detail::Email => "Email",
            Detail::Phone => "Phone",
        }
    }
}

fn tags_aad(contact_id: &str) -> Vec<u8> {
    format!("contact-tags:{contact_id}").into_bytes()
}
fn msg_aad(id: i64) -> Vec<u8> {
    format!("msg:{id}").into_bytes()
}
fn event_aad(id: i64) -> Vec<u8> {
    format!("event:{id}").into_bytes()
}
fn followup_aad(id: &str) -> Vec<u8> {
    format!("followup:{id}").into_bytes()
}

fn seal(dek: &Dek, plaintext: &str, aad: &[u8]) -> Vec<u8> {
    outpost_crypto::aead_seal(dek, plaintext.as_bytes(), aad)
}

fn open(dek: &Dek, sealed: &[u8], aad: &[u8]) -> Result<String> {
    let plain = outpost_crypto::aead_open(dek, sealed, aad).map_err(|_| ContentError::Crypto)?;
    String::from_utf8(plain).map_err(|_| ContentError::Crypto)
}

fn open_opt(dek: &Dek, sealed: Option<Vec<u8>>, aad: &[u8]) -> Result<Option<String>> {
    sealed.map(|s| open(dek, &s, aad)).transpose()
}

fn open_tags(dek: &Dek, sealed: Option<Vec<u8>>, contact_id: &str) -> Result<Vec<String>> {
    match open_opt(dek, sealed, &tags_aad(contact_id))? {
        Some(json) => serde_json::from_str(&json).map_err(|_| ContentError::Crypto),
        None => Ok(Vec::new()),
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

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn begin(c: &mut Connection) -> Result<Transaction<'_>> {
    Ok(c.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// The contact's latest non-closed conversation with the agent on the channel, or a new
/// one (counted), inside a transaction.
fn conversation_in(
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

fn count(
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

const CONVERSATION_COLUMNS: &str =
    "id, contact_id, agent_id, channel, status, created_at, updated_at, waiting_since";

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
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

fn load_conversation(c: &Connection, id: &str) -> Result<Option<Conversation>> {
    Ok(c.query_row(
        &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
        [id],
        conversation_row,
    )
    .optional()?)
}

fn insert_event(
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
        self.store.with(|c| Ok(f(c)))?
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

    /// Inserts a sealed message; the id is picked inside the caller's transaction so it
    /// can be bound into the associated data before the row is written.
    fn insert_message(
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

    /// Creates a contact (new data key) inside a transaction.
    fn create_contact(
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

    fn contact_in(
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

    fn append_in(
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
        self.run(|c| {
            let tx = begin(c)?;
            let now = store::now();
            let contact = self.contact_in(&tx, channel, external_id, name, now)?;
            let conv = conversation_in(&tx, &contact, agent_id, channel, now)?;
            let msg = self.append_in(&tx, &conv.id, Author::Contact, body)?;
            tx.commit()?;
            Ok((conv, msg))
        })
    }

    fn read_messages(
        &self,
        c: &Connection,
        conversation_id: &str,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<Message>> {
        let conv = load_conversation(c, conversation_id)?.ok_or(ContentError::NotFound)?;
        let dek = self.dek(c, &conv.contact_id)?;
        let mut stmt = c.prepare(sql)?;
        let rows = stmt.query_map(p, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Author>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, author, ct, created_at) = row?;
            out.push(Message {
                id,
                conversation_id: conv.id.clone(),
                author,
                body: open(&dek, &ct, &msg_aad(id))?,
                created_at,
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
                "SELECT id, author, body_ct, created_at FROM messages
                 WHERE conversation_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3",
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
                "SELECT id, author, body_ct, created_at FROM messages
                 WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2",
                params![conversation_id, limit_i64(limit)],
            )
        })?;
        out.reverse();
        Ok(out)
    }

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
                        k.name_ct, m.id, m.author, m.body_ct, v.waiting_since
                 FROM conversations v
                 JOIN contacts k ON k.id = v.contact_id
                 LEFT JOIN messages m ON m.id = (
                     SELECT MAX(id) FROM messages WHERE conversation_id = v.id)
                 WHERE ?1 IS NULL OR v.status = ?1
                 ORDER BY v.updated_at DESC, v.rowid DESC LIMIT ?2",
            )?;
            type Row = (
                String,
                String,
                String,
                String,
                ConversationStatus,
                i64,
                Option<Vec<u8>>,
                Option<i64>,
                Option<Author>,
                Option<Vec<u8>>,
                Option<i64>,
            );
            let rows: Vec<Row> = stmt
                .query_map(params![status, limit_i64(limit)], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut keys = HashMap::new();
            let mut out = Vec::with_capacity(rows.len());
            for (
                id,
                contact_id,
                agent_id,
                channel,
                status,
                updated_at,
                name_ct,
                mid,
                author,
                body,
                waiting_since,
            ) in rows
            {
                let dek = self.dek_cached(c, &mut keys, &contact_id)?;
                let name = open_opt(dek, name_ct, &name_aad(&contact_id))?;
                let last = match (mid, body) {
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

    // ------------------------------------------------------------------ CRM

    /// Contacts, most recently seen first.
    pub fn list_contacts(&self, stage: Option<Stage>, limit: usize) -> Result<Vec<ContactSummary>> {
        self.run(|c| {
            let mut stmt = c.prepare(
                "SELECT id, channel, name_ct, stage, score, tags_ct, created_at, last_seen_at,
                        email_ct, phone_ct
                 FROM contacts WHERE ?1 IS NULL OR stage = ?1
                 ORDER BY last_seen_at DESC, rowid DESC LIMIT ?2",
            )?;
            type Row = (
                String,
                String,
                Option<Vec<u8>>,
                Stage,
                i64,
                Option<Vec<u8>>,
                i64,
                i64,
                Option<Vec<u8>>,
                Option<Vec<u8>>,
            );
            let rows: Vec<Row> = stmt
                .query_map(params![stage, limit_i64(limit)], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (
                id,
                channel,
                name_ct,
                stage,
                score,
                tags_ct,
                created_at,
                last_seen_at,
                email_ct,
                phone_ct,
            ) in rows
            {
                let dek = self.dek(c, &id)?;
                let name = open_opt(&dek, name_ct, &name_aad(&id))?;
                out.push(ContactSummary {
                    display_name: display_name(name.as_deref(), &channel, &id),
                    email: open_opt(&dek, email_ct, &email_aad(&id))?,
                    phone: open_opt(&dek, phone_ct, &phone_aad(&id))?,
                    tags: open_tags(&dek, tags_ct, &id)?,
                    id,
                    channel,
                    stage,
                    score,
                    created_at,
                    last_seen_at,
                });
            }
            Ok(out)
        })
    }

    /// One contact, decrypted.
    pub fn contact(&self, id: &str) -> Result<Option<ContactDetail>> {
        self.run(|c| {
            type Row = (
                String,
                Vec<u8>,
                Option<Vec<u8>>,
                Stage,
                i64,
                Option<Vec<u8>>,
                i64,
                i64,
                Option<Vec<u8>>,
                Option<Vec<u8>>,
            );
            let row: Option<Row> = c
                .query_row(
                    "SELECT channel, identity_ct, name_ct, stage, score, tags_ct, created_at,
                            last_seen_at, email_ct, phone_ct
                     FROM contacts WHERE id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                            r.get(9)?,
                        ))
                    },
                )
                .optional()?;
            let Some((
                channel,
                identity_ct,
                name_ct,
                stage,
                score,
                tags_ct,
                created_at,
                last_seen_at,
                email_ct,
                phone_ct,
            )) = row
            else {
                return Ok(None);
            };
            let dek = self.dek(c, id)?;
            let name = open_opt(&dek, name_ct, &name_aad(id))?;
            Ok(Some(ContactDetail {
                id: id.to_owned(),
                display_name: display_name(name.as_deref(), &channel, id),
                name,
                email: open_opt(&dek, email_ct, &email_aad(id))?,
                phone: open_opt(&dek, phone_ct, &phone_aad(id))?,
                identity: open(&dek, &identity_ct, &identity_aad(id))?,
                channel,
                stage,
                score,
                tags: open_tags(&dek, tags_ct, id)?,
                created_at,
                last_seen_at,
            }))
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
            type Row = (
                Option<Vec<u8>>,
                Stage,
                i64,
                Option<Vec<u8>>,
                Option<Vec<u8>>,
                Option<Vec<u8>>,
            );
            let (name_ct, stage, score, tags_ct, email_ct, phone_ct): Row = tx
                .query_row(
                    "SELECT name_ct, stage, score, tags_ct, email_ct, phone_ct
                     FROM contacts WHERE id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    },
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
            tx.commit()?;
            Ok(fid)
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

    fn read_followups(
        &self,
        c: &Connection,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<Followup>> {
        let mut stmt = c.prepare(sql)?;
        type Row = (
            String,
            String,
            FollowupKind,
            i64,
            Vec<u8>,
            FollowupStatus,
            Option<String>,
            i64,
            Option<i64>,
        );
        let rows: Vec<Row> = stmt
            .query_map(p, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut keys = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for (id, contact_id, kind, due_at, body_ct, status, created_by, created_at, done_at) in rows
        {
            let dek = self.dek_cached(c, &mut keys, &contact_id)?;
            out.push(Followup {
                text: open(dek, &body_ct, &followup_aad(&id))?,
                id,
                contact_id,
                kind,
                due_at,
                status,
                created_by,
                created_at,
                done_at,
            });
        }
        Ok(out)
    }

    /// Pending follow-ups due at or before `now`, earliest first.
    pub fn due_followups(&self, now: i64) -> Result<Vec<Followup>> {
        self.run(|c| {
            self.read_followups(
                c,
                "SELECT id, contact_id, kind, due_at, body_ct, status, created_by, created_at, done_at
                 FROM followups WHERE status = 'pending' AND due_at <= ?1 ORDER BY due_at ASC, id",
                [now],
            )
        })
    }

    /// A contact's follow-ups: pending ones first (earliest due first), then the rest.
    pub fn followups(&self, contact_id: &str, limit: usize) -> Result<Vec<Followup>> {
        self.run(|c| {
            self.read_followups(
                c,
                "SELECT id, contact_id, kind, due_at, body_ct, status, created_by, created_at, done_at
                 FROM followups WHERE contact_id = ?1
                 ORDER BY status != 'pending', due_at ASC LIMIT ?2",
                params![contact_id, limit_i64(limit)],
            )
        })
    }

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

    /// The contact's messages (all conversations), events and follow-ups merged, newest
    /// first, at most `limit`.
    pub fn timeline(&self, id: &str, limit: usize) -> Result<Vec<TimelineEntry>> {
        let lim = limit_i64(limit);
        let mut out = self.run(|c| {
            let dek = self.dek(c, id)?;
            let mut out = Vec::new();
            let mut stmt = c.prepare(
                "SELECT id, conversation_id, author, body_ct, created_at FROM messages
                 WHERE contact_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![id, lim], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Author>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            for row in rows {
                let (mid, conv, author, ct, at) = row?;
                out.push(TimelineEntry {
                    at,
                    kind: TimelineKind::Message(author),
                    text: open(&dek, &ct, &msg_aad(mid))?,
                    actor: None,
                    conversation_id: Some(conv),
                    seq: mid,
                });
            }
            let mut stmt = c.prepare(
                "SELECT id, kind, detail_ct, actor, created_at FROM contact_events
                 WHERE contact_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![id, lim], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            for row in rows {
                let (eid, kind, ct, actor, at) = row?;
                let text = open_opt(&dek, ct, &event_aad(eid))?.unwrap_or_default();
                out.push(TimelineEntry {
                    at,
                    kind: TimelineKind::Event(kind),
                    text,
                    actor,
                    conversation_id: None,
                    seq: eid,
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
