//! Running the schedule: [`apply`] deletes what is past its time and prunes the audit
//! chain; [`run_if_due`], called by the sweeper every few seconds, claims and runs it
//! once a day.

use super::model::{Cutoffs, Swept};
use super::store;
use crate::audit::{self, Pruned};
use crate::error::AppResult;
use crate::infra::db::DbConn;

/// Applies the schedule as of `now` (unix seconds), whether or not a run is due.
pub fn apply(conn: &mut DbConn, now: i64) -> AppResult<Swept> {
    let cutoffs = Cutoffs::at(now);
    let (usage_counts, node_reports, node_events, node_exports, retention_sweeps) =
        store::delete_older(conn, &cutoffs)?;
    let (sign_in_links, sessions) =
        crate::accounts::store::purge_expired(conn, cutoffs.expired_credentials)?;
    let known_devices =
        crate::accounts::devices::store::purge_unseen(conn, cutoffs.unseen_devices)?;
    let email_changes =
        crate::accounts::email_change::store::purge_expired(conn, cutoffs.expired_credentials)?;
    let audit = audit::prune_before(conn, cutoffs.audit)?;
    Ok(Swept {
        usage_counts,
        node_reports,
        node_events,
        node_exports,
        retention_sweeps,
        sign_in_links,
        sessions,
        known_devices,
        email_changes,
        audit,
    })
}

/// Runs the schedule if the last run is a day old (claimed with a conditional update).
pub fn run_if_due(conn: &mut DbConn, now: i64) -> AppResult<Option<Swept>> {
    if !store::claim_run(conn, now)? {
        return Ok(None);
    }
    match apply(conn, now) {
        Ok(s) => {
            if let Pruned::Refused(seq) = s.audit {
                tracing::warn!(
                    seq,
                    "audit events not pruned: the chain does not verify at this event"
                );
            }
            tracing::info!(
                usage_counts = s.usage_counts,
                node_reports = s.node_reports,
                node_events = s.node_events,
                node_exports = s.node_exports,
                retention_sweeps = s.retention_sweeps,
                sign_in_links = s.sign_in_links,
                sessions = s.sessions,
                known_devices = s.known_devices,
                email_changes = s.email_changes,
                audit_pruned = match s.audit {
                    Pruned::UpTo { count, .. } => count,
                    _ => 0,
                },
                "retention schedule applied"
            );
            Ok(Some(s))
        }
        Err(e) => {
            store::retry_soon(conn, now)?;
            Err(e)
        }
    }
}
