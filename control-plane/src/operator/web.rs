//! The operator console's pages: the list of every workspace and the page of one, the
//! four actions on a workspace, each a form that posts and comes back to the workspace's
//! page, and the fleet upgrade's start, halt and resume, which come back to the list.

use super::model::slug_filter;
use super::service::{self, Context};
use super::store::{self, Detail, Row};
use crate::app::{AppState, State};
use crate::http::html;
use crate::http::PageResult;
use crate::http::{client_ip, CurrentUser, Empty, OperatorForm, OperatorUser};
use crate::infra::db;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

fn context(st: &AppState) -> Context<'_> {
    Context {
        suspension: st.suspension(),
        deprovision_timeout_secs: st.config.deprovision_timeout_secs,
        reactions: &crate::app::reactions::WorkspaceReactions,
    }
}

#[derive(Template)]
#[template(path = "operator.html")]
struct ListPage {
    user: CurrentUser,
    rows: Vec<Row>,
    q: String,
    page: i64,
    more: bool,
    /// The newest fleet upgrade, in lines (`control-plane upgrade status`'s words).
    upgrade: Vec<String>,
    /// The newest upgrade's state (`running`, `halted`, `completed`), if any.
    upgrade_state: Option<String>,
    /// Why the last upgrade form was refused, in words.
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "operator_workspace.html")]
struct DetailPage {
    user: CurrentUser,
    d: Detail,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<i64>,
}

pub(crate) async fn list_page(
    state: State,
    op: OperatorUser,
    q: web::Query<ListQuery>,
) -> PageResult {
    let slug = slug_filter(&q.q);
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    list(&state, op.0, slug, page, None).await
}

async fn list(
    state: &State,
    user: CurrentUser,
    slug: String,
    page: i64,
    error: Option<String>,
) -> PageResult {
    let s = slug.clone();
    let (rows, more, upgrade, upgrade_state) = db::run(&state.db, move |conn| {
        let (rows, more) = store::list(conn, &s, page)?;
        let newest = crate::upgrades::store::latest(conn, 1)?;
        Ok((
            rows,
            more,
            crate::upgrades::service::status(conn, 1)?,
            newest.into_iter().next().map(|u| u.state),
        ))
    })
    .await?;
    let status = if error.is_some() {
        actix_web::http::StatusCode::CONFLICT
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(crate::http::html_with(
        HttpResponse::build(status),
        &ListPage {
            user,
            rows,
            q: slug,
            page,
            more,
            upgrade,
            upgrade_state,
            error,
        },
    ))
}

/// After an upgrade form: back to the list, or the list with the refusal (409).
async fn upgrade_done(state: &State, user: CurrentUser, res: Result<String, String>) -> PageResult {
    match res {
        Ok(_) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/operator"))
            .finish()),
        Err(why) => list(state, user, String::new(), 1, Some(why)).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct UpgradeForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    signature: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    batch_size: String,
}

pub(crate) async fn upgrade_start_action(state: State, f: OperatorForm<UpgradeForm>) -> PageResult {
    let form = f.form;
    let Ok(batch_size) = form.batch_size.trim().parse::<i32>() else {
        let why = "the batch size must be a whole number of nodes".to_owned();
        return upgrade_done(&state, f.user, Err(why)).await;
    };
    let release = crate::upgrades::service::Release {
        url: form.url.trim().to_owned(),
        sha256: form.sha256.trim().to_owned(),
        signature: form.signature.trim().to_owned(),
        version: form.version.trim().to_owned(),
    };
    let (key, uid) = (state.config.release_public_key.clone(), f.user.id.clone());
    let res = db::run(&state.db, move |conn| {
        crate::upgrades::service::start(conn, &release, batch_size, key.as_deref(), &uid)
    })
    .await?;
    upgrade_done(&state, f.user, res.map(|s| s.id)).await
}

pub(crate) async fn upgrade_halt_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<Empty>,
) -> PageResult {
    let (uid, ip) = (f.user.id.clone(), client_ip(&req));
    let res = db::run(&state.db, move |conn| {
        crate::upgrades::service::halt(conn, &uid, Some(&ip))
    })
    .await?;
    upgrade_done(&state, f.user, res).await
}

pub(crate) async fn upgrade_resume_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<Empty>,
) -> PageResult {
    let (uid, ip) = (f.user.id.clone(), client_ip(&req));
    let res = db::run(&state.db, move |conn| {
        crate::upgrades::service::resume(conn, &uid, Some(&ip))
    })
    .await?;
    upgrade_done(&state, f.user, res).await
}

pub(crate) async fn detail_page(
    state: State,
    op: OperatorUser,
    path: web::Path<String>,
) -> PageResult {
    let id = path.into_inner();
    let d = db::run(&state.db, move |conn| store::detail(conn, &id)).await?;
    Ok(html(&DetailPage { user: op.0, d }))
}

fn back_to(ws_id: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/operator/workspaces/{ws_id}")))
        .finish()
}

#[derive(Deserialize)]
pub(crate) struct ReasonForm {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub(crate) struct DeprovisionForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn suspend_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<ReasonForm>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, reason, ws) = (f.user.id, f.form.reason, id.clone());
    db::run(&state.db, move |conn| {
        service::suspend(conn, &context(&st), &ws, &uid, &reason, &ip)
    })
    .await?;
    Ok(back_to(&id))
}

pub(crate) async fn resume_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, ws) = (f.user.id, id.clone());
    db::run(&state.db, move |conn| {
        service::resume(conn, &context(&st), &ws, &uid, &ip)
    })
    .await?;
    Ok(back_to(&id))
}

pub(crate) async fn retry_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, ws) = (f.user.id, id.clone());
    db::run(&state.db, move |conn| {
        service::retry(conn, &context(&st), &ws, &uid, &ip)
    })
    .await?;
    Ok(back_to(&id))
}

pub(crate) async fn deprovision_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<DeprovisionForm>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, form, ws) = (f.user.id, f.form, id.clone());
    db::run(&state.db, move |conn| {
        service::force_deprovision(
            conn,
            &context(&st),
            &ws,
            &uid,
            &form.reason,
            &form.confirm,
            &ip,
        )
    })
    .await?;
    Ok(back_to(&id))
}
