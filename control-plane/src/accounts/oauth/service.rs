//! Sign-in use cases: identities at providers and the accounts they sign in to. A known
//! (provider, subject) signs in its linked account; a new one needs a verified email and
//! links to the account with that email, or creates it. Unlinking one never locks anyone
//! out: the magic link always remains.

use super::model::{Provider, Refusal};
use super::store;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};

/// Signs in with a verified provider identity and returns (user id, session token, whether
/// the identity was just linked to an account that existed before, which its owner is told
/// of). Nothing is written when it refuses.
pub fn sign_in(
    conn: &mut DbConn,
    provider: Provider,
    subject: &str,
    verified_email: Option<&str>,
    ip: &str,
) -> AppResult<Result<(String, String, bool), Refusal>> {
    let now = db::now();
    let done = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let known = store::use_identity(conn, provider, subject, now)?;
        let (user_id, linked, existed) = match known {
            Some(uid) => (uid, None, true),
            None => {
                let Some(email) =
                    verified_email.and_then(|e| crate::accounts::normalize_email(e).ok())
                else {
                    return Ok(Err(Refusal::EmailUnverified));
                };
                let existed = crate::accounts::store::user_by_email(conn, &email)?.is_some();
                let uid = crate::accounts::find_or_create_user(conn, &email)?;
                let id = store::insert_identity(conn, provider, subject, &uid, &email, now)?;
                (uid, Some(id), existed)
            }
        };
        let session = crate::accounts::start_session(conn, &user_id)?;
        Ok(Ok((user_id, linked, existed, session)))
    })?;
    let (user_id, linked, existed, session) = match done {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    // Recorded after the commit, as the magic link does: the audit chain has its own
    // retrying transaction.
    if let Some(id) = &linked {
        audit::record(
            conn,
            &Entry {
                actor: Some(&user_id),
                action: "identity.linked",
                object_type: "oauth_identity",
                object_id: id,
                ip: Some(ip),
                detail: provider.as_str(),
                ..Default::default()
            },
        )?;
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(&user_id),
            action: "signin.oauth",
            object_type: "user",
            object_id: &user_id,
            ip: Some(ip),
            detail: provider.as_str(),
            ..Default::default()
        },
    )?;
    let linked_to_existing = linked.is_some() && existed;
    Ok(Ok((user_id, session, linked_to_existing)))
}

/// Removes one of `user_id`'s identities; `NotFound` if it is not theirs.
pub fn unlink(conn: &mut DbConn, user_id: &str, id: &str, ip: &str) -> AppResult<()> {
    let provider = store::delete_identity(conn, user_id, id)?;
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "identity.unlinked",
            object_type: "oauth_identity",
            object_id: id,
            ip: Some(ip),
            detail: &provider,
            ..Default::default()
        },
    )
}

/// The identities of `user_id` as "what the control plane knows about me" shows them.
pub fn for_user_json(conn: &mut DbConn, user_id: &str) -> AppResult<serde_json::Value> {
    Ok(serde_json::json!(store::list(conn, user_id)?
        .iter()
        .map(|i| serde_json::json!({"provider": i.provider, "subject": i.subject,
            "email_when_linked": i.email, "linked_at": i.created_at, "last_used_at": i.last_used_at}))
        .collect::<Vec<_>>()))
}
