//! Accounts: email magic-link sign-in, cookie sessions (listed with device and coarse
//! place, ended one by one or all others), CSRF + Origin checks, personal API tokens
//! (named, expiring, optionally read-only, revocable). Tokens (magic links, sessions, API
//! tokens) are 256-bit random values stored only as SHA-256.
//!
//! Tables: `users`, `sessions`, `magic_links`, `api_tokens` (and, in [`oauth`],
//! `oauth_identities`). Called by the extractors in `http/` ([`authenticate_session`],
//! [`authenticate_api_token`]), by the CLI, by members (accepting an invitation signs in) and by
//! mydata. [`model`]: lifetimes, limits, email and token-name rules; [`store`]: the
//! queries; [`service`]: the use cases; [`web`]: the pages; [`oauth`]: sign-in with
//! Google, GitHub and Apple (`crate::oauth` is this module).

pub mod devices;
pub mod email_change;
pub mod model;
pub mod oauth;
pub mod service;
pub mod store;
pub mod web;

pub use model::{normalize_email, TokenScope, SESSION_COOKIE, SESSION_TTL};
pub use service::{
    authenticate_api_token, authenticate_session, create_api_token, revoke_api_token,
    start_session, ApiCaller, CreatedToken, NewToken,
};
pub use store::{find_or_create_user, session_user, SessionAuth, TokenRow};
pub use web::{consume_magic_link, request_magic_link, session_cookie};
