//! Provisioning: the node state machine (DESIGN §4), the durable job queue that drives
//! it, and the providers that create and destroy servers.
//!
//! ```text
//! requested → provisioning → booting → enrolling → healthy ⇄ degraded ⇄ offline
//!                                              suspended, deprovisioning → destroyed
//!                                              failed(step, error_code)
//! ```
//!
//! Tables: `nodes`, `node_events`, `commands` (queued here, delivered by the gateway),
//! `jobs`, `bootstrap_tokens`. Files: [`model`] ([`NodeState`], retry plans, failure
//! codes in words), [`store`] (the queries), [`service`] (transitions, failures, retries,
//! commands, deprovisioning, the sweep), [`jobs`] (the worker), [`providers`].
//! Called by workspaces (create, cancel, delete), the gateway (enrollment, reports, acks),
//! suspension, secrets, agents and members (commands), the operator console (retry,
//! deprovision) and `app/workers.rs` (the worker and the sweep).

pub mod jobs;
pub mod model;
pub mod providers;
pub mod service;
pub mod store;

pub use model::{explain_error, retry_plan, state, NodeState, Retried};
pub use providers::{local, LocalProcess, Ovh, Provisioner};
pub use service::{
    begin_deprovision, event, fail, mark_destroyed, move_node, queue_command,
    queue_command_with_id, retry_failed, sweep, transition, workspace_info, SweepContext,
};
