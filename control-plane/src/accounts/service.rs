//! Account use cases: asking for and using a sign-in link, opening, using, listing and
//! ending sessions; creating, using, listing and revoking API tokens.

use super::model::TokenScope;
use super::model::{
    self, LINKS_PER_EMAIL, LINKS_PER_EMAIL_WINDOW, LINKS_PER_IP, LINKS_PER_IP_WINDOW,
};
use super::store::{self, SessionAuth, TokenRow};
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

/// What a new API token should be.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// 1 to 64 characters.
    pub name: String,
    /// Lifetime in days; `None` is [`model::TOKEN_DEFAULT_DAYS`].
    pub days: Option<i64>,
    /// GET only.
    pub read_only: bool,
}

/// A token just made: its value (shown once, stored only as a hash) and its row.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// `op_…`: shown once.
    pub value: String,
    /// As listed.
    pub row: TokenRow,
}

/// Creates a personal API token for `user_id`; the value is returned once and stored
/// hashed. `actor` is who asked (the user, or `cli`), `ip` where from.
pub fn create_api_token(
    conn: &mut DbConn,
    user_id: &str,
    new: &NewToken,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<CreatedToken> {
    let name = model::token_name(&new.name)?;
    let lifetime = model::token_lifetime(new.days)?;
    let value = format!("op_{}", random_token());
    let now = db::now();
    let row = TokenRow {
        id: db::new_id(),
        name,
        created_at: now,
        last_used_at: None,
        expires_at: now + lifetime,
        read_only: new.read_only,
    };
    db::transaction(conn, |conn| {
        store::insert_api_token(conn, &row, user_id, &token_hash(&value))?;
        audit::record(
            conn,
            &Entry {
                actor: Some(actor),
                action: "api_token.created",
                object_type: "api_token",
                object_id: &row.id,
                ip,
                // Scope and lifetime: what an auditor needs; never the value or its hash.
                detail: &format!(
                    "{} {}d",
                    TokenScope::from_read_only(row.read_only).as_str(),
                    lifetime / 86_400
                ),
                ..Default::default()
            },
        )
    })?;
    Ok(CreatedToken { value, row })
}

/// Revokes one of `user_id`'s tokens: 404 for an unknown, foreign or already revoked id.
/// Audited with `actor` (the user, or `cli`).
pub fn revoke_api_token(
    conn: &mut DbConn,
    user_id: &str,
    id: &str,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<()> {
    db::transaction(conn, |conn| {
        store::revoke_api_token(conn, user_id, id, db::now())?.ok_or(AppError::NotFound)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(actor),
                action: "api_token.revoked",
                object_type: "api_token",
                object_id: id,
                ip,
                detail: "",
                ..Default::default()
            },
        )
    })
}

/// Who an API token acts for, and what it may do.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    /// The token's owner.
    pub user_id: String,
    /// The token.
    pub token_id: String,
    /// What it may do.
    pub scope: TokenScope,
}

/// The caller behind an API token's hash: `Ok(None)` for a token that does not exist,
/// 401 `token_revoked` or `token_expired` for one that no longer works. Records the use
/// at most once a minute.
pub fn authenticate_api_token(conn: &mut DbConn, hash: &str) -> AppResult<Option<ApiCaller>> {
    let Some(t) = store::api_token_by_hash(conn, hash)? else {
        return Ok(None);
    };
    let now = db::now();
    if let Some(code) = model::token_refusal(t.revoked_at, t.expires_at, now) {
        return Err(AppError::Unauthorized(code));
    }
    if model::due_for_touch(t.last_used_at, now) {
        store::touch_api_token(conn, &t.id, now)?;
    }
    Ok(Some(ApiCaller {
        user_id: t.user_id,
        token_id: t.id,
        scope: TokenScope::from_read_only(t.read_only),
    }))
}

/// The user behind a session cookie's hash, or `None`. Records when and from where
/// (device in words, coarse network) the session is used, at most once a minute.
pub fn authenticate_session(
    conn: &mut DbConn,
    hash: &str,
    user_agent: &str,
    ip: &str,
) -> AppResult<Option<SessionAuth>> {
    let Some(s) = store::session_user(conn, hash)? else {
        return Ok(None);
    };
    let now = db::now();
    if model::due_for_touch(s.last_seen_at, now) {
        store::touch_session(
            conn,
            hash,
            now,
            &model::describe_device(user_agent),
            &model::coarse_place(ip),
        )?;
    }
    Ok(Some(s))
}

/// Ends one of `user_id`'s sessions by its public id (404 if it is not theirs).
/// The session ends and its audit entry is written in one transaction: both or neither.
pub fn end_session(conn: &mut DbConn, user_id: &str, id: &str, ip: &str) -> AppResult<()> {
    db::transaction(conn, |conn| {
        if !store::delete_user_session(conn, user_id, id)? {
            return Err(AppError::NotFound);
        }
        audit::record(
            conn,
            &Entry {
                actor: Some(user_id),
                action: "session.ended",
                object_type: "session",
                object_id: id,
                ip: Some(ip),
                detail: "",
                ..Default::default()
            },
        )
    })
}

/// Ends every session of `user_id` but the one whose hash is `keep_hash`; how many. One
/// transaction with its audit entry.
pub fn end_other_sessions(
    conn: &mut DbConn,
    user_id: &str,
    keep_hash: &str,
    ip: &str,
) -> AppResult<usize> {
    db::transaction(conn, |conn| {
        let n = store::delete_other_sessions(conn, user_id, keep_hash)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(user_id),
                action: "session.ended_others",
                object_type: "user",
                object_id: user_id,
                ip: Some(ip),
                detail: &n.to_string(),
                ..Default::default()
            },
        )?;
        Ok(n)
    })
}
