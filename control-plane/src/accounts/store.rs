//! The accounts' tables: `users`, `sessions`, `magic_links`, `api_tokens`.

use super::model::{MAGIC_LINK_TTL, SESSION_TTL, TOUCH_EVERY};
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{api_tokens, magic_links, sessions, users};
use diesel::prelude::*;
use outpost_crypto::random_token;

/// A personal API token as listed (never the value, never its hash).
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct TokenRow {
    /// Token id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Last used, unix seconds (to the minute: written at most once a minute).
    pub last_used_at: Option<i64>,
    /// Expires, unix seconds.
    pub expires_at: i64,
    /// GET only.
    pub read_only: bool,
}

/// What authenticating with a token's hash finds.
#[derive(Debug, Clone, Queryable)]
pub struct TokenAuth {
    /// Token id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// GET only.
    pub read_only: bool,
    /// Expires, unix seconds.
    pub expires_at: i64,
    /// Revoked, unix seconds.
    pub revoked_at: Option<i64>,
    /// Last used, unix seconds.
    pub last_used_at: Option<i64>,
}

/// A signed-in session as its owner sees it listed (never the token or its hash).
#[derive(Debug, Clone, Queryable)]
pub struct SessionRow {
    /// The session's public id.
    pub id: String,
    /// Signed in, unix seconds.
    pub created_at: i64,
    /// Ends, unix seconds.
    pub expires_at: i64,
    /// Last seen, unix seconds (to the minute).
    pub last_seen_at: Option<i64>,
    /// "Firefox on Linux" (empty until the session is first used).
    pub device: String,
    /// The /24 or /48 network (empty until the session is first used).
    pub place: String,
    /// The token's hash, to mark the caller's own session; never shown.
    pub token_hash: String,
}

/// The user behind a session cookie, with what the extractor needs to keep the session's
/// "last seen" fresh.
#[derive(Debug, Clone, Queryable)]
pub struct SessionAuth {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// CSRF token.
    pub csrf: String,
    /// Operator flag.
    pub is_operator: bool,
    /// Last seen, unix seconds.
    pub last_seen_at: Option<i64>,
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

/// Stores a session by its token's hash, with a new CSRF token and a public id. Device
/// and place are filled in by its first use ([`touch_session`]).
pub fn insert_session(conn: &mut DbConn, session_hash: &str, user_id: &str) -> AppResult<()> {
    let now = db::now();
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(session_hash),
            sessions::user_id.eq(user_id),
            sessions::csrf_token.eq(random_token()),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(now + SESSION_TTL),
            sessions::id.eq(db::new_id()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records that a session was used at `now` from `device` and `place`.
pub fn touch_session(
    conn: &mut DbConn,
    session_hash: &str,
    now: i64,
    device: &str,
    place: &str,
) -> AppResult<()> {
    diesel::update(sessions::table.filter(sessions::token_hash.eq(session_hash)))
        .set((
            sessions::last_seen_at.eq(now),
            sessions::device.eq(device),
            sessions::place.eq(place),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user's unexpired sessions, most recently seen first.
pub fn list_sessions(conn: &mut DbConn, user_id: &str, now: i64) -> AppResult<Vec<SessionRow>> {
    let mut rows: Vec<SessionRow> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .select((
            sessions::id,
            sessions::created_at,
            sessions::expires_at,
            sessions::last_seen_at,
            sessions::device,
            sessions::place,
            sessions::token_hash,
        ))
        .load(conn)?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.last_seen_at.unwrap_or(r.created_at)));
    Ok(rows)
}

/// Deletes one of the user's sessions by its public id; whether there was one.
pub fn delete_user_session(conn: &mut DbConn, user_id: &str, id: &str) -> AppResult<bool> {
    Ok(diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.eq(id)),
    )
    .execute(conn)?
        == 1)
}

/// Deletes the user's sessions except the one with `keep_hash`; how many.
pub fn delete_other_sessions(
    conn: &mut DbConn,
    user_id: &str,
    keep_hash: &str,
) -> AppResult<usize> {
    Ok(diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::token_hash.ne(keep_hash)),
    )
    .execute(conn)?)
}

/// Deletes a session by its token's hash.
pub fn delete_session(conn: &mut DbConn, session_hash: &str) -> AppResult<()> {
    diesel::delete(sessions::table.filter(sessions::token_hash.eq(session_hash))).execute(conn)?;
    Ok(())
}

/// The user of an unexpired session, by the session token's hash.
pub fn session_user(conn: &mut DbConn, token_hash: &str) -> AppResult<Option<SessionAuth>> {
    Ok(sessions::table
        .inner_join(users::table.on(users::id.eq(sessions::user_id)))
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(db::now()))
        .select((
            users::id,
            users::email,
            sessions::csrf_token,
            users::is_operator,
            sessions::last_seen_at,
        ))
        .first(conn)
        .optional()?)
}

/// The API token with `token_hash`, revoked and expired ones included (so the caller can
/// be told which); `None` if there is none.
pub fn api_token_by_hash(conn: &mut DbConn, token_hash: &str) -> AppResult<Option<TokenAuth>> {
    Ok(api_tokens::table
        .filter(api_tokens::token_hash.eq(token_hash))
        .select((
            api_tokens::id,
            api_tokens::user_id,
            api_tokens::read_only,
            api_tokens::expires_at,
            api_tokens::revoked_at,
            api_tokens::last_used_at,
        ))
        .first(conn)
        .optional()?)
}

/// Records a token's use at `now`, unless another request already did within the
/// minute (the condition makes concurrent requests write once).
pub fn touch_api_token(conn: &mut DbConn, id: &str, now: i64) -> AppResult<()> {
    diesel::update(
        api_tokens::table.filter(api_tokens::id.eq(id)).filter(
            api_tokens::last_used_at
                .is_null()
                .or(api_tokens::last_used_at.le(now - TOUCH_EVERY)),
        ),
    )
    .set(api_tokens::last_used_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// Revokes one of the user's unrevoked tokens; its name if there was one.
pub fn revoke_api_token(
    conn: &mut DbConn,
    user_id: &str,
    id: &str,
    now: i64,
) -> AppResult<Option<String>> {
    let name: Option<String> = api_tokens::table
        .filter(api_tokens::id.eq(id))
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::revoked_at.is_null())
        .select(api_tokens::name)
        .first(conn)
        .optional()?;
    if name.is_some() {
        diesel::update(
            api_tokens::table
                .filter(api_tokens::id.eq(id))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(now))
        .execute(conn)?;
    }
    Ok(name)
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
    row: &TokenRow,
    user_id: &str,
    hash: &str,
) -> AppResult<()> {
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(&row.id),
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(&row.name),
            api_tokens::token_hash.eq(hash),
            api_tokens::created_at.eq(row.created_at),
            api_tokens::expires_at.eq(row.expires_at),
            api_tokens::read_only.eq(row.read_only),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user's unrevoked API tokens (expired ones included, marked by their expiry),
/// newest first.
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
            api_tokens::expires_at,
            api_tokens::read_only,
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

/// The owner `(user id, email)` of an unrevoked token, by the token's id.
pub fn token_owner(conn: &mut DbConn, id: &str) -> AppResult<Option<(String, String)>> {
    let user: Option<String> = api_tokens::table
        .filter(api_tokens::id.eq(id))
        .filter(api_tokens::revoked_at.is_null())
        .select(api_tokens::user_id)
        .first(conn)
        .optional()?;
    let Some(user) = user else { return Ok(None) };
    let email: String = users::table
        .filter(users::id.eq(&user))
        .select(users::email)
        .first(conn)?;
    Ok(Some((user, email)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use diesel::connection::SimpleConnection as _;

    /// Tokens made before expiries existed get 90 days from the migration (not "never",
    /// not "now"); sessions signed in before ids existed get distinct ids and stay valid.
    #[test]
    fn the_migration_gives_old_tokens_an_expiry_and_old_sessions_ids() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = db::ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
        let pool = db::connect(&scratch.url).unwrap();
        let mut conn = pool.get().unwrap();
        db::revert_to_before(&mut conn, "20261204000013").unwrap();
        let sql = "INSERT INTO users (id, email, is_operator, created_at) VALUES ('u1', 'a@b.test', FALSE, 1);
             INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ('t1', 'u1', 'old', 'h1', 1);
             INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ('s1', 'u1', 'c', 1, 99999999999);
             INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ('s2', 'u1', 'c', 1, 99999999999);";
        match &mut *conn {
            #[cfg(feature = "postgres")]
            DbConn::Pg(c) => c.batch_execute(sql).unwrap(),
            DbConn::Sqlite(c) => c.batch_execute(sql).unwrap(),
        }
        db::run_migrations(&mut conn).unwrap();

        let (expires, read_only): (i64, bool) = api_tokens::table
            .find("t1")
            .select((api_tokens::expires_at, api_tokens::read_only))
            .first(&mut conn)
            .unwrap();
        assert!(
            (expires - (db::now() + 90 * 86_400)).abs() < 120,
            "{expires}"
        );
        assert!(!read_only, "old tokens keep their full scope");
        let ids: Vec<String> = sessions::table
            .select(sessions::id)
            .load(&mut conn)
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(
            ids.iter().all(|i| i.len() >= 16) && ids[0] != ids[1],
            "{ids:?}"
        );
        assert!(
            session_user(&mut conn, "s1").unwrap().is_some(),
            "still signed in"
        );
    }
}
