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

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::http::{html, html_with};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{invitations, memberships, users, workspaces};
use crate::notify;
use crate::provisioning;
use crate::workspaces::{load_for_member, Workspace};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use outpost_crypto::{random_token, token_hash};
use serde::{Deserialize, Serialize};

pub mod model;

pub use model::{
    Role, Unusable, INVITATIONS_PER_HOUR, INVITATION_TTL, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER,
};

/// Loads a workspace for a member whose role is at least `min`: non-members get 404
/// (the workspace's existence is not revealed), members below `min` get 403 in words.
pub fn require_role(
    conn: &mut DbConn,
    ws_id: &str,
    user_id: &str,
    min: Role,
) -> AppResult<(Workspace, Role)> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    let role = Role::parse(&role);
    if role < min {
        return Err(AppError::Forbidden(match min {
            Role::Owner => Code::OwnerRequired,
            _ => Code::AdminRequired,
        }));
    }
    Ok((ws, role))
}

/// A member as listed.
#[derive(Debug, Clone, Queryable, Serialize)]
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
#[derive(Debug, Clone, Queryable, Serialize)]
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
        Role::parse(&b.role)
            .cmp(&Role::parse(&a.role))
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
    st: &State,
    ws_id: &str,
    by: &str,
    email: &str,
    role: &str,
    ip: &str,
) -> AppResult<InvitationRow> {
    let (ws, _) = require_role(conn, ws_id, by, Role::Owner)?;
    live(&ws)?;
    let email = crate::accounts::normalize_email(email)?;
    let role = Role::grantable(role)?;
    let now = db::now();
    let already: i64 = memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(users::email.eq(&email))
        .count()
        .get_result(conn)?;
    if already > 0 {
        return Err(AppError::Conflict(
            Code::AlreadyMember,
            format!("{email} is already a member of this workspace."),
        ));
    }
    let sent: i64 = invitations::table
        .filter(invitations::workspace_id.eq(ws_id))
        .filter(invitations::created_at.gt(now - 3600))
        .count()
        .get_result(conn)?;
    if sent >= INVITATIONS_PER_HOUR {
        let oldest: i64 = invitations::table
            .filter(invitations::workspace_id.eq(ws_id))
            .filter(invitations::created_at.gt(now - 3600))
            .select(diesel::dsl::min(invitations::created_at))
            .first::<Option<i64>>(conn)?
            .unwrap_or(now);
        return Err(AppError::RateLimited((oldest + 3600 - now).max(1) as u64));
    }
    let token = random_token();
    let id = db::new_id();
    db::transaction::<_, AppError, _>(conn, |conn| {
        diesel::update(
            invitations::table
                .filter(invitations::workspace_id.eq(ws_id))
                .filter(invitations::email.eq(&email))
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::revoked_at.is_null()),
        )
        .set(invitations::revoked_at.eq(now))
        .execute(conn)?;
        diesel::insert_into(invitations::table)
            .values((
                invitations::id.eq(&id),
                invitations::workspace_id.eq(ws_id),
                invitations::email.eq(&email),
                invitations::role.eq(role.as_str()),
                invitations::token_hash.eq(token_hash(&token)),
                invitations::invited_by.eq(by),
                invitations::created_at.eq(now),
                invitations::expires_at.eq(now + INVITATION_TTL),
            ))
            .execute(conn)?;
        Ok(())
    })?;
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
    let inviter: String = users::table.find(by).select(users::email).first(conn)?;
    let link = format!("{}/invitations/accept?token={token}", st.public_url);
    notify::emails::send_later(
        &st.mailer,
        vec![email.clone()],
        &notify::emails::Invitation {
            inviter: inviter.into(),
            workspace: (&ws.name).into(),
            role: role.as_str().into(),
            link: link.into(),
        },
    )?;
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
    let n = diesel::update(
        invitations::table
            .filter(invitations::id.eq(invitation_id))
            .filter(invitations::workspace_id.eq(ws_id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null()),
    )
    .set(invitations::revoked_at.eq(db::now()))
    .execute(conn)?;
    if n == 0 {
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

type InvitationRecord = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<i64>,
);

fn lookup(conn: &mut DbConn, token: &str) -> AppResult<Result<(String, InvitationView), Unusable>> {
    let row: Option<InvitationRecord> = invitations::table
        .inner_join(workspaces::table)
        .filter(invitations::token_hash.eq(token_hash(token.trim())))
        .select((
            invitations::id,
            invitations::email,
            invitations::role,
            invitations::expires_at,
            invitations::accepted_at,
            invitations::revoked_at,
            workspaces::name,
            workspaces::deleted_at,
        ))
        .first(conn)
        .optional()?;
    let Some((id, email, role, expires, accepted, revoked, ws_name, deleted)) = row else {
        return Ok(Err(Unusable::Unknown));
    };
    let why = if accepted.is_some() {
        Some(Unusable::Used)
    } else if revoked.is_some() {
        Some(Unusable::Revoked)
    } else if expires <= db::now() {
        Some(Unusable::Expired)
    } else if deleted.is_some() {
        Some(Unusable::WorkspaceGone)
    } else {
        None
    };
    if let Some(w) = why {
        return Ok(Err(w));
    }
    let workspace_id: String = invitations::table
        .find(&id)
        .select(invitations::workspace_id)
        .first(conn)?;
    Ok(Ok((
        id,
        InvitationView {
            workspace_id,
            workspace_name: ws_name,
            email,
            role,
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
        let n = diesel::update(
            invitations::table
                .find(&id)
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::revoked_at.is_null()),
        )
        .set((
            invitations::accepted_at.eq(db::now()),
            invitations::accepted_by.eq(&user_id),
        ))
        .execute(conn)?;
        if n != 1 {
            return Ok(None);
        }
        let member: i64 = memberships::table
            .filter(memberships::workspace_id.eq(&inv.workspace_id))
            .filter(memberships::user_id.eq(&user_id))
            .count()
            .get_result(conn)?;
        if member == 0 {
            diesel::insert_into(memberships::table)
                .values((
                    memberships::workspace_id.eq(&inv.workspace_id),
                    memberships::user_id.eq(&user_id),
                    memberships::role.eq(Role::grantable(&inv.role)?.as_str()),
                    memberships::created_at.eq(db::now()),
                ))
                .execute(conn)?;
        }
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
    st: &State,
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
        st.command_notify.notify(id);
    }
    Ok(())
}

/// Ends a user's console sessions on the nodes of every workspace they belong to (CP
/// sign-out).
pub(crate) fn end_console_sessions_everywhere(
    conn: &mut DbConn,
    st: &State,
    user_id: &str,
) -> AppResult<()> {
    let workspaces: Vec<String> = memberships::table
        .filter(memberships::user_id.eq(user_id))
        .select(memberships::workspace_id)
        .load(conn)?;
    for ws_id in &workspaces {
        end_console_sessions(conn, st, ws_id, user_id)?;
    }
    Ok(())
}

fn target_role(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<Role> {
    let role: String = memberships::table
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(memberships::user_id.eq(user_id))
        .select(memberships::role)
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    Ok(Role::parse(&role))
}

/// Changes a member's role to admin or member (owners only; not their own role).
pub fn change_role(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    by: &str,
    user_id: &str,
    role: &str,
    ip: &str,
) -> AppResult<()> {
    let (ws, _) = require_role(conn, ws_id, by, Role::Owner)?;
    live(&ws)?;
    let role = Role::grantable(role)?;
    if by == user_id {
        return Err(AppError::Conflict(
            Code::OwnRole,
            "You are the owner. To step down, transfer ownership to another member.".into(),
        ));
    }
    let before = target_role(conn, ws_id, user_id)?;
    if before == role {
        return Ok(());
    }
    diesel::update(
        memberships::table
            .filter(memberships::workspace_id.eq(ws_id))
            .filter(memberships::user_id.eq(user_id)),
    )
    .set(memberships::role.eq(role.as_str()))
    .execute(conn)?;
    if role < before {
        end_console_sessions(conn, st, ws_id, user_id)?;
    }
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
    )
}

/// Removes a member (owners remove others; anyone but the owner may leave).
pub fn remove(
    conn: &mut DbConn,
    st: &State,
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
    target_role(conn, ws_id, user_id)?;
    diesel::delete(
        memberships::table
            .filter(memberships::workspace_id.eq(ws_id))
            .filter(memberships::user_id.eq(user_id)),
    )
    .execute(conn)?;
    end_console_sessions(conn, st, ws_id, user_id)?;
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
    target_role(conn, ws_id, user_id)?;
    db::transaction::<_, AppError, _>(conn, |conn| {
        // Conditional on the caller still being the owner, so two concurrent transfers
        // cannot leave two owners.
        let n = diesel::update(
            memberships::table
                .filter(memberships::workspace_id.eq(ws_id))
                .filter(memberships::user_id.eq(by))
                .filter(memberships::role.eq(ROLE_OWNER)),
        )
        .set(memberships::role.eq(ROLE_ADMIN))
        .execute(conn)?;
        if n != 1 {
            return Err(AppError::Forbidden(Code::OwnerRequired));
        }
        diesel::update(
            memberships::table
                .filter(memberships::workspace_id.eq(ws_id))
                .filter(memberships::user_id.eq(user_id)),
        )
        .set(memberships::role.eq(ROLE_OWNER))
        .execute(conn)?;
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
    )
}

// ---------------------------------------------------------------- audit log view

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

/// The workspace's audit events, newest first, 200 per page before `before`.
pub fn audit_log(conn: &mut DbConn, ws_id: &str, before: Option<i64>) -> AppResult<Vec<AuditView>> {
    use crate::infra::schema::audit_events as a;
    let mut q = a::table
        .filter(a::workspace_id.eq(ws_id))
        .order(a::seq.desc())
        .limit(200)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(a::seq.lt(b));
    }
    let rows: Vec<crate::audit::AuditRow> = q.load(conn)?;
    let actor_ids: Vec<String> = rows.iter().filter_map(|r| r.actor.clone()).collect();
    let emails: std::collections::HashMap<String, String> = users::table
        .filter(users::id.eq_any(&actor_ids))
        .select((users::id, users::email))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
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

// ---------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    user: CurrentUser,
    ws: Workspace,
    role: Role,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    invitation: Option<InvitationView>,
    refused: Option<&'static str>,
    token: String,
    /// Signed in with another address than the invited one.
    other_account: Option<String>,
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct AuditPage {
    user: CurrentUser,
    ws: Workspace,
    events: Vec<AuditView>,
    older: Option<i64>,
}

async fn render_members(
    state: &State,
    user: CurrentUser,
    ws_id: String,
    error: Option<String>,
    notice: Option<String>,
) -> PageResult {
    let uid = user.id.clone();
    let (ws, role, members, invitations) = db::run(&state.db, move |conn| {
        let (ws, role) = require_role(conn, &ws_id, &uid, Role::Member)?;
        let members = list(conn, &ws_id)?;
        // Pending invitations name people who are not members yet: owners only.
        let invitations = if role == Role::Owner {
            pending(conn, &ws_id)?
        } else {
            vec![]
        };
        Ok((ws, role, members, invitations))
    })
    .await?;
    let page = MembersPage {
        user,
        ws,
        role,
        members,
        invitations,
        error: error.clone(),
        notice,
    };
    Ok(if error.is_some() {
        html_with(HttpResponse::BadRequest(), &page)
    } else {
        html(&page)
    })
}

pub(crate) async fn members_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    render_members(&state, user, path.into_inner(), None, None).await
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    email: String,
    role: String,
}

fn back_to_members(ws_id: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/workspaces/{ws_id}/members")))
        .finish()
}

/// Runs a members action; a validation or conflict error re-renders the page with the
/// message (the form is not lost), anything else is the usual error page.
async fn members_action(
    state: &State,
    user: CurrentUser,
    ws_id: String,
    notice: Option<String>,
    f: impl FnOnce(&mut DbConn) -> AppResult<()> + Send + 'static,
) -> PageResult {
    match db::run(&state.db, f).await {
        Ok(()) if notice.is_some() => render_members(state, user, ws_id, None, notice).await,
        Ok(()) => Ok(back_to_members(&ws_id)),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            render_members(state, user, ws_id, Some(e.message()), None).await
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn invite_submit(
    state: State,
    req: HttpRequest,
    f: CsrfForm<InviteForm>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ws_id, ip, uid) = (
        state.clone(),
        path.into_inner(),
        client_ip(&req),
        f.user.id.clone(),
    );
    let (ws, email, role) = (ws_id.clone(), f.form.email.clone(), f.form.role.clone());
    let notice = format!("Invitation sent to {}.", f.form.email.trim());
    members_action(&state, f.user, ws_id, Some(notice), move |conn| {
        invite(conn, &st, &ws, &uid, &email, &role, &ip).map(|_| ())
    })
    .await
}

pub(crate) async fn revoke_submit(
    state: State,
    req: HttpRequest,
    f: CsrfForm<Empty>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (ws_id, inv) = path.into_inner();
    let (ws, ip, uid) = (ws_id.clone(), client_ip(&req), f.user.id.clone());
    members_action(&state, f.user, ws_id, None, move |conn| {
        revoke(conn, &ws, &uid, &inv, &ip)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    role: String,
}

pub(crate) async fn role_submit(
    state: State,
    req: HttpRequest,
    f: CsrfForm<RoleForm>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (ws_id, target) = path.into_inner();
    let (st, ws, ip, uid, role) = (
        state.clone(),
        ws_id.clone(),
        client_ip(&req),
        f.user.id.clone(),
        f.form.role.clone(),
    );
    members_action(&state, f.user, ws_id, None, move |conn| {
        change_role(conn, &st, &ws, &uid, &target, &role, &ip)
    })
    .await
}

pub(crate) async fn remove_submit(
    state: State,
    req: HttpRequest,
    f: CsrfForm<Empty>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (ws_id, target) = path.into_inner();
    let leaving = target == f.user.id;
    let (st, ws, ip, uid) = (
        state.clone(),
        ws_id.clone(),
        client_ip(&req),
        f.user.id.clone(),
    );
    let r = members_action(&state, f.user, ws_id, None, move |conn| {
        remove(conn, &st, &ws, &uid, &target, &ip)
    })
    .await?;
    // Someone who left can no longer see the members page.
    if leaving && r.status() == actix_web::http::StatusCode::SEE_OTHER {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/workspaces"))
            .finish());
    }
    Ok(r)
}

#[derive(Deserialize)]
pub(crate) struct TransferForm {
    #[serde(default)]
    confirm: Option<String>,
}

pub(crate) async fn transfer_submit(
    state: State,
    req: HttpRequest,
    f: CsrfForm<TransferForm>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (ws_id, target) = path.into_inner();
    let confirmed = f.form.confirm.as_deref() == Some("yes");
    let (ws, ip, uid) = (ws_id.clone(), client_ip(&req), f.user.id.clone());
    members_action(&state, f.user, ws_id, None, move |conn| {
        if !confirmed {
            // Checked after the role, so a non-owner learns nothing from it.
            require_role(conn, &ws, &uid, Role::Owner)?;
            return Err(AppError::invalid(
                Code::ConfirmationRequired,
                "Tick the box to confirm: you will become an admin and cannot undo this yourself.",
            ));
        }
        transfer(conn, &ws, &uid, &target, &ip)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn invitation_response(status: actix_web::http::StatusCode, page: &InvitationPage) -> HttpResponse {
    html_with(HttpResponse::build(status), page)
}

pub(crate) async fn accept_page(
    state: State,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> PageResult {
    use actix_web::FromRequest;
    let signed_in_as = CurrentUser::extract(&req).await.ok().map(|u| u.email);
    let token = q.token.clone();
    let found = db::run(&state.db, move |conn| lookup(conn, &token)).await?;
    Ok(match found {
        Ok((_, inv)) => invitation_response(
            actix_web::http::StatusCode::OK,
            &InvitationPage {
                other_account: signed_in_as.filter(|e| *e != inv.email),
                invitation: Some(inv),
                refused: None,
                token: q.token.clone(),
            },
        ),
        Err(why) => invitation_response(
            actix_web::http::StatusCode::GONE,
            &InvitationPage {
                invitation: None,
                refused: Some(why.explain()),
                token: String::new(),
                other_account: None,
            },
        ),
    })
}

pub(crate) async fn accept_submit(
    state: State,
    req: HttpRequest,
    form: web::Form<TokenQuery>,
) -> PageResult {
    crate::http::extract::check_origin(&state, &req)?;
    let (token, ip) = (form.token.clone(), client_ip(&req));
    let r = db::run(&state.db, move |conn| accept(conn, &token, &ip)).await?;
    match r {
        Ok((ws_id, session)) => Ok(HttpResponse::SeeOther()
            .cookie(crate::accounts::session_cookie(
                &state,
                session,
                crate::accounts::SESSION_TTL,
            ))
            .insert_header((header::LOCATION, format!("/workspaces/{ws_id}")))
            .finish()),
        Err(why) => Ok(invitation_response(
            actix_web::http::StatusCode::GONE,
            &InvitationPage {
                invitation: None,
                refused: Some(why.explain()),
                token: String::new(),
                other_account: None,
            },
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    before: Option<i64>,
}

pub(crate) async fn audit_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> PageResult {
    let (uid, ws_id, before) = (user.id.clone(), path.into_inner(), q.before);
    let (ws, events) = db::run(&state.db, move |conn| {
        let (ws, _) = require_role(conn, &ws_id, &uid, Role::Owner)?;
        Ok((ws, audit_log(conn, &ws_id, before)?))
    })
    .await?;
    let older = (events.len() == 200)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(html(&AuditPage {
        user,
        ws,
        events,
        older,
    }))
}

// ---------------------------------------------------------------- API

pub(crate) async fn api_members(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let ws_id = path.into_inner();
    let (members, invitations) = db::run(&state.db, move |conn| {
        let (_, role) = require_role(conn, &ws_id, &user.id, Role::Member)?;
        let inv = if role == Role::Owner {
            pending(conn, &ws_id)?
        } else {
            vec![]
        };
        Ok((list(conn, &ws_id)?, inv))
    })
    .await?;
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({"members": members, "invitations": invitations})),
    )
}

#[derive(Deserialize)]
pub(crate) struct InviteBody {
    email: String,
    role: String,
}

pub(crate) async fn api_invite(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    body: web::Json<InviteBody>,
) -> AppResult<HttpResponse> {
    let (st, ws_id, ip, b) = (
        state.clone(),
        path.into_inner(),
        client_ip(&req),
        body.into_inner(),
    );
    let inv = db::run(&state.db, move |conn| {
        invite(conn, &st, &ws_id, &user.id, &b.email, &b.role, &ip)
    })
    .await?;
    Ok(HttpResponse::Created().json(inv))
}
