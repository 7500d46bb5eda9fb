//! The `known_devices` table: (account, SHA-256 of a device token), first and last seen.

use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::infra::schema::{known_devices, users};
use diesel::prelude::*;

/// Whether `user_id` has signed in from any browser before.
pub fn has_any(conn: &mut DbConn, user_id: &str) -> AppResult<bool> {
    let n: i64 = known_devices::table
        .filter(known_devices::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// When the account `user_id` was created (unix seconds).
pub fn account_created_at(conn: &mut DbConn, user_id: &str) -> AppResult<i64> {
    Ok(users::table
        .filter(users::id.eq(user_id))
        .select(users::created_at)
        .first(conn)?)
}

/// Marks the browser `hash` as seen now for `user_id`; whether it was known already.
pub fn touch(conn: &mut DbConn, user_id: &str, hash: &str, now: i64) -> AppResult<bool> {
    let n = diesel::update(
        known_devices::table
            .filter(known_devices::user_id.eq(user_id))
            .filter(known_devices::token_hash.eq(hash)),
    )
    .set(known_devices::last_seen_at.eq(now))
    .execute(conn)?;
    Ok(n > 0)
}

/// Remembers the browser `hash` for `user_id`.
pub fn insert(conn: &mut DbConn, user_id: &str, hash: &str, now: i64) -> AppResult<()> {
    diesel::insert_into(known_devices::table)
        .values((
            known_devices::user_id.eq(user_id),
            known_devices::token_hash.eq(hash),
            known_devices::first_seen_at.eq(now),
            known_devices::last_seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets browsers last seen before `before` (the CP's retention schedule).
pub fn purge_unseen(conn: &mut DbConn, before: i64) -> AppResult<usize> {
    Ok(
        diesel::delete(known_devices::table.filter(known_devices::last_seen_at.lt(before)))
            .execute(conn)?,
    )
}
