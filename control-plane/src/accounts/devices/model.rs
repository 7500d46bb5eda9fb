//! Device rules, pure: the cookie and how long a browser is remembered (the browser in
//! words is `accounts::model::describe_device`, shared with the sessions page).

/// The cookie holding this browser's device token.
pub const DEVICE_COOKIE: &str = "outpost_device";
/// How long a browser is remembered after it was last seen, seconds (also the cookie's
/// lifetime, renewed at every sign-in).
pub const DEVICE_TTL: i64 = 365 * 24 * 3600;

/// What a sign-in found out about the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    /// The device token the browser should keep (its own, or a new one).
    pub token: String,
    /// The account has signed in before, but never from this browser: tell its owner.
    pub announce: bool,
}
