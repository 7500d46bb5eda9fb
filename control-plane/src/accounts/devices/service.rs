//! Recognising the browser a sign-in comes from.

use super::model::Recognised;
use super::store;
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use outpost_crypto::{random_token, token_hash};

/// An account this young with no browser on record is being signed up, not signed into.
pub const NEW_ACCOUNT_SECS: i64 = 600;

/// Records that `user_id` signed in from the browser holding `cookie` (its device token, if
/// it sent one). A browser this account has not used before is remembered and announced,
/// unless this sign-in is the account's first (no browser yet, and the account made within
/// [`NEW_ACCOUNT_SECS`]): a sign-up is no news to anyone. An older account with no browser
/// on record (one from before browsers were remembered, or idle for a year) is announced.
/// A browser without a token gets a new one.
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
        let announce = store::has_any(conn, user_id)?
            || store::account_created_at(conn, user_id)? < now - NEW_ACCOUNT_SECS;
        store::insert(conn, user_id, &hash, now)?;
        Ok(Recognised { token, announce })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::infra::db::{DbConn, ScratchDb};
    use diesel::connection::SimpleConnection as _;

    /// A sign-up is not announced; an account older than that with no browser on record
    /// (from before browsers were remembered, or idle for a year) is, on its next sign-in.
    #[test]
    fn only_the_sign_up_goes_unannounced() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
        let pool = db::connect(&scratch.url).unwrap();
        let mut conn = pool.get().unwrap();
        let now = db::now();
        let sql = format!(
            "INSERT INTO users (id, email, is_operator, created_at) VALUES ('new', 'n@b.test', FALSE, {now});
             INSERT INTO users (id, email, is_operator, created_at) VALUES ('old', 'o@b.test', FALSE, 1);"
        );
        match &mut *conn {
            #[cfg(feature = "postgres")]
            DbConn::Pg(c) => c.batch_execute(&sql).unwrap(),
            DbConn::Sqlite(c) => c.batch_execute(&sql).unwrap(),
        }
        let first = recognise(&mut conn, "new", None).unwrap();
        assert!(!first.announce, "the sign-up");
        assert!(
            !recognise(&mut conn, "new", Some(&first.token))
                .unwrap()
                .announce
        );
        assert!(
            recognise(&mut conn, "new", None).unwrap().announce,
            "another browser"
        );
        assert!(
            recognise(&mut conn, "old", None).unwrap().announce,
            "no browser on record"
        );
    }
}
