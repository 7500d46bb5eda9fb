//! The operator console's pages: the list of every workspace and the page of one, and the
//! four actions, each a form that posts and comes back to the workspace's page.

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
    let s = slug.clone();
    let (rows, more, upgrade) = db::run(&state.db, move |conn| {
        let (rows, more) = store::list(conn, &s, page)?;
        Ok((rows, more, crate::upgrades::service::status(conn, 1)?))
    })
    .await?;
    Ok(html(&ListPage {
        user: op.0,
        rows,
        q: slug,
        page,
        more,
        upgrade,
    }))
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
