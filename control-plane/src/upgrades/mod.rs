//! Fleet upgrades of the nodes' `agent-node` binary (issue 15): an operator starts one
//! with `control-plane upgrade start` (a release: URL, SHA-256, the release key's
//! Ed25519 signature, the version it reports); the fleet sweeper sends the `upgrade`
//! command to one canary node, waits for it to report the new version healthy, then
//! does the other nodes in waves of the batch size, and halts — in words, in
//! `upgrades.halted_reason` — when a node refuses the release, runs it unhealthy, or does
//! not come back within `--upgrade-timeout-secs`. The state is in the database, so a
//! restarted control plane carries on.
//!
//! Files: [`model`] (waves, the verdict on a node in flight, refusals in words),
//! [`store`] (`upgrades`, `upgrade_nodes`), [`service`] (start, advance, status). The
//! node's side is `agent_node::uplink::upgrade`.

pub mod model;
pub mod service;
pub mod store;
