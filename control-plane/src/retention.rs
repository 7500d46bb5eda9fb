//! The control plane's own retention schedule (issue 6; docs/PRIVACY.md, OPERATIONS.md):
//!
//! | records | kept | rule here |
//! |---|---|---|
//! | usage logs: hourly message counts, report receipts, node timeline | 90 days | deleted |
//! | export metadata and retention-sweep counts reported by nodes | 90 days | deleted |
//! | audit events | 2 years | pruned from the front of the chain, anchor kept |
//! | billing records | 7 years | none exist yet (no Stripe); apply this rule when they do |
//! | closed accounts | within 30 days | closing deletes at once (`mydata::close_account`) |
//!
//! The sweeper calls [`run_if_due`] every few seconds; it does the work once a day. The
//! claim is a conditional update of `retention_runs`, so several replicas sharing one
//! database run it once between them, and a restart does not make it run again.

use crate::audit::{self, Pruned};
use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::infra::schema::{
    node_events, node_exports, node_reports, retention_runs, retention_sweeps, usage_counts,
};
use diesel::prelude::*;

const DAY: i64 = 24 * 3600;
/// Usage logs (counts per hour, report receipts, node timelines).
pub const USAGE_LOG_DAYS: i64 = 90;
/// Export metadata and node retention-sweep counts.
pub const LIFECYCLE_DAYS: i64 = 90;
/// Audit events.
pub const AUDIT_DAYS: i64 = 2 * 365;
/// Billing records, once they exist (Stripe ids, invoices, plan history).
pub const BILLING_YEARS: i64 = 7;
/// How often the schedule runs.
pub const RUN_EVERY_S: i64 = DAY;
/// After a failed run, try again this much later instead of a day later.
const RETRY_AFTER_S: i64 = 3600;

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
    /// What happened to the audit chain.
    pub audit: Pruned,
}

/// Applies the schedule as of `now` (unix seconds), whether or not a run is due.
pub fn apply(conn: &mut DbConn, now: i64) -> AppResult<Swept> {
    let usage_cutoff = now - USAGE_LOG_DAYS * DAY;
    let lifecycle_cutoff = now - LIFECYCLE_DAYS * DAY;
    let usage_counts =
        diesel::delete(usage_counts::table.filter(usage_counts::hour.lt(usage_cutoff)))
            .execute(conn)?;
    let node_reports =
        diesel::delete(node_reports::table.filter(node_reports::received_at.lt(usage_cutoff)))
            .execute(conn)?;
    let node_events =
        diesel::delete(node_events::table.filter(node_events::at_ms.lt(usage_cutoff * 1000)))
            .execute(conn)?;
    let node_exports =
        diesel::delete(node_exports::table.filter(node_exports::created_at.lt(lifecycle_cutoff)))
            .execute(conn)?;
    let retention_sweeps =
        diesel::delete(retention_sweeps::table.filter(retention_sweeps::at.lt(lifecycle_cutoff)))
            .execute(conn)?;
    let audit = audit::prune_before(conn, now - AUDIT_DAYS * DAY)?;
    Ok(Swept {
        usage_counts,
        node_reports,
        node_events,
        node_exports,
        retention_sweeps,
        audit,
    })
}

/// Runs the schedule if the last run is a day old (claimed with a conditional update).
pub fn run_if_due(conn: &mut DbConn, now: i64) -> AppResult<Option<Swept>> {
    let claimed = diesel::update(
        retention_runs::table
            .find(1)
            .filter(retention_runs::last_run_at.le(now - RUN_EVERY_S)),
    )
    .set(retention_runs::last_run_at.eq(now))
    .execute(conn)?;
    if claimed == 0 {
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
                audit_pruned = match s.audit {
                    Pruned::UpTo { count, .. } => count,
                    _ => 0,
                },
                "retention schedule applied"
            );
            Ok(Some(s))
        }
        Err(e) => {
            diesel::update(retention_runs::table.find(1))
                .set(retention_runs::last_run_at.eq(now - RUN_EVERY_S + RETRY_AFTER_S))
                .execute(conn)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::audit::Entry;
    use crate::infra::db::{self, DbPool};
    use crate::infra::schema::{audit_events, nodes, workspaces};

    /// A fresh database (see [`db::ScratchDb`]) and its pool; the guard drops it.
    fn pool() -> ((tempfile::TempDir, db::ScratchDb), DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let scratch = db::ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
        let pool = db::connect(&scratch.url).unwrap();
        ((dir, scratch), pool)
    }

    fn node(conn: &mut DbConn) -> String {
        let (ws, node) = (db::new_id(), db::new_id());
        diesel::insert_into(workspaces::table)
            .values((
                workspaces::id.eq(&ws),
                workspaces::slug.eq("acme"),
                workspaces::name.eq("Acme"),
                workspaces::plan.eq("dev"),
                workspaces::created_at.eq(0),
            ))
            .execute(conn)
            .unwrap();
        diesel::insert_into(nodes::table)
            .values((
                nodes::id.eq(&node),
                nodes::workspace_id.eq(&ws),
                nodes::state.eq("healthy"),
                nodes::provider.eq("local"),
                nodes::region.eq("local"),
                nodes::state_changed_at.eq(0),
                nodes::created_at.eq(0),
            ))
            .execute(conn)
            .unwrap();
        node
    }

    fn event(conn: &mut DbConn, n: usize) {
        audit::record(
            conn,
            &Entry {
                actor: Some("u1"),
                action: "test.event",
                object_type: "user",
                object_id: &format!("o{n}"),
                detail: "",
                ..Default::default()
            },
        )
        .unwrap();
    }

    fn backdate_audit(conn: &mut DbConn, up_to_seq: i64, at: i64) {
        // The hash covers `at`, so a backdated row is rehashed along the chain, as if it
        // had been recorded then.
        diesel::update(audit_events::table.filter(audit_events::seq.le(up_to_seq)))
            .set(audit_events::at.eq(at))
            .execute(conn)
            .unwrap();
        rehash(conn);
    }

    fn rehash(conn: &mut DbConn) {
        let rows: Vec<audit::AuditRow> = audit_events::table
            .order(audit_events::seq.asc())
            .load(conn)
            .unwrap();
        let mut prev = audit::anchor(conn)
            .unwrap()
            .map(|a| a.1)
            .unwrap_or_default();
        for r in rows {
            let h = audit::hash_of(&prev, &r);
            diesel::update(audit_events::table.find(r.seq))
                .set((audit_events::prev_hash.eq(&prev), audit_events::hash.eq(&h)))
                .execute(conn)
                .unwrap();
            prev = h;
        }
    }

    #[test]
    fn old_usage_and_lifecycle_rows_go_recent_ones_stay() {
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        let node = node(conn);
        let now = db::now();
        let old = now - 91 * DAY;
        let recent = now - 89 * DAY;
        for (i, hour) in [old, recent].into_iter().enumerate() {
            diesel::insert_into(usage_counts::table)
                .values((
                    usage_counts::node_id.eq(&node),
                    usage_counts::channel.eq("web"),
                    usage_counts::hour.eq(hour),
                    usage_counts::inbound.eq(1),
                    usage_counts::outbound.eq(1),
                    usage_counts::conversations.eq(1),
                ))
                .execute(conn)
                .unwrap();
            diesel::insert_into(node_reports::table)
                .values((
                    node_reports::node_id.eq(&node),
                    node_reports::seq.eq(i as i64 + 1),
                    node_reports::produced_at.eq(hour),
                    node_reports::received_at.eq(hour),
                ))
                .execute(conn)
                .unwrap();
            diesel::insert_into(node_events::table)
                .values((
                    node_events::id.eq(db::new_id()),
                    node_events::node_id.eq(&node),
                    node_events::at_ms.eq(hour * 1000),
                    node_events::kind.eq("state"),
                    node_events::detail.eq("x"),
                ))
                .execute(conn)
                .unwrap();
            diesel::insert_into(node_exports::table)
                .values((
                    node_exports::node_id.eq(&node),
                    node_exports::export_id.eq(db::new_id()),
                    node_exports::workspace_id.eq("ws"),
                    node_exports::scope.eq("workspace"),
                    node_exports::state.eq("expired"),
                    node_exports::size_bytes.eq(10),
                    node_exports::created_at.eq(hour),
                    node_exports::expires_at.eq(hour + DAY),
                    node_exports::updated_at.eq(hour),
                ))
                .execute(conn)
                .unwrap();
            diesel::insert_into(retention_sweeps::table)
                .values((
                    retention_sweeps::node_id.eq(&node),
                    retention_sweeps::at.eq(hour),
                    retention_sweeps::workspace_id.eq("ws"),
                    retention_sweeps::messages_deleted.eq(3),
                    retention_sweeps::contacts_erased.eq(0),
                    retention_sweeps::exports_deleted.eq(1),
                ))
                .execute(conn)
                .unwrap();
        }
        let s = apply(conn, now).unwrap();
        assert_eq!(
            (
                s.usage_counts,
                s.node_reports,
                s.node_events,
                s.node_exports,
                s.retention_sweeps
            ),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(s.audit, Pruned::Nothing);
        let left: Vec<i64> = usage_counts::table
            .select(usage_counts::hour)
            .load(conn)
            .unwrap();
        assert_eq!(left, vec![recent]);
        let left: Vec<i64> = node_exports::table
            .select(node_exports::created_at)
            .load(conn)
            .unwrap();
        assert_eq!(left, vec![recent]);
        let left: Vec<i64> = retention_sweeps::table
            .select(retention_sweeps::at)
            .load(conn)
            .unwrap();
        assert_eq!(left, vec![recent]);
        // Running again deletes nothing more.
        let again = apply(conn, now).unwrap();
        assert_eq!(again.usage_counts + again.node_exports, 0);
    }

    #[test]
    fn pruned_audit_events_leave_a_chain_that_still_verifies_and_still_names_an_edit() {
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        for n in 0..6 {
            event(conn, n);
        }
        let now = db::now();
        // Events 1..=3 are from three years ago.
        backdate_audit(conn, 3, now - 3 * 365 * DAY);
        assert_eq!(audit::verify(conn).unwrap(), None);
        let s = apply(conn, now).unwrap();
        assert_eq!(s.audit, Pruned::UpTo { seq: 3, count: 3 });
        let seqs: Vec<i64> = audit_events::table
            .select(audit_events::seq)
            .order(audit_events::seq.asc())
            .load(conn)
            .unwrap();
        assert_eq!(seqs, vec![4, 5, 6]);
        assert_eq!(
            audit::verify(conn).unwrap(),
            None,
            "verifies from the anchor"
        );
        // New events continue the chain.
        event(conn, 6);
        assert_eq!(audit::verify(conn).unwrap(), None);
        // An edited kept event is still named.
        diesel::update(audit_events::table.find(5))
            .set(audit_events::ip.eq(Some("203.0.113.9")))
            .execute(conn)
            .unwrap();
        assert_eq!(audit::verify(conn).unwrap(), Some(5));
        diesel::update(audit_events::table.find(5))
            .set(audit_events::ip.eq(None::<String>))
            .execute(conn)
            .unwrap();
        assert_eq!(audit::verify(conn).unwrap(), None);
        // Deleting more than was pruned is still detected at the first kept event.
        diesel::delete(audit_events::table.find(4))
            .execute(conn)
            .unwrap();
        assert_eq!(audit::verify(conn).unwrap(), Some(5));
    }

    #[test]
    fn a_tampered_old_part_is_not_pruned_so_the_evidence_stays() {
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        for n in 0..4 {
            event(conn, n);
        }
        let now = db::now();
        backdate_audit(conn, 2, now - 3 * 365 * DAY);
        diesel::update(audit_events::table.find(2))
            .set(audit_events::detail.eq("edited"))
            .execute(conn)
            .unwrap();
        let s = apply(conn, now).unwrap();
        assert_eq!(s.audit, Pruned::Refused(2));
        assert_eq!(audit::count(conn).unwrap(), 4, "nothing deleted");
        assert_eq!(audit::verify(conn).unwrap(), Some(2));
    }

    #[test]
    fn when_every_event_is_pruned_the_next_one_continues_from_the_anchor() {
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        for n in 0..3 {
            event(conn, n);
        }
        let now = db::now();
        backdate_audit(conn, 3, now - 3 * 365 * DAY);
        assert_eq!(
            apply(conn, now).unwrap().audit,
            Pruned::UpTo { seq: 3, count: 3 }
        );
        assert_eq!(audit::count(conn).unwrap(), 0);
        event(conn, 9);
        let seq: i64 = audit_events::table
            .select(audit_events::seq)
            .first(conn)
            .unwrap();
        assert_eq!(seq, 4);
        assert_eq!(audit::verify(conn).unwrap(), None);
    }

    #[test]
    fn the_schedule_runs_once_a_day() {
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        let now = db::now();
        assert!(run_if_due(conn, now).unwrap().is_some(), "first run");
        assert!(run_if_due(conn, now + 60).unwrap().is_none(), "not again");
        assert!(run_if_due(conn, now + DAY).unwrap().is_some(), "next day");
    }
}
