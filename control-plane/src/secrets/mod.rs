//! Secrets that never rest in the control plane (DESIGN §3). A member submits an API key
//! or channel credential; the CP validates it with the provider while it is in memory,
//! seals it to the workspace node's age recipient, queues `deliver_secret`, and keeps
//! only a keyed fingerprint, the last four characters and the validation and delivery
//! times. The sealed command waits at most an hour for the node; its payload is deleted
//! when the node acknowledges it.
//!
//! The value is an [`outpost_crypto::Secret`] from the moment it is parsed: it prints as
//! `***`, and no error, log line or page ever includes it.
//!
//! - [`model`]: [`SecretKind`], [`SecretStatus`], the value rules;
//! - [`validate`]: the provider checks (the domain's only HTTP calls);
//! - [`store`]: the `workspace_secrets` table (and the `commands`/`nodes` rows delivery
//!   reads);
//! - [`service`]: add/rotate, remove, the node's ack (called by `fleet`), expiry (the
//!   sweeper in `app/workers.rs`);
//! - [`web`]: the secrets page and `/api/v1/workspaces/{id}/secrets`.

pub mod model;
pub mod service;
pub mod store;
pub mod validate;
pub mod web;

pub use model::{label, SecretKind, SecretStatus, DELIVERY_TTL_SECS};
pub use service::{expire_undelivered, fingerprint, on_ack, remove, seal_and_queue};
pub use store::SecretRow;
pub use validate::validate;
