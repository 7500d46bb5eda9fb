//! The operator console: Outpost staff (`users.is_operator`, set with
//! `control-plane operator add`) see every workspace and its node, and can suspend and
//! resume a workspace with a reason, retry a failed provisioning step and force a
//! deprovisioning.
//!
//! An operator is not a member of any workspace. These pages show what the control plane
//! holds and nothing more: workspace and node metadata, node timelines, suspensions, jobs.
//! They sign no capability token, so an operator cannot open a node console, and they read
//! no secret fingerprint, agent configuration or usage count. What an operator may do to a
//! workspace is exactly the four actions of [`service`], each audited with the operator's
//! user id and IP.
//!
//! Files: [`model`] (search, failure text, live nodes), [`store`] (the read-only views of
//! workspaces, nodes, jobs and suspensions; `users.is_operator` for the CLI), [`service`]
//! (the four actions), [`web`] (pages and forms). Called by `app/routes.rs` and
//! `cli/operator.rs`; calls suspension, provisioning, workspaces (its row type), audit,
//! notify.

pub mod model;
pub mod service;
pub mod store;
pub mod web;

pub use model::PAGE_SIZE;
pub use store::{detail, list, Detail, JobRow, OperatorNode, Row, SuspensionRow};
