//! Who is calling, read from the request: the signed-in user of a browser session
//! ([`CurrentUser`]), the caller of `/api/v1` by API token ([`ApiUser`]), a form whose
//! CSRF token and Origin were checked ([`CsrfForm`]), an operator ([`OperatorUser`],
//! [`OperatorForm`]). The access guard (`super::guard`) resolves the caller once per
//! request and leaves it in the request's extensions, where these extractors find it.

use super::render::PageError;
use crate::accounts::{self, SESSION_COOKIE};
use crate::app::State;
use crate::error::{AppError, AppResult, Code};
use crate::infra::db;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest};
use futures_util::future::LocalBoxFuture;
use outpost_crypto::token_hash;
use serde::Deserialize;

/// The signed-in user of a browser session.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// CSRF token bound to the session.
    pub csrf: String,
    /// Staff operator (`control-plane operator add`): read at every request, so removing
    /// the flag takes effect at once.
    pub is_operator: bool,
}

/// A caller of `/api/v1` authenticated by a personal API token.
#[derive(Debug, Clone)]
pub struct ApiUser {
    /// User id.
    pub id: String,
    /// The token's id.
    pub token_id: String,
    /// What the token may do (the guard refuses a read-only token's writes).
    pub scope: accounts::TokenScope,
}

/// The caller's IP address (behind a trusted proxy, the client's; see [`client_addr`]).
pub fn client_ip(req: &HttpRequest) -> String {
    client_addr(req)
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The key a per-address rate limit counts the caller under: its IPv4 address or its
/// IPv6 /64 ([`outpost_common::rate_limit::address_key`]).
pub fn client_key(req: &HttpRequest) -> String {
    client_addr(req)
        .map(outpost_common::rate_limit::address_key)
        .unwrap_or_else(|| "unknown".into())
}

/// The caller's address: the peer, or behind a proxy listed in `--trusted-proxies` the
/// client it names in `X-Forwarded-For` ([`super::forwarded`]).
fn client_addr(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(state) = req.app_data::<State>() else {
        return Some(peer);
    };
    let hops = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(super::forwarded::real_client(
        peer,
        hops,
        &state.config.trusted_proxies,
    ))
}

impl CurrentUser {
    /// Reads the session cookie and looks the session up (once per request: the guard
    /// leaves the result in the request's extensions).
    pub async fn resolve(req: &HttpRequest) -> AppResult<CurrentUser> {
        if let Some(user) = req.extensions().get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let token = req
            .cookie(SESSION_COOKIE)
            .map(|c| c.value().to_owned())
            .ok_or(AppError::Unauthorized(Code::NotSignedIn))?;
        let state = state_of(req)?;
        let hash = token_hash(&token);
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let ip = client_ip(req);
        let s = db::run(&state.db, move |conn| {
            accounts::authenticate_session(conn, &hash, &user_agent, &ip)
        })
        .await?
        .ok_or(AppError::Unauthorized(Code::SessionExpired))?;
        let user = CurrentUser {
            id: s.user_id,
            email: s.email,
            csrf: s.csrf,
            is_operator: s.is_operator,
        };
        req.extensions_mut().insert(user.clone());
        Ok(user)
    }
}

impl FromRequest for CurrentUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(CurrentUser::resolve(&req).await?) })
    }
}

impl ApiUser {
    /// Reads the `Authorization: Bearer` token, rate-limits it and looks it up (once per
    /// request, like [`CurrentUser::resolve`]): a revoked or expired token is 401
    /// `token_revoked` / `token_expired`; unknown tokens count against the client
    /// address, and past [`accounts::model::UNKNOWN_TOKENS_BURST`] they get 429; a
    /// read-only token gets 403 `token_read_only` on anything but GET.
    pub async fn resolve(req: &HttpRequest) -> AppResult<ApiUser> {
        let cached = req.extensions().get::<ApiUser>().cloned();
        let user = match cached {
            Some(user) => user,
            None => Self::lookup(req).await?,
        };
        if !user.scope.allows(req.method().as_str()) {
            return Err(AppError::Forbidden(Code::TokenReadOnly));
        }
        Ok(user)
    }

    async fn lookup(req: &HttpRequest) -> AppResult<ApiUser> {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthorized(Code::MissingApiToken))?;
        let state = state_of(req)?;
        let hash = token_hash(token.trim());
        // Per token (known or not): 60 at once, 120 a minute, then 429 + Retry-After.
        if let Err(wait) = state.api_limiter.check(&hash) {
            return Err(AppError::RateLimited(wait.as_secs().max(1)));
        }
        let found = db::run(&state.db, move |conn| {
            accounts::authenticate_api_token(conn, &hash)
        })
        .await?;
        let Some(caller) = found else {
            // Guessing: each guess is a new key for the per-token limiter above, so unknown
            // tokens are counted per client address too. Only misses count, so a script
            // with a typo behind an office's shared address does not lock out the valid
            // tokens of everyone else there (a 256-bit token cannot be guessed anyway; the
            // limit keeps the noise and the lookups down).
            if let Err(wait) = state.unknown_token_limiter.check(&client_key(req)) {
                return Err(AppError::RateLimited(wait.as_secs().max(1)));
            }
            return Err(AppError::Unauthorized(Code::InvalidApiToken));
        };
        let user = ApiUser {
            id: caller.user_id,
            token_id: caller.token_id,
            scope: caller.scope,
        };
        req.extensions_mut().insert(user.clone());
        Ok(user)
    }
}

impl FromRequest for ApiUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { ApiUser::resolve(&req).await })
    }
}

/// The shared state, which every listener registers.
pub(crate) fn state_of(req: &HttpRequest) -> AppResult<State> {
    req.app_data::<State>()
        .cloned()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("no state")))
}

/// Checks that a state-changing browser request comes from our own pages: the Origin (or,
/// failing that, Referer) must be the configured public URL or the request's own host.
pub fn check_origin(state: &State, req: &HttpRequest) -> AppResult<()> {
    let h = req.headers();
    let origin = h
        .get(header::ORIGIN)
        .or_else(|| h.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .ok_or(AppError::Forbidden(Code::OriginMissing))?;
    let scheme = if state.public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let own_host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|host| format!("{scheme}://{host}"));
    let matches = |base: &str| origin == base || origin.starts_with(&format!("{base}/"));
    if matches(&state.public_url) || own_host.as_deref().is_some_and(matches) {
        Ok(())
    } else {
        Err(AppError::Forbidden(Code::OriginMismatch))
    }
}

/// A url-encoded form from a signed-in user whose `csrf` field and Origin were checked.
/// Every state-changing page handler takes its input through this extractor.
pub struct CsrfForm<T> {
    /// The signed-in user.
    pub user: CurrentUser,
    /// The parsed form.
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: String,
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user_fut = CurrentUser::from_request(req, payload);
        let body_fut = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let user = user_fut.await?;
            let state = state_of(&req)?;
            check_origin(&state, &req)?;
            let body = body_fut.await.map_err(|_| AppError::PayloadTooLarge)?;
            let field: CsrfField = serde_urlencoded::from_bytes(&body)
                .map_err(|_| AppError::Forbidden(Code::CsrfFailed))?;
            if !outpost_crypto::ct_eq(field.csrf.as_bytes(), user.csrf.as_bytes()) {
                return Err(AppError::Forbidden(Code::CsrfFailed).into());
            }
            let form: T = serde_urlencoded::from_bytes(&body).map_err(|_| {
                AppError::invalid(Code::MalformedForm, "The form could not be read.")
            })?;
            Ok(CsrfForm { user, form })
        })
    }
}

/// A form with no fields besides `csrf` (buttons that only post).
#[derive(Deserialize)]
pub struct Empty {}

/// A signed-in operator.
///
/// Anyone else who is signed in gets **404**, as a non-member does for a workspace
/// (`workspaces::load_for_member`): one rule for "not yours to see", so a customer cannot
/// tell which pages exist for staff, and the route-coverage test treats these routes like
/// every other. An anonymous caller is sent to sign in, as on every page (the code is
/// public, so the paths are no secret; whether *you* are staff is only learnt by signing
/// in as staff).
#[derive(Debug, Clone)]
pub struct OperatorUser(pub CurrentUser);

impl FromRequest for OperatorUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = CurrentUser::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            if user.is_operator {
                Ok(OperatorUser(user))
            } else {
                Err(AppError::NotFound.into())
            }
        })
    }
}

/// A [`CsrfForm`] from an operator. The operator check runs first, so a non-operator gets
/// the same 404 whatever the form holds.
pub struct OperatorForm<T> {
    /// The operator.
    pub user: CurrentUser,
    /// The parsed form.
    pub form: T,
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for OperatorForm<T> {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let operator = OperatorUser::from_request(req, payload);
        let form = CsrfForm::<T>::from_request(req, payload);
        Box::pin(async move {
            operator.await?;
            let f = form.await?;
            if !f.user.is_operator {
                return Err(AppError::NotFound.into());
            }
            Ok(OperatorForm {
                user: f.user,
                form: f.form,
            })
        })
    }
}
