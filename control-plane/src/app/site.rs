//! The site's own routes: `/` (to the workspaces), `/healthz`, the vendored static assets.

use crate::error::AppError;
use actix_web::http::header;
use actix_web::HttpResponse;
use outpost_web_assets::{HTMX_JS as HTMX, STYLESHEET as CSS};

pub(crate) async fn healthz(state: super::State) -> Result<HttpResponse, AppError> {
    crate::infra::db::run(&state.db, |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1").execute(conn)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})))
}

fn asset(body: &'static [u8], ctype: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

pub(crate) async fn htmx() -> HttpResponse {
    asset(HTMX, "text/javascript; charset=utf-8")
}

pub(crate) async fn css() -> HttpResponse {
    asset(CSS, "text/css; charset=utf-8")
}

pub(crate) async fn favicon() -> HttpResponse {
    asset(outpost_web_assets::FAVICON_SVG, "image/svg+xml")
}

pub(crate) async fn index() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/workspaces"))
        .finish()
}
