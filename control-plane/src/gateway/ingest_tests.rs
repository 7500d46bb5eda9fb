//! Tests of the group commit of reports ([`super`]), on the test database (SQLite, or
//! PostgreSQL with `TEST_DATABASE_URL`).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::gateway::counts::Counts;
use crate::infra::schema::{node_reports, nodes, workspaces};
use diesel::prelude::*;
use outpost_protocol::Check;

fn pool() -> ((tempfile::TempDir, db::ScratchDb), DbPool) {
    let dir = tempfile::tempdir().unwrap();
    let scratch = db::ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
    let pool = db::connect(&scratch.url).unwrap();
    ((dir, scratch), pool)
}

fn node(conn: &mut DbConn, slug: &str) -> String {
    let (ws, node) = (db::new_id(), db::new_id());
    diesel::insert_into(workspaces::table)
        .values((
            workspaces::id.eq(&ws),
            workspaces::slug.eq(slug),
            workspaces::name.eq(slug),
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

/// A report whose `uptime_s` marks it, so a test can tell which one was applied.
fn report(seq: i64, marker: i64) -> Report {
    Report {
        seq,
        epoch: None,
        produced_at: 0,
        version: "test".into(),
        uptime_s: marker,
        checks: vec![Check {
            name: "storage".into(),
            ok: true,
            detail_code: None,
        }],
        counts: vec![],
        disk_used_bytes: 0,
        queue_depth: 0,
        exports: vec![],
        retention_sweeps: vec![],
        waiting_conversations: 0,
        ai_counts: vec![],
        booking_counts: vec![],
        call_counts: vec![],
    }
}

/// `r` carrying one hour (3600) of web counts.
fn with_web_counts(mut r: Report, inbound: i64, outbound: i64) -> Report {
    r.counts = vec![outpost_protocol::CountBucket {
        channel: "web".into(),
        hour: 3_600,
        inbound,
        outbound,
        conversations: 1,
    }];
    r
}

/// The node's stored (inbound, outbound) usage of its one counted hour.
fn web_usage(conn: &mut DbConn, node_id: &str) -> (i64, i64) {
    use crate::infra::schema::usage_counts;
    usage_counts::table
        .filter(usage_counts::node_id.eq(node_id))
        .select((usage_counts::inbound, usage_counts::outbound))
        .first(conn)
        .unwrap()
}

fn applied(conn: &mut DbConn, node_id: &str) -> Option<i64> {
    nodes::table
        .find(node_id)
        .select(nodes::uptime_s)
        .first(conn)
        .unwrap()
}

/// Applies one report in a batch of its own; its answer.
fn apply_one(conn: &mut DbConn, node_id: &str, r: &Report) -> AppResult<bool> {
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    apply(conn, &notifier, &[(node_id, r)]).remove(0)
}

fn stored(conn: &mut DbConn, node_id: &str) -> i64 {
    node_reports::table
        .filter(node_reports::node_id.eq(node_id))
        .count()
        .get_result(conn)
        .unwrap()
}

#[test]
fn a_bad_report_in_a_batch_fails_alone_and_the_others_commit() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let (a, b) = (node(&mut conn, "alpha"), node(&mut conn, "beta"));
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    let (r1, bad, r2, rb) = (
        report(1, 101),
        report(-1, 999),
        report(2, 102),
        report(1, 201),
    );
    let batch = [(&*a, &r1), (&*a, &bad), (&*b, &rb), (&*a, &r2)];
    let out = apply(&mut conn, &notifier, &batch);
    let codes: Vec<_> = out
        .iter()
        .map(|r| match r {
            Ok(v) => format!("ok {v}"),
            Err(e) => format!("{} {}", e.status().as_u16(), e.code()),
        })
        .collect();
    assert_eq!(codes, ["ok true", "400 invalid_seq", "ok true", "ok true"]);
    assert_eq!(stored(&mut conn, &a), 2);
    assert_eq!(applied(&mut conn, &a), Some(102), "the newest wins");
    assert_eq!(applied(&mut conn, &b), Some(201));
}

/// Without a savepoint per report, a report that fails once it began writing must not
/// leave its first writes in the batch: the batch is rolled back and each report applied
/// alone, so the failed one stores nothing and the others are stored.
#[test]
fn a_report_failing_after_its_first_write_leaves_nothing_and_the_others_commit() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let (a, b) = (node(&mut conn, "alpha"), node(&mut conn, "beta"));
    // The database refuses any update of node b, which comes after its receipt's insert.
    let fail = if conn.is_postgres() {
        vec![
            format!(
                "CREATE FUNCTION fail_node_b() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.id = '{b}' THEN RAISE EXCEPTION 'node b cannot be updated'; \
                 END IF; RETURN NEW; END $$"
            ),
            "CREATE TRIGGER fail_node_b BEFORE UPDATE ON nodes FOR EACH ROW \
             EXECUTE FUNCTION fail_node_b()"
                .to_owned(),
        ]
    } else {
        vec![format!(
            "CREATE TRIGGER fail_node_b BEFORE UPDATE ON nodes WHEN NEW.id = '{b}' \
             BEGIN SELECT RAISE(ABORT, 'node b cannot be updated'); END"
        )]
    };
    for sql in fail {
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    let (r1, rb, r2) = (report(1, 101), report(1, 201), report(2, 102));
    let batch = [(&*a, &r1), (&*b, &rb), (&*a, &r2)];
    let out = apply(&mut conn, &notifier, &batch);
    assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
    assert_eq!(out[1].as_ref().unwrap_err().status().as_u16(), 500);
    assert_eq!(stored(&mut conn, &b), 0, "b's receipt was rolled back");
    assert_eq!(applied(&mut conn, &b), None);
    assert_eq!(stored(&mut conn, &a), 2);
    assert_eq!(applied(&mut conn, &a), Some(102));
}

#[test]
fn a_replay_in_the_same_batch_is_stored_once_and_an_older_one_changes_nothing() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    let (r2, again, r1) = (report(2, 102), report(2, 999), report(1, 101));
    let out = apply(
        &mut conn,
        &notifier,
        &[(&*a, &r2), (&*a, &again), (&*a, &r1)],
    );
    let accepted: Vec<_> = out.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(accepted, [true, false, true]);
    assert_eq!(stored(&mut conn, &a), 2);
    assert_eq!(
        applied(&mut conn, &a),
        Some(102),
        "seq 1 came later but is older"
    );
}

/// An unchanged waiting count is not written again; a changed one is stored.
#[test]
fn the_waiting_count_follows_the_newest_report() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let waiting = |conn: &mut DbConn| -> Option<i64> {
        nodes::table
            .find(&a)
            .select(nodes::waiting_conversations)
            .first(conn)
            .unwrap()
    };
    for (seq, count) in [(1, 0), (2, 0), (3, 2), (4, 2), (5, 0), (6, 0), (7, 3)] {
        let mut r = report(seq, seq);
        r.waiting_conversations = count;
        assert!(apply_one(&mut conn, &a, &r).unwrap());
        assert_eq!(waiting(&mut conn), Some(count), "after seq {seq}");
    }
}

/// An hour's totals only grow: a report older than the one applied before it (two
/// requests racing, an outbox retried) carries smaller totals and must not lower
/// what is billed.
#[test]
fn a_late_older_report_does_not_lower_an_hours_usage() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let with_counts = |seq, inbound, outbound| with_web_counts(report(seq, seq), inbound, outbound);
    let usage = |conn: &mut DbConn| web_usage(conn, &a);
    let (newer, older) = (with_counts(2, 7, 4), with_counts(1, 5, 6));
    assert!(apply_one(&mut conn, &a, &newer).is_ok());
    assert_eq!(usage(&mut conn), (7, 4));
    assert!(apply_one(&mut conn, &a, &older).is_ok());
    assert_eq!(
        usage(&mut conn),
        (7, 6),
        "each total keeps its larger value"
    );
}

/// Issue 19 part 5: a report's AI counts are stored per day and model, keeping the
/// larger totals; a report with an invalid model name is refused whole.
#[test]
fn ai_counts_are_stored_and_bad_model_names_refuse_the_report() {
    use crate::infra::schema::ai_counts;
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let with_ai = |seq: i64, model: &str, requests: i64| {
        let mut r = report(seq, seq);
        r.ai_counts = vec![outpost_protocol::AiCount {
            day: 86_400,
            model: model.into(),
            requests,
            input_tokens: requests * 100,
            output_tokens: requests * 10,
        }];
        r
    };
    let stored = |conn: &mut DbConn| -> Vec<(String, i64, i64, i64)> {
        ai_counts::table
            .filter(ai_counts::node_id.eq(&a))
            .select((
                ai_counts::model,
                ai_counts::requests,
                ai_counts::input_tokens,
                ai_counts::output_tokens,
            ))
            .load(conn)
            .unwrap()
    };
    assert!(apply_one(&mut conn, &a, &with_ai(2, "gpt-4o-mini", 3)).is_ok());
    assert!(apply_one(&mut conn, &a, &with_ai(1, "gpt-4o-mini", 1)).is_ok());
    assert_eq!(stored(&mut conn), [("gpt-4o-mini".into(), 3, 300, 30)]);
    assert!(apply_one(&mut conn, &a, &with_ai(3, "gpt-4o-mini <b>", 9)).is_err());
    assert_eq!(stored(&mut conn), [("gpt-4o-mini".into(), 3, 300, 30)]);
}

/// Issue 16: a report's booking counts are stored per hour, keeping the larger totals;
/// a report with a negative count or a time that is not an hour is refused whole.
#[test]
fn booking_counts_are_stored_per_hour_and_bad_ones_refuse_the_report() {
    use crate::infra::schema::booking_counts;
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let with_bookings = |seq: i64, hour: i64, booked: i64, cancelled: i64| {
        let mut r = report(seq, seq);
        r.booking_counts = vec![outpost_protocol::BookingCount {
            hour,
            booked,
            rescheduled: 1,
            cancelled,
        }];
        r
    };
    let stored = |conn: &mut DbConn| -> Vec<(i64, i64, i64, i64)> {
        booking_counts::table
            .filter(booking_counts::node_id.eq(&a))
            .select((
                booking_counts::hour,
                booking_counts::booked,
                booking_counts::rescheduled,
                booking_counts::cancelled,
            ))
            .load(conn)
            .unwrap()
    };
    assert!(apply_one(&mut conn, &a, &with_bookings(2, 7200, 4, 0)).is_ok());
    assert!(apply_one(&mut conn, &a, &with_bookings(1, 7200, 2, 1)).is_ok());
    assert_eq!(
        stored(&mut conn),
        [(7200, 4, 1, 1)],
        "each total keeps its larger value"
    );
    assert!(apply_one(&mut conn, &a, &with_bookings(3, 7201, 9, 0)).is_err());
    assert!(apply_one(&mut conn, &a, &with_bookings(4, 10800, -1, 0)).is_err());
    assert_eq!(stored(&mut conn), [(7200, 4, 1, 1)]);
}

/// Issue 16: a report's call counts (calls and call minutes per hour, nothing else) are
/// stored per hour, keeping the larger totals; a negative figure or a time that is not
/// an hour refuses the report whole.
#[test]
fn call_counts_are_stored_per_hour_and_bad_ones_refuse_the_report() {
    use crate::infra::schema::call_counts;
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let with_calls = |seq: i64, hour: i64, calls: i64, minutes: i64| {
        let mut r = report(seq, seq);
        r.call_counts = vec![outpost_protocol::CallCount {
            hour,
            calls,
            minutes,
        }];
        r
    };
    let stored = |conn: &mut DbConn| -> Vec<(i64, i64, i64)> {
        call_counts::table
            .filter(call_counts::node_id.eq(&a))
            .select((call_counts::hour, call_counts::calls, call_counts::minutes))
            .load(conn)
            .unwrap()
    };
    assert!(apply_one(&mut conn, &a, &with_calls(2, 7200, 3, 9)).is_ok());
    assert!(apply_one(&mut conn, &a, &with_calls(1, 7200, 2, 11)).is_ok());
    assert_eq!(
        stored(&mut conn),
        [(7200, 3, 11)],
        "each total keeps its larger value"
    );
    assert!(apply_one(&mut conn, &a, &with_calls(3, 7201, 1, 1)).is_err());
    assert!(apply_one(&mut conn, &a, &with_calls(4, 10800, 1, -1)).is_err());
    assert_eq!(stored(&mut conn), [(7200, 3, 11)]);
    // The workspace page's reader gives them back, newest first.
    let rows = crate::workspaces::store::call_usage(&mut conn, &a).unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.hour, r.calls, r.minutes))
            .collect::<Vec<_>>(),
        [(7200, 3, 11)]
    );
}

/// Receipts are pruned after 2 days (`retention::model::REPORT_RECEIPT_DAYS`): a
/// report replayed after that is taken as new but changes nothing, neither the status
/// nor an hour's usage.
#[test]
fn a_replay_after_its_receipt_was_pruned_changes_nothing() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    let with_counts =
        |seq, inbound, outbound| with_web_counts(report(seq, 100 + seq), inbound, outbound);
    let usage = |conn: &mut DbConn| web_usage(conn, &a);
    let (r1, r2) = (with_counts(1, 5, 6), with_counts(2, 7, 4));
    for r in [&r1, &r2] {
        assert!(apply(&mut conn, &notifier, &[(&*a, r)])[0]
            .as_ref()
            .unwrap());
    }
    diesel::delete(node_reports::table)
        .execute(&mut conn)
        .unwrap();
    for r in [&r1, &r2] {
        assert!(apply(&mut conn, &notifier, &[(&*a, r)])[0].is_ok());
    }
    assert_eq!(applied(&mut conn, &a), Some(102), "the newest still wins");
    assert_eq!(usage(&mut conn), (7, 6), "counted once");
}

/// Everything a report stores that a user sees, per node, in a stable order.
fn snapshot(conn: &mut DbConn, node_ids: &[&str]) -> Vec<String> {
    use crate::infra::schema::{ai_counts, booking_counts, call_counts, usage_counts};
    let mut out = vec![];
    for n in node_ids {
        type NodeRow = (
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            String,
        );
        let node: NodeRow = nodes::table
            .find(n)
            .select((
                nodes::last_seq,
                nodes::uptime_s,
                nodes::checks_json,
                nodes::waiting_conversations,
                nodes::waiting_notified_at,
                nodes::state,
            ))
            .first(conn)
            .unwrap();
        // Whether the members were told, not when (the clock moves between runs).
        let told = node.4.is_some();
        let node = (node.0, node.1, node.2, node.3, told, node.5);
        out.push(format!("node {node:?}"));
        let seqs: Vec<i64> = node_reports::table
            .filter(node_reports::node_id.eq(n))
            .order(node_reports::seq)
            .select(node_reports::seq)
            .load(conn)
            .unwrap();
        out.push(format!("receipts {seqs:?}"));
        let usage: Vec<(String, i64, i64, i64, i64)> = usage_counts::table
            .filter(usage_counts::node_id.eq(n))
            .order((usage_counts::channel, usage_counts::hour))
            .select((
                usage_counts::channel,
                usage_counts::hour,
                usage_counts::inbound,
                usage_counts::outbound,
                usage_counts::conversations,
            ))
            .load(conn)
            .unwrap();
        out.push(format!("usage {usage:?}"));
        let ai: Vec<(i64, String, i64, i64, i64)> = ai_counts::table
            .filter(ai_counts::node_id.eq(n))
            .order((ai_counts::day, ai_counts::model))
            .select((
                ai_counts::day,
                ai_counts::model,
                ai_counts::requests,
                ai_counts::input_tokens,
                ai_counts::output_tokens,
            ))
            .load(conn)
            .unwrap();
        out.push(format!("ai {ai:?}"));
        let bookings: Vec<(i64, i64, i64, i64)> = booking_counts::table
            .filter(booking_counts::node_id.eq(n))
            .order(booking_counts::hour)
            .select((
                booking_counts::hour,
                booking_counts::booked,
                booking_counts::rescheduled,
                booking_counts::cancelled,
            ))
            .load(conn)
            .unwrap();
        out.push(format!("bookings {bookings:?}"));
        let calls: Vec<(i64, i64, i64)> = call_counts::table
            .filter(call_counts::node_id.eq(n))
            .order(call_counts::hour)
            .select((call_counts::hour, call_counts::calls, call_counts::minutes))
            .load(conn)
            .unwrap();
        out.push(format!("calls {calls:?}"));
    }
    out
}

/// A report of `seq` with web counts, AI counts and bookings that grow with `seq`
/// (so an older one carries smaller totals), `waiting` customers and a failing check
/// when `degraded`.
fn full_report(seq: i64, waiting: i64, degraded: bool) -> Report {
    let mut r = with_web_counts(report(seq, 100 + seq), seq * 2, 10 - seq);
    r.counts.push(outpost_protocol::CountBucket {
        channel: "telegram".into(),
        hour: 3_600 * (1 + seq % 2),
        inbound: seq,
        outbound: seq,
        conversations: 1,
    });
    r.ai_counts = vec![outpost_protocol::AiCount {
        day: 86_400,
        model: "gpt-4o-mini".into(),
        requests: seq,
        input_tokens: 100 - seq,
        output_tokens: seq * 10,
    }];
    r.booking_counts = vec![outpost_protocol::BookingCount {
        hour: 7_200,
        booked: seq,
        rescheduled: 5 - seq.min(5),
        cancelled: 1,
    }];
    r.call_counts = vec![outpost_protocol::CallCount {
        hour: 7_200,
        calls: seq,
        minutes: 9 - seq.min(9),
    }];
    r.waiting_conversations = waiting;
    r.checks[0].ok = !degraded;
    r
}

/// Each report's answer in words: `ok true` (stored), `ok false` (seen before) or the
/// refusal's code.
fn answers(out: &[AppResult<bool>]) -> Vec<String> {
    out.iter()
        .map(|r| match r {
            Ok(v) => format!("ok {v}"),
            Err(e) => e.code().to_string(),
        })
        .collect()
}

/// Issue 18 (B1): one batch stores exactly what the same reports applied one by one
/// do: receipts, the newest report's status, waiting count and state, and each
/// count's largest total, whatever order they came in, with a replay and a refused
/// report among them.
#[test]
fn a_batch_stores_what_its_reports_applied_one_by_one_do() {
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    let reports = [
        ("a", full_report(2, 1, false)),
        ("b", full_report(1, 0, true)),
        ("a", full_report(1, 4, false)),
        ("a", full_report(4, 2, true)),
        ("b", full_report(-3, 9, false)),
        ("b", full_report(3, 3, false)),
        ("a", full_report(2, 7, false)),
        ("a", full_report(3, 0, false)),
        ("b", full_report(2, 8, true)),
    ];
    let mut outcomes = vec![];
    let mut snapshots = vec![];
    for batched in [true, false] {
        let (_guard, pool) = pool();
        let mut conn = pool.get().unwrap();
        let (a, b) = (node(&mut conn, "alpha"), node(&mut conn, "beta"));
        let batch: Vec<(&str, &Report)> = reports
            .iter()
            .map(|(n, r)| (if *n == "a" { a.as_str() } else { b.as_str() }, r))
            .collect();
        let out: Vec<_> = if batched {
            apply(&mut conn, &notifier, &batch)
        } else {
            batch
                .iter()
                .map(|one| apply(&mut conn, &notifier, &[*one]).remove(0))
                .collect()
        };
        outcomes.push(answers(&out));
        snapshots.push(snapshot(&mut conn, &[&a, &b]));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(
        outcomes[0],
        [
            "ok true",
            "ok true",
            "ok true",
            "ok true",
            "invalid_seq",
            "ok true",
            "ok false",
            "ok true",
            "ok true"
        ]
    );
    assert_eq!(snapshots[0], snapshots[1]);
    // And what that is: the newest of each node wins, each total keeps its largest.
    let a = &snapshots[0][..6];
    assert!(a[0].contains("Some(4), Some(104)"), "{}", a[0]);
    assert!(a[0].contains("\"degraded\""), "{}", a[0]);
    assert_eq!(a[1], "receipts [1, 2, 3, 4]");
    assert_eq!(
        a[2],
        r#"usage [("telegram", 3600, 4, 4, 1), ("telegram", 7200, 3, 3, 1), ("web", 3600, 8, 9, 1)]"#
    );
    assert_eq!(a[3], r#"ai [(86400, "gpt-4o-mini", 4, 99, 40)]"#);
    assert_eq!(a[4], "bookings [(7200, 4, 4, 1)]");
    assert_eq!(a[5], "calls [(7200, 4, 8)]");
}

/// Issue 18 (B1): a count that did not grow is not written again (no row rewritten,
/// nothing changed); one that grew in any column is raised in that column only.
#[test]
fn counts_that_did_not_grow_are_not_rewritten() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let counts = |r: &Report| {
        let mut c = Counts::default();
        c.add(&a, r);
        c
    };
    let first = full_report(3, 0, false);
    assert_eq!(store::write_counts(&mut conn, &counts(&first)).unwrap(), 5);
    let before = snapshot(&mut conn, &[&a]);
    assert_eq!(store::write_counts(&mut conn, &counts(&first)).unwrap(), 0);
    let older = with_web_counts(report(1, 1), 1, 1);
    assert_eq!(store::write_counts(&mut conn, &counts(&older)).unwrap(), 0);
    assert_eq!(snapshot(&mut conn, &[&a]), before);
    let more_outbound = with_web_counts(report(4, 4), 1, 50);
    assert_eq!(
        store::write_counts(&mut conn, &counts(&more_outbound)).unwrap(),
        1
    );
    let usage = snapshot(&mut conn, &[&a]).remove(2);
    assert!(usage.contains(r#"("web", 3600, 6, 50, 1)"#), "{usage}");
    assert!(usage.contains(r#"("telegram", 7200, 3, 3, 1)"#), "{usage}");
}

/// What a connection ran, as [`watch`] records it.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Statements run, with their binds.
    ran: Vec<String>,
    /// Statements prepared and kept in diesel's cache.
    cached: Vec<String>,
    /// Depths of the transactions begun (2 and over: savepoints).
    transactions: Vec<u32>,
}

/// Records from now on what `conn` runs, prepares and begins.
fn watch(conn: &mut db::DbConn) -> std::sync::Arc<std::sync::Mutex<Seen>> {
    use diesel::connection::{Connection, InstrumentationEvent};
    let seen = std::sync::Arc::<std::sync::Mutex<Seen>>::default();
    let log = seen.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let mut log = log.lock().unwrap();
        match event {
            InstrumentationEvent::StartQuery { query, .. } => log.ran.push(query.to_string()),
            InstrumentationEvent::CacheQuery { sql, .. } => log.cached.push(sql.to_owned()),
            InstrumentationEvent::BeginTransaction { depth, .. } => {
                log.transactions.push(depth.get())
            }
            _ => {}
        }
    });
    seen
}

/// Issue 18 (B1): a batch's counts go in upserts of at most 32 rows, and each distinct
/// upsert text is prepared once per connection and then only run: a node's 70 buckets are
/// three statements (32, 32 and 6 rows), all stored, and writing them again prepares
/// nothing new. (Before, the one upsert per table was prepared again on every batch.)
#[test]
fn counts_go_in_bounded_upserts_each_prepared_once() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let a = node(&mut conn, "alpha");
    let mut counts = Counts::default();
    for hour in 0..70 {
        counts
            .usage
            .insert((a.clone(), "web".into(), hour * 3600), [hour + 1, 1, 1]);
    }
    let seen = watch(&mut conn);
    assert_eq!(store::write_counts(&mut conn, &counts).unwrap(), 70);
    for (_, totals) in counts.usage.iter_mut() {
        totals[1] = 2;
    }
    assert_eq!(store::write_counts(&mut conn, &counts).unwrap(), 70);
    let Seen { ran, cached, .. } = seen.lock().unwrap().clone();
    let upserts = |list: &[String]| {
        list.iter()
            .filter(|s| s.starts_with("INSERT INTO usage_counts"))
            .map(|s| s.matches("), (").count() + 1)
            .collect::<Vec<_>>()
    };
    assert_eq!(upserts(&ran), [32, 32, 6, 32, 32, 6], "{ran:#?}");
    assert_eq!(
        upserts(&cached),
        [32, 6],
        "each text prepared once: {cached:#?}"
    );
    let stored: Vec<(i64, i64, i64)> = {
        use crate::infra::schema::usage_counts::dsl as u;
        u::usage_counts
            .filter(u::node_id.eq(&a))
            .order(u::hour)
            .select((u::hour, u::inbound, u::outbound))
            .load(&mut conn)
            .unwrap()
    };
    assert_eq!(stored.len(), 70);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, &(hour, inbound, outbound))| {
                hour == i as i64 * 3600 && inbound == i as i64 + 1 && outbound == 2
            }),
        "{stored:?}"
    );
}

/// Issue 18 (B1): the report path runs few statements, and the per-report receipt and
/// `UPDATE` of `nodes` are prepared once per connection (diesel caches them) and then
/// only run: a batch of reports that all change the node's status costs one read, one
/// receipt and one update per report (the last two are one statement on PostgreSQL), no
/// savepoint, and one counts upsert per table.
#[test]
fn a_report_is_three_statements_and_the_node_update_is_prepared_once() {
    let (_guard, pool) = pool();
    let mut conn = pool.get().unwrap();
    let (a, b) = (node(&mut conn, "alpha"), node(&mut conn, "beta"));
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    let seen = watch(&mut conn);
    for round in 0..2 {
        let reports: Vec<Report> = (1..=5)
            .map(|i| full_report(round * 5 + i, 0, false))
            .collect();
        let batch: Vec<(&str, &Report)> = reports
            .iter()
            .flat_map(|r| [(a.as_str(), r), (b.as_str(), r)])
            .collect();
        assert!(apply(&mut conn, &notifier, &batch)
            .iter()
            .all(|r| r.is_ok()));
    }
    let Seen {
        ran,
        cached,
        transactions,
    } = seen.lock().unwrap().clone();
    assert_eq!(
        transactions,
        [1, 1],
        "one transaction per batch and no savepoint per report"
    );
    let count = |list: &[String], prefix: &str| {
        list.iter()
            .filter(|s| s.trim_start().starts_with(prefix))
            .count()
    };
    // On PostgreSQL each node's first report of a batch is a steady one, read and stored
    // with the batch's others in two statements (`super::steady`); the other 16 take the
    // per-report path.
    let (per_report, steady) = if conn.is_postgres() { (16, 2) } else { (20, 0) };
    assert_eq!(count(&ran, "WITH u AS"), steady, "one per batch: {ran:#?}");
    assert_eq!(
        count(&ran, "SELECT"),
        per_report + steady,
        "one per report, one per batch for the steady ones: {ran:#?}"
    );
    // The receipt and the node's update: one statement on PostgreSQL, two on SQLite.
    let (receipt, update) = if conn.is_postgres() {
        ("WITH receipt AS (INSERT INTO node_reports", "WITH receipt")
    } else {
        ("INSERT INTO node_reports", "UPDATE nodes")
    };
    assert_eq!(count(&ran, receipt), per_report, "one per report: {ran:#?}");
    assert_eq!(count(&ran, update), per_report, "one per report: {ran:#?}");
    assert_eq!(
        count(&ran, "UPDATE"),
        if conn.is_postgres() { 0 } else { 20 }
    );
    assert_eq!(count(&ran, "INSERT INTO usage_counts"), 2, "one per batch");
    assert_eq!(count(&ran, "INSERT INTO ai_counts"), 2, "one per batch");
    assert_eq!(
        count(&ran, "INSERT INTO booking_counts"),
        2,
        "one per batch"
    );
    assert_eq!(count(&cached, update), 1, "prepared once: {cached:#?}");
    assert_eq!(count(&cached, receipt), 1, "prepared once: {cached:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_each_get_their_own_answer() {
    let (_guard, pool) = pool();
    let nodes: Vec<String> = {
        let mut conn = pool.get().unwrap();
        (0..3).map(|i| node(&mut conn, &format!("ws{i}"))).collect()
    };
    let batcher = Batcher::start(pool.clone(), "https://cp.test".into(), 2).unwrap();
    let mut tasks = vec![];
    for seq in 1..=60i64 {
        for n in &nodes {
            let (b, n) = (batcher.clone(), n.clone());
            tasks.push(tokio::spawn(async move {
                b.submit(n, report(seq, 1000 + seq)).await
            }));
        }
    }
    let bad = batcher.submit(nodes[0].clone(), report(0, 5)).await;
    assert_eq!(bad.unwrap_err().code(), "invalid_seq");
    for t in tasks {
        assert!(t.await.unwrap().unwrap(), "every report is new");
    }
    let mut conn = pool.get().unwrap();
    for n in &nodes {
        assert_eq!(stored(&mut conn, n), 60);
        assert_eq!(applied(&mut conn, n), Some(1060), "the newest wins");
    }
}

/// Issue 18 (B1 on PostgreSQL): batches of many nodes, most of them steady (on
/// PostgreSQL all of those are read in one statement and stored in one, `super::steady`),
/// store what the same reports applied one by one do, with the reports that leave the
/// steady path among them: a refused one, one that changes its node's state, one that
/// raises the waiting notice, a node's second report (older, or newer than its first),
/// an older one.
#[test]
fn a_batch_of_many_nodes_stores_what_its_reports_applied_one_by_one_do() {
    let notifier = Notifier {
        public_url: "https://cp.test",
    };
    // Node index and report; round 1 is each node's first report, all steady.
    let first: Vec<(usize, Report)> = (0..8).map(|n| (n, full_report(1, 0, false))).collect();
    let second = vec![
        (0, full_report(2, 0, false)),
        (1, full_report(2, 0, false)),
        (2, full_report(3, 0, false)),
        (3, full_report(-1, 0, false)),
        (4, full_report(2, 0, true)),
        (5, full_report(2, 3, false)),
        (6, full_report(3, 0, false)),
        (6, full_report(2, 0, false)),
        (7, full_report(1, 0, false)),
        (1, full_report(3, 0, false)),
    ];
    let mut outcomes = vec![];
    let mut snapshots = vec![];
    for batched in [true, false] {
        let (_guard, pool) = pool();
        let mut conn = pool.get().unwrap();
        let ids: Vec<String> = (0..8).map(|n| node(&mut conn, &format!("n{n}"))).collect();
        let seen = watch(&mut conn);
        let mut out = vec![];
        for round in [&first, &second] {
            let batch: Vec<(&str, &Report)> =
                round.iter().map(|(n, r)| (ids[*n].as_str(), r)).collect();
            if batched {
                out.extend(apply(&mut conn, &notifier, &batch));
            } else {
                for one in &batch {
                    out.extend(apply(&mut conn, &notifier, &[*one]));
                }
            }
        }
        outcomes.push(answers(&out));
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        snapshots.push(snapshot(&mut conn, &id_refs));
        if batched {
            let Seen { ran, cached, .. } = seen.lock().unwrap().clone();
            let count = |list: &[String], prefix: &str| {
                list.iter()
                    .filter(|s| s.trim_start().starts_with(prefix))
                    .count()
            };
            if conn.is_postgres() {
                assert_eq!(count(&ran, "WITH u AS"), 2, "one per batch: {ran:#?}");
                assert_eq!(count(&cached, "WITH u AS"), 1, "prepared once: {cached:#?}");
                // The second batch's node 4 (state), 5 (notice) and 1's second report
                // by the per-report path; node 6's second and node 7's report are older
                // and store only their receipts.
                assert_eq!(count(&ran, "WITH receipt AS (INSERT"), 3, "{ran:#?}");
            } else {
                assert_eq!(
                    count(&ran, "WITH u AS"),
                    0,
                    "SQLite keeps the per-report path"
                );
            }
        }
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let mut expected = vec!["ok true"; 8];
    expected.extend([
        "ok true",
        "ok true",
        "ok true",
        "invalid_seq",
        "ok true",
        "ok true",
        "ok true",
        "ok true",
        "ok false",
        "ok true",
    ]);
    assert_eq!(outcomes[0], expected);
    assert_eq!(snapshots[0], snapshots[1]);
    // And what that is, for a steady node, the degraded one and the one told.
    let steady = &snapshots[0][6 * 2];
    assert!(steady.contains("Some(3), Some(103)"), "{steady}");
    assert!(steady.contains("\"healthy\""), "{steady}");
    let twice = &snapshots[0][6];
    assert!(
        twice.contains("Some(3), Some(103)"),
        "the newer second report: {twice}"
    );
    assert!(snapshots[0][6 * 4].contains("\"degraded\""));
    assert!(
        snapshots[0][6 * 5].contains("Some(3), true"),
        "{}",
        snapshots[0][30]
    );
}
