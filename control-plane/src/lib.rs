//! Outpost control plane: accounts, workspaces, provisioning of one node per workspace,
//! the node gateway (mTLS) and fleet health. It stores metadata only: see
//! docs/ARCHITECTURE.md and docs/PRIVACY.md for the invariants this crate keeps.
//!
//! Map: [`app`] wires everything and starts both listeners; [`accounts`] is sign-in,
//! sessions, CSRF and API tokens; [`oauth`] sign-in with Google, GitHub and Apple;
//! [`workspaces`] the UI and JSON API for workspaces; [`members`] roles, invitations and
//! the owners' audit log;
//! [`gateway`] the node gateway (enroll, reports, commands, renew); [`provisioning`] the
//! node state machine, the durable job queue and the providers; [`audit`] the
//! hash-chained audit log; [`retention`] the CP's own retention schedule; [`mail`] outgoing
//! email; [`suspension`] suspending and resuming a workspace for its causes; [`operator`]
//! the staff console (all workspaces, metadata only); [`web`]
//! templates and static assets; [`billing`] Stripe subscriptions (off without keys).

pub mod accounts;
pub mod agents;
pub mod app;
pub mod audit;
pub mod billing;
pub mod cli;
pub mod config;
pub mod error;
pub mod gateway;
pub mod http;
pub mod infra;
pub mod members;
pub mod mydata;
pub mod notify;
pub mod operator;
pub mod provisioning;
pub mod retention;
pub mod secrets;
pub mod suspension;
pub mod workspaces;

pub use accounts::oauth;
pub use app::{serve, AppState};
pub use config::{Config, ServeArgs};
