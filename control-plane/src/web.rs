//! Shared web plumbing: HTML rendering, security headers (CSP without inline script),
//! body limits, vendored static assets, `/healthz`.

use crate::error::AppError;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use askama::Template;

/// Request body limit (DESIGN §6).
pub const BODY_LIMIT: usize = 1024 * 1024;

use outpost_web_assets::{HTMX_JS as HTMX, STYLESHEET as CSS};

/// Content-Security-Policy of every CP page: no inline script, no third-party origins.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Security headers for every UI/API response: the set the node console sends too
/// ([`outpost_common::headers`]) with the CP's [`CSP`]. `Cache-Control: no-store` is set
/// per page ([`html_with`]), so static assets stay cacheable.
pub fn security_headers() -> DefaultHeaders {
    outpost_common::headers::security_headers(CSP)
        .into_iter()
        .fold(DefaultHeaders::new(), DefaultHeaders::add)
}

/// JSON extractor limits and error mapping (400 `malformed_json`, 413).
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|e, _| AppError::from_json(&e).into())
}

/// Form extractor limits.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(64 * 1024)
        .error_handler(|e, _| {
            use actix_web::error::UrlencodedError as U;
            match e {
                U::Overflow { .. } => AppError::PayloadTooLarge.into(),
                _ => AppError::invalid("malformed_form", "The form could not be read.").into(),
            }
        })
}

/// Renders a template as a 200 HTML response.
pub fn html<T: Template>(t: &T) -> HttpResponse {
    html_with(HttpResponse::Ok(), t)
}

/// Renders a template with a given response builder.
pub fn html_with<T: Template>(mut b: HttpResponseBuilder, t: &T) -> HttpResponse {
    match t.render() {
        Ok(body) => b
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template render failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

async fn healthz(state: crate::app::State) -> Result<HttpResponse, AppError> {
    crate::db::run(&state.db, |conn| {
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

async fn htmx() -> HttpResponse {
    asset(HTMX, "text/javascript; charset=utf-8")
}

async fn css() -> HttpResponse {
    asset(CSS, "text/css; charset=utf-8")
}

async fn favicon() -> HttpResponse {
    asset(outpost_web_assets::FAVICON_SVG, "image/svg+xml")
}

async fn index() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/workspaces"))
        .finish()
}

/// `/`, `/healthz`, `/static/*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/healthz", web::get().to(healthz))
        .route("/static/htmx.min.js", web::get().to(htmx))
        .route("/static/outpost.css", web::get().to(css))
        .route("/static/favicon.svg", web::get().to(favicon));
}
