//! The `email_changes` table (pending changes by their token's hash) and the address
//! itself in `users`.

use super::model::LINK_TTL;
use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::infra::schema::{email_changes, users};
use diesel::prelude::*;

/// Changes `user_id` asked for since `since`.
pub fn asked_since(conn: &mut DbConn, user_id: &str, since: i64) -> AppResult<i64> {
    Ok(email_changes::table
        .filter(email_changes::user_id.eq(user_id))
        .filter(email_changes::created_at.gt(since))
        .count()
        .get_result(conn)?)
}

/// Stores a pending change, making it the only unused one of `user_id` (the newest link is
/// the one that works).
pub fn insert(
    conn: &mut DbConn,
    hash: &str,
    user_id: &str,
    new_email: &str,
    now: i64,
) -> AppResult<()> {
    diesel::update(
        email_changes::table
            .filter(email_changes::user_id.eq(user_id))
            .filter(email_changes::used_at.is_null()),
    )
    .set(email_changes::expires_at.eq(now))
    .execute(conn)?;
    diesel::insert_into(email_changes::table)
        .values((
            email_changes::token_hash.eq(hash),
            email_changes::user_id.eq(user_id),
            email_changes::new_email.eq(new_email),
            email_changes::created_at.eq(now),
            email_changes::expires_at.eq(now + LINK_TTL),
        ))
        .execute(conn)?;
    Ok(())
}

/// Uses up an unexpired, unused change: `(user id, new address)`, or `None`.
pub fn take(conn: &mut DbConn, hash: &str, now: i64) -> AppResult<Option<(String, String)>> {
    let found: Option<(String, String)> = email_changes::table
        .filter(email_changes::token_hash.eq(hash))
        .filter(email_changes::used_at.is_null())
        .filter(email_changes::expires_at.gt(now))
        .select((email_changes::user_id, email_changes::new_email))
        .first(conn)
        .optional()?;
    if found.is_none() {
        return Ok(None);
    }
    // Single use: the conditional update is what makes a concurrent replay lose.
    let n = diesel::update(
        email_changes::table
            .filter(email_changes::token_hash.eq(hash))
            .filter(email_changes::used_at.is_null()),
    )
    .set(email_changes::used_at.eq(now))
    .execute(conn)?;
    Ok(found.filter(|_| n == 1))
}

/// The address of `user_id`.
pub fn email_of(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    Ok(users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?)
}

/// Whether an account uses `email`.
pub fn taken(conn: &mut DbConn, email: &str) -> AppResult<bool> {
    let n: i64 = users::table
        .filter(users::email.eq(email))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Sets the address of `user_id`.
pub fn set_email(conn: &mut DbConn, user_id: &str, email: &str) -> AppResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::email.eq(email))
        .execute(conn)?;
    Ok(())
}

/// Deletes changes that expired before `before` (the CP's retention schedule).
pub fn purge_expired(conn: &mut DbConn, before: i64) -> AppResult<usize> {
    Ok(
        diesel::delete(email_changes::table.filter(email_changes::expires_at.lt(before)))
            .execute(conn)?,
    )
}
