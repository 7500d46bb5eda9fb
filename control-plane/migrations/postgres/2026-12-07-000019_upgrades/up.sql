-- Fleet upgrades (issue 15): a release (URL, SHA-256, the release key's signature, the
-- version it reports) rolled out to one canary node, then the rest in waves of
-- `batch_size`. `state` is `running`, `halted` (with `halted_reason` in words) or
-- `completed`; at most one runs. Kept in the database so a restarted control plane (or
-- another replica) carries on where it was.
CREATE TABLE upgrades (
    id TEXT PRIMARY KEY NOT NULL,
    version TEXT NOT NULL,
    url TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    state TEXT NOT NULL,
    halted_reason TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX upgrades_one_running ON upgrades (state) WHERE state = 'running';
-- Each node of an upgrade: its wave (0 = the canary), `pending` → `sent` (the `upgrade`
-- command queued, `command_id`) → `done` (reports the version, healthy) or `failed`.
CREATE TABLE upgrade_nodes (
    upgrade_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    wave INTEGER NOT NULL,
    state TEXT NOT NULL,
    command_id TEXT,
    sent_at BIGINT,
    done_at BIGINT,
    PRIMARY KEY (upgrade_id, node_id)
);
