//! Asking for and confirming a change of address.

use super::model::{Changed, Requested, PER_HOUR};
use super::store;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use outpost_crypto::{random_token, token_hash};

/// Asks to move `user_id` to the address `raw`. The caller sends the link (or, when the
/// address is taken, the notice) to the new address and a notice to the old one; the
/// answer to the requester is the same either way.
pub fn request(conn: &mut DbConn, user_id: &str, raw: &str, ip: &str) -> AppResult<Requested> {
    let new_email = crate::accounts::normalize_email(raw)?;
    let old_email = store::email_of(conn, user_id)?;
    if new_email == old_email {
        return Err(AppError::invalid(
            Code::InvalidEmail,
            "That is already your address.",
        ));
    }
    let now = db::now();
    if store::asked_since(conn, user_id, now - 3600)? >= PER_HOUR {
        return Err(AppError::RateLimited(3600));
    }
    // Every request is a row and counts against the hourly limit, one for a taken address
    // too: its link is never sent, so it can never be confirmed, but without the row the
    // limit would not count it (the taken address's mailbox would get a notice per
    // request, and the free ones alone using up the limit would tell which are taken).
    let taken = store::taken(conn, &new_email)?;
    let token = random_token();
    db::transaction::<_, AppError, _>(conn, |conn| {
        store::insert(conn, &token_hash(&token), user_id, &new_email, now)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(user_id),
                action: "account.email_change_requested",
                object_type: "user",
                object_id: user_id,
                ip: Some(ip),
                detail: "",
                ..Default::default()
            },
        )
    })?;
    let token = (!taken).then_some(token);
    Ok(Requested {
        old_email,
        new_email,
        token,
    })
}

/// Confirms a change with the token from the link (once, before it expires).
pub fn confirm(conn: &mut DbConn, token: &str, ip: &str) -> AppResult<Changed> {
    let now = db::now();
    let hash = token_hash(token);
    let changed = db::transaction::<_, AppError, _>(conn, |conn| {
        let Some((user_id, new_email)) = store::take(conn, &hash, now)? else {
            return Err(AppError::invalid(
                Code::InvalidEmailChangeLink,
                "This link is invalid, expired or already used. Ask for the change again on your account's Email address page.",
            ));
        };
        // Taken since it was asked for: said to whoever holds the new address's mailbox.
        if store::taken(conn, &new_email)? {
            return Err(AppError::Conflict(
                Code::EmailTaken,
                "Another Outpost account uses this address now, so your address was not changed."
                    .into(),
            ));
        }
        let old_email = store::email_of(conn, &user_id)?;
        store::set_email(conn, &user_id, &new_email)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(&user_id),
                action: "account.email_changed",
                object_type: "user",
                object_id: &user_id,
                ip: Some(ip),
                detail: "",
                ..Default::default()
            },
        )?;
        Ok(Changed {
            user_id,
            old_email,
            new_email,
        })
    })?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use diesel::connection::SimpleConnection as _;

    /// Asking for a taken address counts against the hourly limit like any other request:
    /// its mailbox cannot be flooded with notices, and the limit does not tell taken
    /// addresses from free ones.
    #[test]
    fn requests_for_a_taken_address_count_against_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = db::ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
        let pool = db::connect(&scratch.url).unwrap();
        let mut conn = pool.get().unwrap();
        let sql = "INSERT INTO users (id, email, is_operator, created_at) VALUES ('u1', 'a@b.test', FALSE, 1);
             INSERT INTO users (id, email, is_operator, created_at) VALUES ('u2', 'taken@b.test', FALSE, 1);";
        match &mut *conn {
            #[cfg(feature = "postgres")]
            DbConn::Pg(c) => c.batch_execute(sql).unwrap(),
            DbConn::Sqlite(c) => c.batch_execute(sql).unwrap(),
        }
        for _ in 0..PER_HOUR {
            let r = request(&mut conn, "u1", "taken@b.test", "127.0.0.1").unwrap();
            assert!(r.token.is_none(), "no link for a taken address");
        }
        let e = request(&mut conn, "u1", "free@b.test", "127.0.0.1").unwrap_err();
        assert!(matches!(e, AppError::RateLimited(_)), "{e:?}");
    }
}
