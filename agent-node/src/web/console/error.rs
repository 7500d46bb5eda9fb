//! The console's one error type: each variant maps to a status and a small HTML page in
//! one place. Pages never echo request input, except a message that names what the user
//! chose themselves (an upload's file name, escaped by the template); the log gets the
//! cause.
//!
//! Two renderings of the same [`ErrorView`]. [`ResponseError::error_response`] has no
//! request, so it renders the bare [`MessagePage`]: what a visitor without a session gets
//! (the 401 sign-in page, a refused export link). For a signed-in user the access guard
//! (`access::guard`), which found the session before the page ran, replaces that bare
//! page on the way out with [`ErrorView::with_navigation`]: the same status, heading and
//! message, inside the console's navigation and with a "Back" link (`access::back_from`).
//! The guard sees the error itself, not just the status: actix keeps it on the response
//! (`HttpResponse::error`), whether a page returned it or an extractor refused.

use super::access::Nav;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use std::borrow::Cow;

/// Text of the page shown for a missing, invalid, expired or replayed sign-in.
pub const SIGN_IN_MESSAGE: &str =
    "This sign-in link is invalid or expired. Open the console again from the control plane.";

/// Errors a console handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No valid session, or a sign-in link that does not verify.
    #[error("sign-in required")]
    Unauthorized,
    /// A state-changing request from another origin.
    #[error("forbidden")]
    Forbidden,
    /// The session's role does not carry the scope this route needs (see
    /// `console::access`); the page says what the scope opens.
    #[error("missing scope {}", .0.as_str())]
    MissingScope(super::access::Scope),
    /// No such page.
    #[error("not found")]
    NotFound,
    /// The request was understood but its input is wrong; the message is shown to the
    /// user as is, so it must not echo content. The one exception is the name of the file
    /// a user uploads (`console::kb::refused`): theirs, shown only to them, escaped.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// An upload or body over the stated limit; the message names the limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The node's disk (or database) is full: nothing could be saved. A 503 that says
    /// so, rather than a 500 that says nothing.
    #[error("storage full")]
    StorageFull,
    /// Anything else; details go to the log only.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::platform::store::StoreError> for ConsoleError {
    fn from(e: crate::platform::store::StoreError) -> Self {
        if e.is_full() {
            return Self::StorageFull;
        }
        Self::Internal(e.into())
    }
}

/// Content errors as pages: not found is 404, an invalid value is a 400 that quotes its
/// (safe) message, anything else is logged as a 500. Here, not in `content`: domain code
/// knows nothing of the console.
impl From<crate::domain::content::ContentError> for ConsoleError {
    fn from(e: crate::domain::content::ContentError) -> Self {
        use crate::domain::content::ContentError;
        match e {
            ContentError::NotFound => Self::NotFound,
            ContentError::Invalid(m) => Self::BadRequest(m.to_owned()),
            ContentError::Store(e) => e.into(),
            e => Self::Internal(e.into()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ConsoleError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

/// What an error page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorView {
    /// The response status.
    pub status: StatusCode,
    /// Page title and heading.
    pub title: &'static str,
    /// The paragraph.
    pub message: Cow<'static, str>,
}

impl ErrorView {
    /// The view of the error `response` carries, if it carries one: a [`ConsoleError`]'s,
    /// or for an error of actix's own (a form that does not parse, a body over the form
    /// limit) a fixed sentence for its status, so no extractor's wording reaches the page.
    /// A response without an error (a page, or a refusal rendered as a page, such as an
    /// export link's) has none.
    pub fn of<B>(response: &HttpResponse<B>) -> Option<ErrorView> {
        let error = response.error()?;
        if let Some(e) = error.as_error::<ConsoleError>() {
            return Some(e.view());
        }
        let (title, message) = match response.status() {
            StatusCode::BAD_REQUEST => (
                "Check your input",
                "This request could not be read. Go back, check the form and try again.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "Too large",
                "This request is larger than the console accepts. Shorten the text and try again.",
            ),
            StatusCode::NOT_FOUND => NOT_FOUND,
            _ => return None,
        };
        Some(ErrorView {
            status: response.status(),
            title,
            message: Cow::Borrowed(message),
        })
    }

    /// Whether a signed-in user gets this page inside the navigation: every error but the
    /// 401, which means there is no session to show a navigation for.
    pub fn keeps_navigation(&self) -> bool {
        self.status != StatusCode::UNAUTHORIZED
    }

    /// The page without navigation.
    pub fn bare(&self) -> HttpResponse {
        MessagePage {
            title: self.title,
            message: &self.message,
        }
        .respond(self.status)
    }

    /// The page inside the console's navigation (`nav`, the session's), with a "Back" link
    /// to `back`.
    pub fn with_navigation(&self, nav: Nav, back: &str) -> HttpResponse {
        let page = ErrorPage {
            nav: Nav { done: None, ..nav },
            title: self.title,
            message: &self.message,
            back,
        };
        respond(page.render(), self.status)
    }
}

const NOT_FOUND: (&str, &str) = ("Not found", "There is no such page on this node.");

/// An error page for a signed-in user: [`MessagePage`] with the navigation and a way back.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    title: &'a str,
    message: &'a str,
    /// Where "Back" goes: a page of this console (a path built from declared routes).
    back: &'a str,
}

fn respond(html: askama::Result<String>, status: StatusCode) -> HttpResponse {
    match html {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "rendering a message page failed");
            HttpResponse::build(status).finish()
        }
    }
}

/// A page with a heading and one paragraph.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    /// Page title and heading.
    pub title: &'a str,
    /// The message.
    pub message: &'a str,
}

impl MessagePage<'_> {
    /// Renders the page as a response with `status`.
    pub fn respond(&self, status: StatusCode) -> HttpResponse {
        respond(self.render(), status)
    }
}

impl ConsoleError {
    /// What its page says. Logs nothing: [`ResponseError::error_response`] logs an
    /// internal error's cause once, when the error is answered.
    pub fn view(&self) -> ErrorView {
        let (title, message): (&'static str, Cow<'static, str>) = match self {
            ConsoleError::Unauthorized => ("Sign-in required", SIGN_IN_MESSAGE.into()),
            ConsoleError::Forbidden => (
                "Request refused",
                "This request did not come from this console. Go back and try again.".into(),
            ),
            ConsoleError::MissingScope(scope) => (
                "Not allowed for your role",
                format!(
                    "Your role in this workspace does not include {}. Ask a workspace owner or admin.",
                    scope.what()
                )
                .into(),
            ),
            ConsoleError::NotFound => (NOT_FOUND.0, NOT_FOUND.1.into()),
            ConsoleError::BadRequest(m) => ("Check your input", m.clone().into()),
            ConsoleError::TooLarge(m) => ("Too large", m.clone().into()),
            ConsoleError::StorageFull => (
                "Storage full",
                "This node's storage is full, so nothing could be saved. Free space (delete old knowledge-base documents or exports, or grow the disk) and try again; what was saved before is safe.".into(),
            ),
            ConsoleError::Internal(_) => (
                "Something went wrong",
                "The node could not complete this request. Try again in a moment.".into(),
            ),
        };
        ErrorView {
            status: self.status_code(),
            title,
            message,
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Unauthorized => StatusCode::UNAUTHORIZED,
            ConsoleError::Forbidden | ConsoleError::MissingScope(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ConsoleError::StorageFull => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::Internal(e) = self {
            tracing::error!(error = %format!("{e:#}"), "console request failed");
        }
        self.view().bare()
    }
}
