//! One error type for the control plane. Each variant maps, in one place, to an HTTP
//! status, a stable snake_case code clients can match on, and a user message. The cause
//! goes to the log only, and never carries request bodies, tokens or secrets.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use outpost_protocol::ErrorBody;
use std::fmt;

macro_rules! codes {
    ($($variant:ident => $code:literal,)*) => {
        /// The stable snake_case codes clients can match on (`{"code": …}` in JSON
        /// errors, shown on error pages). Adding one is adding a line here; changing one
        /// breaks clients.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $(#[doc = $code] $variant,)*
        }

        impl Code {
            /// Every code.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// As clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }
        }
    };
}

codes! {
    AccountSidRequired => "account_sid_required",
    AdminRequired => "admin_required",
    AlreadyDeprovisioned => "already_deprovisioned",
    AlreadyMember => "already_member",
    AlreadyOwner => "already_owner",
    AlreadySubscribed => "already_subscribed",
    AlreadySuspended => "already_suspended",
    BadCertificate => "bad_certificate",
    BaseUrlRequired => "base_url_required",
    CertificateFresh => "certificate_fresh",
    CertificateRevoked => "certificate_revoked",
    CertificateUnknown => "certificate_unknown",
    ClientCertificateRequired => "client_certificate_required",
    ClockSkew => "clock_skew",
    ConfirmationMismatch => "confirmation_mismatch",
    ConfirmationRequired => "confirmation_required",
    CsrfFailed => "csrf_failed",
    DatabaseUnavailable => "database_unavailable",
    EmailTaken => "email_taken",
    ExportWindowOver => "export_window_over",
    InvalidAgeRecipient => "invalid_age_recipient",
    InvalidAgent => "invalid_agent",
    InvalidApiToken => "invalid_api_token",
    InvalidBootstrapToken => "invalid_bootstrap_token",
    InvalidCounts => "invalid_counts",
    InvalidCsr => "invalid_csr",
    InvalidCursor => "invalid_cursor",
    InvalidEmail => "invalid_email",
    InvalidEmailChangeLink => "invalid_email_change_link",
    InvalidLimit => "invalid_limit",
    InvalidMagicLink => "invalid_magic_link",
    InvalidName => "invalid_name",
    InvalidReceipt => "invalid_receipt",
    InvalidRole => "invalid_role",
    InvalidSecret => "invalid_secret",
    InvalidSeq => "invalid_seq",
    InvalidSession => "invalid_session",
    InvalidSlug => "invalid_slug",
    InvalidText => "invalid_text",
    InvalidTokenExpiry => "invalid_token_expiry",
    InvalidTokenName => "invalid_token_name",
    MalformedEvent => "malformed_event",
    MalformedForm => "malformed_form",
    MalformedJson => "malformed_json",
    MalformedQuery => "malformed_query",
    MissingApiToken => "missing_api_token",
    NoNode => "no_node",
    NodeNotFailed => "node_not_failed",
    NodeNotReady => "node_not_ready",
    NotSignedIn => "not_signed_in",
    NotSubscribed => "not_subscribed",
    NotSuspended => "not_suspended",
    OriginMismatch => "origin_mismatch",
    OriginMissing => "origin_missing",
    OwnRole => "own_role",
    OwnerCannotLeave => "owner_cannot_leave",
    OwnerRequired => "owner_required",
    PhoneNumberIdRequired => "phone_number_id_required",
    ReasonRequired => "reason_required",
    ReasonTooLong => "reason_too_long",
    ReceiptRequired => "receipt_required",
    RenewalTooSoon => "renewal_too_soon",
    RetryLater => "retry_later",
    SessionExpired => "session_expired",
    SessionForAnotherWorkspace => "session_for_another_workspace",
    SlugTaken => "slug_taken",
    SoleOwner => "sole_owner",
    SubscriptionCancelled => "subscription_cancelled",
    TokenExpired => "token_expired",
    TokenReadOnly => "token_read_only",
    TokenRevoked => "token_revoked",
    TooManyAgents => "too_many_agents",
    UnknownPlan => "unknown_plan",
    UnknownRegion => "unknown_region",
    UnknownSecretKind => "unknown_secret_kind",
    UnsupportedContentType => "unsupported_content_type",
    UrlNotAllowed => "url_not_allowed",
    WorkspaceClosed => "workspace_closed",
    WorkspaceDeleted => "workspace_deleted",
    ProviderError => "provider_error",
    ProviderRateLimited => "provider_rate_limited",
    ProviderUnreachable => "provider_unreachable",
    SecretInvalid => "secret_invalid",
    SignatureMissingTimestamp => "signature_missing_timestamp",
    SignatureMissingV1 => "signature_missing_v1",
    SignatureMismatch => "signature_mismatch",
    SignatureOutsideTolerance => "signature_outside_tolerance",
    // Of the variants without a code of their own.
    NotFound => "not_found",
    PayloadTooLarge => "payload_too_large",
    RateLimited => "rate_limited",
    RequestTimeout => "request_timeout",
    InternalError => "internal_error",
}

/// Control-plane error.
#[derive(Debug)]
pub enum AppError {
    /// 400 with a code and message.
    BadRequest(Code, String),
    /// 401: no or invalid credentials.
    Unauthorized(Code),
    /// 403: authenticated but refused.
    Forbidden(Code),
    /// 404: missing, or not visible to this user (non-members get 404, not 403).
    NotFound,
    /// 409 with a code and message.
    Conflict(Code, String),
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 429 with the seconds to wait.
    RateLimited(u64),
    /// 503: the database cannot be reached (the pool could not hand out a connection in
    /// time, or the connection was lost). The cause goes to the database's health, which
    /// logs it once per outage (`infra::db::health`); clients are told to retry.
    DatabaseUnavailable(anyhow::Error),
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
    pub fn invalid(code: Code, msg: impl Into<String>) -> Self {
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
            AppError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(c, _) | AppError::Conflict(c, _) => c.as_str(),
            AppError::Unauthorized(c) | AppError::Forbidden(c) => c.as_str(),
            AppError::NotFound => "not_found",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::RateLimited(_) => "rate_limited",
            AppError::DatabaseUnavailable(_) => Code::DatabaseUnavailable.as_str(),
            AppError::Internal(_) => "internal_error",
        }
    }

    /// User-facing message.
    pub fn message(&self) -> String {
        match self {
            AppError::BadRequest(_, m) | AppError::Conflict(_, m) => m.clone(),
            AppError::Unauthorized(Code::TokenRevoked) => {
                "This API token was revoked. Create a new one at /account/tokens.".into()
            }
            AppError::Unauthorized(Code::TokenExpired) => {
                "This API token has expired. Create a new one at /account/tokens.".into()
            }
            AppError::Forbidden(Code::TokenReadOnly) => {
                "This API token is read-only: it may only read (GET).".into()
            }
            AppError::Unauthorized(_) => {
                "Sign in again: your credentials are missing, invalid or expired.".into()
            }
            AppError::Forbidden(Code::OwnerRequired) => {
                "Only the owner of this workspace can do this.".into()
            }
            AppError::Forbidden(Code::AdminRequired) => {
                "Only the owner and admins of this workspace can do this.".into()
            }
            AppError::Forbidden(_) => "You are not allowed to do this.".into(),
            AppError::NotFound => "Not found.".into(),
            AppError::PayloadTooLarge => "The request body is larger than the 1 MiB limit.".into(),
            AppError::RateLimited(s) => format!("Too many attempts. Try again in {s} seconds."),
            AppError::DatabaseUnavailable(_) => DATABASE_UNAVAILABLE.into(),
            AppError::Internal(_) => "Something went wrong on our side. It has been logged.".into(),
        }
    }

    /// For the command line, where whoever runs the command runs the service: a refusal
    /// keeps its message, an internal error its cause, which the CLI prints and logs. (The
    /// web's "It has been logged" would be untrue there, and the cause lost.)
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            AppError::Internal(e) | AppError::DatabaseUnavailable(e) => e,
            other => anyhow::anyhow!(other.message()),
        }
    }

    pub(crate) fn log(&self) {
        match self {
            AppError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "internal error"),
            // Logged by the database's health, once per outage and cause, not per request.
            AppError::DatabaseUnavailable(e) => {
                tracing::debug!(error = %format!("{e:#}"), "database unavailable")
            }
            _ => {}
        }
    }

    pub(crate) fn apply_headers(&self, b: &mut actix_web::HttpResponseBuilder) {
        match self {
            AppError::RateLimited(s) => {
                b.insert_header((header::RETRY_AFTER, s.to_string()));
            }
            AppError::DatabaseUnavailable(_) => {
                b.insert_header((header::RETRY_AFTER, RETRY_DATABASE_SECS.to_string()));
            }
            _ => {}
        }
    }

    /// Maps an actix JSON extractor error to 400 `malformed_json` / 413.
    pub fn from_json(e: &actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as J;
        match e {
            J::Overflow { .. } | J::OverflowKnownLength { .. } => AppError::PayloadTooLarge,
            J::ContentType => AppError::invalid(
                Code::UnsupportedContentType,
                "Send the body as application/json.",
            ),
            _ => AppError::invalid(
                Code::MalformedJson,
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
            // The safety net behind `http::text`: PostgreSQL refuses a NUL in TEXT
            // (SQLSTATE 22021, "invalid byte sequence for encoding \"UTF8\": 0x00"). The
            // request is at fault, not the server.
            diesel::result::Error::DatabaseError(_, ref info) if is_nul_in_text(info.message()) => {
                AppError::invalid(Code::InvalidText, NUL_IN_TEXT)
            }
            lost if is_connection_lost(&lost) => AppError::DatabaseUnavailable(lost.into()),
            other => AppError::Internal(other.into()),
        }
    }
}

/// The refusal of a NUL character (U+0000) in any text: at the edge (`http::text`) and
/// from the database.
pub const NUL_IN_TEXT: &str = "The request holds a NUL character (U+0000) in a text. \
     No name or text may contain one: remove it and try again.";

/// Whether a database error message is PostgreSQL's refusal of a NUL byte in text.
fn is_nul_in_text(message: &str) -> bool {
    message.contains("invalid byte sequence") && message.contains("0x00")
}

/// The answer while the database cannot be reached.
pub const DATABASE_UNAVAILABLE: &str =
    "The database cannot be reached at the moment. Try again in a few seconds.";

/// `Retry-After` of a 503 `database_unavailable`.
const RETRY_DATABASE_SECS: u64 = 5;

/// Whether a query failed because its connection to the database was lost (PostgreSQL:
/// the server went away or closed it), rather than for anything in the query.
/// `UnableToSendCommand` also covers a query PostgreSQL cannot take (too many
/// parameters), whose message does not speak of the connection.
fn is_connection_lost(e: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind as K;
    match e {
        diesel::result::Error::DatabaseError(K::ClosedConnection, _) => true,
        diesel::result::Error::DatabaseError(K::UnableToSendCommand, info) => {
            let m = info.message();
            m.contains("connection") || m.contains("server closed")
        }
        _ => false,
    }
}

/// The pool's only error: no connection within its wait (the database is away, or every
/// connection stayed busy that long).
impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        AppError::DatabaseUnavailable(e.into())
    }
}

#[cfg(test)]
mod code_tests {
    use super::{AppError, Code};

    #[test]
    fn postgresql_refusing_a_nul_byte_is_a_400_invalid_text() {
        struct Info;
        impl diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                "invalid byte sequence for encoding \"UTF8\": 0x00"
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                None
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        let e: AppError = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(Info),
        )
        .into();
        assert_eq!(e.status(), actix_web::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.code(), "invalid_text");
    }

    #[test]
    fn codes_are_unique_snake_case_words() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
        }
    }
}
