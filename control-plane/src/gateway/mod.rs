//! The node gateway (was `fleet`): what nodes call over mTLS on their own listener:
//! enrollment with a bootstrap token, reports (health, usage counts, export and sweep
//! metadata), the command long-poll and acknowledgements, certificate renewal. Every
//! `/v1/node/*` request carries a client certificate checked against the database on the
//! connection's first request, then trusted while no revocation happened and for at most
//! [`model::VERDICT_TTL`] ([`NodeIdentity`]).
//!
//! Tables: `node_certs`, `bootstrap_tokens`, `node_reports`, `usage_counts`, `ai_counts`,
//! `booking_counts`, `node_exports`, `retention_sweeps`, the report fields of `nodes`, and `commands`
//! (delivered and acknowledged here; queued by `provisioning::queue_command`).
//! Files: [`model`] (identity, wake-ups, report validation, receipts, the cached
//! certificate verdict), [`store`], [`ingest`] (group commit of reports), [`steady`] (a
//! batch's steady reports in two statements on PostgreSQL), [`counts`] (a batch's counts
//! folded to one row each),
//! [`service`] (use cases; other domains' reactions come in as [`service::Reactions`]),
//! [`web`] (handlers, the client-certificate extractor, the wiring of reactions).
//! Calls provisioning (transitions, events, jobs) and audit; `app/` mounts [`web`] on the
//! gateway listener; other domains wake its long-polls through `infra::wake::CommandNotify`.

pub mod counts;
pub mod ingest;
pub mod model;
pub mod service;
pub mod steady;
pub mod store;
pub mod web;

pub use model::{
    valid_export, valid_sweep, verify_receipt, NodeIdentity, CSR_LIMIT_KEY,
    WAITING_NOTICE_QUIET_SECS,
};
pub use service::authorize_cert;
pub use web::{capture_peer_cert, listener, GATEWAY_BACKLOG};
