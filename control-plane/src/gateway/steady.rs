//! The steady report on PostgreSQL: two statements per batch, whatever its size.
//!
//! Most reports change nothing but the node's health fields: the newest of their node,
//! the state it already has, no export or retention sweep, no notice to send. On
//! PostgreSQL a batch's steady reports are read in one statement (`WHERE id = ANY($1)`)
//! and stored in one (`unnest` of one array per column into the receipts' insert and
//! the nodes' update). The texts never change with the batch's size, so each is
//! prepared once per connection; PostgreSQL then does the rows' work without a
//! statement's round trip, parse and executor start per report (measured with pgbench
//! in docs/PERFORMANCE.md: 3.3× the reports per second of two statements per report).
//!
//! Every other report (older, changing its node's state, carrying exports or sweeps,
//! raising a notice, or not its node's first in the batch) goes through the per-report
//! path in the same transaction, after the steady ones, which stores the same for a
//! steady one (`ingest_tests::a_batch_of_many_nodes_stores_what_its_reports_applied_one_by_one_do`).
//! SQLite, in process, has no round trips to save and keeps the per-report path. The
//! statements are in [`super::store::steady`].

use super::counts::Counts;
use crate::error::AppResult;
use crate::infra::db::DbConn;
use outpost_protocol::Report;

/// Settles the steady reports of `reports` (each `Some` in the answer, in order) and
/// adds the accepted ones' counts to `counts`; `None` for the others, left to the
/// per-report path. A refused report is settled with its refusal and writes nothing. An
/// error is a database one: the caller rolls the batch back.
#[cfg(feature = "postgres")]
pub fn apply(
    conn: &mut DbConn,
    reports: &[(&str, &Report)],
    counts: &mut Counts,
) -> AppResult<Vec<Option<AppResult<bool>>>> {
    let mut out: Vec<Option<AppResult<bool>>> = reports.iter().map(|_| None).collect();
    if let DbConn::Pg(pg) = conn {
        pg::apply(pg, reports, counts, &mut out)?;
    }
    Ok(out)
}

/// See the other `apply`: a build without PostgreSQL leaves every report to the
/// per-report path.
#[cfg(not(feature = "postgres"))]
pub fn apply(
    _conn: &mut DbConn,
    reports: &[(&str, &Report)],
    _counts: &mut Counts,
) -> AppResult<Vec<Option<AppResult<bool>>>> {
    Ok(reports.iter().map(|_| None).collect())
}

#[cfg(feature = "postgres")]
mod pg {
    use super::super::counts::Counts;
    use super::super::store::steady::{facts_of, Steady};
    use super::super::{model, service};
    use crate::error::AppResult;
    use crate::infra::db;
    use diesel::PgConnection;
    use outpost_protocol::Report;
    use std::collections::HashSet;

    pub(super) fn apply(
        conn: &mut PgConnection,
        reports: &[(&str, &Report)],
        counts: &mut Counts,
        out: &mut [Option<AppResult<bool>>],
    ) -> AppResult<()> {
        // Each node's first report only: it is applied here, before the per-report path
        // applies the node's later ones, so a node's reports keep their order.
        let mut seen: HashSet<&str> = HashSet::new();
        let candidates: Vec<usize> = (0..reports.len())
            .filter(|&i| {
                let (node_id, r) = reports[i];
                seen.insert(node_id) && r.exports.is_empty() && r.retention_sweeps.is_empty()
            })
            .collect();
        if candidates.len() < 2 {
            return Ok(());
        }
        let ids: Vec<&str> = candidates.iter().map(|&i| reports[i].0).collect();
        let facts = facts_of(conn, &ids)?;
        let now = db::now();
        let mut rows = Steady::default();
        let mut settled = vec![];
        for i in candidates {
            let (node_id, r) = reports[i];
            // A node the database does not have: the per-report path says so.
            let Some(f) = facts.get(node_id) else {
                continue;
            };
            let newest = match service::check_report(f, r) {
                Ok(newest) => newest,
                Err(refused) => {
                    out[i] = Some(Err(refused));
                    continue;
                }
            };
            let (waiting, notify) = model::waiting_notice(
                r.waiting_conversations,
                f.waiting,
                f.waiting_notified_at,
                now,
            );
            if !newest || notify || f.state != service::state_reported(r).0.as_str() {
                continue;
            }
            let checks = service::stored_checks(r);
            rows.push(node_id, r, checks, waiting, f.waiting_notified_at);
            settled.push(i);
        }
        if settled.is_empty() {
            return Ok(());
        }
        let updated = rows.store(conn, now)?;
        for i in settled {
            let (node_id, r) = reports[i];
            // Not updated: its receipt was there already (a replay).
            let accepted = updated.contains(node_id);
            if accepted {
                counts.add(node_id, r);
            }
            out[i] = Some(Ok(accepted));
        }
        Ok(())
    }
}
