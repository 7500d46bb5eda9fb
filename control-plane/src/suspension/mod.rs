//! Suspension of a workspace: its node stops answering on every channel but keeps its
//! data, and its console still opens so the owners can read, export and fix what is wrong.
//!
//! A workspace can be suspended for several causes at once (an operator's decision, an
//! unpaid invoice). Each cause is a row in `workspace_suspensions`; the node gets
//! `suspend` when the first cause starts and `resume` when the last one is lifted, so
//! paying an invoice does not undo an operator's suspension. Cancelled workspaces are
//! suspended by `workspaces::cancel` and never resumed from here.
//!
//! Files: [`model`] (causes, what owners read, the operator's reason), [`store`]
//! (`workspace_suspensions`), [`service`] (suspend, resume, late nodes, the node's acks),
//! [`web`] (the [`Context`] built from the app state). Called by the operator console,
//! billing (payment), workspaces and members (active causes, enrolled nodes), and the
//! gateway's wiring (enrollment, acks). Calls provisioning (commands, transitions), audit,
//! notify.

pub mod model;
pub mod service;
pub mod store;
pub mod web;

pub use model::{clean_reason, Suspension, MAX_REASON, OPERATOR, PAYMENT};
pub use service::{on_resume_ack, on_suspend_ack, sync_node, Context};
pub use store::{active, enrolled_nodes};
