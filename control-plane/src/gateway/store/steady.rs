//! The statements of the steady report on PostgreSQL ([`crate::gateway::steady`]): the
//! facts of a batch's nodes in one read, their receipts and node fields in one write. Both
//! texts are the same for every batch size (arrays, not rows), so each is prepared once
//! per connection.

use super::{FactsRow, ReportFacts};
use crate::error::AppResult;
use crate::infra::schema::nodes;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use outpost_protocol::Report;
use std::collections::{HashMap, HashSet};

/// [`ReportFacts`] of `ids` in one statement (`= ANY($1)`, prepared once).
pub fn facts_of(conn: &mut PgConnection, ids: &[&str]) -> AppResult<HashMap<String, ReportFacts>> {
    let rows: Vec<(String, FactsRow)> = nodes::table
        .filter(nodes::id.eq_any(ids))
        .select((nodes::id, FactsRow::as_select()))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, row)| (id, row.into())).collect())
}

/// A batch's steady reports, one array per column ([`Steady::push`]), and the one
/// statement that stores them ([`Steady::store`]).
#[derive(Default)]
pub struct Steady<'a> {
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
    /// Adds `r`, with its checks as stored and the waiting count and notice time to store.
    pub fn push(
        &mut self,
        node_id: &'a str,
        r: &'a Report,
        checks_json: String,
        waiting: i64,
        notified_at: Option<i64>,
    ) {
        self.node_ids.push(node_id);
        self.epochs.push(r.epoch.as_deref().unwrap_or(""));
        self.seqs.push(r.seq);
        self.produced_at.push(r.produced_at);
        self.versions
            .push(crate::gateway::model::stored_version(&r.version));
        self.uptimes.push(r.uptime_s);
        self.disk_used.push(r.disk_used_bytes);
        self.queue_depths.push(r.queue_depth);
        self.checks.push(checks_json);
        self.waiting.push(waiting);
        self.waiting_notified_at.push(notified_at);
    }

    /// Stores them in one statement, received at `now`: the receipts, and for the new
    /// ones only the node's fields, as `super::insert_report_and_set` does for one.
    /// Returns the nodes updated; a report whose receipt was there already (a replay)
    /// changes nothing and its node is not among them.
    pub fn store(mut self, conn: &mut PgConnection, now: i64) -> AppResult<HashSet<String>> {
        self.now = now;
        Ok(self.load::<String>(conn)?.into_iter().collect())
    }
}

/// The statement's identity in diesel's prepared-statement cache: one text.
#[derive(Debug)]
pub struct SteadySql;

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
