//! Group commit of reports. Concurrent reports are queued to a writer thread that applies
//! whatever has queued up (at most [`MAX_BATCH`]) in one transaction, each report in its
//! own savepoint ([`service::report`] nested), so one bad report fails alone with its own
//! error and the others commit; every request gets its own answer. Everything the
//! per-report path does happens inside that transaction: idempotency, ordering by
//! `(epoch, seq)`, usage, status, events, the notices queued in the mail outbox.
//!
//! On SQLite, which has one writer, there is one writer thread: the queue replaces the
//! wait on the write lock, and one commit (one fsync) serves a whole batch. On
//! PostgreSQL there are [`PG_LANES`] writers; a node's reports always go to the same one
//! (by a hash of its id), so two writers never touch the same node's rows and a node's
//! reports are applied in the order they arrived. If a batch's commit fails as a whole,
//! each of its reports is tried again alone, so each gets its own error.

use super::service;
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn, DbPool};
use crate::notify::Notifier;
use outpost_protocol::Report;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most reports applied in one transaction.
pub const MAX_BATCH: usize = 128;
/// Writer threads on PostgreSQL (one on SQLite).
pub const PG_LANES: usize = 4;
/// Reports that may wait per writer before callers wait to queue (backpressure).
const QUEUE_PER_LANE: usize = 4096;

struct Job {
    node_id: String,
    report: Report,
    reply: oneshot::Sender<AppResult<bool>>,
}

/// The queue in front of the report writers; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    lanes: Arc<[mpsc::Sender<Job>]>,
}

impl Batcher {
    /// Starts `lanes` writer threads (at least one) applying reports to `pool`; notices
    /// link to `public_url`. The threads end when the last clone of this is dropped.
    pub fn start(pool: DbPool, public_url: String, lanes: usize) -> std::io::Result<Self> {
        let mut senders = Vec::with_capacity(lanes.max(1));
        for i in 0..lanes.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE_PER_LANE);
            let (pool, url) = (pool.clone(), public_url.clone());
            std::thread::Builder::new()
                .name(format!("report-writer-{i}"))
                .spawn(move || writer(pool, url, rx))?;
            senders.push(tx);
        }
        Ok(Self {
            lanes: senders.into(),
        })
    }

    /// Stores one report (see [`service::report`]) with whichever batch it lands in;
    /// returns whether it was new.
    pub async fn submit(&self, node_id: String, report: Report) -> AppResult<bool> {
        let lane = &self.lanes[lane_of(&node_id, self.lanes.len())];
        let (reply, answer) = oneshot::channel();
        let job = Job {
            node_id,
            report,
            reply,
        };
        lane.send(job)
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("report writer stopped")))?;
        answer
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("report writer dropped a report")))?
    }
}

fn lane_of(node_id: &str, lanes: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node_id.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

fn writer(pool: DbPool, public_url: String, mut rx: mpsc::Receiver<Job>) {
    let notifier = Notifier {
        public_url: &public_url,
    };
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let batch: Vec<(&str, &Report)> = jobs
            .iter()
            .map(|j| (j.node_id.as_str(), &j.report))
            .collect();
        // A panic drops this batch's answers (each caller gets a 500), not the writer.
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match pool.get() {
            Ok(mut conn) => apply(&mut conn, &notifier, &batch),
            Err(e) => {
                let cause = e.to_string();
                batch
                    .iter()
                    .map(|_| Err(AppError::DatabaseUnavailable(anyhow::anyhow!("{cause}"))))
                    .collect()
            }
        }));
        let Ok(results) = results else {
            tracing::error!(reports = jobs.len(), "report writer panicked on a batch");
            continue;
        };
        for r in &results {
            if let Err(AppError::DatabaseUnavailable(e)) = r {
                db::health(&pool).mark_down(&format!("{e:#}"));
                break;
            }
        }
        for (job, r) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(r);
        }
    }
}

/// Applies `reports` (node id, report) in one transaction, each in its own savepoint,
/// and returns each one's result in order. If the transaction itself fails (its commit,
/// or a savepoint that could not be rolled back), each report is applied again alone.
pub fn apply(
    conn: &mut DbConn,
    notifier: &Notifier<'_>,
    reports: &[(&str, &Report)],
) -> Vec<AppResult<bool>> {
    if reports.len() > 1 {
        let batch = db::transaction::<_, AppError, _>(conn, |conn| {
            let mut out = Vec::with_capacity(reports.len());
            for (node_id, r) in reports {
                let one = service::report(conn, notifier, node_id, r);
                if let Err(e) = &one {
                    if !refusal(e) {
                        // The database failed, not the report: retry each alone.
                        return Err(AppError::internal(anyhow::anyhow!("{e}")));
                    }
                }
                out.push(one);
            }
            Ok(out)
        });
        if let Ok(out) = batch {
            return out;
        }
    }
    reports
        .iter()
        .map(|(node_id, r)| service::report(conn, notifier, node_id, r))
        .collect()
}

/// Whether an error is the report's own (a 4xx refusal), which leaves the batch usable.
fn refusal(e: &AppError) -> bool {
    !matches!(e, AppError::DatabaseUnavailable(_) | AppError::Internal(_))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
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
        let notifier = Notifier {
            public_url: "https://cp.test",
        };
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
            assert!(apply(&mut conn, &notifier, &[(&*a, &r)])[0]
                .as_ref()
                .unwrap());
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
        let notifier = Notifier {
            public_url: "https://cp.test",
        };
        let with_counts =
            |seq, inbound, outbound| with_web_counts(report(seq, seq), inbound, outbound);
        let usage = |conn: &mut DbConn| web_usage(conn, &a);
        let (newer, older) = (with_counts(2, 7, 4), with_counts(1, 5, 6));
        assert!(apply(&mut conn, &notifier, &[(&*a, &newer)])[0].is_ok());
        assert_eq!(usage(&mut conn), (7, 4));
        assert!(apply(&mut conn, &notifier, &[(&*a, &older)])[0].is_ok());
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
        let notifier = Notifier {
            public_url: "https://cp.test",
        };
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
        assert!(apply(
            &mut conn,
            &notifier,
            &[(&*a, &with_ai(2, "gpt-4o-mini", 3))]
        )[0]
        .is_ok());
        assert!(apply(
            &mut conn,
            &notifier,
            &[(&*a, &with_ai(1, "gpt-4o-mini", 1))]
        )[0]
        .is_ok());
        assert_eq!(stored(&mut conn), [("gpt-4o-mini".into(), 3, 300, 30)]);
        assert!(apply(
            &mut conn,
            &notifier,
            &[(&*a, &with_ai(3, "gpt-4o-mini <b>", 9))]
        )[0]
        .is_err());
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
        let notifier = Notifier {
            public_url: "https://cp.test",
        };
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
        assert!(apply(
            &mut conn,
            &notifier,
            &[(&*a, &with_bookings(2, 7200, 4, 0))]
        )[0]
        .is_ok());
        assert!(apply(
            &mut conn,
            &notifier,
            &[(&*a, &with_bookings(1, 7200, 2, 1))]
        )[0]
        .is_ok());
        assert_eq!(
            stored(&mut conn),
            [(7200, 4, 1, 1)],
            "each total keeps its larger value"
        );
        assert!(apply(
            &mut conn,
            &notifier,
            &[(&*a, &with_bookings(3, 7201, 9, 0))]
        )[0]
        .is_err());
        assert!(apply(
            &mut conn,
            &notifier,
            &[(&*a, &with_bookings(4, 10800, -1, 0))]
        )[0]
        .is_err());
        assert_eq!(stored(&mut conn), [(7200, 4, 1, 1)]);
    }

    /// Issue 16: a report's call counts (calls and minutes per hour, nothing else) are
    /// stored per hour, keeping the larger totals; a negative figure or a time that is not
    /// an hour refuses the report whole.
    #[test]
    fn call_counts_are_stored_per_hour_and_bad_ones_refuse_the_report() {
        use crate::infra::schema::call_counts;
        let (_guard, pool) = pool();
        let mut conn = pool.get().unwrap();
        let a = node(&mut conn, "alpha");
        let notifier = Notifier {
            public_url: "https://cp.test",
        };
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
        assert!(apply(&mut conn, &notifier, &[(&*a, &with_calls(2, 7200, 3, 9))])[0].is_ok());
        assert!(apply(&mut conn, &notifier, &[(&*a, &with_calls(1, 7200, 2, 11))])[0].is_ok());
        assert_eq!(
            stored(&mut conn),
            [(7200, 3, 11)],
            "each total keeps its larger value"
        );
        assert!(apply(&mut conn, &notifier, &[(&*a, &with_calls(3, 7201, 1, 1))])[0].is_err());
        assert!(apply(&mut conn, &notifier, &[(&*a, &with_calls(4, 10800, 1, -1))])[0].is_err());
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
}
