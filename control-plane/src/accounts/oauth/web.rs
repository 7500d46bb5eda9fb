//! Sign-in with a provider: the start and callback handlers, the identities page, and
//! the rate limits and discovery cache the listeners share ([`OAuth`]).

use super::model::{Provider, Refusal, StateError, STATE_TTL};
use super::{config, providers, service, store};
use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::AppError;
use crate::http::PageResult;
use crate::http::{client_ip, client_key};
use crate::http::{CsrfForm, CurrentUser};
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
    providers::redirect_uri(&state.public_url, p)
}

/// What the provider calls need from the state.
fn calls(state: &crate::app::AppState) -> providers::Calls<'_> {
    providers::Calls {
        http: &state.http,
        discovery: &state.oauth.discovery,
        public_url: &state.public_url,
    }
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
        .check(&client_key(req))
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
    let mut b = HttpResponse::build(refusal_status(&r));
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
    let ep = match providers::endpoints(&calls(&state), cfg).await {
        Ok(ep) => ep,
        Err(r) => return refuse(&state, &req, p, r).await,
    };
    let started = db::run(&state.db, move |conn| store::start(conn, p)).await?;
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
        .cookie(binding_cookie(&state, p, started.binding, STATE_TTL))
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
    /// RFC 9207: the issuer that sent this answer.
    iss: Option<String>,
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
/// applies; the state and binding cookie are what tie it to this browser ([`super`]).
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
        store::consume(conn, p, st.as_deref(), binding.as_deref())
    })
    .await?;
    // Before anything else in the answer is believed, and before its code is sent to our
    // token endpoint: an answer from another issuer is a mix-up (RFC 9207, section 2.4).
    if !super::model::issuer_matches(&cfg.issuer, params.iss.as_deref()) {
        return refuse(&state, &req, p, Refusal::IssuerMismatch).await;
    }
    if let Some(e) = &params.error {
        return refuse(&state, &req, p, Refusal::ProviderError(error_code(e))).await;
    }
    let pending = match pending {
        Ok(v) => v,
        Err(StateError::Missing) => return refuse(&state, &req, p, Refusal::StateMissing).await,
        Err(StateError::Mismatch) => return refuse(&state, &req, p, Refusal::StateMismatch).await,
    };
    let Some(code) = params.code.filter(|c| !c.is_empty()) else {
        return refuse(&state, &req, p, Refusal::ProviderError("no_code".into())).await;
    };
    let verified = match providers::endpoints(&calls(&state), cfg).await {
        Ok(ep) => {
            providers::redeem(
                &calls(&state),
                cfg,
                &ep,
                &code,
                &pending.verifier,
                &pending.nonce,
            )
            .await
        }
        Err(r) => Err(r),
    };
    let verified = match verified {
        Ok(v) => v,
        Err(r) => return refuse(&state, &req, p, r).await,
    };
    let ip = client_ip(&req);
    let public_url = state.public_url.clone();
    // The sign-in and, when it linked a provider to an existing account, the email that
    // says so, in one transaction: a crash loses both or neither.
    let outcome = db::run(&state.db, move |conn| {
        db::transaction::<_, AppError, _>(conn, |conn| {
            let r = service::sign_in(
                conn,
                p,
                &verified.subject,
                verified.verified_email.as_deref(),
                &ip,
            )?;
            if let Ok((user_id, _, true)) = &r {
                queue_link_notice(conn, &public_url, user_id, p)?;
            }
            Ok(r)
        })
    })
    .await?;
    let (user_id, session, linked) = match outcome {
        Ok(v) => v,
        Err(r) => return refuse(&state, &req, p, r).await,
    };
    tracing::info!(provider = p.as_str(), user = %user_id, linked, "oauth sign-in");
    let device =
        crate::accounts::devices::web::after_sign_in(&state, &req, &session, p.label()).await;
    let mut ok = HttpResponse::SeeOther();
    if let Some(c) = device {
        ok.cookie(c);
    }
    Ok(ok
        .cookie(crate::accounts::session_cookie(
            &state,
            session,
            crate::accounts::SESSION_TTL,
        ))
        .cookie(binding_cookie(&state, p, String::new(), 0))
        .insert_header((header::LOCATION, "/workspaces"))
        .finish())
}

/// Tells the owner of an account that existed before that `p` can now sign in to it: a
/// provider account someone else controls, linked by an address they took over, must not
/// go unnoticed. Queued in the sign-in's transaction.
fn queue_link_notice(
    conn: &mut crate::infra::db::DbConn,
    public_url: &str,
    user_id: &str,
    p: Provider,
) -> crate::error::AppResult<()> {
    let email = crate::accounts::store::email_of(conn, user_id)?;
    crate::notify::emails::queue(
        conn,
        vec![email],
        &crate::notify::emails::MethodLinked {
            provider: p.label().into(),
            when: crate::workspaces::model::fmt_time(&db::now()).into(),
            page: format!("{public_url}/account/identities").into(),
        },
    )
}

/// The status a refusal answers with.
fn refusal_status(r: &Refusal) -> actix_web::http::StatusCode {
    use actix_web::http::StatusCode as S;
    match r {
        Refusal::ProviderUnreachable => S::BAD_GATEWAY,
        Refusal::ProviderError(_) | Refusal::EmailUnverified => S::FORBIDDEN,
        Refusal::StateMissing | Refusal::StateMismatch | Refusal::IssuerMismatch => S::BAD_REQUEST,
        _ => S::UNAUTHORIZED,
    }
}

// ---------------------------------------------------------------- identities page

#[derive(Template)]
#[template(path = "identities.html")]
struct IdentitiesPage {
    user: CurrentUser,
    identities: Vec<store::IdentityRow>,
    enabled: Vec<Provider>,
}

pub(crate) async fn page(state: State, user: CurrentUser) -> PageResult {
    let uid = user.id.clone();
    let identities = db::run(&state.db, move |conn| store::list(conn, &uid)).await?;
    Ok(crate::http::html(&IdentitiesPage {
        user,
        identities,
        enabled: state.oauth.enabled(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct UnlinkForm {
    id: String,
}

pub(crate) async fn unlink_submit(
    state: State,
    req: actix_web::HttpRequest,
    f: CsrfForm<UnlinkForm>,
) -> PageResult {
    let (uid, id, ip) = (
        f.user.id.clone(),
        f.form.id.clone(),
        crate::http::client_ip(&req),
    );
    db::run(&state.db, move |conn| service::unlink(conn, &uid, &id, &ip)).await?;
    tracing::info!(user = %f.user.id, "oauth identity unlinked");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account/identities"))
        .finish())
}
