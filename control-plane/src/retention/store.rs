//! What the schedule deletes: `usage_counts` and `ai_counts`, `node_reports`, `node_events` (usage logs),
//! `node_exports`, `retention_sweeps` (lifecycle metadata); and `retention_runs`, the one
//! row that claims a run. The audit chain is pruned by `audit` itself.

use super::model::{Cutoffs, RETRY_AFTER_S, RUN_EVERY_S};
use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::infra::schema::{
    ai_counts, booking_counts, call_counts, node_events, node_exports, node_reports,
    retention_runs, retention_sweeps, usage_counts,
};
use diesel::prelude::*;

/// Row counts deleted: usage counts (messages and AI), report receipts, timeline events, exports, sweeps.
pub type Deleted = (usize, usize, usize, usize, usize);

/// Deletes the usage logs and lifecycle metadata older than the cutoffs.
pub fn delete_older(conn: &mut DbConn, c: &Cutoffs) -> AppResult<Deleted> {
    let usage_counts = diesel::delete(usage_counts::table.filter(usage_counts::hour.lt(c.usage)))
        .execute(conn)?
        + diesel::delete(ai_counts::table.filter(ai_counts::day.lt(c.usage))).execute(conn)?
        + diesel::delete(booking_counts::table.filter(booking_counts::hour.lt(c.usage)))
            .execute(conn)?
        + diesel::delete(call_counts::table.filter(call_counts::hour.lt(c.usage))).execute(conn)?;
    let node_reports =
        diesel::delete(node_reports::table.filter(node_reports::received_at.lt(c.report_receipts)))
            .execute(conn)?;
    let node_events =
        diesel::delete(node_events::table.filter(node_events::at_ms.lt(c.usage * 1000)))
            .execute(conn)?;
    let node_exports =
        diesel::delete(node_exports::table.filter(node_exports::created_at.lt(c.lifecycle)))
            .execute(conn)?;
    let retention_sweeps =
        diesel::delete(retention_sweeps::table.filter(retention_sweeps::at.lt(c.lifecycle)))
            .execute(conn)?;
    Ok((
        usage_counts,
        node_reports,
        node_events,
        node_exports,
        retention_sweeps,
    ))
}

/// Claims the run at `now` if the last one is [`RUN_EVERY_S`] old. Returns whether it did.
pub fn claim_run(conn: &mut DbConn, now: i64) -> AppResult<bool> {
    let claimed = diesel::update(
        retention_runs::table
            .find(1)
            .filter(retention_runs::last_run_at.le(now - RUN_EVERY_S)),
    )
    .set(retention_runs::last_run_at.eq(now))
    .execute(conn)?;
    Ok(claimed > 0)
}

/// After a failed run at `now`: the next one is due [`RETRY_AFTER_S`] later, not a day.
pub fn retry_soon(conn: &mut DbConn, now: i64) -> AppResult<()> {
    diesel::update(retention_runs::table.find(1))
        .set(retention_runs::last_run_at.eq(now - RUN_EVERY_S + RETRY_AFTER_S))
        .execute(conn)?;
    Ok(())
}

// The schedule's tests live here: they fill and read the tables it deletes from.

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::model::DAY;
    use super::super::service::{apply, run_if_due};
    use super::*;
    use crate::audit::{self, Entry, Pruned};
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
            (1, 2, 1, 1, 1),
            "report receipts go after 2 days (both), the rest after 90"
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

    /// Report receipts are idempotency keys only: they go after
    /// [`REPORT_RECEIPT_DAYS`](super::super::model::REPORT_RECEIPT_DAYS), while the usage
    /// the same reports carried stays for 90 days.
    #[test]
    fn report_receipts_go_after_two_days_and_the_usage_they_carried_stays() {
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        let node = node(conn);
        let now = db::now();
        for (seq, age) in [(1, 3 * DAY), (2, 2 * DAY + 60), (3, 2 * DAY - 60), (4, 60)] {
            diesel::insert_into(node_reports::table)
                .values((
                    node_reports::node_id.eq(&node),
                    node_reports::seq.eq(seq),
                    node_reports::produced_at.eq(now - age),
                    node_reports::received_at.eq(now - age),
                ))
                .execute(conn)
                .unwrap();
        }
        diesel::insert_into(usage_counts::table)
            .values((
                usage_counts::node_id.eq(&node),
                usage_counts::channel.eq("web"),
                usage_counts::hour.eq(now - 3 * DAY),
                usage_counts::inbound.eq(1),
                usage_counts::outbound.eq(1),
                usage_counts::conversations.eq(1),
            ))
            .execute(conn)
            .unwrap();
        let s = apply(conn, now).unwrap();
        assert_eq!((s.node_reports, s.usage_counts), (2, 0));
        let left: Vec<i64> = node_reports::table
            .select(node_reports::seq)
            .order(node_reports::seq)
            .load(conn)
            .unwrap();
        assert_eq!(left, vec![3, 4], "the receipts of the last 2 days stay");
        let usage: i64 = usage_counts::table.count().get_result(conn).unwrap();
        assert_eq!(usage, 1, "the usage of 3 days ago stays");
    }

    /// A browser not seen for a year is forgotten; one seen since stays.
    #[test]
    fn browsers_not_seen_for_a_year_are_forgotten() {
        use crate::accounts::devices::store as devices;
        use crate::infra::schema::known_devices;
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        let now = db::now();
        let user = crate::accounts::store::find_or_create_user(conn, "a@b.test").unwrap();
        devices::insert(conn, &user, "old", now - 366 * DAY).unwrap();
        devices::insert(conn, &user, "recent", now - 300 * DAY).unwrap();
        devices::insert(conn, &user, "old-but-back", now - 400 * DAY).unwrap();
        assert!(devices::touch(conn, &user, "old-but-back", now - DAY).unwrap());
        let s = apply(conn, now).unwrap();
        assert_eq!(s.known_devices, 1);
        let mut left: Vec<String> = known_devices::table
            .select(known_devices::token_hash)
            .load(conn)
            .unwrap();
        left.sort();
        assert_eq!(left, ["old-but-back", "recent"]);
    }

    /// Sign-in requests (address and IP) and sessions go a day after they expire; live
    /// ones and those just expired stay.
    #[test]
    fn expired_sign_in_links_and_sessions_are_purged_a_day_after_they_expire() {
        use crate::infra::schema::{magic_links, sessions};
        let (_d, pool) = pool();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        let now = db::now();
        let user = crate::accounts::store::find_or_create_user(conn, "a@b.test").unwrap();
        let cases = [
            ("long-expired", now - 2 * DAY),
            ("just-expired", now - 3600),
            ("live", now + 600),
        ];
        for (name, expires) in cases {
            diesel::insert_into(magic_links::table)
                .values((
                    magic_links::token_hash.eq(name),
                    magic_links::email.eq("a@b.test"),
                    magic_links::ip.eq("192.0.2.7"),
                    magic_links::created_at.eq(expires - 600),
                    magic_links::expires_at.eq(expires),
                ))
                .execute(conn)
                .unwrap();
            diesel::insert_into(sessions::table)
                .values((
                    sessions::token_hash.eq(name),
                    sessions::id.eq(name),
                    sessions::user_id.eq(&user),
                    sessions::csrf_token.eq("c"),
                    sessions::created_at.eq(expires - DAY),
                    sessions::expires_at.eq(expires),
                ))
                .execute(conn)
                .unwrap();
        }
        let s = apply(conn, now).unwrap();
        assert_eq!((s.sign_in_links, s.sessions), (1, 1));
        let mut links: Vec<String> = magic_links::table
            .select(magic_links::token_hash)
            .load(conn)
            .unwrap();
        links.sort();
        assert_eq!(links, ["just-expired", "live"]);
        let mut left: Vec<String> = sessions::table
            .select(sessions::token_hash)
            .load(conn)
            .unwrap();
        left.sort();
        assert_eq!(left, ["just-expired", "live"]);
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
