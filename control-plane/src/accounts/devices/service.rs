//! Recognising the browser a sign-in comes from.

use super::model::Recognised;
use super::store;
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use outpost_crypto::{random_token, token_hash};

/// Records that `user_id` signed in from the browser holding `cookie` (its device token, if
/// it sent one). A browser this account has not used before is remembered and announced,
/// unless the account has no browser yet: its first sign-in (the sign-up) is no news to
/// anyone. A browser without a token gets a new one.
pub fn recognise(conn: &mut DbConn, user_id: &str, cookie: Option<&str>) -> AppResult<Recognised> {
    let now = db::now();
    // Only a token of ours is reused: a cookie value someone set by hand gets replaced.
    let token = cookie
        .filter(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let hash = token_hash(&token);
    db::transaction(conn, |conn| {
        if store::touch(conn, user_id, &hash, now)? {
            return Ok(Recognised {
                token,
                announce: false,
            });
        }
        let announce = store::has_any(conn, user_id)?;
        store::insert(conn, user_id, &hash, now)?;
        Ok(Recognised { token, announce })
    })
}
