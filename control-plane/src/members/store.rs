//! The members' tables: `memberships` and `invitations` (with `users` for addresses, and
//! `audit_events` read for the owners' log).

use super::model::Role;
use crate::audit::AuditRow;
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{audit_events, invitations, memberships, users, workspaces};
use crate::members::model::stored_role;
use diesel::prelude::*;
use outpost_crypto::token_hash;
use serde::Serialize;

/// A member as listed.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = Member)]
pub struct MemberRow {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: String,
    /// Joined, unix seconds.
    pub joined_at: i64,
}

/// A pending invitation as listed (never the token).
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = Invitation)]
pub struct InvitationRow {
    /// Invitation id.
    pub id: String,
    /// Invitee.
    pub email: String,
    /// Role on acceptance.
    pub role: String,
    /// Sent, unix seconds.
    pub created_at: i64,
    /// Expires, unix seconds.
    pub expires_at: i64,
}

/// Members, owner first.
pub fn list(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<MemberRow>> {
    let mut rows: Vec<MemberRow> = memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(ws_id))
        .select((
            users::id,
            users::email,
            memberships::role,
            memberships::created_at,
        ))
        .load(conn)?;
    rows.sort_by(|a, b| {
        stored_role(&b.role)
            .cmp(&stored_role(&a.role))
            .then(a.email.cmp(&b.email))
    });
    Ok(rows)
}

/// Invitations not yet accepted, withdrawn or expired.
pub fn pending(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<InvitationRow>> {
    Ok(invitations::table
        .filter(invitations::workspace_id.eq(ws_id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(db::now()))
        .order(invitations::created_at.desc())
        .select((
            invitations::id,
            invitations::email,
            invitations::role,
            invitations::created_at,
            invitations::expires_at,
        ))
        .load(conn)?)
}

/// Whether `email` is already a member of the workspace.
pub fn has_member_with_email(conn: &mut DbConn, ws_id: &str, email: &str) -> AppResult<bool> {
    let n: i64 = memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(users::email.eq(email))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Invitations the workspace sent after `since`: their number and the oldest one's time.
pub fn invitations_sent_since(
    conn: &mut DbConn,
    ws_id: &str,
    since: i64,
) -> AppResult<(i64, Option<i64>)> {
    let sent: i64 = invitations::table
        .filter(invitations::workspace_id.eq(ws_id))
        .filter(invitations::created_at.gt(since))
        .count()
        .get_result(conn)?;
    if sent == 0 {
        return Ok((0, None));
    }
    let oldest: Option<i64> = invitations::table
        .filter(invitations::workspace_id.eq(ws_id))
        .filter(invitations::created_at.gt(since))
        .select(diesel::dsl::min(invitations::created_at))
        .first::<Option<i64>>(conn)?;
    Ok((sent, oldest))
}

/// A new invitation to store.
pub struct NewInvitation<'a> {
    /// Invitation id.
    pub id: &'a str,
    /// Workspace.
    pub workspace_id: &'a str,
    /// Invitee.
    pub email: &'a str,
    /// Role on acceptance.
    pub role: Role,
    /// The link's token (stored only as its hash).
    pub token: &'a str,
    /// Inviting user.
    pub invited_by: &'a str,
    /// Sent, unix seconds.
    pub created_at: i64,
    /// Expires, unix seconds.
    pub expires_at: i64,
}

/// Stores an invitation, withdrawing any pending one to the same address, in one
/// transaction.
pub fn replace_invitation(conn: &mut DbConn, inv: &NewInvitation<'_>) -> AppResult<()> {
    db::transaction::<_, AppError, _>(conn, |conn| {
        diesel::update(
            invitations::table
                .filter(invitations::workspace_id.eq(inv.workspace_id))
                .filter(invitations::email.eq(inv.email))
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::revoked_at.is_null()),
        )
        .set(invitations::revoked_at.eq(inv.created_at))
        .execute(conn)?;
        diesel::insert_into(invitations::table)
            .values((
                invitations::id.eq(inv.id),
                invitations::workspace_id.eq(inv.workspace_id),
                invitations::email.eq(inv.email),
                invitations::role.eq(inv.role.as_str()),
                invitations::token_hash.eq(token_hash(inv.token)),
                invitations::invited_by.eq(inv.invited_by),
                invitations::created_at.eq(inv.created_at),
                invitations::expires_at.eq(inv.expires_at),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Withdraws a pending invitation of the workspace; `false` if there was none.
pub fn revoke_invitation(conn: &mut DbConn, ws_id: &str, invitation_id: &str) -> AppResult<bool> {
    let n = diesel::update(
        invitations::table
            .filter(invitations::id.eq(invitation_id))
            .filter(invitations::workspace_id.eq(ws_id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null()),
    )
    .set(invitations::revoked_at.eq(db::now()))
    .execute(conn)?;
    Ok(n > 0)
}

/// An invitation found by its token, with its workspace.
pub struct InvitationRecord {
    /// Invitation id.
    pub id: String,
    /// Invitee.
    pub email: String,
    /// Role on acceptance.
    pub role: String,
    /// Expires, unix seconds.
    pub expires_at: i64,
    /// Accepted, unix seconds.
    pub accepted_at: Option<i64>,
    /// Withdrawn, unix seconds.
    pub revoked_at: Option<i64>,
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub workspace_name: String,
    /// Workspace deleted, unix seconds.
    pub workspace_deleted_at: Option<i64>,
}

/// The invitation whose link carries `token`.
pub fn invitation_by_token(conn: &mut DbConn, token: &str) -> AppResult<Option<InvitationRecord>> {
    type Row = (
        String,
        String,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        String,
        String,
        Option<i64>,
    );
    let row: Option<Row> = invitations::table
        .inner_join(workspaces::table)
        .filter(invitations::token_hash.eq(token_hash(token)))
        .select((
            invitations::id,
            invitations::email,
            invitations::role,
            invitations::expires_at,
            invitations::accepted_at,
            invitations::revoked_at,
            invitations::workspace_id,
            workspaces::name,
            workspaces::deleted_at,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(id, email, role, expires_at, accepted_at, revoked_at, workspace_id, name, deleted)| {
            InvitationRecord {
                id,
                email,
                role,
                expires_at,
                accepted_at,
                revoked_at,
                workspace_id,
                workspace_name: name,
                workspace_deleted_at: deleted,
            }
        },
    ))
}

/// Marks an invitation accepted by `user_id` if it is still pending; `false` if another
/// request took it first.
pub fn mark_accepted(conn: &mut DbConn, invitation_id: &str, user_id: &str) -> AppResult<bool> {
    let n = diesel::update(
        invitations::table
            .find(invitation_id)
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null()),
    )
    .set((
        invitations::accepted_at.eq(db::now()),
        invitations::accepted_by.eq(user_id),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Adds a membership unless the user is already a member.
pub fn add_if_absent(conn: &mut DbConn, ws_id: &str, user_id: &str, role: Role) -> AppResult<()> {
    let member: i64 = memberships::table
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(memberships::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    if member == 0 {
        diesel::insert_into(memberships::table)
            .values((
                memberships::workspace_id.eq(ws_id),
                memberships::user_id.eq(user_id),
                memberships::role.eq(role.as_str()),
                memberships::created_at.eq(db::now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The workspaces `user_id` belongs to.
pub fn workspaces_of(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<String>> {
    Ok(memberships::table
        .filter(memberships::user_id.eq(user_id))
        .select(memberships::workspace_id)
        .load(conn)?)
}

/// A member's role; `NotFound` if they are not a member.
pub fn role_of(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<Role> {
    let role: String = memberships::table
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(memberships::user_id.eq(user_id))
        .select(memberships::role)
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    Ok(stored_role(&role))
}

/// Sets a member's role.
pub fn set_role(conn: &mut DbConn, ws_id: &str, user_id: &str, role: Role) -> AppResult<()> {
    diesel::update(
        memberships::table
            .filter(memberships::workspace_id.eq(ws_id))
            .filter(memberships::user_id.eq(user_id)),
    )
    .set(memberships::role.eq(role.as_str()))
    .execute(conn)?;
    Ok(())
}

/// Sets a member's role from `from` to `to` only if it is `from`; `false` otherwise.
pub fn set_role_if(
    conn: &mut DbConn,
    ws_id: &str,
    user_id: &str,
    from: Role,
    to: Role,
) -> AppResult<bool> {
    let n = diesel::update(
        memberships::table
            .filter(memberships::workspace_id.eq(ws_id))
            .filter(memberships::user_id.eq(user_id))
            .filter(memberships::role.eq(from.as_str())),
    )
    .set(memberships::role.eq(to.as_str()))
    .execute(conn)?;
    Ok(n == 1)
}

/// Deletes a membership.
pub fn delete(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<()> {
    diesel::delete(
        memberships::table
            .filter(memberships::workspace_id.eq(ws_id))
            .filter(memberships::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(())
}

/// A user's email address.
pub fn email_of(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    Ok(users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?)
}

/// The workspace's audit events, newest first, 200 before `before`.
pub fn audit_rows(conn: &mut DbConn, ws_id: &str, before: Option<i64>) -> AppResult<Vec<AuditRow>> {
    let mut q = audit_events::table
        .filter(audit_events::workspace_id.eq(ws_id))
        .order(audit_events::seq.desc())
        .limit(200)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(audit_events::seq.lt(b));
    }
    Ok(q.load(conn)?)
}

/// Email addresses of the given user ids (those that exist).
pub fn emails_of(
    conn: &mut DbConn,
    ids: &[String],
) -> AppResult<std::collections::HashMap<String, String>> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::email))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

/// Deletes every invitation of a workspace (the invited addresses), when the workspace
/// is deleted for good. Memberships stay: they are how members still see the deleted
/// workspace and its destruction receipt. Returns the addresses invited that no account
/// has: the only emails ever sent to them were invitations, so they can go too.
pub fn delete_invitations(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<String>> {
    let mut invited: Vec<String> = invitations::table
        .filter(invitations::workspace_id.eq(ws_id))
        .filter(invitations::accepted_at.is_null())
        .select(invitations::email)
        .load(conn)?;
    let with_account: Vec<String> = users::table
        .filter(users::email.eq_any(&invited))
        .select(users::email)
        .load(conn)?;
    invited.retain(|e| !with_account.contains(e));
    diesel::delete(invitations::table.filter(invitations::workspace_id.eq(ws_id))).execute(conn)?;
    Ok(invited)
}
