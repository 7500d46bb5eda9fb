//! Sign in with Google, GitHub or Apple, beside the email magic link (issue 7).
//!
//! Authorization code flow with PKCE (S256) for all three, `state` bound to the browser
//! ([`flow`] explains how, including Apple's cross-site `form_post`), and for the OIDC
//! providers (Google, Apple) an id_token verified against the provider's JWKS with our
//! `nonce` ([`jwt`]). GitHub is plain OAuth2: the account's primary verified email comes
//! from `GET /user/emails` ([`providers`]). Identities link to accounts by verified email
//! ([`identities`]).
//!
//! What the CP keeps: the provider's subject id and the email at link time. Codes, access
//! tokens and id_tokens are used during the callback and dropped; none is logged, stored
//! or shown (docs/PRIVACY.md P7, docs/LOGGING.md).
//!
//! Routes: `GET /auth/oauth/{provider}` starts, `GET|POST /auth/oauth/{provider}/callback`
//! finishes (POST is Apple's form_post); both are rate limited per IP. A provider that is
//! off answers 404.

pub mod config;
pub mod flow;
pub mod identities;
pub mod jwt;
pub mod providers;

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::AppError;
use crate::http::client_ip;
use crate::http::PageResult;
use crate::infra::db;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use outpost_common::rate_limit::KeyedLimiter;
use serde::Deserialize;

/// Cookie binding a started sign-in to this browser.
pub const BINDING_COOKIE: &str = "outpost_oauth";
const COOKIE_PATH: &str = "/auth/oauth/";
/// Starts (and, separately, callbacks) per IP: a burst of 20, then 20 a minute.
const PER_IP_BURST: u32 = 20;
const PER_IP_PER_MINUTE: u32 = 20;

/// A sign-in provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Google (OIDC).
    Google,
    /// GitHub (OAuth2).
    Github,
    /// Sign in with Apple (OIDC, form_post).
    Apple,
}

impl Provider {
    /// Path segment and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Github => "github",
            Provider::Apple => "apple",
        }
    }

    /// Name for people.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Google => "Google",
            Provider::Github => "GitHub",
            Provider::Apple => "Apple",
        }
    }

    /// From a path segment.
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "google" => Some(Provider::Google),
            "github" => Some(Provider::Github),
            "apple" => Some(Provider::Apple),
            _ => None,
        }
    }
}

/// Why a sign-in with a provider was refused. Each has a stable code (audit detail, error
/// page) and a sentence for the user; none carries anything the provider sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The callback has no `state`.
    StateMissing,
    /// The state is unknown, used, expired, for another provider or from another browser.
    StateMismatch,
    /// The id_token's nonce is not this sign-in's.
    NonceMismatch,
    /// The id_token's signature does not verify against the provider's keys.
    BadSignature,
    /// The id_token has expired (beyond 5 minutes of skew).
    IdTokenExpired,
    /// The id_token is for another issuer or client, or lacks required claims.
    IdTokenInvalid,
    /// No verified email to link or create an account with.
    EmailUnverified,
    /// The provider answered with an error (`error=access_denied`, …): the code.
    ProviderError(String),
    /// The token endpoint refused the code.
    TokenRefused,
    /// The provider could not be reached or answered nonsense.
    ProviderUnreachable,
}

impl Refusal {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::StateMissing => "state_missing",
            Refusal::StateMismatch => "state_mismatch",
            Refusal::NonceMismatch => "nonce_mismatch",
            Refusal::BadSignature => "bad_signature",
            Refusal::IdTokenExpired => "id_token_expired",
            Refusal::IdTokenInvalid => "id_token_invalid",
            Refusal::EmailUnverified => "email_unverified",
            Refusal::ProviderError(_) => "provider_error",
            Refusal::TokenRefused => "token_refused",
            Refusal::ProviderUnreachable => "provider_unreachable",
        }
    }

    /// What the user reads.
    pub fn message(&self, p: Provider) -> String {
        let name = p.label();
        match self {
            Refusal::StateMissing => format!(
                "The answer from {name} did not say which sign-in it belongs to (no state), so it cannot be checked. Start again from the sign-in page."
            ),
            Refusal::StateMismatch => format!(
                "This answer from {name} does not match a sign-in started in this browser in the last 10 minutes: it was already used, it expired, or it was started in another browser. Start again from the sign-in page."
            ),
            Refusal::NonceMismatch => format!(
                "{name}'s identity token was issued for a different sign-in (nonce mismatch), so it was not accepted."
            ),
            Refusal::BadSignature => format!(
                "{name}'s identity token is not signed by any of {name}'s published keys, so it was not accepted."
            ),
            Refusal::IdTokenExpired => format!(
                "{name}'s identity token has expired. Check this computer's clock, then start again."
            ),
            Refusal::IdTokenInvalid => format!(
                "{name}'s identity token was issued by someone else or for another application, so it was not accepted."
            ),
            Refusal::EmailUnverified => format!(
                "{name} has not verified an email address for this account, and Outpost needs one to know which account is yours. Verify your email at {name}, or sign in with an email link."
            ),
            Refusal::ProviderError(code) if code == "access_denied" || code == "user_cancelled_authorize" => format!(
                "Sign-in at {name} was cancelled or not allowed ({code})."
            ),
            Refusal::ProviderError(code) => format!("{name} refused the sign-in ({code})."),
            Refusal::TokenRefused => format!(
                "{name} did not accept the sign-in code: it may have expired or been used already. Start again from the sign-in page."
            ),
            Refusal::ProviderUnreachable => format!(
                "{name} could not be reached or gave an answer Outpost could not read. Try again in a moment, or sign in with an email link."
            ),
        }
    }

    fn status(&self) -> actix_web::http::StatusCode {
        use actix_web::http::StatusCode as S;
        match self {
            Refusal::ProviderUnreachable => S::BAD_GATEWAY,
            Refusal::ProviderError(_) | Refusal::EmailUnverified => S::FORBIDDEN,
            Refusal::StateMissing | Refusal::StateMismatch => S::BAD_REQUEST,
            _ => S::UNAUTHORIZED,
        }
    }
}

/// OAuth state shared by the listeners: configuration, discovery cache, rate limits.
pub struct OAuth {
    /// Providers that are on.
    pub config: config::OAuthConfig,
    /// Discovered endpoints.
    pub discovery: providers::DiscoveryCache,
    start_limiter: KeyedLimiter,
    callback_limiter: KeyedLimiter,
}

impl OAuth {
    /// From the resolved configuration.
    pub fn new(config: config::OAuthConfig) -> Self {
        Self {
            config,
            discovery: Default::default(),
            start_limiter: KeyedLimiter::new(PER_IP_BURST, PER_IP_PER_MINUTE),
            callback_limiter: KeyedLimiter::new(PER_IP_BURST, PER_IP_PER_MINUTE),
        }
    }

    /// Providers that are on, in button order.
    pub fn enabled(&self) -> Vec<Provider> {
        self.config.providers.iter().map(|p| p.provider).collect()
    }
}

/// Where the provider sends the browser back; register this URL at the provider.
pub fn redirect_uri(state: &crate::app::AppState, p: Provider) -> String {
    format!("{}/auth/oauth/{}/callback", state.public_url, p.as_str())
}

#[derive(Template)]
#[template(path = "oauth_refused.html")]
struct RefusedPage {
    provider: &'static str,
    code: &'static str,
    message: String,
}

fn binding_cookie(state: &State, p: Provider, value: String, max_age: i64) -> Cookie<'static> {
    let https = state.public_url.starts_with("https://");
    // Apple's callback is a cross-site POST: only a SameSite=None cookie comes with it, and
    // browsers accept SameSite=None only with Secure, i.e. on https (which Apple requires).
    let same_site = if p == Provider::Apple && https {
        SameSite::None
    } else {
        SameSite::Lax
    };
    Cookie::build(BINDING_COOKIE, value)
        .path(COOKIE_PATH)
        .http_only(true)
        .secure(https)
        .same_site(same_site)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

/// The provider named in the path, if it is on (404 otherwise: an off provider does not exist).
fn provider_on(state: &State, name: &str) -> Result<Provider, AppError> {
    Provider::parse(name)
        .filter(|p| state.oauth.config.get(*p).is_some())
        .ok_or(AppError::NotFound)
}

fn limited(limiter: &KeyedLimiter, req: &HttpRequest) -> Result<(), AppError> {
    limiter
        .check(&client_ip(req))
        .map_err(|wait| AppError::RateLimited(wait.as_secs().max(1)))
}

async fn refuse(state: &State, req: &HttpRequest, p: Provider, r: Refusal) -> PageResult {
    let ip = client_ip(req);
    let detail = format!("{}:{}", p.as_str(), r.code());
    tracing::info!(
        provider = p.as_str(),
        reason = r.code(),
        "oauth sign-in refused"
    );
    db::run(&state.db, move |conn| {
        audit::record(
            conn,
            &Entry {
                action: "signin.failed",
                object_type: "oauth",
                object_id: p.as_str(),
                ip: Some(&ip),
                detail: &detail,
                ..Default::default()
            },
        )
    })
    .await?;
    let page = RefusedPage {
        provider: p.label(),
        code: r.code(),
        message: r.message(p),
    };
    let mut b = HttpResponse::build(r.status());
    b.cookie(binding_cookie(state, p, String::new(), 0));
    Ok(crate::http::html_with(b, &page))
}

/// `GET /auth/oauth/{provider}`: stores the state, sets the binding cookie and sends the
/// browser to the provider.
pub(crate) async fn start(state: State, req: HttpRequest, path: web::Path<String>) -> PageResult {
    let p = provider_on(&state, &path)?;
    limited(&state.oauth.start_limiter, &req)?;
    let Some(cfg) = state.oauth.config.get(p) else {
        return Err(AppError::NotFound.into());
    };
    let ep = match providers::endpoints(&state, cfg).await {
        Ok(ep) => ep,
        Err(r) => return refuse(&state, &req, p, r).await,
    };
    let started = db::run(&state.db, move |conn| flow::start(conn, p)).await?;
    let redirect = redirect_uri(&state, p);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", cfg.client_id.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("state", started.state.as_str()),
        ("code_challenge", started.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    match p {
        Provider::Google => {
            params.push(("scope", "openid email"));
            params.push(("nonce", &started.nonce));
        }
        Provider::Apple => {
            // Apple sends the answer as a POST when scopes are asked for.
            params.push(("scope", "email"));
            params.push(("response_mode", "form_post"));
            params.push(("nonce", &started.nonce));
        }
        Provider::Github => params.push(("scope", "read:user user:email")),
    }
    let query = serde_urlencoded::to_string(&params).map_err(|e| AppError::internal(e.into()))?;
    let sep = if ep.authorize.contains('?') { '&' } else { '?' };
    Ok(HttpResponse::SeeOther()
        .cookie(binding_cookie(&state, p, started.binding, flow::STATE_TTL))
        .insert_header((header::LOCATION, format!("{}{sep}{query}", ep.authorize)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// What a provider sends back (query string, or Apple's form body). Anything else in it
/// (Apple's `user` JSON, `error_description`) is ignored and never echoed.
#[derive(Deserialize, Default)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub(crate) async fn callback_get(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let params = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    callback(state, req, &path, params).await
}

/// Apple's `response_mode=form_post`: a cross-site POST, so no Origin or CSRF-token check
/// applies; the state and binding cookie are what tie it to this browser ([`flow`]).
pub(crate) async fn callback_post(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let params = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    callback(state, req, &path, params).await
}

/// Provider error codes are echoed in the page and the audit log: keep them to a short
/// code, never free text.
fn error_code(raw: &str) -> String {
    let code: String = raw
        .chars()
        .take(40)
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if code.is_empty() {
        "unknown".into()
    } else {
        code
    }
}

async fn callback(
    state: State,
    req: HttpRequest,
    name: &str,
    params: CallbackParams,
) -> PageResult {
    let p = provider_on(&state, name)?;
    limited(&state.oauth.callback_limiter, &req)?;
    let Some(cfg) = state.oauth.config.get(p) else {
        return Err(AppError::NotFound.into());
    };
    let binding = req.cookie(BINDING_COOKIE).map(|c| c.value().to_owned());
    let st = params.state.clone();
    // The state is used up first, whatever the provider said: single use.
    let pending = db::run(&state.db, move |conn| {
        flow::consume(conn, p, st.as_deref(), binding.as_deref())
    })
    .await?;
    if let Some(e) = &params.error {
        return refuse(&state, &req, p, Refusal::ProviderError(error_code(e))).await;
    }
    let pending = match pending {
        Ok(v) => v,
        Err(flow::StateError::Missing) => {
            return refuse(&state, &req, p, Refusal::StateMissing).await
        }
        Err(flow::StateError::Mismatch) => {
            return refuse(&state, &req, p, Refusal::StateMismatch).await
        }
    };
    let Some(code) = params.code.filter(|c| !c.is_empty()) else {
        return refuse(&state, &req, p, Refusal::ProviderError("no_code".into())).await;
    };
    let verified = match providers::endpoints(&state, cfg).await {
        Ok(ep) => {
            providers::redeem(&state, cfg, &ep, &code, &pending.verifier, &pending.nonce).await
        }
        Err(r) => Err(r),
    };
    let verified = match verified {
        Ok(v) => v,
        Err(r) => return refuse(&state, &req, p, r).await,
    };
    let ip = client_ip(&req);
    let outcome = db::run(&state.db, move |conn| {
        identities::sign_in(
            conn,
            p,
            &verified.subject,
            verified.verified_email.as_deref(),
            &ip,
        )
    })
    .await?;
    let (user_id, session) = match outcome {
        Ok(v) => v,
        Err(r) => return refuse(&state, &req, p, r).await,
    };
    tracing::info!(provider = p.as_str(), user = %user_id, "oauth sign-in");
    Ok(HttpResponse::SeeOther()
        .cookie(crate::accounts::session_cookie(
            &state,
            session,
            crate::accounts::SESSION_TTL,
        ))
        .cookie(binding_cookie(&state, p, String::new(), 0))
        .insert_header((header::LOCATION, "/workspaces"))
        .finish())
}
