//! Workspace members and their roles: owner, admin, member.
//!
//! | action                                   | owner | admin | member |
//! |------------------------------------------|-------|-------|--------|
//! | see the workspace, its members, console  |  yes  |  yes  |  yes   |
//! | node console scopes                      | all   | settings, knowledge base, exports, inbox | inbox |
//! | agents, secrets                          |  yes  |  yes  |   no   |
//! | invite, change roles, remove, transfer   |  yes  |   no  |   no   |
//! | billing, audit log, cancel, delete       |  yes  |   no  |   no   |
//!
//! A workspace has exactly one owner; ownership moves only by [`transfer`], which makes
//! the old owner an admin. Invitations are sent by email: the link carries a 256-bit
//! random token stored only as its SHA-256, works once and expires after seven days.
//! Following it proves the invitee controls that address, exactly like a magic link, so
//! accepting signs the invitee in as that address and adds the membership.
//!
//! Removing a member or lowering a role also ends that person's open node-console
//! sessions (`end_console_sessions` command), so access shrinks at once, not when a
//! session expires.
//!
//! Tables: `memberships`, `invitations`. [`require_role`] is the role check of the access
//! guard (`http/guard.rs`) and of every workspace page; [`Role`] is used by the route table.
//! [`model`]: roles, invitation limits and views; [`store`]: the queries; [`service`]:
//! the use cases; [`web`]: the members, invitation and audit-log pages and the API.

pub mod model;
pub mod service;
pub mod store;
pub mod web;

pub use model::{
    AuditView, InvitationView, Role, Unusable, INVITATIONS_PER_HOUR, INVITATION_TTL, ROLE_ADMIN,
    ROLE_MEMBER, ROLE_OWNER,
};
pub use service::{
    accept, audit_log, change_role, end_console_sessions_everywhere, invite, lookup, remove,
    require_role, revoke, transfer,
};
pub use store::{list, pending, InvitationRow, MemberRow};
