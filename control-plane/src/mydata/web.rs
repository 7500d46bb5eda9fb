//! The "my data" page, its JSON download and the account closure form.

use super::service::{close_account, collect};
use crate::accounts::SESSION_COOKIE;
use crate::app::State;
use crate::error::{AppError, Code};
use crate::http::PageResult;
use crate::http::{CsrfForm, CurrentUser};
use crate::infra::db;
use actix_web::http::header;
use actix_web::HttpResponse;
use askama::Template;

#[derive(Template)]
#[template(path = "mydata.html")]
struct MyDataPage {
    user: CurrentUser,
    pretty: String,
    error: Option<String>,
}

/// The page, with the refusal of a closure (and its status) if there was one.
async fn render(state: &State, user: CurrentUser, error: Option<AppError>) -> PageResult {
    let uid = user.id.clone();
    let doc = db::run(&state.db, move |conn| collect(conn, &uid)).await?;
    let pretty = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let status = error
        .as_ref()
        .map_or(actix_web::http::StatusCode::OK, AppError::status);
    Ok(crate::http::html_with(
        HttpResponse::build(status),
        &MyDataPage {
            user,
            pretty,
            error: error.map(|e| e.message()),
        },
    ))
}

pub(crate) async fn page(state: State, user: CurrentUser) -> PageResult {
    render(&state, user, None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct CloseForm {
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn close(state: State, f: CsrfForm<CloseForm>) -> PageResult {
    if !f.form.confirm.trim().eq_ignore_ascii_case(&f.user.email) {
        let e = AppError::invalid(
            Code::ConfirmationMismatch,
            "Type your email address to confirm that you want to close your account.",
        );
        return render(&state, f.user, Some(e)).await;
    }
    let uid = f.user.id.clone();
    let res = db::run(&state.db, move |conn| Ok(close_account(conn, &uid))).await?;
    match res {
        Ok(()) => {
            let gone = actix_web::cookie::Cookie::build(SESSION_COOKIE, "")
                .path("/")
                .http_only(true)
                .max_age(actix_web::cookie::time::Duration::ZERO)
                .finish();
            Ok(HttpResponse::SeeOther()
                .cookie(gone)
                .insert_header((header::LOCATION, "/signin"))
                .finish())
        }
        Err(e @ AppError::Conflict(..)) => render(&state, f.user, Some(e)).await,
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn download(state: State, user: CurrentUser) -> PageResult {
    let uid = user.id.clone();
    let doc = db::run(&state.db, move |conn| collect(conn, &uid)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"outpost-control-plane-data.json\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(doc))
}
