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
//! SQLite, in process, has no round trips to save and keeps the per-report path.

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
    use super::super::store::{FactsRow, ReportFacts};
    use super::super::{model, service};
    use crate::error::AppResult;
    use crate::infra::db;
    use crate::infra::schema::nodes;
    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::sql_types::{Array, BigInt, Nullable, Text};
    use outpost_protocol::Report;
    use std::collections::{HashMap, HashSet};

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
            rows.push(node_id, r, waiting, f.waiting_notified_at);
            settled.push(i);
        }
        if settled.is_empty() {
            return Ok(());
        }
        rows.now = now;
        let updated: HashSet<String> = rows.load::<String>(conn)?.into_iter().collect();
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

    /// [`ReportFacts`] of `ids` in one statement (`= ANY($1)`, prepared once).
    fn facts_of(conn: &mut PgConnection, ids: &[&str]) -> AppResult<HashMap<String, ReportFacts>> {
        let rows: Vec<(String, FactsRow)> = nodes::table
            .filter(nodes::id.eq_any(ids))
            .select((nodes::id, FactsRow::as_select()))
            .load(conn)?;
        Ok(rows.into_iter().map(|(id, row)| (id, row.into())).collect())
    }

    /// The steady reports' columns, one array each, and the one statement that stores
    /// them: the receipts (a replay's is there already and inserts nothing) and, for the
    /// new ones only, the node's fields, as `store::insert_report_and_set` does for one.
    /// Returns the ids of the nodes updated.
    #[derive(Default)]
    struct Steady<'a> {
        node_ids: Vec<&'a str>,
        epochs: Vec<&'a str>,
        seqs: Vec<i64>,
        produced_at: Vec<i64>,
        versions: Vec<String>,
        uptimes: Vec<i64>,
        disk_used: Vec<i64>,
        queue_depths: Vec<i64>,
        checks: Vec<String>,
        waiting: Vec<i64>,
        waiting_notified_at: Vec<Option<i64>>,
        now: i64,
    }

    impl<'a> Steady<'a> {
        fn push(
            &mut self,
            node_id: &'a str,
            r: &'a Report,
            waiting: i64,
            notified_at: Option<i64>,
        ) {
            self.node_ids.push(node_id);
            self.epochs.push(r.epoch.as_deref().unwrap_or(""));
            self.seqs.push(r.seq);
            self.produced_at.push(r.produced_at);
            self.versions.push(r.version.chars().take(64).collect());
            self.uptimes.push(r.uptime_s);
            self.disk_used.push(r.disk_used_bytes);
            self.queue_depths.push(r.queue_depth);
            self.checks.push(service::stored_checks(r));
            self.waiting.push(waiting);
            self.waiting_notified_at.push(notified_at);
        }
    }

    /// The statement's identity in diesel's prepared-statement cache: one text.
    struct SteadySql;

    impl QueryId for Steady<'_> {
        type QueryId = SteadySql;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl Query for Steady<'_> {
        type SqlType = Text;
    }

    impl RunQueryDsl<PgConnection> for Steady<'_> {}

    impl QueryFragment<Pg> for Steady<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            // One array per column, each cast so PostgreSQL knows its type.
            macro_rules! arrays {
                ($($sql:ty => $field:ident as $cast:literal),*) => {$(
                    out.push_bind_param::<Array<$sql>, _>(&self.$field)?;
                    out.push_sql($cast);
                )*};
            }
            out.push_sql("WITH u AS (SELECT * FROM unnest(");
            arrays!(
                Text => node_ids as "::text[], ",
                Text => epochs as "::text[], ",
                BigInt => seqs as "::int8[], ",
                BigInt => produced_at as "::int8[], ",
                Text => versions as "::text[], ",
                BigInt => uptimes as "::int8[], ",
                BigInt => disk_used as "::int8[], ",
                BigInt => queue_depths as "::int8[], ",
                Text => checks as "::text[], ",
                BigInt => waiting as "::int8[], ",
                Nullable<BigInt> => waiting_notified_at as "::int8[]"
            );
            out.push_sql(
                ") AS u(node_id, epoch, seq, produced_at, version, uptime_s, \
                 disk_used_bytes, queue_depth, checks_json, waiting, waiting_notified_at)), \
                 receipt AS (INSERT INTO node_reports (node_id, epoch, seq, produced_at, \
                 received_at) SELECT node_id, epoch, seq, produced_at, ",
            );
            out.push_bind_param::<BigInt, _>(&self.now)?;
            out.push_sql(
                " FROM u ON CONFLICT (node_id, epoch, seq) DO NOTHING RETURNING node_id) \
                 UPDATE nodes SET last_seq = u.seq, last_epoch = u.epoch, last_report_at = ",
            );
            out.push_bind_param::<BigInt, _>(&self.now)?;
            out.push_sql(
                ", version = u.version, uptime_s = u.uptime_s, \
                 disk_used_bytes = u.disk_used_bytes, queue_depth = u.queue_depth, \
                 checks_json = u.checks_json, waiting_conversations = u.waiting, \
                 waiting_notified_at = u.waiting_notified_at \
                 FROM u JOIN receipt ON receipt.node_id = u.node_id \
                 WHERE nodes.id = u.node_id RETURNING nodes.id",
            );
            Ok(())
        }
    }
}
