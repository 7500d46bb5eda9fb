//! Accounts: email magic-link sign-in, cookie sessions, CSRF + Origin checks, personal
//! API tokens. Tokens (magic links, sessions, API tokens) are 256-bit random values
//! stored only as SHA-256.
//!
//! Tables: `users`, `sessions`, `magic_links`, `api_tokens` (and, in [`oauth`],
//! `oauth_identities`). Called by the extractors in `http/` ([`session_user`],
//! [`api_token_user`]), by the CLI, by members (accepting an invitation signs in) and by
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

pub use model::{normalize_email, SESSION_COOKIE, SESSION_TTL};
pub use service::{create_api_token, start_session};
pub use store::{api_token_user, find_or_create_user, session_user, TokenRow};
pub use web::{consume_magic_link, request_magic_link, session_cookie};
