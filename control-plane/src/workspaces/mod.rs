//! Workspaces: a customer's workspace and its one node as members see it. Creating one
//! (with its owner and its node), the detail page and JSON, cancelling with a
//! post-termination export window, deleting now, reactivating, the sweeper step that ends
//! export windows, and the handoff to the node console. Deleting for good (now, at the
//! end of the window, or with nothing to export) runs [`service::Reactions::gone`] in the
//! same transaction, which `app/reactions.rs` wires to forget the customer's text held by
//! the domains above (agents, invitations, secrets, suspension reasons, command payloads).
//!
//! Tables: `workspaces` (and, read for the page, the node's `nodes`, `node_events`,
//! `usage_counts`, `node_exports`, `retention_sweeps`). Called by nearly every domain for
//! [`load_for_member`] (non-members get 404, so the existence of other workspaces does not
//! leak) and [`Workspace`]; the page formatting helpers ([`fmt_time`] …) are used by many
//! templates.
//!
//! [`model`]: names ([`model::workspace_name`], the one rule for names), slugs,
//! confirmations, console scopes, formatting; [`store`]: the queries; [`service`]: the use
//! cases; [`web`]: the pages and the API.

pub mod model;
pub mod service;
pub mod store;
pub mod web;

pub use crate::members::model::ROLE_OWNER;
pub use model::{
    check_address_confirmation, fmt_bytes, fmt_checks, fmt_day, fmt_duration, fmt_ms, fmt_queue,
    fmt_time, fmt_uptime, slugify, step_class, validate_slug, CANCEL_CONFIRMED, STEPS,
};
pub use service::{cancel, console_link, create, delete, end_export_windows, reactivate};
pub use store::{
    list_for, load_for_member, AiUsageRow, BookingUsageRow, CallUsageRow, EventRow, ExportRow,
    NodeView, SweepRow, UsageRow, Workspace,
};
pub use web::{detail, WorkspaceDetail};
