-- What the CP keeps about a secret (DESIGN §3): never the value, only a keyed
-- fingerprint, the last 4 characters, and when it was validated and delivered.
CREATE TABLE workspace_secrets (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    last4 TEXT NOT NULL,
    validated_at BIGINT,
    delivered_at BIGINT,
    -- pending | delivered | failed | expired | removing
    status TEXT NOT NULL,
    error_code TEXT,
    command_id TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, kind)
);
