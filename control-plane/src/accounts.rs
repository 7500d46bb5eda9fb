//! Accounts: email magic-link sign-in, cookie sessions, CSRF + Origin checks, personal
//! API tokens. Tokens (magic links, sessions, API tokens) are 256-bit random values
//! stored only as SHA-256.

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::http::extract::check_origin;
use crate::http::html;
use crate::http::{client_ip, CsrfForm, CurrentUser, Empty, PageResult};
use crate::infra::db::{self, DbConn};
use crate::infra::mail::Email;
use crate::infra::schema::{api_tokens, magic_links, sessions, users};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use outpost_crypto::{random_token, token_hash};
use serde::Deserialize;

/// Name of the CP session cookie.
pub const SESSION_COOKIE: &str = "outpost_session";
const MAGIC_LINK_TTL: i64 = 10 * 60;
/// Lifetime of a CP session, seconds.
pub const SESSION_TTL: i64 = 14 * 24 * 3600;
const LINKS_PER_EMAIL: i64 = 5;
const LINKS_PER_EMAIL_WINDOW: i64 = 15 * 60;
const LINKS_PER_IP: i64 = 20;
const LINKS_PER_IP_WINDOW: i64 = 60;

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

/// Normalises and validates an email address (a light check; the link proves ownership).
pub fn normalize_email(raw: &str) -> AppResult<String> {
    let e = raw.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(AppError::invalid(
            Code::InvalidEmail,
            "Enter a valid email address.",
        ))
    }
}

/// Creates a magic link for `email` (rate limited) and sends it. Returns nothing the
/// caller could use to tell whether the account exists.
pub async fn request_magic_link(state: &State, email: String, ip: String) -> AppResult<()> {
    let token = random_token();
    let hash = token_hash(&token);
    let (em, ipc) = (email.clone(), ip.clone());
    db::run(&state.db, move |conn| {
        let now = db::now();
        let by_email: i64 = magic_links::table
            .filter(magic_links::email.eq(&em))
            .filter(magic_links::created_at.gt(now - LINKS_PER_EMAIL_WINDOW))
            .count()
            .get_result(conn)?;
        if by_email >= LINKS_PER_EMAIL {
            return Err(AppError::RateLimited(LINKS_PER_EMAIL_WINDOW as u64));
        }
        let by_ip: i64 = magic_links::table
            .filter(magic_links::ip.eq(&ipc))
            .filter(magic_links::created_at.gt(now - LINKS_PER_IP_WINDOW))
            .count()
            .get_result(conn)?;
        if by_ip >= LINKS_PER_IP {
            return Err(AppError::RateLimited(LINKS_PER_IP_WINDOW as u64));
        }
        diesel::insert_into(magic_links::table)
            .values((
                magic_links::token_hash.eq(&hash),
                magic_links::email.eq(&em),
                magic_links::ip.eq(&ipc),
                magic_links::created_at.eq(now),
                magic_links::expires_at.eq(now + MAGIC_LINK_TTL),
            ))
            .execute(conn)?;
        Ok(())
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
    let hash = token_hash(&token);
    let session = random_token();
    let session_hash = token_hash(&session);
    db::run(&state.db, move |conn| {
        let now = db::now();
        let email: Option<String> =
            crate::infra::db::transaction::<_, diesel::result::Error, _>(conn, |conn| {
                let email: Option<String> = magic_links::table
                    .filter(magic_links::token_hash.eq(&hash))
                    .filter(magic_links::used_at.is_null())
                    .filter(magic_links::expires_at.gt(now))
                    .select(magic_links::email)
                    .first(conn)
                    .optional()?;
                if email.is_some() {
                    // Single use: the conditional update is what makes a concurrent replay lose.
                    let n = diesel::update(
                        magic_links::table
                            .filter(magic_links::token_hash.eq(&hash))
                            .filter(magic_links::used_at.is_null()),
                    )
                    .set(magic_links::used_at.eq(now))
                    .execute(conn)?;
                    if n != 1 {
                        return Ok(None);
                    }
                }
                Ok(email)
            })?;
        let Some(email) = email else {
            audit::record(
                conn,
                &Entry {
                    action: "auth.signin_failed",
                    object_type: "magic_link",
                    object_id: &hash[..16],
                    ip: Some(&ip),
                    detail: "invalid_or_used_link",
                    ..Default::default()
                },
            )?;
            return Err(AppError::Unauthorized(Code::InvalidMagicLink));
        };
        let user_id = find_or_create_user(conn, &email)?;
        insert_session(conn, &session_hash, &user_id)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(&user_id),
                action: "auth.signin",
                object_type: "user",
                object_id: &user_id,
                ip: Some(&ip),
                detail: "magic_link",
                ..Default::default()
            },
        )?;
        Ok(())
    })
    .await?;
    Ok(session)
}

fn insert_session(conn: &mut DbConn, session_hash: &str, user_id: &str) -> AppResult<()> {
    let now = db::now();
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(session_hash),
            sessions::user_id.eq(user_id),
            sessions::csrf_token.eq(random_token()),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(now + SESSION_TTL),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user of an unexpired session, by the session token's hash:
/// `(user id, email, CSRF token, is operator)`.
pub fn session_user(
    conn: &mut DbConn,
    token_hash: &str,
) -> AppResult<Option<(String, String, String, bool)>> {
    Ok(sessions::table
        .inner_join(users::table.on(users::id.eq(sessions::user_id)))
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(db::now()))
        .select((
            users::id,
            users::email,
            sessions::csrf_token,
            users::is_operator,
        ))
        .first(conn)
        .optional()?)
}

/// The user of an unrevoked API token, by the token's hash; records its use.
pub fn api_token_user(conn: &mut DbConn, token_hash: &str) -> AppResult<Option<String>> {
    let user_id: Option<String> = api_tokens::table
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::revoked_at.is_null())
        .select(api_tokens::user_id)
        .first(conn)
        .optional()?;
    if user_id.is_some() {
        diesel::update(api_tokens::table.filter(api_tokens::token_hash.eq(token_hash)))
            .set(api_tokens::last_used_at.eq(db::now()))
            .execute(conn)?;
    }
    Ok(user_id)
}

/// Opens a session for `user_id` (OAuth sign-in) and returns its token, stored hashed.
pub fn start_session(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    let session = random_token();
    insert_session(conn, &token_hash(&session), user_id)?;
    Ok(session)
}

/// Returns the id of the user with `email`, creating the account on first sign-in.
pub fn find_or_create_user(conn: &mut DbConn, email: &str) -> AppResult<String> {
    if let Some(id) = users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first::<String>(conn)
        .optional()?
    {
        return Ok(id);
    }
    let id = db::new_id();
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&id),
            users::email.eq(email),
            users::is_operator.eq(false),
            users::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(id)
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
    Ok(HttpResponse::SeeOther()
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
            diesel::delete(sessions::table.filter(sessions::token_hash.eq(hash))).execute(conn)?;
        }
        crate::members::end_console_sessions_everywhere(conn, &st.command_notify, &user_id)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie(&state, String::new(), 0))
        .insert_header((header::LOCATION, "/signin"))
        .finish())
}

/// A personal API token as listed (never the value).
#[derive(Debug, Clone, Queryable)]
pub struct TokenRow {
    /// Token id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Last used, unix seconds.
    pub last_used_at: Option<i64>,
}

/// Creates a personal API token for `user_id`; the value is returned once and stored hashed.
pub fn create_api_token(conn: &mut DbConn, user_id: &str, name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(AppError::invalid(
            Code::InvalidTokenName,
            "Give the token a name of 1 to 64 characters.",
        ));
    }
    let value = format!("op_{}", random_token());
    let id = db::new_id();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(&id),
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(token_hash(&value)),
            api_tokens::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "api_token.created",
            object_type: "api_token",
            object_id: &id,
            detail: "",
            ..Default::default()
        },
    )?;
    Ok(value)
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    user: CurrentUser,
    tokens: Vec<TokenRow>,
    created: Option<String>,
    error: Option<String>,
}

fn list_tokens(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<TokenRow>> {
    Ok(api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::revoked_at.is_null())
        .order(api_tokens::created_at.desc())
        .select((
            api_tokens::id,
            api_tokens::name,
            api_tokens::created_at,
            api_tokens::last_used_at,
        ))
        .load(conn)?)
}

pub(crate) async fn tokens_page(state: State, user: CurrentUser) -> PageResult {
    let uid = user.id.clone();
    let tokens = db::run(&state.db, move |conn| list_tokens(conn, &uid)).await?;
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
        let created = create_api_token(conn, &uid, &name);
        Ok((created, list_tokens(conn, &uid)?))
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
