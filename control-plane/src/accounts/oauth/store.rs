//! The sign-in tables: `oauth_states` (sign-ins in progress; how they are bound to the
//! browser is explained in [`super`]) and `oauth_identities`.

use super::model::{pkce_challenge, Pending, Provider, Started, StateError, STATE_TTL};
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::oauth_identities as oi;
use crate::infra::schema::oauth_states;
use diesel::prelude::*;
use outpost_crypto::{random_token, token_hash};

/// Stores a new sign-in for `provider` and prunes expired ones.
pub fn start(conn: &mut DbConn, provider: Provider) -> AppResult<Started> {
    let (state, binding, nonce, verifier) = (
        random_token(),
        random_token(),
        random_token(),
        random_token(),
    );
    let now = db::now();
    diesel::delete(oauth_states::table.filter(oauth_states::expires_at.lt(now))).execute(conn)?;
    diesel::insert_into(oauth_states::table)
        .values((
            oauth_states::state_hash.eq(token_hash(&state)),
            oauth_states::provider.eq(provider.as_str()),
            oauth_states::binding_hash.eq(token_hash(&binding)),
            oauth_states::nonce.eq(&nonce),
            oauth_states::pkce_verifier.eq(&verifier),
            oauth_states::created_at.eq(now),
            oauth_states::expires_at.eq(now + STATE_TTL),
        ))
        .execute(conn)?;
    Ok(Started {
        challenge: pkce_challenge(&verifier),
        state,
        binding,
        nonce,
    })
}

/// Consumes the state of a callback: single use whatever the outcome.
pub fn consume(
    conn: &mut DbConn,
    provider: Provider,
    state: Option<&str>,
    binding: Option<&str>,
) -> AppResult<Result<Pending, StateError>> {
    let Some(state) = state.filter(|s| !s.is_empty()) else {
        return Ok(Err(StateError::Missing));
    };
    let hash = token_hash(state);
    let row: Option<(String, String, String, String, i64)> = oauth_states::table
        .find(&hash)
        .select((
            oauth_states::provider,
            oauth_states::binding_hash,
            oauth_states::nonce,
            oauth_states::pkce_verifier,
            oauth_states::expires_at,
        ))
        .first(conn)
        .optional()?;
    let Some((p, binding_hash, nonce, verifier, expires_at)) = row else {
        return Ok(Err(StateError::Mismatch));
    };
    // Whoever deletes the row owns it: a concurrent replay finds nothing to delete.
    let deleted = diesel::delete(oauth_states::table.find(&hash)).execute(conn)?;
    let bound = binding
        .is_some_and(|b| outpost_crypto::ct_eq(token_hash(b).as_bytes(), binding_hash.as_bytes()));
    if deleted != 1 || p != provider.as_str() || expires_at <= db::now() || !bound {
        return Ok(Err(StateError::Mismatch));
    }
    Ok(Ok(Pending { nonce, verifier }))
}

/// An identity as listed on the account page.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct IdentityRow {
    /// Identity id.
    pub id: String,
    /// `google`, `github`, `apple`.
    pub provider: String,
    /// The provider's subject id.
    pub subject: String,
    /// Email when it was linked.
    pub email: String,
    /// Linked, unix seconds.
    pub created_at: i64,
    /// Last sign-in with it, unix seconds.
    pub last_used_at: i64,
}

impl IdentityRow {
    /// Provider name for people.
    pub fn label(&self) -> &'static str {
        Provider::parse(&self.provider).map_or("Unknown provider", Provider::label)
    }
}

/// The identities of `user_id`, oldest first.
pub fn list(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<IdentityRow>> {
    Ok(oi::table
        .filter(oi::user_id.eq(user_id))
        .order(oi::created_at.asc())
        .select((
            oi::id,
            oi::provider,
            oi::subject,
            oi::email,
            oi::created_at,
            oi::last_used_at,
        ))
        .load(conn)?)
}

/// The user a known identity signs in to, marking it used at `now`.
pub fn use_identity(
    conn: &mut DbConn,
    provider: Provider,
    subject: &str,
    now: i64,
) -> AppResult<Option<String>> {
    let known: Option<String> = oi::table
        .filter(oi::provider.eq(provider.as_str()))
        .filter(oi::subject.eq(subject))
        .select(oi::user_id)
        .first(conn)
        .optional()?;
    if known.is_some() {
        diesel::update(
            oi::table
                .filter(oi::provider.eq(provider.as_str()))
                .filter(oi::subject.eq(subject)),
        )
        .set(oi::last_used_at.eq(now))
        .execute(conn)?;
    }
    Ok(known)
}

/// Links a new identity to `user_id`; returns its id.
pub fn insert_identity(
    conn: &mut DbConn,
    provider: Provider,
    subject: &str,
    user_id: &str,
    email: &str,
    now: i64,
) -> AppResult<String> {
    let id = db::new_id();
    diesel::insert_into(oi::table)
        .values((
            oi::id.eq(&id),
            oi::provider.eq(provider.as_str()),
            oi::subject.eq(subject),
            oi::user_id.eq(user_id),
            oi::email.eq(email),
            oi::created_at.eq(now),
            oi::last_used_at.eq(now),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Deletes one of `user_id`'s identities; its provider, `NotFound` if it is not theirs.
pub fn delete_identity(conn: &mut DbConn, user_id: &str, id: &str) -> AppResult<String> {
    let provider: String = oi::table
        .filter(oi::id.eq(id))
        .filter(oi::user_id.eq(user_id))
        .select(oi::provider)
        .first(conn)?;
    diesel::delete(
        oi::table
            .filter(oi::id.eq(id))
            .filter(oi::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(provider)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn conn() -> (tempfile::TempDir, crate::infra::db::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let pool =
            crate::infra::db::connect(&dir.path().join("t.sqlite").display().to_string()).unwrap();
        (dir, pool)
    }

    #[test]
    fn a_state_works_once_only_for_its_provider_and_browser() {
        let (_d, pool) = conn();
        let c = &mut pool.get().unwrap();
        let s = start(c, Provider::Google).unwrap();
        assert_ne!(s.state, s.binding);
        assert_eq!(s.challenge.len(), 43);
        // Nothing in the row is the state or the binding themselves.
        let row: (String, String) = oauth_states::table
            .select((oauth_states::state_hash, oauth_states::binding_hash))
            .first(c)
            .unwrap();
        assert_ne!(row.0, s.state);
        assert_ne!(row.1, s.binding);

        let p = consume(c, Provider::Google, Some(&s.state), Some(&s.binding))
            .unwrap()
            .unwrap();
        assert_eq!(pkce_challenge(&p.verifier), s.challenge);
        assert_eq!(p.nonce, s.nonce);
        assert_eq!(
            consume(c, Provider::Google, Some(&s.state), Some(&s.binding)).unwrap(),
            Err(StateError::Mismatch),
            "single use"
        );

        let s = start(c, Provider::Google).unwrap();
        assert_eq!(
            consume(c, Provider::Google, Some(&s.state), Some("another-browser")).unwrap(),
            Err(StateError::Mismatch)
        );
        assert_eq!(
            consume(c, Provider::Google, Some(&s.state), Some(&s.binding)).unwrap(),
            Err(StateError::Mismatch),
            "a refused attempt burns the state too"
        );

        let s = start(c, Provider::Google).unwrap();
        assert_eq!(
            consume(c, Provider::Apple, Some(&s.state), Some(&s.binding)).unwrap(),
            Err(StateError::Mismatch)
        );
        let s = start(c, Provider::Github).unwrap();
        assert_eq!(
            consume(c, Provider::Github, Some(&s.state), None).unwrap(),
            Err(StateError::Mismatch),
            "no cookie"
        );
        assert_eq!(
            consume(c, Provider::Github, None, Some(&s.binding)).unwrap(),
            Err(StateError::Missing)
        );
    }

    #[test]
    fn a_state_expires_after_ten_minutes() {
        let (_d, pool) = conn();
        let c = &mut pool.get().unwrap();
        let s = start(c, Provider::Apple).unwrap();
        diesel::update(oauth_states::table)
            .set(oauth_states::expires_at.eq(db::now() - 1))
            .execute(c)
            .unwrap();
        assert_eq!(
            consume(c, Provider::Apple, Some(&s.state), Some(&s.binding)).unwrap(),
            Err(StateError::Mismatch)
        );
        // Starting another sign-in prunes expired rows.
        let _ = start(c, Provider::Apple).unwrap();
        let left: i64 = oauth_states::table.count().get_result(c).unwrap();
        assert_eq!(left, 1);
    }
}
