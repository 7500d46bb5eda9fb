//! Rendering and the listeners' shared settings: HTML pages, the error page, security
//! headers (CSP without inline script), body limits.

use crate::error::{AppError, Code};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::ResponseError;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use askama::Template;
use std::fmt;

/// Request body limit (DESIGN §6).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Content-Security-Policy of every CP page: no inline script, no third-party origins.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Security headers for every UI/API response: the set the node console sends too
/// ([`outpost_common::headers`]) with the CP's [`CSP`]. `Cache-Control: no-store` is set
/// per page ([`html_with`]), so static assets stay cacheable. With `https` (the public
/// URL is https, whether TLS ends here or at a reverse proxy) every answer also carries
/// [`HSTS`].
pub fn security_headers(https: bool) -> DefaultHeaders {
    let headers = outpost_common::headers::security_headers(CSP)
        .into_iter()
        .fold(DefaultHeaders::new(), DefaultHeaders::add);
    if https {
        headers.add(("Strict-Transport-Security", HSTS))
    } else {
        headers
    }
}

/// `Strict-Transport-Security` of the UI when its public URL is https: two years, and the
/// subdomains too (the CP's own domain; nodes live under `nodes_domain`, which serves
/// HSTS of its own). Browsers ignore it over plain HTTP, so it is sent only when the
/// public URL says https, where a browser reaches the UI over TLS.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// JSON extractor limits and error mapping (400 `malformed_json`, 413).
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|e, _| AppError::from_json(&e).into())
}

/// Query-string errors answer like body errors: the JSON error on the API and the
/// gateway, the error page on pages (not actix's plain-text default).
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|_, req| {
        let e = AppError::invalid(
            Code::MalformedQuery,
            "The query string could not be read: check the parameters and their values.",
        );
        if req.path().starts_with("/api/") || req.path().starts_with("/v1/") {
            e.into()
        } else {
            PageError(e).into()
        }
    })
}

/// Form extractor limits.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(64 * 1024)
        .error_handler(|e, _| {
            use actix_web::error::UrlencodedError as U;
            match e {
                U::Overflow { .. } => AppError::PayloadTooLarge.into(),
                _ => AppError::invalid(Code::MalformedForm, "The form could not be read.").into(),
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

/// An [`AppError`] rendered as an HTML page, for the browser UI.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<diesel::result::Error> for PageError {
    fn from(e: diesel::result::Error) -> Self {
        Self(e.into())
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        if matches!(self.0, AppError::Unauthorized(_)) {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/signin"))
                .finish();
        }
        let mut b = HttpResponse::build(self.0.status());
        self.0.apply_headers(&mut b);
        let page = ErrorPage {
            status: self.0.status().as_u16(),
            code: self.0.code(),
            message: self.0.message(),
        };
        html_with(b, &page)
    }
}

/// Page handler result.
pub type PageResult = Result<HttpResponse, PageError>;
