//! Members' pages (members, invitation link, the owners' audit log) and `/api/v1` API:
//! parse, call [`super::service`], render.

use super::model::{AuditView, InvitationView, Role};
use super::service::{self, require_role, Ctx};
use super::store::{self, InvitationRow, MemberRow};
use crate::app::openapi::ErrorJson;
use crate::app::State;
use crate::error::{AppError, AppResult, Code};
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::http::{html, html_with};
use crate::infra::db::{self, DbConn};
use crate::workspaces::Workspace;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

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
        let members = store::list(conn, &ws_id)?;
        // Pending invitations name people who are not members yet: owners only.
        let invitations = if role == Role::Owner {
            store::pending(conn, &ws_id)?
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

#[derive(Deserialize)]
pub(crate) struct MembersQuery {
    /// Set by the redirect after an invitation was sent (the address stays out of the URL).
    invited: Option<u8>,
}

pub(crate) async fn members_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
    q: web::Query<MembersQuery>,
) -> PageResult {
    let notice = q
        .invited
        .map(|_| "Invitation sent: the link works once and expires in 7 days.".to_owned());
    render_members(&state, user, path.into_inner(), None, notice).await
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    email: String,
    role: String,
}

fn back_to_members(ws_id: &str, query: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/workspaces/{ws_id}/members{query}"),
        ))
        .finish()
}

/// Runs a members action, then back to the members page (`then`: its query, e.g. the
/// notice to show), so reloading the page never sends the form again; a validation or
/// conflict error re-renders the page with the message (the form is not lost), anything
/// else is the usual error page.
async fn members_action(
    state: &State,
    user: CurrentUser,
    ws_id: String,
    then: &str,
    f: impl FnOnce(&mut DbConn) -> AppResult<()> + Send + 'static,
) -> PageResult {
    match db::run(&state.db, f).await {
        Ok(()) => Ok(back_to_members(&ws_id, then)),
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
    members_action(&state, f.user, ws_id, "?invited=1", move |conn| {
        let cx = Ctx {
            notifier: st.notifier(),
            command_notify: &st.command_notify,
        };
        service::invite(conn, &cx, &ws, &uid, &email, &role, &ip).map(|_| ())
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
    members_action(&state, f.user, ws_id, "", move |conn| {
        service::revoke(conn, &ws, &uid, &inv, &ip)
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
    members_action(&state, f.user, ws_id, "", move |conn| {
        let cx = Ctx {
            notifier: st.notifier(),
            command_notify: &st.command_notify,
        };
        service::change_role(conn, &cx, &ws, &uid, &target, &role, &ip)
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
    let r = members_action(&state, f.user, ws_id, "", move |conn| {
        service::remove(conn, &st.command_notify, &ws, &uid, &target, &ip)
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
    let (st, ws, ip, uid) = (
        state.clone(),
        ws_id.clone(),
        client_ip(&req),
        f.user.id.clone(),
    );
    members_action(&state, f.user, ws_id, "", move |conn| {
        if !confirmed {
            // Checked after the role, so a non-owner learns nothing from it.
            require_role(conn, &ws, &uid, Role::Owner)?;
            return Err(AppError::invalid(
                Code::ConfirmationRequired,
                "Tick the box to confirm: you will become an admin and cannot undo this yourself.",
            ));
        }
        let cx = Ctx {
            notifier: st.notifier(),
            command_notify: &st.command_notify,
        };
        service::transfer(conn, &cx, &ws, &uid, &target, &ip)
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
    let found = db::run(&state.db, move |conn| service::lookup(conn, &token)).await?;
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
    let r = db::run(&state.db, move |conn| service::accept(conn, &token, &ip)).await?;
    match r {
        Ok((ws_id, session)) => {
            let device = crate::accounts::devices::web::after_sign_in(
                &state,
                &req,
                &session,
                "an invitation link",
            )
            .await;
            let mut ok = HttpResponse::SeeOther();
            if let Some(c) = device {
                ok.cookie(c);
            }
            Ok(ok
                .cookie(crate::accounts::session_cookie(
                    &state,
                    session,
                    crate::accounts::SESSION_TTL,
                ))
                .insert_header((header::LOCATION, format!("/workspaces/{ws_id}")))
                .finish())
        }
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
        Ok((ws, service::audit_log(conn, &ws_id, before)?))
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

/// `GET /api/v1/workspaces/{id}/members`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Members {
    members: Vec<store::MemberRow>,
    /// Pending invitations (shown to owners only; empty for the others).
    invitations: Vec<store::InvitationRow>,
}

/// The workspace's members and, for owners, its pending invitations.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/members", tag = "members",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Members.", body = Members)))]
pub(crate) async fn api_members(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let ws_id = path.into_inner();
    let (members, invitations) = db::run(&state.db, move |conn| {
        let (_, role) = require_role(conn, &ws_id, &user.id, Role::Member)?;
        let inv = if role == Role::Owner {
            store::pending(conn, &ws_id)?
        } else {
            vec![]
        };
        Ok((store::list(conn, &ws_id)?, inv))
    })
    .await?;
    Ok(HttpResponse::Ok().json(Members {
        members,
        invitations,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct InviteBody {
    /// Who to invite; they get an email with a link (single use, 7 days).
    #[schema(format = Email)]
    email: String,
    /// The role they get on accepting: `member` or `admin` (ownership is transferred, not
    /// invited to).
    #[schema(pattern = "^(member|admin)$")]
    role: String,
}

/// Invites someone by email (20 an hour per workspace).
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/invitations", tag = "members",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = InviteBody,
    responses(
        (status = 201, description = "Invited.", body = store::InvitationRow),
        (status = 400, description = "Not an address (`invalid_email`) or not `member`/`admin` (`invalid_role`), or the body is malformed.", body = ErrorJson),
        (status = 403, description = "Owners only (`owner_required`).", body = ErrorJson),
        (status = 409, description = "Already a member (`already_member`), or the workspace is deleted (`workspace_deleted`).", body = ErrorJson),
    ))]

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
        let cx = Ctx {
            notifier: st.notifier(),
            command_notify: &st.command_notify,
        };
        service::invite(conn, &cx, &ws_id, &user.id, &b.email, &b.role, &ip)
    })
    .await?;
    Ok(HttpResponse::Created().json(inv))
}
