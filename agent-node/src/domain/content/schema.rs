//! The content tables: the migrations this module owns, in the order
//! `src/migrations.rs` applies them.

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

/// Migration adding a contact's email address and phone number, entered by the team.
/// Both are sealed under the contact's data key like the name (their own associated
/// data), so erasing the contact leaves them unreadable in every copy.
pub const CONTACT_DETAILS_SCHEMA: &str = r#"
ALTER TABLE contacts ADD COLUMN email_ct BLOB;
ALTER TABLE contacts ADD COLUMN phone_ct BLOB;
"#;

/// Migration recording the follow-up messages held because their channel could not
/// deliver them when due (WhatsApp past its 24-hour window), so the conversation says
/// so once, not every round.
pub const FOLLOWUP_HOLDS_SCHEMA: &str = r#"
CREATE TABLE followup_holds (
    followup_id TEXT PRIMARY KEY REFERENCES followups (id) ON DELETE CASCADE,
    held_at INTEGER NOT NULL
);
"#;

/// Migration adding how a follow-up message is sent when its channel takes no free-form
/// text (a WhatsApp template past the 24-hour window): the channel's own JSON, sealed
/// under the contact's data key (its variables may name the customer), gone with the
/// follow-up.
pub const FOLLOWUP_TEMPLATES_SCHEMA: &str = r#"
CREATE TABLE followup_templates (
    followup_id TEXT PRIMARY KEY REFERENCES followups (id) ON DELETE CASCADE,
    template_ct BLOB NOT NULL
);
"#;
