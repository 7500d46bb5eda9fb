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
    let token = if store::taken(conn, &new_email)? {
        None
    } else {
        let t = random_token();
        store::insert(conn, &token_hash(&t), user_id, &new_email, now)?;
        Some(t)
    };
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
    )?;
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
        Ok(Changed {
            user_id,
            old_email,
            new_email,
        })
    })?;
    audit::record(
        conn,
        &Entry {
            actor: Some(&changed.user_id),
            action: "account.email_changed",
            object_type: "user",
            object_id: &changed.user_id,
            ip: Some(ip),
            detail: "",
            ..Default::default()
        },
    )?;
    Ok(changed)
}
