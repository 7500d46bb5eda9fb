//! The schedule itself, pure: how long each kind of record is kept, how often the
//! schedule runs, and what one run deleted.

use crate::audit::Pruned;

/// Seconds in a day.
pub const DAY: i64 = 24 * 3600;
/// Usage logs (counts per hour, node timelines).
pub const USAGE_LOG_DAYS: i64 = 90;
/// Report receipts (`node_reports`): one row per report, 2,880 a day per node, kept only
/// as idempotency keys. A replay of a report whose receipt is gone changes nothing (an
/// hour's usage keeps the larger totals, exports and sweeps are stored once, and
/// `(epoch, seq)` ordering keeps an older report from moving the status), so they need
/// not live as long as the usage they carried: at 100,000 nodes 90 days of them would be
/// 26 G rows, 2 days is 0.6 G.
pub const REPORT_RECEIPT_DAYS: i64 = 2;
/// Export metadata and node retention-sweep counts.
pub const LIFECYCLE_DAYS: i64 = 90;
/// Audit events.
pub const AUDIT_DAYS: i64 = 2 * 365;
/// Billing records, once they exist (Stripe ids, invoices, plan history).
pub const BILLING_YEARS: i64 = 7;
/// Sign-in links and sessions are deleted this long after they expire.
pub const EXPIRED_CREDENTIALS_GRACE_S: i64 = DAY;
/// How often the schedule runs.
pub const RUN_EVERY_S: i64 = DAY;
/// After a failed run, try again this much later instead of a day later.
pub const RETRY_AFTER_S: i64 = 3600;

/// Rows older than these (unix seconds) are deleted by a run at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Usage logs.
    pub usage: i64,
    /// Report receipts.
    pub report_receipts: i64,
    /// Export metadata and sweep counts.
    pub lifecycle: i64,
    /// Audit events.
    pub audit: i64,
    /// Sign-in links and sessions that expired before this.
    pub expired_credentials: i64,
    /// Browsers an account has not signed in from since this are forgotten.
    pub unseen_devices: i64,
}

impl Cutoffs {
    /// The cutoffs of a run at `now`.
    pub fn at(now: i64) -> Self {
        Cutoffs {
            usage: now - USAGE_LOG_DAYS * DAY,
            report_receipts: now - REPORT_RECEIPT_DAYS * DAY,
            lifecycle: now - LIFECYCLE_DAYS * DAY,
            audit: now - AUDIT_DAYS * DAY,
            expired_credentials: now - EXPIRED_CREDENTIALS_GRACE_S,
            unseen_devices: now - crate::accounts::devices::model::DEVICE_TTL,
        }
    }
}

/// What one run deleted (row counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    /// `usage_counts` rows.
    pub usage_counts: usize,
    /// `node_reports` rows.
    pub node_reports: usize,
    /// `node_events` rows.
    pub node_events: usize,
    /// `node_exports` rows.
    pub node_exports: usize,
    /// `retention_sweeps` rows.
    pub retention_sweeps: usize,
    /// Expired `magic_links` rows (sign-in requests: address and IP).
    pub sign_in_links: usize,
    /// Expired `sessions` rows.
    pub sessions: usize,
    /// `known_devices` rows not seen for a year.
    pub known_devices: usize,
    /// Expired `email_changes` rows (a day after they expire).
    pub email_changes: usize,
    /// What happened to the audit chain.
    pub audit: Pruned,
}
