//! Members use cases: the role check every workspace page relies on ([`require_role`]),
//! inviting, withdrawing and accepting invitations, changing roles, removing, transferring
//! ownership, ending console sessions, and the owners' audit log.

use super::model::{
    AuditView, InvitationView, Role, Unusable, INVITATIONS_PER_HOUR, INVITATION_TTL,
};
use super::store::{self, InvitationRow};
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::wake::CommandNotify;
use crate::members::model::{grantable, stored_role};
use crate::notify::{self, Notifier};
use crate::provisioning;
use crate::workspaces::{load_for_member, Workspace};
use outpost_crypto::{random_token, token_hash};

/// What inviting and changing roles need of the app: where the email goes out from.
pub struct Ctx<'a> {
    /// The public URL for the link (the email goes to the outbox).
    pub notifier: Notifier<'a>,
    /// Wakes nodes' command long-polls (a lower role ends console sessions).
    pub command_notify: &'a CommandNotify,
}

/// Loads a workspace for a member whose role is at least `min`: non-members get 404
/// (the workspace's existence is not revealed), members below `min` get 403 in words.
pub fn require_role(
    conn: &mut DbConn,
    ws_id: &str,
    user_id: &str,
    min: Role,
) -> AppResult<(Workspace, Role)> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    let role = stored_role(&role);
    if role < min {
        return Err(AppError::Forbidden(match min {
            Role::Owner => Code::OwnerRequired,
            _ => Code::AdminRequired,
        }));
    }
    Ok((ws, role))
}

fn live(ws: &Workspace) -> AppResult<()> {
    if ws.deleted_at.is_some() {
        return Err(AppError::Conflict(
            Code::WorkspaceDeleted,
            "This workspace is cancelled or deleted; its members can no longer change.".into(),
        ));
    }
    Ok(())
}

/// Sends an invitation (owners only). A pending invitation to the same address is
/// replaced, so the newest link is the only one that works. Returns the invitation id.
pub fn invite(
    conn: &mut DbConn,
    cx: &Ctx<'_>,
    ws_id: &str,
    by: &str,
    email: &str,
    role: &str,
    ip: &str,
) -> AppResult<InvitationRow> {
    let (ws, _) = require_role(conn, ws_id, by, Role::Owner)?;
    live(&ws)?;
    let email = crate::accounts::normalize_email(email)?;
    let role = grantable(role)?;
    let now = db::now();
    if store::has_member_with_email(conn, ws_id, &email)? {
        return Err(AppError::Conflict(
            Code::AlreadyMember,
            format!("{email} is already a member of this workspace."),
        ));
    }
    let (sent, oldest) = store::invitations_sent_since(conn, ws_id, now - 3600)?;
    if sent >= INVITATIONS_PER_HOUR {
        let oldest = oldest.unwrap_or(now);
        return Err(AppError::RateLimited((oldest + 3600 - now).max(1) as u64));
    }
    let token = random_token();
    let id = db::new_id();
    // The invitation, its audit event and its email in one transaction: a crash loses
    // all or none (the email is sent from the outbox).
    db::transaction::<_, AppError, _>(conn, |conn| {
        store::replace_invitation(
            conn,
            &store::NewInvitation {
                id: &id,
                workspace_id: ws_id,
                email: &email,
                role,
                token: &token,
                invited_by: by,
                created_at: now,
                expires_at: now + INVITATION_TTL,
            },
        )?;
        audit::record(
            conn,
            &Entry {
                actor: Some(by),
                action: "member.invited",
                object_type: "invitation",
                object_id: &id,
                workspace_id: Some(ws_id),
                ip: Some(ip),
                detail: role.as_str(),
            },
        )?;
        let inviter = store::email_of(conn, by)?;
        let link = format!(
            "{}/invitations/accept?token={token}",
            cx.notifier.public_url
        );
        notify::emails::queue(
            conn,
            vec![email.clone()],
            &notify::emails::Invitation {
                inviter: inviter.into(),
                workspace: (&ws.name).into(),
                role: role.as_str().into(),
                link: link.into(),
            },
        )
    })?;
    Ok(InvitationRow {
        id,
        email,
        role: role.as_str().into(),
        created_at: now,
        expires_at: now + INVITATION_TTL,
    })
}

/// Withdraws a pending invitation (owners only).
pub fn revoke(
    conn: &mut DbConn,
    ws_id: &str,
    by: &str,
    invitation_id: &str,
    ip: &str,
) -> AppResult<()> {
    require_role(conn, ws_id, by, Role::Owner)?;
    if !store::revoke_invitation(conn, ws_id, invitation_id)? {
        return Err(AppError::NotFound);
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(by),
            action: "member.invitation_revoked",
            object_type: "invitation",
            object_id: invitation_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: "",
        },
    )
}

/// The invitation whose link carries `token`, or why the link no longer works.
pub fn lookup(
    conn: &mut DbConn,
    token: &str,
) -> AppResult<Result<(String, InvitationView), Unusable>> {
    let Some(r) = store::invitation_by_token(conn, token.trim())? else {
        return Ok(Err(Unusable::Unknown));
    };
    let why = if r.accepted_at.is_some() {
        Some(Unusable::Used)
    } else if r.revoked_at.is_some() {
        Some(Unusable::Revoked)
    } else if r.expires_at <= db::now() {
        Some(Unusable::Expired)
    } else if r.workspace_deleted_at.is_some() {
        Some(Unusable::WorkspaceGone)
    } else {
        None
    };
    if let Some(w) = why {
        return Ok(Err(w));
    }
    Ok(Ok((
        r.id,
        InvitationView {
            workspace_id: r.workspace_id,
            workspace_name: r.workspace_name,
            email: r.email,
            role: r.role,
        },
    )))
}

/// Accepts an invitation: single use (a replay loses the conditional update), signs the
/// invitee in as the invited address and adds the membership. Returns the workspace id
/// and the new session token.
pub fn accept(
    conn: &mut DbConn,
    token: &str,
    ip: &str,
) -> AppResult<Result<(String, String), Unusable>> {
    let (id, inv) = match lookup(conn, token)? {
        Ok(v) => v,
        Err(why) => {
            audit::record(
                conn,
                &Entry {
                    action: "member.invitation_refused",
                    object_type: "invitation",
                    object_id: &token_hash(token.trim())[..16],
                    ip: Some(ip),
                    detail: match why {
                        Unusable::Unknown => "unknown",
                        Unusable::Used => "used",
                        Unusable::Revoked => "revoked",
                        Unusable::Expired => "expired",
                        Unusable::WorkspaceGone => "workspace_gone",
                    },
                    ..Default::default()
                },
            )?;
            return Ok(Err(why));
        }
    };
    let outcome = db::transaction::<_, AppError, _>(conn, |conn| {
        let user_id = crate::accounts::find_or_create_user(conn, &inv.email)?;
        if !store::mark_accepted(conn, &id, &user_id)? {
            return Ok(None);
        }
        store::add_if_absent(conn, &inv.workspace_id, &user_id, grantable(&inv.role)?)?;
        let session = crate::accounts::start_session(conn, &user_id)?;
        Ok(Some((user_id, session)))
    })?;
    let Some((user_id, session)) = outcome else {
        return Ok(Err(Unusable::Used));
    };
    audit::record(
        conn,
        &Entry {
            actor: Some(&user_id),
            action: "member.joined",
            object_type: "invitation",
            object_id: &id,
            workspace_id: Some(&inv.workspace_id),
            ip: Some(ip),
            detail: &inv.role,
        },
    )?;
    Ok(Ok((inv.workspace_id, session)))
}

/// Ends a user's open node-console sessions on the workspace's nodes, so a removal or a
/// lower role takes effect now.
fn end_console_sessions(
    conn: &mut DbConn,
    command_notify: &CommandNotify,
    ws_id: &str,
    user_id: &str,
) -> AppResult<()> {
    for id in &crate::suspension::enrolled_nodes(conn, ws_id)? {
        provisioning::queue_command(
            conn,
            id,
            &outpost_protocol::CommandKind::EndConsoleSessions {
                user_id: user_id.to_owned(),
            },
        )?;
        command_notify.notify(id);
    }
    Ok(())
}

/// Ends a user's console sessions on the nodes of every workspace they belong to (CP
/// sign-out).
pub fn end_console_sessions_everywhere(
    conn: &mut DbConn,
    command_notify: &CommandNotify,
    user_id: &str,
) -> AppResult<()> {
    let workspaces = store::workspaces_of(conn, user_id)?;
    for ws_id in &workspaces {
        end_console_sessions(conn, command_notify, ws_id, user_id)?;
    }
    Ok(())
}

/// Changes a member's role to admin or member (owners only; not their own role).
pub fn change_role(
    conn: &mut DbConn,
    cx: &Ctx<'_>,
    ws_id: &str,
    by: &str,
    user_id: &str,
    role: &str,
    ip: &str,
) -> AppResult<()> {
    let (ws, _) = require_role(conn, ws_id, by, Role::Owner)?;
    live(&ws)?;
    let role = grantable(role)?;
    if by == user_id {
        return Err(AppError::Conflict(
            Code::OwnRole,
            "You are the owner. To step down, transfer ownership to another member.".into(),
        ));
    }
    let before = store::role_of(conn, ws_id, user_id)?;
    if before == role {
        return Ok(());
    }
    // The change, its audit event and its email together; the console sessions end
    // after the commit, so the nodes woken find their command.
    db::transaction::<_, AppError, _>(conn, |conn| {
        store::set_role(conn, ws_id, user_id, role)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(by),
                action: "member.role_changed",
                object_type: "user",
                object_id: user_id,
                workspace_id: Some(ws_id),
                ip: Some(ip),
                detail: &format!("{}→{}", before.as_str(), role.as_str()),
            },
        )?;
        tell_role_changed(conn, cx, &ws, by, user_id, before, role)
    })?;
    if role < before {
        end_console_sessions(conn, cx.command_notify, ws_id, user_id)?;
    }
    Ok(())
}

/// Emails `user_id` that `by` changed their role in `ws` from `before` to `role`: a role is
/// what a member may see and do, so they hear of a change from us, not by surprise.
fn tell_role_changed(
    conn: &mut DbConn,
    cx: &Ctx<'_>,
    ws: &Workspace,
    by: &str,
    user_id: &str,
    before: Role,
    role: Role,
) -> AppResult<()> {
    let (by, to) = (store::email_of(conn, by)?, store::email_of(conn, user_id)?);
    notify::emails::queue(
        conn,
        vec![to],
        &notify::emails::RoleChanged {
            workspace: (&ws.name).into(),
            by: by.into(),
            before: before.as_str(),
            role: role.as_str(),
            page: format!("{}/workspaces/{}", cx.notifier.public_url, ws.id).into(),
        },
    )
}

/// Removes a member (owners remove others; anyone but the owner may leave).
pub fn remove(
    conn: &mut DbConn,
    command_notify: &CommandNotify,
    ws_id: &str,
    by: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<()> {
    let leaving = by == user_id;
    let (_, caller) = require_role(
        conn,
        ws_id,
        by,
        if leaving { Role::Member } else { Role::Owner },
    )?;
    if leaving && caller == Role::Owner {
        return Err(AppError::Conflict(
            Code::OwnerCannotLeave,
            "The owner cannot leave the workspace. Transfer ownership first, or cancel the workspace."
                .into(),
        ));
    }
    store::role_of(conn, ws_id, user_id)?;
    store::delete(conn, ws_id, user_id)?;
    end_console_sessions(conn, command_notify, ws_id, user_id)?;
    audit::record(
        conn,
        &Entry {
            actor: Some(by),
            action: if leaving {
                "member.left"
            } else {
                "member.removed"
            },
            object_type: "user",
            object_id: user_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: "",
        },
    )
}

/// Makes another member the owner; the previous owner becomes an admin.
pub fn transfer(
    conn: &mut DbConn,
    cx: &Ctx<'_>,
    ws_id: &str,
    by: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<()> {
    let (ws, _) = require_role(conn, ws_id, by, Role::Owner)?;
    live(&ws)?;
    if by == user_id {
        return Err(AppError::Conflict(
            Code::AlreadyOwner,
            "You are already the owner.".into(),
        ));
    }
    let before = store::role_of(conn, ws_id, user_id)?;
    db::transaction::<_, AppError, _>(conn, |conn| {
        // Conditional on the caller still being the owner, so two concurrent transfers
        // cannot leave two owners.
        if !store::set_role_if(conn, ws_id, by, Role::Owner, Role::Admin)? {
            return Err(AppError::Forbidden(Code::OwnerRequired));
        }
        store::set_role(conn, ws_id, user_id, Role::Owner)?;
        Ok(())
    })?;
    audit::record(
        conn,
        &Entry {
            actor: Some(by),
            action: "member.ownership_transferred",
            object_type: "user",
            object_id: user_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: "owner→admin",
        },
    )?;
    // The previous owner did this themselves; the new owner hears of it.
    tell_role_changed(conn, cx, &ws, by, user_id, before, Role::Owner)
}

// ---------------------------------------------------------------- audit log view

/// The workspace's audit events, newest first, 200 per page before `before`.
pub fn audit_log(conn: &mut DbConn, ws_id: &str, before: Option<i64>) -> AppResult<Vec<AuditView>> {
    let rows = store::audit_rows(conn, ws_id, before)?;
    let actor_ids: Vec<String> = rows.iter().filter_map(|r| r.actor.clone()).collect();
    let emails = store::emails_of(conn, &actor_ids)?;
    Ok(rows
        .into_iter()
        .map(|r| AuditView {
            seq: r.seq,
            at: r.at,
            actor: match r.actor {
                Some(a) => emails.get(&a).cloned().unwrap_or(a),
                None => "anonymous".into(),
            },
            action: r.action,
            object: format!("{} {}", r.object_type, r.object_id),
            ip: r.ip.unwrap_or_default(),
            detail: r.detail,
        })
        .collect())
}
