//! Conversation content on the node: contacts (CRM), conversations, messages, the
//! per-contact timeline and follow-ups, and the hourly usage counts that are the only
//! thing about conversations the CP ever sees.
//!
//! Encryption at rest (DESIGN §2): every contact has its own 256-bit data key, stored
//! wrapped (AES-256-GCM) under a key-encryption key derived from the master key. Message
//! bodies, the contact's channel identity, name, tags, notes and follow-up texts are
//! sealed under that data key with the row's id as associated data. Finding a contact by
//! its channel identity uses a keyed hash (`identity_hash`), never the plaintext.
//! Erasing a contact deletes its key and rows in one transaction.

/// Migration adding the content tables (see `store::MIGRATIONS`).
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
