//! Whether this process can reach its database, as it last saw it, and since when it has
//! been able to without interruption.
//!
//! Marked down by anything that fails to reach the database: the pool failing to open a
//! connection (with the driver's own error: libpq's "Connection refused", SQLite's
//! "unable to open database file"), a request that waited out the pool, a query whose
//! connection was lost, a probe that failed or did not answer in time. Marked up only by
//! the probe (`app::workers`), so "reachable again" has one meaning and one time.
//!
//! Two readers: `/healthz` (503 while down) and the fleet sweeper, whose offline grace
//! starts again when the database comes back ([`DbHealth::reachable_since`]): reports that
//! could not be ingested during the outage must not count as silence.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

/// How often, at most, an outage that goes on is logged again with its cause.
const REMIND_EVERY_SECS: i64 = 60;
/// Distinct causes logged per outage (each is logged once when first seen).
const CAUSES_LOGGED: usize = 8;

/// See the module docs. One per pool; shared by the pool's connection manager, its error
/// handler and [`super::run`].
#[derive(Debug)]
pub struct DbHealth {
    down: AtomicBool,
    reachable_since: AtomicI64,
    outage: Mutex<Outage>,
}

#[derive(Debug, Default)]
struct Outage {
    since: i64,
    last_logged: i64,
    causes: Vec<String>,
}

impl DbHealth {
    /// Reachable, since now (the pool was just opened).
    pub fn new() -> DbHealth {
        DbHealth {
            down: AtomicBool::new(false),
            reachable_since: AtomicI64::new(super::now()),
            outage: Mutex::new(Outage::default()),
        }
    }

    /// Whether the database was last seen unreachable.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Unix seconds since when the database has been reachable without interruption (the
    /// pool's opening, or the end of the last outage).
    pub fn reachable_since(&self) -> i64 {
        self.reachable_since.load(Ordering::SeqCst)
    }

    /// The database could not be reached; `cause` is the driver's or the pool's message.
    /// Logged when an outage begins, when a new cause appears during it, and every
    /// minute while it lasts, so the log says why without a line per request.
    pub fn mark_down(&self, cause: &str) {
        let cause = one_line(cause);
        let now = super::now();
        let was_down = self.down.swap(true, Ordering::SeqCst);
        let mut o = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        if !was_down {
            *o = Outage {
                since: now,
                last_logged: now,
                causes: vec![cause.clone()],
            };
            tracing::error!(
                error = %cause,
                "database unreachable: requests are answered 503 database_unavailable until it is back"
            );
        } else if o.causes.len() < CAUSES_LOGGED && !o.causes.contains(&cause) {
            o.causes.push(cause.clone());
            o.last_logged = now;
            tracing::error!(error = %cause, down_for_secs = now - o.since, "database unreachable");
        } else if now - o.last_logged >= REMIND_EVERY_SECS {
            o.last_logged = now;
            tracing::error!(error = %cause, down_for_secs = now - o.since, "database still unreachable");
        }
    }

    /// The database answered (the probe's query). Ends an outage: the time it is back
    /// becomes [`Self::reachable_since`].
    pub fn mark_up(&self) {
        if self.down.load(Ordering::SeqCst) {
            let now = super::now();
            let o = self.outage.lock().unwrap_or_else(|p| p.into_inner());
            self.reachable_since.store(now, Ordering::SeqCst);
            self.down.store(false, Ordering::SeqCst);
            tracing::warn!(down_for_secs = now - o.since, "database reachable again");
        }
    }
}

impl Default for DbHealth {
    fn default() -> Self {
        Self::new()
    }
}

/// libpq's messages span lines ("…failed: Connection refused\n\tIs the server running…").
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_outage_moves_the_start_of_the_reachable_period_to_its_end() {
        let h = DbHealth::new();
        h.reachable_since.store(100, Ordering::SeqCst);
        assert!(!h.is_down());
        h.mark_up();
        assert_eq!(h.reachable_since(), 100, "no outage, nothing moves");
        h.mark_down("connection to server failed:\n\tConnection refused");
        assert!(h.is_down());
        assert_eq!(h.reachable_since(), 100, "still the old period while down");
        h.mark_down("timed out waiting for connection");
        h.mark_up();
        assert!(!h.is_down());
        assert!(h.reachable_since() >= super::super::now() - 5);
        let o = h.outage.lock().unwrap();
        assert_eq!(
            o.causes,
            [
                "connection to server failed: Connection refused",
                "timed out waiting for connection"
            ]
        );
    }
}
