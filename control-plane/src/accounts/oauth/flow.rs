//! PKCE (RFC 7636, S256) and the `state` of a sign-in in progress.
//!
//! How the callback is tied to the browser that started it, including Apple's cross-site
//! `form_post`:
//! - `state` is 256 random bits sent to the provider; the `oauth_states` row is keyed by
//!   its SHA-256 and holds the nonce, the PKCE verifier and the SHA-256 of a second random
//!   value, the *binding*, which only the starting browser has, in the `outpost_oauth`
//!   cookie (HttpOnly, path `/auth/oauth/`, 10 minutes).
//! - The callback deletes the row (single use: the delete that removes it is the one that
//!   wins) and then requires the row to be unexpired, for this provider, and the cookie's
//!   hash to equal the row's binding. A callback URL forwarded to someone else, replayed or
//!   older than 10 minutes is refused.
//! - Apple answers with a cross-site POST from appleid.apple.com. Browsers do not send
//!   SameSite=Lax cookies on cross-site POSTs, so for Apple the binding cookie is
//!   SameSite=None (and Secure: Apple only allows https return URLs). That is safe here
//!   because the cookie authorizes nothing by itself: it only proves "this browser started
//!   the sign-in whose state row says so", and the row is looked up by the state value the
//!   provider echoes. Google and GitHub call back with a top-level GET, which Lax allows.
//! - The row lives in the database, not in process memory, so the callback may reach
//!   another replica (DESIGN §2).

use super::Provider;
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::oauth_states;
use diesel::prelude::*;
use outpost_crypto::{random_token, token_hash};

/// How long a started sign-in may take.
pub const STATE_TTL: i64 = 10 * 60;

/// `code_challenge` for a verifier: base64url(SHA-256(verifier)), no padding.
pub fn pkce_challenge(verifier: &str) -> String {
    outpost_crypto::b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// A sign-in being started: what goes to the provider and into the cookie.
#[derive(Debug)]
pub struct Started {
    /// `state` parameter.
    pub state: String,
    /// Value of the binding cookie.
    pub binding: String,
    /// OIDC `nonce` parameter.
    pub nonce: String,
    /// PKCE `code_challenge` (S256).
    pub challenge: String,
}

/// What the callback gets back from a valid state.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    /// The nonce the id_token must carry.
    pub nonce: String,
    /// The PKCE verifier for the token request.
    pub verifier: String,
}

/// Why a state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// No `state` in the callback.
    Missing,
    /// Unknown, already used, expired, for another provider, or another browser.
    Mismatch,
}

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
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
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
