//! Account use cases: asking for and using a sign-in link, opening a session, creating an
//! API token.

use super::model::{
    self, LINKS_PER_EMAIL, LINKS_PER_EMAIL_WINDOW, LINKS_PER_IP, LINKS_PER_IP_WINDOW,
};
use super::store;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use outpost_crypto::{random_token, token_hash};

pub use store::find_or_create_user;

/// Creates a sign-in link for `email` asked from `ip` (rate limited per address and per
/// IP); returns its token, stored hashed.
pub fn create_magic_link(conn: &mut DbConn, email: &str, ip: &str) -> AppResult<String> {
    let token = random_token();
    let hash = token_hash(&token);
    let now = db::now();
    let (by_email, by_ip) = store::links_since(
        conn,
        email,
        now - LINKS_PER_EMAIL_WINDOW,
        ip,
        now - LINKS_PER_IP_WINDOW,
    )?;
    if by_email >= LINKS_PER_EMAIL {
        return Err(AppError::RateLimited(LINKS_PER_EMAIL_WINDOW as u64));
    }
    if by_ip >= LINKS_PER_IP {
        return Err(AppError::RateLimited(LINKS_PER_IP_WINDOW as u64));
    }
    store::insert_magic_link(conn, &hash, email, ip, now)?;
    Ok(token)
}

/// Uses a sign-in link's token (once) and opens a session; returns the session token.
pub fn consume_magic_link(conn: &mut DbConn, token: &str, ip: &str) -> AppResult<String> {
    let hash = token_hash(token);
    let session = random_token();
    let now = db::now();
    let Some(email) = store::use_magic_link(conn, &hash, now)? else {
        audit::record(
            conn,
            &Entry {
                action: "auth.signin_failed",
                object_type: "magic_link",
                object_id: &hash[..16],
                ip: Some(ip),
                detail: "invalid_or_used_link",
                ..Default::default()
            },
        )?;
        return Err(AppError::Unauthorized(Code::InvalidMagicLink));
    };
    let user_id = store::find_or_create_user(conn, &email)?;
    store::insert_session(conn, &token_hash(&session), &user_id)?;
    audit::record(
        conn,
        &Entry {
            actor: Some(&user_id),
            action: "auth.signin",
            object_type: "user",
            object_id: &user_id,
            ip: Some(ip),
            detail: "magic_link",
            ..Default::default()
        },
    )?;
    Ok(session)
}

/// Opens a session for `user_id` (OAuth sign-in) and returns its token, stored hashed.
pub fn start_session(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    let session = random_token();
    store::insert_session(conn, &token_hash(&session), user_id)?;
    Ok(session)
}

/// Creates a personal API token for `user_id`; the value is returned once and stored hashed.
pub fn create_api_token(conn: &mut DbConn, user_id: &str, name: &str) -> AppResult<String> {
    let name = model::token_name(name)?;
    let value = format!("op_{}", random_token());
    let id = db::new_id();
    store::insert_api_token(conn, &id, user_id, &name, &token_hash(&value))?;
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
