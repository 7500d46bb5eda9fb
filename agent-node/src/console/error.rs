//! The console's one error type: each variant maps to a status and a small HTML page in
//! one place. Pages never echo request input; the log gets the cause.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

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
    /// user as is, so it must not echo content.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// An upload or body over the stated limit; the message names the limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Anything else; details go to the log only.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<actix_web::error::BlockingError> for ConsoleError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {e}"))
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
        match self.render() {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(e) => {
                tracing::error!(error = %e, "rendering a message page failed");
                HttpResponse::build(status).finish()
            }
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
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            ConsoleError::Unauthorized => ("Sign-in required", SIGN_IN_MESSAGE),
            ConsoleError::Forbidden => (
                "Request refused",
                "This request did not come from this console. Go back and try again.",
            ),
            ConsoleError::MissingScope(scope) => {
                return MessagePage {
                    title: "Not allowed for your role",
                    message: &format!(
                        "Your role in this workspace does not include {}. Ask a workspace owner or admin.",
                        scope.what()
                    ),
                }
                .respond(self.status_code())
            }
            ConsoleError::NotFound => ("Not found", "There is no such page on this node."),
            ConsoleError::BadRequest(m) => ("Check your input", m.as_str()),
            ConsoleError::TooLarge(m) => ("Too large", m.as_str()),
            ConsoleError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "console request failed");
                (
                    "Something went wrong",
                    "The node could not complete this request. Try again in a moment.",
                )
            }
        };
        MessagePage { title, message }.respond(self.status_code())
    }
}
