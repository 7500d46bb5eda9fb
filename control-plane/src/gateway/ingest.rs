//! Group commit of reports. Concurrent reports are queued to a writer thread that applies
//! whatever has queued up (at most [`MAX_BATCH`]) in one transaction. A report is checked
//! in full before its first write ([`service::report_deferring_counts`]), so a refused
//! one fails alone with its own error, writes nothing and the others commit, without a
//! savepoint per report; every request gets its own answer. Everything the
//! per-report path does happens inside that transaction: idempotency, ordering by
//! `(epoch, seq)`, usage, status, events, the notices queued in the mail outbox. The
//! accepted reports' counts are folded and written once per table at the end of the batch
//! ([`super::counts`]), which stores what writing them report by report would. On
//! PostgreSQL the steady reports (the usual ones: nothing changes but health fields) are
//! read and stored in two statements per batch ([`super::steady`]).
//!
//! On SQLite, which has one writer, there is one writer thread: the queue replaces the
//! wait on the write lock, and one commit (one fsync) serves a whole batch. On
//! PostgreSQL there are [`PG_LANES`] writers; a node's reports always go to the same one
//! (by a hash of its id), so two writers never touch the same node's rows and a node's
//! reports are applied in the order they arrived. If a batch fails after a report began
//! writing (a database error), or its commit fails, the whole transaction is rolled back
//! and each of its reports is tried again alone, so each gets its own answer.

use super::counts::Counts;
use super::{service, steady, store};
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

/// Applies `reports` (node id, report) in one transaction and returns each one's result
/// in order. A refused report writes nothing and the batch goes on; if a report fails
/// after it began writing, or the commit fails, the transaction is rolled back and each
/// report is applied again alone.
pub fn apply(
    conn: &mut DbConn,
    notifier: &Notifier<'_>,
    reports: &[(&str, &Report)],
) -> Vec<AppResult<bool>> {
    if reports.len() > 1 {
        let batch = db::transaction::<_, AppError, _>(conn, |conn| {
            let mut counts = Counts::default();
            // On PostgreSQL the steady reports first, in two statements for all of them:
            // only a node's first report of the batch can be one, so a node's later
            // reports still come after it.
            let settled = steady::apply(conn, reports, &mut counts)?;
            let mut out = Vec::with_capacity(reports.len());
            for ((node_id, r), settled) in reports.iter().zip(settled) {
                let result = match settled {
                    Some(result) => result,
                    // An outer error left part of a report written: retry each alone.
                    None => {
                        service::report_deferring_counts(conn, notifier, node_id, r, &mut counts)?
                    }
                };
                out.push(result);
            }
            // The batch's counts in one upsert per table, in the same transaction.
            store::write_counts(conn, &counts)?;
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

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
