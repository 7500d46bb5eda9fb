//! Closing an account: refused while the user is the only owner of an open workspace,
//! then every row about them deleted at once and the closure audited by user id only.

use super::store;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::DbConn;

pub use store::collect;

/// Closes an account: deletes its sessions, API tokens, sign-in links, memberships and
/// the user row in one transaction (so "closed accounts deleted within 30 days" holds at
/// once). Refused while the user is the only owner of an open workspace. The audit event
/// carries the user id only: no email, no IP.
pub fn close_account(conn: &mut DbConn, user_id: &str) -> AppResult<()> {
    let blocking = store::sole_owned_open_workspaces(conn, user_id)?;
    if !blocking.is_empty() {
        return Err(AppError::Conflict(
            Code::SoleOwner,
            format!(
                "You are the only owner of {}. Delete {} first (“Delete now” also ends an export window), then close your account.",
                blocking.join(", "),
                if blocking.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    store::delete_account(conn, user_id)?;
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "account.closed",
            object_type: "user",
            object_id: user_id,
            detail: "",
            ..Default::default()
        },
    )?;
    Ok(())
}
