//! One error type for the control plane. Each variant maps, in one place, to an HTTP
//! status, a stable snake_case code clients can match on, and a user message. The cause
//! goes to the log only, and never carries request bodies, tokens or secrets.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use outpost_protocol::ErrorBody;
use std::fmt;

/// Control-plane error.
#[derive(Debug)]
pub enum AppError {
    /// 400 with a code and message.
    BadRequest(&'static str, String),
    /// 401: no or invalid credentials.
    Unauthorized(&'static str),
    /// 403: authenticated but refused.
    Forbidden(&'static str),
    /// 404: missing, or not visible to this user (non-members get 404, not 403).
    NotFound,
    /// 409 with a code and message.
    Conflict(&'static str, String),
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 429 with the seconds to wait.
    RateLimited(u64),
    /// 500; the cause is logged, the user sees a generic message.
    Internal(anyhow::Error),
}

/// Result alias.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// Wraps an internal error.
    pub fn internal(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }

    /// Shorthand for a validation failure.
    pub fn invalid(code: &'static str, msg: impl Into<String>) -> Self {
        Self::BadRequest(code, msg.into())
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(..) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(..) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(c, _) | AppError::Conflict(c, _) => c,
            AppError::Unauthorized(c) | AppError::Forbidden(c) => c,
            AppError::NotFound => "not_found",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::RateLimited(_) => "rate_limited",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// User-facing message.
    pub fn message(&self) -> String {
        match self {
            AppError::BadRequest(_, m) | AppError::Conflict(_, m) => m.clone(),
            AppError::Unauthorized(_) => {
                "Sign in again: your credentials are missing, invalid or expired.".into()
            }
            AppError::Forbidden("owner_required") => {
                "Only the owner of this workspace can do this.".into()
            }
            AppError::Forbidden("admin_required") => {
                "Only the owner and admins of this workspace can do this.".into()
            }
            AppError::Forbidden(_) => "You are not allowed to do this.".into(),
            AppError::NotFound => "Not found.".into(),
            AppError::PayloadTooLarge => "The request body is larger than the 1 MiB limit.".into(),
            AppError::RateLimited(s) => format!("Too many attempts. Try again in {s} seconds."),
            AppError::Internal(_) => "Something went wrong on our side. It has been logged.".into(),
        }
    }

    /// For the command line, where whoever runs the command runs the service: a refusal
    /// keeps its message, an internal error its cause, which the CLI prints and logs. (The
    /// web's "It has been logged" would be untrue there, and the cause lost.)
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            AppError::Internal(e) => e,
            other => anyhow::anyhow!(other.message()),
        }
    }

    pub(crate) fn log(&self) {
        if let AppError::Internal(e) = self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
    }

    pub(crate) fn apply_headers(&self, b: &mut actix_web::HttpResponseBuilder) {
        if let AppError::RateLimited(s) = self {
            b.insert_header((header::RETRY_AFTER, s.to_string()));
        }
    }

    /// Maps an actix JSON extractor error to 400 `malformed_json` / 413.
    pub fn from_json(e: &actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as J;
        match e {
            J::Overflow { .. } | J::OverflowKnownLength { .. } => AppError::PayloadTooLarge,
            J::ContentType => AppError::invalid(
                "unsupported_content_type",
                "Send the body as application/json.",
            ),
            _ => AppError::invalid(
                "malformed_json",
                "The request body is not valid JSON for this endpoint.",
            ),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl std::error::Error for AppError {}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut b = HttpResponse::build(self.status());
        self.apply_headers(&mut b);
        b.json(ErrorBody {
            code: self.code().into(),
            message: self.message(),
        })
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => AppError::NotFound,
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        AppError::Internal(e.into())
    }
}
