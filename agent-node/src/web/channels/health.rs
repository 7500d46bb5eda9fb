//! The channels' checks in reports, and when refused webhooks may change them.

use super::{SMS, TELEGRAM, VOICE, WHATSAPP};
use crate::platform::store::Store;
use outpost_protocol::Check;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `meta` key holding the channel checks (JSON list), for the report producer.
const HEALTH_KEY: &str = "channel_health";

/// The `telegram` and `whatsapp` checks carried by reports: the last outcome of talking
/// to each provider, as a stable code. Kept in memory and, when it changes, in `meta`,
/// where [`checks`] reads it.
///
/// Webhooks refused for their signature or secret token only turn the check to failing
/// when they keep coming for [`REFUSAL_WINDOW`] without one valid webhook in between,
/// as every delivery does when the secret configured here is not the provider's. Anyone
/// can send a request to a webhook URL: one forged request must not make a working
/// channel look broken until the next real message. A request carrying no signature at
/// all is never the provider's and never counts.
pub struct ChannelHealth {
    last: Mutex<HashMap<&'static str, Result<(), &'static str>>>,
    /// Per channel, when the current run of refused webhooks began.
    refused_since: Mutex<HashMap<&'static str, Instant>>,
    refusal_window: Duration,
    store: Option<Arc<Store>>,
}

/// How long signed webhooks must keep failing their check, with no valid one in between,
/// before the channel's check says so.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(10 * 60);

impl Default for ChannelHealth {
    fn default() -> Self {
        Self {
            last: Mutex::default(),
            refused_since: Mutex::default(),
            refusal_window: REFUSAL_WINDOW,
            store: None,
        }
    }
}

impl std::fmt::Debug for ChannelHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.checks()).finish()
    }
}

/// The channel checks last recorded on this node (what reports carry); empty before a
/// channel was used.
pub fn checks(store: &Store) -> Vec<Check> {
    match store.meta(HEALTH_KEY) {
        Ok(Some(raw)) => serde_json::from_str(&raw).unwrap_or_default(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::error!(error = %e, "reading the channel checks failed");
            Vec::new()
        }
    }
}

impl ChannelHealth {
    /// The provider answered as expected.
    pub fn record_ok(&self, channel: &'static str) {
        self.set(channel, Ok(()));
    }

    /// Something failed; `code` is stable snake_case (`token_revoked`, `unreachable`…).
    pub fn record_error(&self, channel: &'static str, code: &'static str) {
        self.set(channel, Err(code));
    }

    /// A webhook passed its signature or secret-token check.
    pub fn record_webhook_ok(&self, channel: &'static str) {
        self.refused_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(channel);
        self.record_ok(channel);
    }

    /// A webhook was refused: `signed` when it carried a signature or token that did not
    /// match (see the type's documentation for when this changes the check).
    pub fn record_webhook_refused(&self, channel: &'static str, code: &'static str, signed: bool) {
        if !signed {
            return;
        }
        let since = *self
            .refused_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel)
            .or_insert_with(Instant::now);
        if since.elapsed() >= self.refusal_window {
            self.record_error(channel, code);
        }
    }

    /// Health persisted in `store` (see [`checks`]).
    pub fn persisted(store: Arc<Store>) -> Self {
        Self {
            store: Some(store),
            ..Self::default()
        }
    }

    fn set(&self, channel: &'static str, r: Result<(), &'static str>) {
        let changed = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel, r)
            != Some(r);
        if let (true, Some(store)) = (changed, &self.store) {
            let doc = serde_json::to_string(&self.checks()).unwrap_or_default();
            if let Err(e) = store.with(|c| Store::set_meta(c, HEALTH_KEY, &doc)) {
                tracing::error!(error = %e, "saving the channel checks failed");
            }
        }
    }

    /// One check per channel that has been used since the start, `telegram` first.
    pub fn checks(&self) -> Vec<Check> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        [TELEGRAM, WHATSAPP, SMS, VOICE]
            .iter()
            .filter_map(|name| {
                last.get(name).map(|r| Check {
                    name: (*name).to_owned(),
                    ok: r.is_ok(),
                    detail_code: r.err().map(str::to_owned),
                })
            })
            .collect()
    }

    /// The check of one channel, if any.
    pub fn check(&self, channel: &str) -> Option<Check> {
        self.checks().into_iter().find(|c| c.name == channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reports_codes() {
        let h = ChannelHealth::default();
        assert!(h.checks().is_empty());
        h.record_error(WHATSAPP, "outside_24h_window");
        h.record_ok(TELEGRAM);
        let checks = h.checks();
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].name, "telegram");
        assert!(checks[0].ok);
        assert_eq!(checks[1].detail_code.as_deref(), Some("outside_24h_window"));

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
        assert!(super::checks(&store).is_empty());
        let h = ChannelHealth::persisted(store.clone());
        h.record_error(TELEGRAM, "token_revoked");
        assert_eq!(super::checks(&store), h.checks());
        assert_eq!(
            super::checks(&store)[0].detail_code.as_deref(),
            Some("token_revoked")
        );
    }

    #[test]
    fn refused_webhooks_fail_the_check_only_when_they_keep_coming() {
        let h = ChannelHealth::default();
        h.record_ok(WHATSAPP);
        for signed in [false, true, true] {
            h.record_webhook_refused(WHATSAPP, "webhook_signature_invalid", signed);
        }
        assert!(
            h.check(WHATSAPP).expect("check").ok,
            "a few refusals say nothing"
        );

        // Refusals still coming after the window (the configured secret is wrong).
        let h = ChannelHealth {
            refusal_window: Duration::ZERO,
            ..ChannelHealth::default()
        };
        h.record_ok(WHATSAPP);
        h.record_webhook_refused(WHATSAPP, "webhook_signature_invalid", false);
        assert!(
            h.check(WHATSAPP).expect("check").ok,
            "unsigned never counts"
        );
        h.record_webhook_refused(WHATSAPP, "webhook_signature_invalid", true);
        let check = h.check(WHATSAPP).expect("check");
        assert_eq!(
            check.detail_code.as_deref(),
            Some("webhook_signature_invalid")
        );
        // A valid webhook ends the run.
        h.record_webhook_ok(WHATSAPP);
        assert!(h.check(WHATSAPP).expect("check").ok);
        let h = ChannelHealth {
            refusal_window: Duration::from_secs(3600),
            ..ChannelHealth::default()
        };
        h.record_webhook_refused(WHATSAPP, "webhook_signature_invalid", true);
        h.record_webhook_ok(WHATSAPP);
        h.record_webhook_refused(WHATSAPP, "webhook_signature_invalid", true);
        assert!(h.check(WHATSAPP).expect("check").ok);
    }
}
