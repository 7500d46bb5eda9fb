//! Sign-in pages (magic link), sign-out and the API tokens page: parse, call
//! [`super::service`], render; the session cookie.

use super::model::{normalize_email, SESSION_COOKIE, SESSION_TTL};
use super::service;
use super::store::{self, TokenRow};
use crate::app::State;
use crate::error::{AppError, AppResult};
use crate::http::extract::check_origin;
use crate::http::html;
use crate::http::{client_ip, CsrfForm, CurrentUser, Empty, PageResult};
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
    created: Option<String>,
    error: Option<String>,
}

pub(crate) async fn tokens_page(state: State, user: CurrentUser) -> PageResult {
    let uid = user.id.clone();
    let tokens = db::run(&state.db, move |conn| store::list_tokens(conn, &uid)).await?;
    Ok(html(&TokensPage {
        user,
        tokens,
        created: None,
        error: None,
    }))
}

#[derive(Deserialize)]
pub(crate) struct NewTokenForm {
    name: String,
}

pub(crate) async fn tokens_create(state: State, f: CsrfForm<NewTokenForm>) -> PageResult {
    let uid = f.user.id.clone();
    let name = f.form.name.clone();
    let (created, tokens) = db::run(&state.db, move |conn| {
        let created = service::create_api_token(conn, &uid, &name);
        Ok((created, store::list_tokens(conn, &uid)?))
    })
    .await?;
    let (created, error) = match created {
        Ok(v) => (Some(v), None),
        Err(AppError::BadRequest(_, m)) => (None, Some(m)),
        Err(e) => return Err(e.into()),
    };
    Ok(html(&TokensPage {
        user: f.user,
        tokens,
        created,
        error,
    }))
}
