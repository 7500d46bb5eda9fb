//! The node's idea of time next to the control plane's (issue 18). Every gateway answer
//! carries the CP's time in its `Date` header; the node keeps the offset CP − local and
//! schedules what the CP judges (certificate renewal) in CP time, so a node whose clock is
//! wrong by days neither renews in a loop nor too late. A test can shift the local clock
//! with `skew` instead of running under `faketime`; the node's TLS clients see the same
//! shifted time ([`Clock::tls_config`]).
//!
//! Before the first answer, a node whose clock is behind learns it from the TLS handshake:
//! the gateway's certificate is "not yet valid" to it ([`outpost_pki::ClockBehind`]).

use outpost_pki::ClockBehind;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

/// How far apart the clocks must be before the node says so, seconds.
pub const SKEW_WARN_SECS: i64 = 120;

/// Local time (with a test skew) and the last seen offset to the CP's clock.
#[derive(Debug, Default)]
pub struct Clock {
    skew: i64,
    offset: AtomicI64,
    known: AtomicBool,
    warned: AtomicBool,
    behind: Arc<ClockBehind>,
}

impl Clock {
    /// A clock whose local time is the system's plus `skew` seconds (0 outside tests).
    pub fn new(skew: i64) -> Self {
        Self {
            skew,
            ..Self::default()
        }
    }

    /// Local unix time, seconds (the system clock, plus the test skew).
    pub fn local_now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + self.skew
    }

    /// The CP's time as best known: local time plus the last seen offset (0 until the CP
    /// first answered).
    pub fn cp_now(&self) -> i64 {
        self.local_now() + self.offset.load(Ordering::Relaxed)
    }

    /// rustls client configuration for the gateway: pins `ca_pem`, presents the node's
    /// certificate (PEM, with its key's PEM) when given, judges certificate times by this clock and tolerates a
    /// gateway certificate "not yet valid" within [`outpost_pki::MAX_TOLERATED_BEHIND`],
    /// noting how far behind this clock is ([`Clock::behind_at_least`]).
    pub fn tls_config(
        &self,
        ca_pem: &str,
        client: Option<(&str, &str)>,
    ) -> Result<rustls::ClientConfig, outpost_pki::PkiError> {
        let key = client
            .map(|(_, key_pem)| outpost_pki::key_from_pem(key_pem))
            .transpose()?;
        let client = client.zip(key.as_ref()).map(|((cert, _), key)| (cert, key));
        outpost_pki::node_client_config_skewed(ca_pem, client, self.skew, self.behind.clone())
    }

    /// Seconds this clock is behind the CP's at least, as a TLS handshake showed (the
    /// gateway's certificate started after local time), before any answer could.
    pub fn behind_at_least(&self) -> Option<i64> {
        self.behind.at_least()
    }

    /// CP time − local time, seconds, once an answer was seen.
    pub fn offset(&self) -> Option<i64> {
        self.known
            .load(Ordering::Relaxed)
            .then(|| self.offset.load(Ordering::Relaxed))
    }

    /// Takes the CP's time from an answer's `Date` header, if it has a readable one, and
    /// says once per period of skew when the clocks are more than [`SKEW_WARN_SECS`]
    /// apart.
    pub fn observe(&self, headers: &reqwest::header::HeaderMap) {
        let Some(cp) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
        else {
            return;
        };
        let offset = cp - self.local_now();
        self.offset.store(offset, Ordering::Relaxed);
        self.known.store(true, Ordering::Relaxed);
        if offset.abs() > SKEW_WARN_SECS {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(offset_secs = offset, "{}", skew_words(offset));
            }
        } else {
            self.warned.store(false, Ordering::Relaxed);
        }
    }
}

/// "clock is N minutes behind the control plane; fix NTP" (or ahead), for `offset` =
/// CP − local seconds.
pub fn skew_words(offset: i64) -> String {
    let minutes = offset.unsigned_abs().div_ceil(60);
    let side = if offset > 0 { "behind" } else { "ahead of" };
    format!("clock is {minutes} minutes {side} the control plane; fix NTP")
}

/// Unix seconds of an HTTP date (`Wed, 02 Dec 2026 15:34:03 GMT`, RFC 9110's IMF-fixdate).
pub fn parse_http_date(s: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), &format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_http_dates_and_learns_the_offset() {
        assert_eq!(
            parse_http_date("Wed, 02 Dec 2026 15:34:03 GMT"),
            Some(1_796_225_643)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        let clock = Clock::new(40 * 86_400);
        assert_eq!(clock.offset(), None);
        let mut h = reqwest::header::HeaderMap::new();
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
            &now.weekday().to_string()[..3],
            now.day(),
            &now.month().to_string()[..3],
            now.year(),
            now.hour(),
            now.minute(),
            now.second()
        );
        h.insert(reqwest::header::DATE, date.parse().expect("header value"));
        clock.observe(&h);
        let off = clock.offset().expect("offset learned");
        assert!((off + 40 * 86_400).abs() <= 2, "{off}");
        assert!((clock.cp_now() - now.unix_timestamp()).abs() <= 2);
    }

    #[test]
    fn says_which_way_and_how_far() {
        assert_eq!(
            skew_words(600),
            "clock is 10 minutes behind the control plane; fix NTP"
        );
        assert_eq!(
            skew_words(-61),
            "clock is 2 minutes ahead of the control plane; fix NTP"
        );
    }
}
