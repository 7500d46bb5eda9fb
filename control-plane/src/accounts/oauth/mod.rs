//! Sign in with Google, GitHub or Apple, beside the email magic link (issue 7).
//!
//! Authorization code flow with PKCE (S256) for all three, `state` bound to the browser
//! (explained below, including Apple's cross-site `form_post`), and for the OIDC
//! providers (Google, Apple) an id_token verified against the provider's JWKS with our
//! `nonce` ([`jwt`]). GitHub is plain OAuth2: the account's primary verified email comes
//! from `GET /user/emails` ([`providers`]). Identities link to accounts by verified email
//! ([`service`]).
//!
//! What the CP keeps: the provider's subject id and the email at link time. Codes, access
//! tokens and id_tokens are used during the callback and dropped; none is logged, stored
//! or shown (docs/PRIVACY.md P7, docs/LOGGING.md).
//!
//! Routes: `GET /auth/oauth/{provider}` starts, `GET|POST /auth/oauth/{provider}/callback`
//! finishes (POST is Apple's form_post); both are rate limited per IP. A provider that is
//! off answers 404.
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
//!
//! Tables: `oauth_states`, `oauth_identities`. [`model`]: providers, refusals, PKCE;
//! [`store`]: the tables; [`service`]: signing in with an identity, unlinking;
//! [`web`]: the handlers, the identities page and [`OAuth`]; [`config`], [`jwt`] and
//! [`providers`] (the HTTP calls to the providers) as before.

pub mod config;
pub mod jwt;
pub mod model;
pub mod providers;
pub mod service;
pub mod store;
pub mod web;

pub use model::{Provider, Refusal};
pub use web::{redirect_uri, OAuth, BINDING_COOKIE};
