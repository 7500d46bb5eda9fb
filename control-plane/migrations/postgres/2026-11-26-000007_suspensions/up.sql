-- Why a workspace is suspended. One row per cause (an operator's decision, an unpaid
-- invoice); the workspace's node is suspended while any row is active (lifted_at NULL) and
-- resumed when the last one is lifted. `reason` is what the operator typed for the owners
-- to read (metadata, never conversation content); for `payment` it is empty.
CREATE TABLE workspace_suspensions (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    lifted_at BIGINT,
    lifted_by TEXT
);
CREATE INDEX workspace_suspensions_ws ON workspace_suspensions (workspace_id, lifted_at);
