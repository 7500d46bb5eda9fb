//! Outpost control plane: accounts, workspaces, provisioning of one node per workspace,
//! the node gateway (mTLS) and fleet health. It stores metadata only: see
//! docs/ARCHITECTURE.md and docs/PRIVACY.md for the invariants this crate keeps.
//!
//! Map (docs/ARCHITECTURE.md "Layers"): [`app`] is the only module that knows every domain
//! (state, both listeners, the route table, the workers); [`http`] the extractors, the
//! access guard and rendering; [`cli`] the commands beside `serve`. Each domain is a
//! folder of `model` (types and rules), `store` (its tables), `service` (use cases) and
//! `web` (handlers): [`accounts`] (with [`oauth`]), [`workspaces`], [`members`],
//! [`agents`], [`secrets`], [`billing`], [`suspension`], [`gateway`] (what nodes call),
//! [`provisioning`], [`operator`], [`audit`], [`retention`], [`mydata`]; [`notify`] says
//! who is told what by email. Beneath them all: [`infra`] (database, schema, migrations,
//! mail transport) and [`error`].

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
pub mod upgrades;
pub mod workspaces;

pub use accounts::oauth;
pub use app::{serve, AppState};
pub use config::{Config, ServeArgs};
