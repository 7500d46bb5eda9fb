//! "What the control plane knows about me/us" (DESIGN §1; seeds: the right of access):
//! every field the CP stores about the signed-in user and the workspaces they belong to,
//! as a page and as a JSON download. It is everything, because the CP holds only
//! metadata: conversation content, contacts and documents are on the nodes.
//!
//! The same page closes the account ([`close_account`]): the user row, sessions, API
//! tokens, sign-in links and memberships are deleted at once; the audit log keeps only
//! the user id of the closure.
//!
//! Reads every table about the user (so [`store`] names most of them, and reads agents,
//! secrets, members, billing and sign-in identities through their domains); deletes the
//! account's rows on closure. Called only from its pages (and retention's docs).
//! [`model`]: limits; [`store`]: the reads and the deletion; [`service`]: closing an
//! account; [`web`]: the page, the download and the closure form.

pub mod model;
pub mod service;
pub mod store;
pub mod web;

pub use service::{close_account, collect};
pub use store::sole_owned_open_workspaces;
