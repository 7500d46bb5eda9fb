//! Long because the workspace pages and their JSON API share one set of parsing, views and
//! use-case calls; split apart, a change to a workspace view would touch two files.
//! Workspaces' pages and `/api/v1` JSON API: parse, call [`super::service`], render.
//! Every handler that takes a workspace id goes through [`super::load_for_member`];
//! non-members get 404, so the existence of other workspaces does not leak.

use super::model::{fmt_duration, ListCursor, CANCEL_CONFIRMED, LIST_PAGE, LIST_PAGE_MAX};
use super::service::{self, Ctx, Detail};
use super::store::{
    self, AiUsageRow, BookingUsageRow, CallUsageRow, EventRow, ExportRow, NodeView, SweepRow,
    UsageRow, Workspace,
};
use crate::app::openapi::ErrorJson;
use crate::app::{AppState, State};
use crate::error::{AppError, AppResult, Code};
use crate::http::html;
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::infra::db::{self, DbConn};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

/// The pieces of the state the workspace use cases need.
pub fn ctx(st: &AppState) -> Ctx<'_> {
    Ctx {
        config: &st.config,
        provisioner: &st.provisioner,
        command_notify: &st.command_notify,
        notifier: st.notifier(),
        capability: &st.capability,
        reactions: &crate::app::reactions::WorkspaceReactions,
    }
}

/// Everything the workspace page and API show.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkspaceDetail {
    /// Workspace.
    pub workspace: Workspace,
    /// Caller's role.
    pub role: String,
    /// Node, if any.
    pub node: Option<NodeView>,
    /// Failure explained in words, if failed.
    pub node_error: Option<String>,
    /// Whether reports have stopped for 3 intervals (stale).
    pub stale: bool,
    /// Timeline, newest first.
    pub events: Vec<EventRow>,
    /// Usage counts, newest first.
    pub usage: Vec<UsageRow>,
    /// AI requests and tokens per day and model, newest day first (counts only).
    pub ai_usage: Vec<AiUsageRow>,
    /// Appointments booked, moved and cancelled per hour, newest first (counts only).
    pub booking_usage: Vec<BookingUsageRow>,
    /// Calls and call minutes per hour, newest first (counts only).
    pub call_usage: Vec<CallUsageRow>,
    /// The workspace's agents.
    pub agents: Vec<crate::agents::Agent>,
    /// Exports the node reported, newest first (metadata only; no link).
    pub exports: Vec<ExportRow>,
    /// The node's latest retention sweep.
    pub last_retention_sweep: Option<SweepRow>,
    /// While a cancelled workspace's node is kept for exports: when it will be destroyed.
    pub export_window_until: Option<i64>,
    /// Why the workspace is suspended (empty: it is not).
    pub suspensions: Vec<crate::suspension::Suspension>,
    /// Billing state (`None`: billing is off).
    pub billing: Option<crate::billing::Summary>,
    /// The node is deprovisioning or destroyed: its exports went with it, nothing is left
    /// to download.
    pub exports_destroyed: bool,
    /// Cancelling also cancels a paid subscription at Stripe, so a cancelled workspace
    /// cannot be reactivated ([`reactivate`](super::service::reactivate)).
    pub cancelling_ends_subscription: bool,
}

impl WorkspaceDetail {
    fn new(
        d: Detail,
        agents: Vec<crate::agents::Agent>,
        billing: Option<crate::billing::Summary>,
    ) -> Self {
        WorkspaceDetail {
            workspace: d.workspace,
            role: d.role,
            node: d.node,
            node_error: d.node_error,
            stale: d.stale,
            events: d.events,
            usage: d.usage,
            ai_usage: d.ai_usage,
            booking_usage: d.booking_usage,
            call_usage: d.call_usage,
            agents,
            exports: d.exports,
            last_retention_sweep: d.last_retention_sweep,
            export_window_until: d.export_window_until,
            suspensions: d.suspensions,
            billing,
            exports_destroyed: d.exports_destroyed,
            cancelling_ends_subscription: d.cancelling_ends_subscription,
        }
    }
}

/// The detail view of a workspace for a member ([`service::detail`]), with its agents and
/// its billing summary.
pub fn detail(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
) -> AppResult<WorkspaceDetail> {
    let d = service::detail(conn, &ctx(st), ws_id, user_id)?;
    let agents = crate::agents::list(conn, ws_id)?;
    let billing = crate::billing::summary(conn, st, &d.workspace, d.node.is_some())?;
    Ok(WorkspaceDetail::new(d, agents, billing))
}

// ---------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "workspaces.html")]
struct ListPage {
    user: CurrentUser,
    workspaces: Vec<(Workspace, Option<String>)>,
    /// The cursor of the next page, if there is one.
    next: Option<String>,
    /// This is a later page (not the first).
    later: bool,
    error: Option<String>,
    name: String,
    slug: String,
    /// Regions the owner chooses from, the default first (empty: no choice to make).
    regions: Vec<String>,
    /// The region picked (the form sent back after a refusal).
    region: String,
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct DetailPage {
    user: CurrentUser,
    d: WorkspaceDetail,
    /// The export window, in words ("30 days").
    window: String,
    /// Why the owner's last action was refused (the page is answered with its status).
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "node_status.html")]
struct StatusPartial {
    d: WorkspaceDetail,
}

/// `?after=<cursor>` of the list page and the API; `limit` is the API's only.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The `next` cursor of the previous page; absent: the first page.
    after: Option<String>,
    /// Workspaces on the page, 1 to 200 (API only) [default: 50].
    limit: Option<i64>,
}

/// A page of the user's workspaces and the next page's cursor.
async fn page(
    state: &State,
    uid: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<(Vec<(Workspace, Option<String>)>, Option<String>)> {
    let after = after.map(ListCursor::parse).transpose()?;
    let uid = uid.to_owned();
    let (rows, next) = db::run(&state.db, move |conn| {
        store::page_for(conn, &uid, after.as_ref(), limit)
    })
    .await?;
    Ok((rows, next.map(|c| c.to_string())))
}

pub(crate) async fn list_page(
    state: State,
    user: CurrentUser,
    q: web::Query<PageQuery>,
) -> PageResult {
    let (workspaces, next) = page(&state, &user.id, q.after.as_deref(), LIST_PAGE).await?;
    Ok(html(&ListPage {
        user,
        workspaces,
        next,
        later: q.after.is_some(),
        error: None,
        name: String::new(),
        slug: String::new(),
        regions: state.provisioner.regions().to_vec(),
        region: state
            .provisioner
            .regions()
            .first()
            .cloned()
            .unwrap_or_default(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    region: String,
}

pub(crate) async fn create_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<CreateForm>,
) -> PageResult {
    let (uid, ip, st) = (f.user.id.clone(), client_ip(&req), state.clone());
    let (name, slug) = (f.form.name.clone(), f.form.slug.clone());
    let region = f.form.region.clone();
    let res = db::run(&state.db, move |conn| {
        Ok(service::create(
            conn,
            &ctx(&st),
            &uid,
            &name,
            Some(&slug),
            Some(&region),
            &ip,
        ))
    })
    .await?;
    match res {
        Ok(ws) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/workspaces/{}", ws.id)))
            .finish()),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            let (workspaces, next) = page(&state, &f.user.id, None, LIST_PAGE).await?;
            Ok(crate::http::html_with(
                HttpResponse::build(e.status()),
                &ListPage {
                    user: f.user,
                    workspaces,
                    next,
                    later: false,
                    error: Some(e.message()),
                    name: f.form.name,
                    slug: f.form.slug,
                    regions: state.provisioner.regions().to_vec(),
                    region: f.form.region,
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn detail_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    let (uid, st, id) = (user.id.clone(), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
    let window = fmt_duration(state.config.export_window_secs);
    Ok(html(&DetailPage {
        user,
        d,
        window,
        error: None,
    }))
}

pub(crate) async fn status_partial(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    let (uid, st, id) = (user.id.clone(), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
    Ok(html(&StatusPartial { d }))
}

pub(crate) async fn console_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let (uid, ip, st, id) = (
        f.user.id.clone(),
        client_ip(&req),
        state.clone(),
        path.into_inner(),
    );
    let url = db::run(&state.db, move |conn| {
        service::console_link(conn, &ctx(&st), &id, &uid, &ip)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish())
}

/// The confirmation an owner's button sends: the typed address ("Delete now") or the
/// ticked checkbox ("Cancel workspace").
#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

/// An owner's button on the workspace page (delete, cancel, reactivate): runs `op`, then
/// back to the page. A refusal (a confirmation missing or wrong, too late to reactivate)
/// answers with the workspace page, its status and the reason, and changes nothing.
async fn owner_action(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
    op: fn(&mut DbConn, &State, &str, &str, &str, &str) -> AppResult<()>,
) -> PageResult {
    let (uid, ip, st, id) = (
        f.user.id.clone(),
        client_ip(&req),
        state.clone(),
        path.into_inner(),
    );
    let loc = format!("/workspaces/{id}");
    let confirm = f.form.confirm;
    let ws = id.clone();
    let res = db::run(&state.db, move |conn| {
        Ok(op(conn, &st, &ws, &uid, &confirm, &ip))
    })
    .await?;
    back_to_page(&state, f.user, id, res.map(|()| loc)).await
}

/// After an owner's form on the workspace page: to `Ok(location)`, or the workspace page
/// with the reason of a refusal (400, 409), nothing changed.
async fn back_to_page(
    state: &State,
    user: CurrentUser,
    id: String,
    res: AppResult<String>,
) -> PageResult {
    match res {
        Ok(loc) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, loc))
            .finish()),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            let (uid, st) = (user.id.clone(), state.clone());
            let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
            Ok(crate::http::html_with(
                HttpResponse::build(e.status()),
                &DetailPage {
                    user,
                    d,
                    window: fmt_duration(state.config.export_window_secs),
                    error: Some(e.message()),
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn delete_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
) -> PageResult {
    owner_action(state, req, f, path, |conn, st, id, uid, confirm, ip| {
        service::delete(conn, &ctx(st), id, uid, confirm, ip)
    })
    .await
}

pub(crate) async fn cancel_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
) -> PageResult {
    owner_action(state, req, f, path, |conn, st, id, uid, confirm, ip| {
        // Who may ask comes first: other members get 403 whatever they sent.
        service::owned(conn, id, uid)?;
        if confirm != CANCEL_CONFIRMED {
            return Err(AppError::invalid(
                Code::ConfirmationRequired,
                "Nothing was cancelled. Tick “I understand that my channels stop now” to cancel the workspace.",
            ));
        }
        service::cancel(conn, &ctx(st), id, uid, ip).map(|_| ())
    })
    .await
}

pub(crate) async fn reactivate_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
) -> PageResult {
    owner_action(state, req, f, path, |conn, st, id, uid, _, ip| {
        service::reactivate(conn, &ctx(st), id, uid, ip).map(|_| ())
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct RenameForm {
    #[serde(default)]
    name: String,
}

/// "Rename" on the workspace page (owners): back to the page, or the page with the reason.
pub(crate) async fn rename_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<RenameForm>,
    path: web::Path<String>,
) -> PageResult {
    let (uid, ip, id, name) = (
        f.user.id.clone(),
        client_ip(&req),
        path.into_inner(),
        f.form.name.clone(),
    );
    let ws = id.clone();
    let res = db::run(&state.db, move |conn| {
        Ok(service::rename(conn, &ws, &uid, &name, &ip))
    })
    .await?;
    let loc = format!("/workspaces/{id}");
    back_to_page(&state, f.user, id, res.map(|_| loc)).await
}

pub(crate) async fn receipt_download(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    let (uid, st, id) = (user.id.clone(), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
    let node = d.node.ok_or(AppError::NotFound)?;
    let (Some(body), Some(sig)) = (node.receipt_body, node.receipt_signature) else {
        return Err(AppError::NotFound.into());
    };
    let doc = serde_json::json!({"body": body, "signature": sig});
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"destruction-receipt-{}.json\"",
                node.id
            ),
        ))
        .json(doc))
}

// ---------------------------------------------------------------- API

/// `POST /api/v1/workspaces`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WorkspaceCreate)]
pub(crate) struct CreateBody {
    /// What people call it (1–80 characters).
    #[schema(min_length = 1, max_length = 80)]
    name: String,
    /// The workspace's address (`acme-dental`): 3–40 lowercase letters, digits or single
    /// hyphens; made from the name when left out.
    #[schema(min_length = 3, max_length = 40, pattern = "^[a-z0-9](-?[a-z0-9])+$")]
    slug: Option<String>,
    /// With billing on: the plan to check out (default: the first).
    plan: Option<String>,
    /// Where the node runs: one of `GET /api/v1/regions` (default: its first). Refused
    /// (`unknown_region`) when the control plane offers no choice.
    region: Option<String>,
}

/// A workspace as listed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WorkspaceSummary {
    id: String,
    slug: String,
    name: String,
    plan: String,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; set once the workspace is deleted or its export window is over.
    deleted_at: Option<i64>,
    /// A cancelled workspace's node is destroyed at this time (unix seconds).
    deprovision_after: Option<i64>,
    /// Its node's state (`requested`, `provisioning`, …, `healthy`, `destroyed`).
    node_state: Option<String>,
}

/// `GET /api/v1/workspaces`: a page of the caller's workspaces.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WorkspaceList {
    /// The workspaces the caller is a member of on this page: active ones first, newest
    /// first.
    workspaces: Vec<WorkspaceSummary>,
    /// Pass it as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A workspace just created.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedWorkspace {
    #[serde(flatten)]
    detail: WorkspaceDetail,
    /// With billing on: where to pay for it (null if Stripe could not make the link now:
    /// `POST /api/v1/workspaces/{id}/checkout` makes another). Absent while billing is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkout_url: Option<Option<String>>,
}

/// A workspace just cancelled or deleted.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CancelledWorkspace {
    #[serde(flatten)]
    detail: WorkspaceDetail,
    /// When the node is destroyed (unix seconds): until then
    /// `POST /api/v1/workspaces/{id}/reactivate` undoes the cancellation.
    deprovision_after: Option<i64>,
}

/// The workspaces the caller is a member of, a page at a time (keyset pagination: follow
/// `next` until it is absent).
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's workspaces and, unless it is the last, the `next` cursor.", body = WorkspaceList),
        (status = 400, description = "`after` is not a cursor this list gave (`invalid_cursor`), or `limit` is not 1 to 200 (`invalid_limit`).", body = ErrorJson),
    ))]
pub(crate) async fn api_list(
    state: State,
    user: ApiUser,
    q: web::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let limit = q.limit.unwrap_or(LIST_PAGE);
    if !(1..=LIST_PAGE_MAX).contains(&limit) {
        return Err(AppError::invalid(
            Code::InvalidLimit,
            "limit must be between 1 and 200.",
        ));
    }
    let (list, next) = page(&state, &user.id, q.after.as_deref(), limit).await?;
    let workspaces = list
        .into_iter()
        .map(|(w, node_state)| WorkspaceSummary {
            id: w.id,
            slug: w.slug,
            name: w.name,
            plan: w.plan,
            created_at: w.created_at,
            deleted_at: w.deleted_at,
            deprovision_after: w.deprovision_after,
            node_state,
        })
        .collect();
    Ok(HttpResponse::Ok().json(WorkspaceList { workspaces, next }))
}

/// Creates a workspace, the caller its owner, and starts its node (with billing on, once
/// paid).
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = CreatedWorkspace),
        (status = 400, description = "A rule is broken: the name (`invalid_name`), the address (`invalid_slug`), a region not offered (`unknown_region`).", body = ErrorJson),
        (status = 409, description = "The address is taken (`slug_taken`).", body = ErrorJson),
    ))]
pub(crate) async fn api_create(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    body: web::Json<CreateBody>,
) -> AppResult<HttpResponse> {
    let (ip, st, b) = (client_ip(&req), state.clone(), body.into_inner());
    let (uid, plan) = (user.id.clone(), b.plan.clone());
    let (ws, detail) = db::run(&state.db, move |conn| {
        let ws = service::create(
            conn,
            &ctx(&st),
            &uid,
            &b.name,
            b.slug.as_deref(),
            b.region.as_deref(),
            &ip,
        )?;
        let d = detail(conn, &st, &ws.id, &uid)?;
        Ok((ws, d))
    })
    .await?;
    let mut checkout_url = None;
    if crate::billing::is_on(&state) {
        // Best effort: without it the workspace still exists, waiting for payment, and
        // POST /api/v1/workspaces/{id}/checkout makes another link.
        checkout_url = Some(
            crate::billing::checkout_for_api(&state, &ws.id, &user.id, plan.as_deref())
                .await
                .ok(),
        );
    }
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/workspaces/{}", ws.id)))
        .json(CreatedWorkspace {
            detail,
            checkout_url,
        }))
}

/// The regions a new workspace's node can run in.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Regions {
    /// The choices, the default first; empty when there is no choice (nodes run on the
    /// control plane's machine).
    regions: Vec<String>,
}

/// The regions to choose from when creating a workspace (`region` of
/// `POST /api/v1/workspaces`).
#[utoipa::path(get, path = "/api/v1/regions", tag = "workspaces",
    responses((status = 200, description = "The regions, the default first.", body = Regions)))]
pub(crate) async fn api_regions(state: State, _user: ApiUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(Regions {
        regions: state.provisioner.regions().to_vec(),
    }))
}

/// `PATCH /api/v1/workspaces/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WorkspaceRename)]
pub(crate) struct RenameBody {
    /// The new name (1–80 characters); the address stays.
    #[schema(min_length = 1, max_length = 80)]
    name: String,
}

/// `PATCH /api/v1/workspaces/{id}` with `{"name": …}`: renames (owners); the address stays.
#[utoipa::path(patch, path = "/api/v1/workspaces/{id}", tag = "workspaces",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = RenameBody,
    responses(
        (status = 200, description = "Renamed; the address (slug) and the node's hostname are unchanged.", body = WorkspaceDetail),
        (status = 400, description = "The name breaks the rule for names (`invalid_name`).", body = ErrorJson),
        (status = 403, description = "Owners only (`owner_required`).", body = ErrorJson),
        (status = 409, description = "The workspace is cancelled or deleted (`workspace_deleted`).", body = ErrorJson),
    ))]
pub(crate) async fn api_rename(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    body: web::Json<RenameBody>,
) -> AppResult<HttpResponse> {
    let (id, ip, st) = (path.into_inner(), client_ip(&req), state.clone());
    let d = db::run(&state.db, move |conn| {
        service::rename(conn, &id, &user.id, &body.name, &ip)?;
        detail(conn, &st, &id, &user.id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(d))
}

/// A workspace: its node, timeline, usage, agents, exports, billing summary.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}", tag = "workspaces",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "The workspace.", body = WorkspaceDetail)))]
pub(crate) async fn api_get(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (st, id) = (state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &user.id)).await?;
    Ok(HttpResponse::Ok().json(d))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// Deprovision now instead of keeping the node for the export window. Cannot be undone.
    #[serde(default)]
    immediately: bool,
    /// With `immediately`: the workspace's address, as the page asks an owner to type it.
    #[serde(default)]
    confirm: String,
}

/// `DELETE /api/v1/workspaces/{id}` cancels with the export window and answers with
/// `deprovision_after` (undone with `POST …/reactivate` until then); `?immediately=true`
/// deprovisions now and, as it cannot be undone, needs `&confirm=<address>`.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}", tag = "workspaces",
    params(("id" = String, Path, description = "Workspace id"), DeleteQuery),
    responses(
        (status = 202, description = "Cancelled (or, with `immediately`, deprovisioning).", body = CancelledWorkspace),
        (status = 400, description = "`immediately` without the right `confirm` (`confirmation_required`, `confirmation_mismatch`), or a malformed query (`malformed_query`).", body = ErrorJson),
        (status = 403, description = "Only owners may (`owner_required`).", body = ErrorJson),
    ))]
pub(crate) async fn api_delete(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    q: web::Query<DeleteQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let (ip, st, id) = (client_ip(&req), state.clone(), path.into_inner());
    let detail = db::run(&state.db, move |conn| {
        if q.immediately {
            service::delete(conn, &ctx(&st), &id, &user.id, &q.confirm, &ip)?;
        } else {
            service::cancel(conn, &ctx(&st), &id, &user.id, &ip)?;
        }
        detail(conn, &st, &id, &user.id)
    })
    .await?;
    let deprovision_after = detail.workspace.deprovision_after;
    Ok(HttpResponse::Accepted().json(CancelledWorkspace {
        detail,
        deprovision_after,
    }))
}

/// `POST /api/v1/workspaces/{id}/reactivate`: undoes a cancellation during its export
/// window ([`reactivate`]) and answers with the workspace.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/reactivate", tag = "workspaces",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "Active again.", body = WorkspaceDetail),
        (status = 403, description = "Only owners may (`owner_required`).", body = ErrorJson),
        (status = 409, description = "Not cancelled, or its export window is over (`export_window_over`, `subscription_cancelled`).", body = ErrorJson),
    ))]
pub(crate) async fn api_reactivate(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (ip, st, id) = (client_ip(&req), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| {
        service::reactivate(conn, &ctx(&st), &id, &user.id, &ip)?;
        detail(conn, &st, &id, &user.id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(d))
}
