//! The node's own JSON API under `/api/v1`: conversations, messages, contacts,
//! knowledge-base documents and exports, for the customer's own systems — served by the
//! node, so the data goes from the node to the customer and never through the CP.
//!
//! Authentication is a node API token (`Authorization: Bearer onat_…`, made in the
//! console under Integrations, `domain::api_tokens`). As in the console, one table,
//! [`ROUTES`], says what every route needs, and one guard ([`guard`]) enforces it before
//! any handler or extractor reads the request — so a refused upload is never read. The
//! OpenAPI document ([`openapi`]) is served at `/api/v1/openapi.json`; a test checks that
//! it and the table list the same routes.
//!
//! Errors are JSON `{"code", "message"}` ([`ApiError`]): match on `code`.

pub mod contacts;
pub mod conversations;
pub mod exports;
pub mod kb;
pub mod openapi;
#[cfg(test)]
mod tests;

use crate::domain::api_tokens::{ApiScope, ApiTokens, Refusal, TokenInfo};
use crate::web::console::ConsoleState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::future::{ready, Ready};
use std::sync::LazyLock;

/// Largest JSON body, bytes.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 200;

/// Every error code the API answers with. Stable: clients match on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Something failed on the node; the cause is logged, never shown.
    InternalError,
    /// The token is not one of this node's.
    InvalidApiToken,
    /// A field or the query breaks a rule; the message says which.
    InvalidInput,
    /// The body is not the JSON this route takes.
    MalformedJson,
    /// No `Authorization: Bearer` header.
    MissingApiToken,
    /// The token lacks the scope this route needs; the message names it.
    MissingScope,
    /// No such object or route.
    NotFound,
    /// The body is over the route's limit.
    PayloadTooLarge,
    /// The node's disk is full: nothing was saved.
    StorageFull,
    /// The token is past its expiry.
    TokenExpired,
    /// The token was revoked.
    TokenRevoked,
}

impl Code {
    /// As written in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InternalError => "internal_error",
            Code::InvalidApiToken => "invalid_api_token",
            Code::InvalidInput => "invalid_input",
            Code::MalformedJson => "malformed_json",
            Code::MissingApiToken => "missing_api_token",
            Code::MissingScope => "missing_scope",
            Code::NotFound => "not_found",
            Code::PayloadTooLarge => "payload_too_large",
            Code::StorageFull => "storage_full",
            Code::TokenExpired => "token_expired",
            Code::TokenRevoked => "token_revoked",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Code::InvalidApiToken
            | Code::MissingApiToken
            | Code::TokenExpired
            | Code::TokenRevoked => StatusCode::UNAUTHORIZED,
            Code::InvalidInput | Code::MalformedJson => StatusCode::BAD_REQUEST,
            Code::MissingScope => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::StorageFull => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An API error: a code and a message for people. The message never quotes content.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong.
    pub code: Code,
    /// For people; may change.
    pub message: String,
}

impl ApiError {
    /// An error with its message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `not_found`.
    pub fn not_found() -> Self {
        Self::new(Code::NotFound, "There is no such object.")
    }

    /// `invalid_input` with a message naming the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidInput, message)
    }

    /// `internal_error`; the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "API request failed");
        Self::new(
            Code::InternalError,
            "Something failed on the node; try again.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::UNAUTHORIZED {
            r.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        r.json(serde_json::json!({"code": self.code.as_str(), "message": self.message}))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::domain::content::ContentError> for ApiError {
    fn from(e: crate::domain::content::ContentError) -> Self {
        use crate::domain::content::ContentError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::Invalid(m) => Self::invalid(m),
            E::Store(s) if s.is_full() => Self::new(
                Code::StorageFull,
                "The node's disk is full: nothing was saved.",
            ),
            other => Self::internal(other),
        }
    }
}

/// The JSON body of every error, as the document describes it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorJson {
    /// Stable: match on it.
    pub code: Code,
    /// For people; may change.
    pub message: String,
}

/// One API route: method, pattern as registered, and the scope it needs (`None`:
/// public, the OpenAPI document only).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `GET`, `POST`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The full pattern (`/api/v1/contacts/{id}`).
    pub pattern: &'static str,
    /// What a token needs.
    pub scope: Option<ApiScope>,
}

const fn route(method: &'static str, pattern: &'static str, scope: ApiScope) -> Route {
    Route {
        method,
        pattern,
        scope: Some(scope),
    }
}

/// Every API route and the scope it needs.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: "/api/v1/openapi.json",
        scope: None,
    },
    route("GET", "/api/v1/conversations", ApiScope::ConversationsRead),
    route(
        "GET",
        "/api/v1/conversations/{id}",
        ApiScope::ConversationsRead,
    ),
    route(
        "GET",
        "/api/v1/conversations/{id}/messages",
        ApiScope::ConversationsRead,
    ),
    route(
        "POST",
        "/api/v1/conversations/{id}/messages",
        ApiScope::MessagesWrite,
    ),
    route("GET", "/api/v1/contacts", ApiScope::ContactsRead),
    route("GET", "/api/v1/contacts/{id}", ApiScope::ContactsRead),
    route("PATCH", "/api/v1/contacts/{id}", ApiScope::ContactsWrite),
    route("GET", "/api/v1/kb/documents", ApiScope::KbRead),
    route("POST", "/api/v1/kb/documents", ApiScope::KbWrite),
    route("DELETE", "/api/v1/kb/documents/{id}", ApiScope::KbWrite),
    route("POST", "/api/v1/exports", ApiScope::ExportsCreate),
    route("GET", "/api/v1/exports/{id}", ApiScope::ExportsCreate),
];

static MATCHERS: LazyLock<Vec<(Route, ResourceDef)>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|r| (*r, ResourceDef::new(r.pattern)))
        .collect()
});

/// The routes, all behind the guard. Configure before the console, whose scope takes
/// every path no earlier service matched.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(guard))
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_JSON_BYTES)
                    .error_handler(|e, _| json_error(e).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|_, _| {
                ApiError::invalid("The query is not what this route takes.").into()
            }))
            .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::not_found().into()))
            .route("/openapi.json", web::get().to(openapi::document))
            .route("/conversations", web::get().to(conversations::list))
            .route("/conversations/{id}", web::get().to(conversations::get))
            .route(
                "/conversations/{id}/messages",
                web::get().to(conversations::messages),
            )
            .route(
                "/conversations/{id}/messages",
                web::post().to(conversations::reply),
            )
            .route("/contacts", web::get().to(contacts::list))
            .route("/contacts/{id}", web::get().to(contacts::get))
            .route("/contacts/{id}", web::patch().to(contacts::update))
            .route("/kb/documents", web::get().to(kb::list))
            .route("/kb/documents", web::post().to(kb::upload))
            .route("/kb/documents/{id}", web::delete().to(kb::delete))
            .route("/exports", web::post().to(exports::create))
            .route("/exports/{id}", web::get().to(exports::get))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::new(Code::NotFound, "There is no such route."))
            })),
    );
}

fn json_error(e: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as J;
    match e {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => ApiError::new(
            Code::PayloadTooLarge,
            format!("The body is over {MAX_JSON_BYTES} bytes."),
        ),
        J::ContentType => ApiError::new(
            Code::MalformedJson,
            "Send the body as JSON (Content-Type: application/json).",
        ),
        J::Deserialize(d) => ApiError::new(
            Code::MalformedJson,
            // serde's message names the field and the expected type, never the value.
            format!(
                "The body is not what this route takes: {}",
                d.classify_msg()
            ),
        ),
        _ => ApiError::new(Code::MalformedJson, "The body could not be read."),
    }
}

trait Classify {
    fn classify_msg(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_msg(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a field is missing, unknown or of the wrong type",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "it is not valid JSON"
            }
            serde_json::error::Category::Io => "it could not be read",
        }
    }
}

/// The scope the route `method path` needs: `None` when no route matches, `Some(None)`
/// for a public one.
pub fn scope_for(method: &str, path: &str) -> Option<Option<ApiScope>> {
    MATCHERS
        .iter()
        .find(|(r, def)| r.method == method && def.is_match(path))
        .map(|(r, _)| r.scope)
}

/// The caller of a guarded route: the token that authenticated it.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub TokenInfo);

impl ApiCaller {
    /// What the content records as the actor (timeline, audit): the token, by id.
    pub fn actor(&self) -> String {
        format!("api-token:{}", self.0.id)
    }
}

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<ApiCaller>()
                .cloned()
                .ok_or_else(|| ApiError::internal("API route without a declared scope")),
        )
    }
}

/// The middleware around every API route: finds the route in [`ROUTES`], and for a
/// guarded one reads the bearer token, authenticates it (401 for none, an unknown, an
/// expired or a revoked one) and checks its scope (403) before the handler runs.
pub async fn guard<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let path = req.path().to_owned();
    let Some(Some(scope)) = scope_for(req.method().as_str(), &path) else {
        // Public, or no such route (the scope's default service answers 404).
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let fail = |req: ServiceRequest, e: ApiError| Ok(req.error_response(e).map_into_right_body());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let Some(presented) = presented.filter(|t| !t.is_empty()) else {
        return fail(
            req,
            ApiError::new(
                Code::MissingApiToken,
                "Send a node API token: Authorization: Bearer <token>.",
            ),
        );
    };
    let Some(state) = req.app_data::<web::Data<ConsoleState>>().cloned() else {
        return fail(req, ApiError::internal("console state missing"));
    };
    let tokens = ApiTokens::new(state.store.clone(), &state.master);
    let found = match web::block(move || tokens.authenticate(&presented)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return fail(req, ApiError::internal(e)),
        Err(e) => return fail(req, ApiError::internal(e)),
    };
    let info = match found {
        Ok(info) => info,
        Err(Refusal::Unknown) => {
            return fail(
                req,
                ApiError::new(Code::InvalidApiToken, "This is not a token of this node."),
            )
        }
        Err(Refusal::Expired) => {
            return fail(
                req,
                ApiError::new(Code::TokenExpired, "This token has expired."),
            )
        }
        Err(Refusal::Revoked) => {
            return fail(
                req,
                ApiError::new(Code::TokenRevoked, "This token was revoked."),
            )
        }
    };
    if !info.scopes.contains(&scope) {
        // The token and the scope only: never the path or its query (docs/LOGGING.md).
        tracing::info!(token = %info.id, scope = scope.as_str(), "API request refused: missing scope");
        return fail(
            req,
            ApiError::new(
                Code::MissingScope,
                format!("This token does not carry the `{}` scope.", scope.as_str()),
            ),
        );
    }
    req.extensions_mut().insert(ApiCaller(info));
    Ok(next.call(req).await?.map_into_left_body())
}

/// A page of a list.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// How many, 1–200 (default 50).
    pub limit: Option<usize>,
}

impl PageQuery {
    /// The limit asked for, checked.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid("`limit` must be between 1 and 200.")),
        }
    }

    /// The position the cursor names: `(created_at, id)` of the last item seen.
    pub fn position(&self) -> Result<Option<(i64, String)>, ApiError> {
        let Some(c) = &self.cursor else {
            return Ok(None);
        };
        let bad = || ApiError::invalid("`cursor` is not one this API gave out.");
        let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (at, id) = raw.split_once('.').ok_or_else(bad)?;
        let at = at.parse().map_err(|_| bad())?;
        if id.len() > 64 {
            return Err(bad());
        }
        Ok(Some((at, id.to_owned())))
    }
}

/// The cursor after an item at `(created_at, id)`.
pub fn cursor(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}.{id}"))
}

/// Ids are UUIDs; anything else names nothing.
pub(crate) fn check_id(id: &str) -> Result<(), ApiError> {
    if crate::web::console::valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}
