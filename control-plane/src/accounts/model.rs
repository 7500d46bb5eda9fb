//! Account rules, pure: the session and sign-in link lifetimes and limits, what an email
//! address and an API token name must look like, a token's lifetime and scope, and how a
//! session's device and place are described (coarsely, by design).

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

/// Lifetime of a new API token when none is asked for, days.
pub const TOKEN_DEFAULT_DAYS: i64 = 90;
/// The longest lifetime an API token may have, days (one year).
pub const TOKEN_MAX_DAYS: i64 = 365;
/// `last_used_at` of a token and `last_seen_at` of a session are written at most this
/// often, seconds: "last used" needs minutes, not a database write per request.
pub const TOUCH_EVERY: i64 = 60;
/// Unknown API tokens one client address may present at once before 429 …
pub const UNKNOWN_TOKENS_BURST: u32 = 10;
/// … and per minute after that.
pub const UNKNOWN_TOKENS_PER_MINUTE: u32 = 10;

/// The lifetime of a new token in seconds: `days` (1 to [`TOKEN_MAX_DAYS`]), or
/// [`TOKEN_DEFAULT_DAYS`] when none is given.
pub fn token_lifetime(days: Option<i64>) -> AppResult<i64> {
    let days = days.unwrap_or(TOKEN_DEFAULT_DAYS);
    if !(1..=TOKEN_MAX_DAYS).contains(&days) {
        return Err(AppError::invalid(
            Code::InvalidTokenExpiry,
            format!(
                "A token expires after 1 to {TOKEN_MAX_DAYS} days (at most one year); {days} days is not allowed."
            ),
        ));
    }
    Ok(days * 86_400)
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything its owner may do.
    Full,
    /// `GET` only: anything else is 403 `token_read_only`.
    ReadOnly,
}

impl TokenScope {
    /// From the stored flag.
    pub fn from_read_only(read_only: bool) -> Self {
        if read_only {
            TokenScope::ReadOnly
        } else {
            TokenScope::Full
        }
    }

    /// As the API and the CLI say it.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenScope::Full => "full",
            TokenScope::ReadOnly => "read_only",
        }
    }

    /// In words, for pages and emails.
    pub const fn words(self) -> &'static str {
        match self {
            TokenScope::Full => "full access",
            TokenScope::ReadOnly => "read-only",
        }
    }

    /// Whether a request with `method` is within the scope (read-only: GET and HEAD).
    pub fn allows(self, method: &str) -> bool {
        self == TokenScope::Full || matches!(method, "GET" | "HEAD")
    }
}

/// Why a known token is refused: revoked first (a revoked token that has also expired is
/// still "revoked", which is what its owner did), then expired.
pub fn token_refusal(revoked_at: Option<i64>, expires_at: i64, now: i64) -> Option<Code> {
    if revoked_at.is_some() {
        Some(Code::TokenRevoked)
    } else if expires_at <= now {
        Some(Code::TokenExpired)
    } else {
        None
    }
}

/// Whether a `last_used_at`/`last_seen_at` of `last` is old enough to write again.
pub fn due_for_touch(last: Option<i64>, now: i64) -> bool {
    last.is_none_or(|t| now - t >= TOUCH_EVERY)
}

/// A browser or client in words, from its `User-Agent`: "Firefox on Linux", "Safari on
/// iPhone", "curl". A small parser on purpose: the page needs a recognisable name, not a
/// fingerprint, and the header itself is not kept.
pub fn describe_device(user_agent: &str) -> String {
    let ua = user_agent;
    let has = |s: &str| ua.contains(s);
    let browser = if has("Edg/") || has("Edge/") {
        Some("Edge")
    } else if has("OPR/") || has("Opera") {
        Some("Opera")
    } else if has("SamsungBrowser/") {
        Some("Samsung Internet")
    } else if has("Firefox/") || has("FxiOS/") {
        Some("Firefox")
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        Some("Chrome")
    } else if has("Safari/") && has("Version/") {
        Some("Safari")
    } else {
        None
    };
    let os = if has("iPhone") {
        Some("iPhone")
    } else if has("iPad") {
        Some("iPad")
    } else if has("Android") {
        Some("Android")
    } else if has("Windows") {
        Some("Windows")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("Linux") || has("X11") {
        Some("Linux")
    } else {
        None
    };
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => format!("A browser on {o}"),
        (None, None) => {
            // A command-line client names itself first ("curl/8.5.0"): keep the name only.
            // Only a clean product token counts; anything else is not a name.
            let name = ua.split(['/', ' ']).next().unwrap_or_default();
            let clean = name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            let name = if clean { name } else { "" };
            if name.is_empty() {
                "Unknown device".to_owned()
            } else {
                name.to_owned()
            }
        }
    }
}

/// Where a session is used from, coarsely: the /24 network of an IPv4 address or the /48
/// of an IPv6 one, never the address itself (an IPv4-mapped IPv6 address counts as IPv4).
pub fn coarse_place(ip: &str) -> String {
    use std::net::IpAddr;
    match ip.parse::<IpAddr>().map(|a| a.to_canonical()) {
        Ok(IpAddr::V4(a)) => {
            let [a, b, c, _] = a.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(a)) => {
            let s = a.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
        Err(_) => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_default_to_90_days_and_stop_at_a_year() {
        assert_eq!(token_lifetime(None).ok(), Some(90 * 86_400));
        assert_eq!(token_lifetime(Some(1)).ok(), Some(86_400));
        assert_eq!(token_lifetime(Some(365)).ok(), Some(365 * 86_400));
        for bad in [0, -1, 366, 10_000] {
            let e = token_lifetime(Some(bad)).expect_err("refused");
            assert_eq!(e.code(), "invalid_token_expiry");
            assert!(e.message().contains("at most one year"), "{}", e.message());
        }
    }

    #[test]
    fn revoked_wins_over_expired_and_read_only_allows_reads_only() {
        assert_eq!(token_refusal(Some(5), 1, 10), Some(Code::TokenRevoked));
        assert_eq!(token_refusal(None, 10, 10), Some(Code::TokenExpired));
        assert_eq!(token_refusal(None, 11, 10), None);
        assert!(TokenScope::ReadOnly.allows("GET") && TokenScope::ReadOnly.allows("HEAD"));
        for m in ["POST", "PUT", "DELETE", "PATCH"] {
            assert!(!TokenScope::ReadOnly.allows(m) && TokenScope::Full.allows(m));
        }
    }

    #[test]
    fn touches_are_at_most_once_a_minute() {
        assert!(due_for_touch(None, 100));
        assert!(!due_for_touch(Some(100), 159));
        assert!(due_for_touch(Some(100), 160));
    }

    #[test]
    fn devices_are_named_in_words() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Linux"),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
            ("curl/8.5.0", "curl"),
            ("", "Unknown device"),
            ("\u{0}\n<script>", "Unknown device"),
            // A name with a dot would read as a link in the new-sign-in email.
            ("evil.example/1.0", "Unknown device"),
        ];
        for (ua, want) in cases {
            assert_eq!(describe_device(ua), want, "{ua}");
        }
    }

    #[test]
    fn places_are_networks_never_addresses() {
        assert_eq!(coarse_place("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(coarse_place("::ffff:198.51.100.9"), "198.51.100.0/24");
        assert_eq!(coarse_place("2001:db8:abcd:12:1::5"), "2001:db8:abcd::/48");
        assert_eq!(coarse_place("unknown"), "unknown");
    }
}
