-- Agents: configuration metadata the CP owns and pushes to the node with apply_config
-- (DESIGN §1). Never content, never a secret: provider keys go to the node sealed.
CREATE TABLE agents (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    greeting TEXT NOT NULL,
    instructions TEXT NOT NULL,
    language TEXT NOT NULL,
    fallback_message TEXT NOT NULL,
    -- seven 0/1 characters, Monday first
    hours_days TEXT NOT NULL,
    open_minute INTEGER NOT NULL,
    close_minute INTEGER NOT NULL,
    utc_offset_minutes INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    base_url TEXT NOT NULL,
    -- one origin per line
    allowed_origins TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX agents_workspace ON agents (workspace_id);
-- Increases with every configuration change; the node ignores older documents.
ALTER TABLE workspaces ADD COLUMN config_revision BIGINT NOT NULL DEFAULT 0;
