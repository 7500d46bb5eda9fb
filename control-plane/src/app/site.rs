//! The site's own routes: `/` (to the workspaces), `/healthz`, the vendored static assets.

use crate::error::Code;
use actix_web::http::header;
use actix_web::HttpResponse;
use outpost_web_assets::{HTMX_JS as HTMX, STYLESHEET as CSS};

/// `/healthz`: 200 while the database answers, 503 with words as soon as the probe
/// (`workers`, every half second, bounded) or any request found it unreachable. It reads
/// that state and touches nothing, so it answers at once whatever the database does (it
/// used to wait out the pool's 30 s and then answer 500).
pub(crate) async fn healthz(state: super::State) -> HttpResponse {
    let version = env!("CARGO_PKG_VERSION");
    if crate::infra::db::health(&state.db).is_down() {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .json(serde_json::json!({
                "status": "unavailable",
                "database": "unreachable",
                "code": Code::DatabaseUnavailable.as_str(),
                "message": "The control plane cannot reach its database: nothing can be \
                            read or changed until it is back. The log says why.",
                "version": version,
            }));
    }
    HttpResponse::Ok()
        .json(serde_json::json!({"status": "ok", "database": "ok", "version": version}))
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
