-- Data lifecycle (issue 6). Metadata only, as DESIGN §1 allows: an export's id, scope,
-- state, size and times (never its file or link), and how many rows a node's retention
-- sweep deleted (never which).

-- Exports a node reported. The file and its signed link stay on the node.
CREATE TABLE node_exports (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    export_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    -- workspace | contact
    scope TEXT NOT NULL,
    -- running | ready | failed | expired
    state TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, export_id)
);
CREATE INDEX node_exports_workspace ON node_exports (workspace_id, created_at);

-- Retention sweeps a node reported: counts only.
CREATE TABLE retention_sweeps (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    at BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    messages_deleted BIGINT NOT NULL,
    contacts_erased BIGINT NOT NULL,
    exports_deleted BIGINT NOT NULL,
    PRIMARY KEY (node_id, at)
);
CREATE INDEX retention_sweeps_workspace ON retention_sweeps (workspace_id, at);

-- Post-termination export window: a cancelled workspace keeps its (suspended) node until
-- this time, then the sweeper deprovisions it. NULL for live workspaces.
ALTER TABLE workspaces ADD COLUMN deprovision_after BIGINT;

-- Where the audit chain starts once events older than the retention period are pruned:
-- the seq and hash of the last pruned event (one row, id = 1). `audit verify` starts
-- from it instead of from the empty hash.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pruned_at BIGINT NOT NULL
);

-- When the CP's own retention schedule last ran (one row, id = 1). A replica claims the
-- daily run with a conditional update, so several replicas run it once a day between them.
CREATE TABLE retention_runs (
    id INTEGER PRIMARY KEY NOT NULL,
    last_run_at BIGINT NOT NULL
);
INSERT INTO retention_runs (id, last_run_at) VALUES (1, 0);
