//! Account rules, pure: the session and sign-in link lifetimes and limits, and what an
//! email address and an API token name must look like.

use crate::error::{AppError, AppResult, Code};

/// Name of the CP session cookie.
pub const SESSION_COOKIE: &str = "outpost_session";
/// How long a sign-in link works, seconds.
pub const MAGIC_LINK_TTL: i64 = 10 * 60;
/// Lifetime of a CP session, seconds.
pub const SESSION_TTL: i64 = 14 * 24 * 3600;
/// Sign-in links one address may ask for per [`LINKS_PER_EMAIL_WINDOW`].
pub const LINKS_PER_EMAIL: i64 = 5;
/// Window of [`LINKS_PER_EMAIL`], seconds.
pub const LINKS_PER_EMAIL_WINDOW: i64 = 15 * 60;
/// Sign-in links one IP may ask for per [`LINKS_PER_IP_WINDOW`].
pub const LINKS_PER_IP: i64 = 20;
/// Window of [`LINKS_PER_IP`], seconds.
pub const LINKS_PER_IP_WINDOW: i64 = 60;

/// Normalises and validates an email address (a light check; the link proves ownership).
pub fn normalize_email(raw: &str) -> AppResult<String> {
    let e = raw.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(AppError::invalid(
            Code::InvalidEmail,
            "Enter a valid email address.",
        ))
    }
}

/// Checks an API token's name by the one rule for names ([`outpost_common::Name`]: 1 to
/// 64 characters once normalised and trimmed, no control, bidi or zero-width character)
/// and returns it normalised.
pub fn token_name(name: &str) -> AppResult<String> {
    outpost_common::Name::parse(name, 64)
        .map(outpost_common::Name::into_string)
        .map_err(|e| AppError::invalid(Code::InvalidTokenName, e.message("The token name")))
}
