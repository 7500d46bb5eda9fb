//! The accounts' tables: `users`, `sessions`, `magic_links`, `api_tokens`.

use super::model::{MAGIC_LINK_TTL, SESSION_TTL};
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{api_tokens, magic_links, sessions, users};
use diesel::prelude::*;
use outpost_crypto::random_token;

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

/// Sign-in links asked for `email` and from `ip` since `email_since` and `ip_since`.
pub fn links_since(
    conn: &mut DbConn,
    email: &str,
    email_since: i64,
    ip: &str,
    ip_since: i64,
) -> AppResult<(i64, i64)> {
    let by_email: i64 = magic_links::table
        .filter(magic_links::email.eq(email))
        .filter(magic_links::created_at.gt(email_since))
        .count()
        .get_result(conn)?;
    let by_ip: i64 = magic_links::table
        .filter(magic_links::ip.eq(ip))
        .filter(magic_links::created_at.gt(ip_since))
        .count()
        .get_result(conn)?;
    Ok((by_email, by_ip))
}

/// Stores a sign-in link by its token's hash.
pub fn insert_magic_link(
    conn: &mut DbConn,
    hash: &str,
    email: &str,
    ip: &str,
    now: i64,
) -> AppResult<()> {
    diesel::insert_into(magic_links::table)
        .values((
            magic_links::token_hash.eq(hash),
            magic_links::email.eq(email),
            magic_links::ip.eq(ip),
            magic_links::created_at.eq(now),
            magic_links::expires_at.eq(now + MAGIC_LINK_TTL),
        ))
        .execute(conn)?;
    Ok(())
}

/// Uses up an unexpired, unused sign-in link; its email, or `None` if there was no such
/// link or a concurrent request used it first.
pub fn use_magic_link(conn: &mut DbConn, hash: &str, now: i64) -> AppResult<Option<String>> {
    Ok(
        crate::infra::db::transaction::<_, diesel::result::Error, _>(conn, |conn| {
            let email: Option<String> = magic_links::table
                .filter(magic_links::token_hash.eq(hash))
                .filter(magic_links::used_at.is_null())
                .filter(magic_links::expires_at.gt(now))
                .select(magic_links::email)
                .first(conn)
                .optional()?;
            if email.is_some() {
                // Single use: the conditional update is what makes a concurrent replay lose.
                let n = diesel::update(
                    magic_links::table
                        .filter(magic_links::token_hash.eq(hash))
                        .filter(magic_links::used_at.is_null()),
                )
                .set(magic_links::used_at.eq(now))
                .execute(conn)?;
                if n != 1 {
                    return Ok(None);
                }
            }
            Ok(email)
        })?,
    )
}

/// Stores a session by its token's hash, with a new CSRF token.
pub fn insert_session(conn: &mut DbConn, session_hash: &str, user_id: &str) -> AppResult<()> {
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

/// Deletes a session by its token's hash.
pub fn delete_session(conn: &mut DbConn, session_hash: &str) -> AppResult<()> {
    diesel::delete(sessions::table.filter(sessions::token_hash.eq(session_hash))).execute(conn)?;
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

/// The address of the account `user_id`.
pub fn email_of(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    Ok(users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?)
}

/// The id of the account with `email`, if there is one.
pub fn user_by_email(conn: &mut DbConn, email: &str) -> AppResult<Option<String>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first::<String>(conn)
        .optional()?)
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

/// Stores an API token by its value's hash.
pub fn insert_api_token(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    name: &str,
    hash: &str,
) -> AppResult<()> {
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(id),
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(hash),
            api_tokens::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user's unrevoked API tokens, newest first.
pub fn list_tokens(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<TokenRow>> {
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

/// Deletes the sign-in links and sessions that expired before `before` (the CP's retention
/// schedule): `(links, sessions)` deleted. A link's row holds the address and IP of a
/// sign-in request, so it must not outlive its use.
pub fn purge_expired(conn: &mut DbConn, before: i64) -> AppResult<(usize, usize)> {
    let links = diesel::delete(magic_links::table.filter(magic_links::expires_at.lt(before)))
        .execute(conn)?;
    let sessions =
        diesel::delete(sessions::table.filter(sessions::expires_at.lt(before))).execute(conn)?;
    Ok((links, sessions))
}
