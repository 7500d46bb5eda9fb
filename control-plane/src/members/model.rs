//! Member roles and invitation rules, pure: what each role may do is in the table in
//! [`crate::members`]; here are the role enum, its stored strings and the invitation limits.

use crate::error::{AppError, AppResult, Code};
use serde::Serialize;

/// The owner: everything, including members, billing and deletion.
pub const ROLE_OWNER: &str = Role::Owner.as_str();
/// Admins manage settings, agents, secrets, the knowledge base and exports.
pub const ROLE_ADMIN: &str = Role::Admin.as_str();
/// Members answer the inbox.
pub const ROLE_MEMBER: &str = Role::Member.as_str();

/// How long an invitation link works.
pub const INVITATION_TTL: i64 = 7 * 24 * 3600;
/// Invitations a workspace may send per hour (then 429 with `Retry-After`).
pub const INVITATIONS_PER_HOUR: i64 = 20;

/// A member's role: one enum for both programs (`outpost_protocol::Role`).
pub use outpost_protocol::Role;

/// A stored role; an unknown value counts as the least privileged.
pub fn stored_role(stored: &str) -> Role {
    Role::parse(stored).unwrap_or(Role::Member)
}

/// A role an owner may give by invitation or role change (ownership moves only by
/// transfer).
pub fn grantable(s: &str) -> AppResult<Role> {
    match Role::parse(s.trim()) {
        Some(r @ (Role::Admin | Role::Member)) => Ok(r),
        _ => Err(AppError::invalid(
            Code::InvalidRole,
            "Choose admin or member. To make someone the owner, transfer ownership.",
        )),
    }
}

/// Why an invitation link no longer works, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// No such token (mistyped, or from another installation).
    Unknown,
    /// Accepted already.
    Used,
    /// Withdrawn by an owner, or replaced by a newer invitation.
    Revoked,
    /// Older than seven days.
    Expired,
    /// The workspace was cancelled or deleted.
    WorkspaceGone,
}

impl Unusable {
    /// What the invitee reads.
    pub fn explain(self) -> &'static str {
        match self {
            Unusable::Unknown => "This invitation link is not valid. Check that you copied all of it.",
            Unusable::Used => "This invitation has already been accepted. Sign in to open the workspace.",
            Unusable::Revoked => "This invitation was withdrawn or replaced by a newer one. Ask the workspace owner to invite you again.",
            Unusable::Expired => "This invitation has expired (links work for 7 days). Ask the workspace owner to invite you again.",
            Unusable::WorkspaceGone => "This workspace has been cancelled or deleted.",
        }
    }
}

/// An invitation as its link shows it.
#[derive(Debug, Clone)]
pub struct InvitationView {
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub workspace_name: String,
    /// Invitee.
    pub email: String,
    /// Role on acceptance.
    pub role: String,
}

/// An audit event as the owners' log shows it (the actor as an email when it is a user).
#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    /// Chain position.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Email of the acting user, or `system`, `billing`, `node:<id>`…
    pub actor: String,
    /// Action name.
    pub action: String,
    /// Object type and id.
    pub object: String,
    /// Caller IP.
    pub ip: String,
    /// Detail code.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        assert_eq!(stored_role("owner"), Role::Owner);
        assert_eq!(stored_role("admin"), Role::Admin);
        assert_eq!(stored_role("member"), Role::Member);
        // Anything unexpected gets the least privilege.
        assert_eq!(stored_role("superuser"), Role::Member);
        assert!(grantable("owner").is_err());
        assert!(grantable("root").is_err());
        assert_eq!(grantable(" admin ").ok(), Some(Role::Admin));
    }
}
