//! Sign-in pages (magic link), sign-out, the sessions page, the API tokens page and
//! `/api/v1/tokens`: parse, call [`super::service`], render; the session cookie.

use super::model::TokenScope;
use super::model::{normalize_email, SESSION_COOKIE, SESSION_TTL};
use super::service;
use super::service::{CreatedToken, NewToken};
use super::store::{self, SessionRow, TokenRow};
use crate::app::State;
use crate::error::{AppError, AppResult};
use crate::http::extract::check_origin;
use crate::http::html;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty, PageResult};
use crate::infra::db;
use crate::infra::mail::Email;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use outpost_crypto::token_hash;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    email: String,
    sent: bool,
    error: Option<String>,
    dev_outbox: Option<String>,
    /// Providers that are on, shown as "Sign in with …" buttons.
    providers: Vec<crate::oauth::Provider>,
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    token: String,
}

#[derive(Deserialize)]
pub(crate) struct SigninForm {
    email: String,
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    token: String,
}

fn dev_outbox(state: &State) -> Option<String> {
    state.mailer.dev_outbox().map(|d| d.display().to_string())
}

pub(crate) async fn signin_page(state: State) -> HttpResponse {
    html(&SigninPage {
        email: String::new(),
        sent: false,
        error: None,
        dev_outbox: dev_outbox(&state),
        providers: state.oauth.enabled(),
    })
}

/// Creates a magic link for `email` (rate limited) and sends it. Returns nothing the
/// caller could use to tell whether the account exists.
pub async fn request_magic_link(state: &State, email: String, ip: String) -> AppResult<()> {
    let em = email.clone();
    let token = db::run(&state.db, move |conn| {
        service::create_magic_link(conn, &em, &ip)
    })
    .await?;
    let link = format!("{}/auth/verify?token={token}", state.public_url);
    let (subject, body) = crate::notify::emails::render(&crate::notify::emails::SignIn {
        link: link.as_str().into(),
    })?;
    // Sent now, not later: a sign-in link that silently went nowhere is worse than an
    // error page (`signin_submit` shows one).
    state
        .mailer
        .send(&Email {
            to: email,
            subject,
            body,
        })
        .await
        .map_err(|e| {
            tracing::warn!(transport = e.transport, kind = %e.kind.code(), "sign-in email not sent");
            AppError::internal(e.into())
        })?;
    if dev_outbox(state).is_some() {
        // Dev outbox only: there is no mailbox, so the log is where a developer finds it.
        tracing::info!(%link, "dev outbox: sign-in link");
    }
    Ok(())
}

pub(crate) async fn signin_submit(
    state: State,
    req: HttpRequest,
    form: web::Form<SigninForm>,
) -> PageResult {
    check_origin(&state, &req)?;
    let email = match normalize_email(&form.email) {
        Ok(e) => e,
        Err(e) => {
            return Ok(crate::http::html_with(
                HttpResponse::BadRequest(),
                &SigninPage {
                    email: form.email.clone(),
                    sent: false,
                    error: Some(e.message()),
                    dev_outbox: dev_outbox(&state),
                    providers: state.oauth.enabled(),
                },
            ))
        }
    };
    match request_magic_link(&state, email.clone(), client_ip(&req)).await {
        Err(AppError::Internal(e)) if e.is::<crate::infra::mail::MailError>() => {
            return Ok(crate::http::html_with(
                HttpResponse::ServiceUnavailable(),
                &SigninPage {
                    email,
                    sent: false,
                    error: Some(
                        "We could not send the sign-in email just now. Try again in a few minutes."
                            .into(),
                    ),
                    dev_outbox: dev_outbox(&state),
                    providers: state.oauth.enabled(),
                },
            ));
        }
        r => r?,
    }
    Ok(html(&SigninPage {
        email,
        sent: true,
        error: None,
        dev_outbox: dev_outbox(&state),
        providers: state.oauth.enabled(),
    }))
}

/// GET shows a confirmation button instead of signing in, so link scanners in mail
/// clients cannot burn the single-use token.
pub(crate) async fn verify_page(q: web::Query<TokenQuery>) -> HttpResponse {
    html(&VerifyPage {
        token: q.token.clone(),
    })
}

/// Consumes a magic-link token and returns the new session token.
pub async fn consume_magic_link(state: &State, token: String, ip: String) -> AppResult<String> {
    db::run(&state.db, move |conn| {
        service::consume_magic_link(conn, &token, &ip)
    })
    .await
}

/// The session cookie (HttpOnly, SameSite=Lax, Secure on https); an empty value and
/// `max_age` 0 clear it.
pub fn session_cookie(state: &State, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.public_url.starts_with("https://"))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

pub(crate) async fn verify_submit(
    state: State,
    req: HttpRequest,
    form: web::Form<TokenQuery>,
) -> PageResult {
    check_origin(&state, &req)?;
    let session =
        match consume_magic_link(&state, form.token.clone(), client_ip(&req)).await {
            Ok(s) => s,
            Err(AppError::Unauthorized(_)) => return Ok(crate::http::html_with(
                HttpResponse::Unauthorized(),
                &SigninPage {
                    email: String::new(),
                    sent: false,
                    error: Some(
                        "This sign-in link is invalid, expired or already used. Ask for a new one."
                            .into(),
                    ),
                    dev_outbox: dev_outbox(&state),
                    providers: state.oauth.enabled(),
                },
            )),
            Err(e) => return Err(e.into()),
        };
    let device = super::devices::web::after_sign_in(&state, &req, &session, "an email link").await;
    let mut ok = HttpResponse::SeeOther();
    if let Some(c) = device {
        ok.cookie(c);
    }
    Ok(ok
        .cookie(session_cookie(&state, session, SESSION_TTL))
        .insert_header((header::LOCATION, "/workspaces"))
        .finish())
}

/// Ends this browser's session, and the user's node-console sessions on every workspace's
/// node: on a shared front-desk computer, signing out of Outpost must not leave a console
/// tab open on customer conversations.
pub(crate) async fn signout(state: State, req: HttpRequest, f: CsrfForm<Empty>) -> PageResult {
    let hash = req.cookie(SESSION_COOKIE).map(|t| token_hash(t.value()));
    let (st, user_id) = (state.clone(), f.user.id.clone());
    db::run(&state.db, move |conn| {
        if let Some(hash) = hash {
            store::delete_session(conn, &hash)?;
        }
        crate::members::end_console_sessions_everywhere(conn, &st.command_notify, &user_id)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie(&state, String::new(), 0))
        .insert_header((header::LOCATION, "/signin"))
        .finish())
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    user: CurrentUser,
    tokens: Vec<TokenRow>,
    created: Option<CreatedToken>,
    error: Option<String>,
    now: i64,
}

impl TokensPage {
    fn scope(t: &TokenRow) -> &'static str {
        TokenScope::from_read_only(t.read_only).words()
    }
}

pub(crate) async fn tokens_page(state: State, user: CurrentUser) -> PageResult {
    let uid = user.id.clone();
    let tokens = db::run(&state.db, move |conn| store::list_tokens(conn, &uid)).await?;
    Ok(html(&TokensPage {
        user,
        tokens,
        created: None,
        error: None,
        now: db::now(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct NewTokenForm {
    name: String,
    /// Days until it expires; empty is the default.
    #[serde(default)]
    days: String,
    /// The "read-only" checkbox: present when ticked.
    #[serde(default)]
    read_only: Option<String>,
}

/// Tells the account's owner that a token was made for it (a security notice: a token
/// made by someone else is then noticed and revoked). Queued on `conn`, in the
/// transaction that creates the token.
pub fn notify_token_created(
    conn: &mut crate::infra::db::DbConn,
    public_url: &str,
    email: &str,
    token: &TokenRow,
    how: &str,
) -> AppResult<()> {
    use crate::notify::emails::{queue, TokenCreated};
    queue(
        conn,
        vec![email.to_owned()],
        &TokenCreated {
            name: token.name.as_str().into(),
            how: how.into(),
            scope: TokenScope::from_read_only(token.read_only).words().into(),
            expires: crate::workspaces::fmt_time(&token.expires_at).into(),
            page: format!("{public_url}/account/tokens").into(),
        },
    )
}

pub(crate) async fn tokens_create(
    state: State,
    req: HttpRequest,
    f: CsrfForm<NewTokenForm>,
) -> PageResult {
    let uid = f.user.id.clone();
    let days = f.form.days.trim();
    let new = NewToken {
        name: f.form.name.clone(),
        days: if days.is_empty() {
            None
        } else {
            // Not a number: the same refusal as a number out of range, in words.
            Some(days.parse().unwrap_or(i64::MAX))
        },
        read_only: f.form.read_only.is_some(),
    };
    let ip = client_ip(&req);
    let (public_url, email) = (state.public_url.clone(), f.user.email.clone());
    let (created, tokens) = db::run(&state.db, move |conn| {
        // The token and its notice in one transaction: a crash loses both or neither.
        let created = db::transaction::<_, AppError, _>(conn, |conn| {
            let c = service::create_api_token(conn, &uid, &new, &uid, Some(&ip))?;
            notify_token_created(conn, &public_url, &email, &c.row, "on the API tokens page")?;
            Ok(c)
        });
        Ok((created, store::list_tokens(conn, &uid)?))
    })
    .await?;
    let (created, error) = match created {
        Ok(c) => (Some(c), None),
        Err(AppError::BadRequest(_, m)) => (None, Some(m)),
        Err(e) => return Err(e.into()),
    };
    Ok(html(&TokensPage {
        user: f.user,
        tokens,
        created,
        error,
        now: db::now(),
    }))
}

/// `POST /account/tokens/{token}/revoke`: revokes one of the user's tokens.
pub(crate) async fn tokens_revoke(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    f: CsrfForm<Empty>,
) -> PageResult {
    let (uid, id, ip) = (f.user.id.clone(), path.into_inner(), client_ip(&req));
    db::run(&state.db, move |conn| {
        service::revoke_api_token(conn, &uid, &id, &uid, Some(&ip))
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account/tokens"))
        .finish())
}

/// A token as the API lists it: never its value.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TokenJson {
    id: String,
    name: String,
    /// `full` or `read_only` (GET only).
    #[schema(example = "full")]
    scope: &'static str,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; at most a year after `created_at`.
    expires_at: i64,
    /// Past its expiry: every use answers 401 `token_expired`.
    expired: bool,
    /// Unix seconds, to the minute; `null` if never used.
    last_used_at: Option<i64>,
}

/// `GET /api/v1/tokens`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TokenList {
    tokens: Vec<TokenJson>,
}

fn token_json(t: &TokenRow, now: i64) -> TokenJson {
    TokenJson {
        id: t.id.clone(),
        name: t.name.clone(),
        scope: TokenScope::from_read_only(t.read_only).as_str(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        expired: t.expires_at <= now,
        last_used_at: t.last_used_at,
    }
}

/// `GET /api/v1/tokens`: the caller's unrevoked tokens (never a value).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses(
        (status = 200, description = "Your unrevoked tokens, expired ones included; never a value.", body = TokenList),
    ))]
pub(crate) async fn api_tokens(state: State, user: ApiUser) -> AppResult<HttpResponse> {
    let tokens = db::run(&state.db, move |conn| store::list_tokens(conn, &user.id)).await?;
    let now = db::now();
    let items: Vec<_> = tokens.iter().map(|t| token_json(t, now)).collect();
    Ok(HttpResponse::Ok().json(TokenList { tokens: items }))
}

/// `DELETE /api/v1/tokens/{token}`: revokes one of the caller's tokens (the one calling
/// included); 404 for an unknown or someone else's.
#[utoipa::path(delete, path = "/api/v1/tokens/{token}", tag = "tokens",
    params(("token" = String, Path, description = "The token's id (from `GET /api/v1/tokens`), not its value")),
    responses(
        (status = 204, description = "Revoked: every later use answers 401 `token_revoked`."),
    ))]
pub(crate) async fn api_revoke(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (id, ip) = (path.into_inner(), client_ip(&req));
    db::run(&state.db, move |conn| {
        service::revoke_api_token(conn, &user.id, &id, &user.id, Some(&ip))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    user: CurrentUser,
    sessions: Vec<SessionRow>,
    current: String,
    /// "2 other sessions ended." after "End all other sessions".
    ended: Option<String>,
}

/// The hash of this request's session cookie.
fn current_session_hash(req: &HttpRequest) -> String {
    req.cookie(SESSION_COOKIE)
        .map(|t| token_hash(t.value()))
        .unwrap_or_default()
}

async fn sessions_view(
    state: &State,
    req: &HttpRequest,
    user: CurrentUser,
    ended: Option<usize>,
) -> PageResult {
    let uid = user.id.clone();
    let sessions = db::run(&state.db, move |conn| {
        store::list_sessions(conn, &uid, db::now())
    })
    .await?;
    Ok(html(&SessionsPage {
        user,
        sessions,
        current: current_session_hash(req),
        ended: ended.map(|n| match n {
            1 => "1 other session ended.".to_owned(),
            n => format!("{n} other sessions ended."),
        }),
    }))
}

/// `GET /account/sessions`: where the account is signed in.
pub(crate) async fn sessions_page(state: State, req: HttpRequest, user: CurrentUser) -> PageResult {
    sessions_view(&state, &req, user, None).await
}

/// `POST /account/sessions/{session}/end`: ends one session, and the user's node-console
/// sessions (the node does not know which CP session opened a console, so all of them
/// end; opening the console again from here takes one click). Ending this browser's own
/// session is signing out.
pub(crate) async fn session_end(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    f: CsrfForm<Empty>,
) -> PageResult {
    let (st, uid, id, ip) = (
        state.clone(),
        f.user.id.clone(),
        path.into_inner(),
        client_ip(&req),
    );
    let current = current_session_hash(&req);
    let own = db::run(&state.db, move |conn| {
        let own = store::list_sessions(conn, &uid, db::now())?
            .iter()
            .any(|s| s.id == id && s.token_hash == current);
        service::end_session(conn, &uid, &id, &ip)?;
        crate::members::end_console_sessions_everywhere(conn, &st.command_notify, &uid)?;
        Ok(own)
    })
    .await?;
    if own {
        return Ok(HttpResponse::SeeOther()
            .cookie(session_cookie(&state, String::new(), 0))
            .insert_header((header::LOCATION, "/signin"))
            .finish());
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account/sessions"))
        .finish())
}

/// `POST /account/sessions/end-others`: ends every session but this one, and the user's
/// node-console sessions.
pub(crate) async fn sessions_end_others(
    state: State,
    req: HttpRequest,
    f: CsrfForm<Empty>,
) -> PageResult {
    let (st, uid, ip) = (state.clone(), f.user.id.clone(), client_ip(&req));
    let current = current_session_hash(&req);
    let n = db::run(&state.db, move |conn| {
        let n = service::end_other_sessions(conn, &uid, &current, &ip)?;
        crate::members::end_console_sessions_everywhere(conn, &st.command_notify, &uid)?;
        Ok(n)
    })
    .await?;
    sessions_view(&state, &req, f.user, Some(n)).await
}
