-- Control-plane schema. Metadata only: no table here may hold message content, a contact
-- identifier or a secret value (docs/PRIVACY.md). Timestamps are unix seconds (BIGINT),
-- *_ms columns are unix milliseconds; ids are UUID strings. The same SQL runs on SQLite and
-- PostgreSQL so both backends share one diesel schema.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    is_operator BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE magic_links (
    token_hash TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX magic_links_email ON magic_links (email, created_at);
CREATE INDEX magic_links_ip ON magic_links (ip, created_at);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY NOT NULL,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
-- A slug is unique among live workspaces; a deleted one keeps its page (and receipt).
CREATE UNIQUE INDEX workspaces_live_slug ON workspaces (slug) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    state TEXT NOT NULL,
    failed_step TEXT,
    error_code TEXT,
    provider TEXT NOT NULL,
    region TEXT NOT NULL,
    provider_ref TEXT,
    public_url TEXT,
    version TEXT,
    age_recipient TEXT,
    enrolled_at BIGINT,
    last_report_at BIGINT,
    last_seq BIGINT,
    uptime_s BIGINT,
    disk_used_bytes BIGINT,
    queue_depth BIGINT,
    checks_json TEXT,
    state_changed_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    destroyed_at BIGINT,
    receipt_body TEXT,
    receipt_signature TEXT
);
CREATE INDEX nodes_workspace ON nodes (workspace_id);

CREATE TABLE node_certs (
    serial TEXT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes (id),
    cert_pem TEXT NOT NULL,
    not_after BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX node_certs_node ON node_certs (node_id);

CREATE TABLE bootstrap_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE node_reports (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    seq BIGINT NOT NULL,
    produced_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, seq)
);

CREATE TABLE usage_counts (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    channel TEXT NOT NULL,
    hour BIGINT NOT NULL,
    inbound BIGINT NOT NULL,
    outbound BIGINT NOT NULL,
    conversations BIGINT NOT NULL,
    PRIMARY KEY (node_id, channel, hour)
);

CREATE TABLE node_events (
    id TEXT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes (id),
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX node_events_node ON node_events (node_id, at_ms);

CREATE TABLE commands (
    id TEXT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes (id),
    kind TEXT NOT NULL,
    payload TEXT,
    created_at_ms BIGINT NOT NULL,
    expires_at BIGINT,
    delivered_at BIGINT,
    acked_at BIGINT,
    ack_ok BOOLEAN,
    error_code TEXT
);
CREATE INDEX commands_pending ON commands (node_id, acked_at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    node_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    next_run_at BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, next_run_at);

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    workspace_id TEXT,
    ip TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
