//! Agents: the configuration a workspace's AI agents run with (name, greeting, persona,
//! business hours, language, fallback message, model choice, widget origins). It is
//! metadata the CP owns (DESIGN §1) and pushes to the node as one `apply_config`
//! document; conversations and provider keys never come here.
//!
//! - [`model`]: [`Agent`], [`AgentInput`] and their validation (pure);
//! - [`store`]: the `agents` table, `workspaces.config_revision`, the `apply_config`
//!   commands;
//! - [`service`]: create, update, delete, and the configuration push (`fleet` queues it
//!   on enrollment; `workspaces` and `mydata` list agents);
//! - [`web`]: the pages and `/api/v1/workspaces/{id}/agents…`.

pub mod model;
pub mod service;
pub mod store;
pub mod web;

pub use model::{
    canonical_time_zone, embed_snippet, normalize_origin, time_zone_names, Agent, AgentInput,
    CHANNELS, MAX_AGENTS,
};
pub use service::{config_document, create, delete, list, push_config, queue_config, update};
