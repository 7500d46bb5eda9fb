//! The gateway's tables: `node_certs` and `bootstrap_tokens` (identity), `node_reports`,
//! `usage_counts`, `ai_counts`, `booking_counts`, `call_counts`, `node_exports`, `retention_sweeps` and the
//! report fields of `nodes` (what reports carry), `commands` (delivery and acknowledgement).
//! The report path's writes are hand-written SQL ([`crate::infra::db::stmt`]): one `UPDATE`
//! of `nodes` whose text never changes (so it is prepared once per connection) and one
//! counts upsert per table and batch; on PostgreSQL, [`steady`] holds the two statements
//! of a batch's steady reports.

#[cfg(feature = "postgres")]
pub mod steady;

use super::counts::Counts;
use crate::error::AppResult;
use crate::infra::db::stmt::{self, Bind, Dynamic, Fixed, FixedSql};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    bootstrap_tokens, commands, node_certs, node_exports, nodes, retention_sweeps,
};
use diesel::prelude::*;
use outpost_pki::IssuedCert;
use outpost_protocol::{ExportMeta, Report, RetentionSweep};

/// A certificate's node, revocation time, expiry and its node's state.
pub type CertStatus = (String, Option<i64>, i64, String);

/// The certificate with `serial`, if the CP issued it.
pub fn cert_status(conn: &mut DbConn, serial: &str) -> AppResult<Option<CertStatus>> {
    Ok(node_certs::table
        .inner_join(nodes::table)
        .filter(node_certs::serial.eq(serial))
        .select((
            node_certs::node_id,
            node_certs::revoked_at,
            node_certs::not_after,
            nodes::state,
        ))
        .first(conn)
        .optional()?)
}

/// When the certificate with `serial` was issued and when it expires, and when the newest
/// certificate of its node was issued (renewal limits).
pub fn renewal_facts(
    conn: &mut DbConn,
    node_id: &str,
    serial: &str,
) -> AppResult<Option<(i64, i64, i64)>> {
    let presented: Option<(i64, i64)> = node_certs::table
        .filter(node_certs::serial.eq(serial))
        .filter(node_certs::node_id.eq(node_id))
        .select((node_certs::created_at, node_certs::not_after))
        .first(conn)
        .optional()?;
    let Some((issued_at, not_after)) = presented else {
        return Ok(None);
    };
    let newest: Option<i64> = node_certs::table
        .filter(node_certs::node_id.eq(node_id))
        .select(diesel::dsl::max(node_certs::created_at))
        .first(conn)?;
    Ok(Some((issued_at, not_after, newest.unwrap_or(issued_at))))
}

/// Stores an issued certificate of a node.
pub fn insert_cert(
    conn: &mut DbConn,
    node_id: &str,
    issued: &IssuedCert,
    now: i64,
) -> AppResult<()> {
    diesel::insert_into(node_certs::table)
        .values((
            node_certs::serial.eq(&issued.serial),
            node_certs::node_id.eq(node_id),
            node_certs::cert_pem.eq(&issued.pem),
            node_certs::not_after.eq(issued.not_after.unix_timestamp()),
            node_certs::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A bootstrap token by its hash: its node, expiry, and when it was used.
pub fn bootstrap_token(
    conn: &mut DbConn,
    hash: &str,
) -> AppResult<Option<(String, i64, Option<i64>)>> {
    Ok(bootstrap_tokens::table
        .find(hash)
        .select((
            bootstrap_tokens::node_id,
            bootstrap_tokens::expires_at,
            bootstrap_tokens::used_at,
        ))
        .first(conn)
        .optional()?)
}

/// Marks a bootstrap token used, if it was not. Returns whether this call did.
pub fn use_token(conn: &mut DbConn, hash: &str, now: i64) -> AppResult<bool> {
    let n = diesel::update(
        bootstrap_tokens::table
            .find(hash)
            .filter(bootstrap_tokens::used_at.is_null()),
    )
    .set(bootstrap_tokens::used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

/// Stores what an enrolling node says about itself.
pub fn set_enrolled(
    conn: &mut DbConn,
    node_id: &str,
    age_recipient: &str,
    version: &str,
    now: i64,
) -> AppResult<()> {
    diesel::update(nodes::table.find(node_id))
        .set((
            nodes::age_recipient.eq(age_recipient),
            nodes::version.eq(version),
            nodes::enrolled_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The workspace a node serves.
pub fn workspace_of(conn: &mut DbConn, node_id: &str) -> AppResult<String> {
    Ok(nodes::table
        .find(node_id)
        .select(nodes::workspace_id)
        .first(conn)?)
}

// Reports.

struct InsertReport;
impl FixedSql for InsertReport {
    const SQL: &'static str = "INSERT INTO node_reports (node_id, epoch, seq, produced_at, \
        received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id, epoch, seq) DO NOTHING";
}

/// Records a report's epoch and sequence number. Returns `false` if it was seen before.
/// A replay inserts nothing instead of failing on the key: on PostgreSQL a failed
/// statement would abort the whole batch's transaction, not only this report.
pub fn insert_report(
    conn: &mut DbConn,
    node_id: &str,
    epoch: &str,
    r: &Report,
    now: i64,
) -> AppResult<bool> {
    let inserted =
        Fixed::<InsertReport>::new(receipt_binds(node_id, epoch, r, now)).execute(conn)?;
    Ok(inserted == 1)
}

fn receipt_binds<'a>(node_id: &'a str, epoch: &'a str, r: &Report, now: i64) -> Vec<Bind<'a>> {
    vec![
        node_id.into(),
        epoch.into(),
        r.seq.into(),
        r.produced_at.into(),
        now.into(),
    ]
}

/// Most rows per counts upsert. The statement's text depends on its row count, and diesel
/// keeps each text prepared ([`Dynamic`]), so this bounds the texts: at most 32 per table,
/// 128 prepared statements per connection. A batch's counts, a few rows per report, mostly
/// go in one statement; a node back from a long outage sends more, in several.
const UPSERT_ROWS: usize = 32;

/// Writes a batch's counts ([`Counts`]): one upsert per table (per [`UPSERT_ROWS`]) in
/// which each column keeps the larger of the stored and the reported total, and a row
/// whose totals did not grow is not written at all. Returns the rows written (inserted or
/// raised).
pub fn write_counts(conn: &mut DbConn, counts: &Counts) -> AppResult<usize> {
    let usage = counts.usage.iter().map(|((node, channel, hour), t)| {
        row(
            [
                node.as_str().into(),
                channel.as_str().into(),
                (*hour).into(),
            ],
            t,
        )
    });
    let ai = counts.ai.iter().map(|((node, day, model), t)| {
        row(
            [node.as_str().into(), (*day).into(), model.as_str().into()],
            t,
        )
    });
    let booking = counts
        .booking
        .iter()
        .map(|((node, hour), t)| row([node.as_str().into(), (*hour).into()], t));
    let calls = counts
        .calls
        .iter()
        .map(|((node, hour), t)| row([node.as_str().into(), (*hour).into()], t));
    Ok(upsert_rows(
        conn,
        "usage_counts",
        &["node_id", "channel", "hour"],
        &["inbound", "outbound", "conversations"],
        usage,
    )? + upsert_rows(
        conn,
        "ai_counts",
        &["node_id", "day", "model"],
        &["requests", "input_tokens", "output_tokens"],
        ai,
    )? + upsert_rows(
        conn,
        "booking_counts",
        &["node_id", "hour"],
        &["booked", "rescheduled", "cancelled"],
        booking,
    )? + upsert_rows(
        conn,
        "call_counts",
        &["node_id", "hour"],
        &["calls", "minutes"],
        calls,
    )?)
}

/// A counts row's binds: its key, then its totals.
fn row<'a, const K: usize>(key: [Bind<'a>; K], totals: &[i64]) -> Vec<Bind<'a>> {
    key.into_iter()
        .chain(totals.iter().map(|t| Bind::from(*t)))
        .collect()
}

/// Writes `rows` ([`row`]s of `keys` then `totals`) with [`max_upsert`], [`UPSERT_ROWS`]
/// at a time. Returns the rows written.
fn upsert_rows<'a>(
    conn: &mut DbConn,
    table: &str,
    keys: &[&str],
    totals: &[&str],
    rows: impl Iterator<Item = Vec<Bind<'a>>>,
) -> AppResult<usize> {
    let mut rows = rows.peekable();
    let mut written = 0;
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(UPSERT_ROWS).collect();
        let n = chunk.len();
        let binds = chunk.into_iter().flatten().collect();
        written += max_upsert(table, keys, totals, n, binds).execute(conn)?;
    }
    Ok(written)
}

/// `INSERT INTO table (keys…, totals…) VALUES (…), … ON CONFLICT (keys…) DO UPDATE` each
/// total to the larger of stored and new, only where one of them grew. The same text on
/// SQLite (3.24+) and PostgreSQL; `keys` is the table's primary key.
fn max_upsert<'a>(
    table: &str,
    keys: &[&str],
    totals: &[&str],
    rows: usize,
    binds: Vec<Bind<'a>>,
) -> Dynamic<'a> {
    let columns: Vec<&str> = keys.iter().chain(totals).copied().collect();
    let row = stmt::row(columns.len());
    let values = vec![row.as_str(); rows].join(", ");
    let larger = totals
        .iter()
        .map(|c| {
            format!(
                "{c} = CASE WHEN excluded.{c} > {table}.{c} THEN excluded.{c} ELSE {table}.{c} END"
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let grew = totals
        .iter()
        .map(|c| format!("excluded.{c} > {table}.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    Dynamic::new(
        format!(
            "INSERT INTO {table} ({}) VALUES {values} ON CONFLICT ({}) DO UPDATE SET {larger} WHERE {grew}",
            columns.join(", "),
            keys.join(", "),
        ),
        binds,
    )
}

/// What a report is checked and applied against, read in one statement: the newest
/// applied report's sequence number and epoch (`""` for a node that sends none), the
/// node's workspace, its stored waiting count and when the members were last told, and
/// its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFacts {
    /// `(seq, epoch)` of the newest applied report, if any.
    pub last: Option<(i64, String)>,
    /// The node's workspace.
    pub workspace_id: String,
    /// The stored waiting count.
    pub waiting: Option<i64>,
    /// When the members were last told about waiting customers.
    pub waiting_notified_at: Option<i64>,
    /// The node's state.
    pub state: String,
}

/// The columns of `nodes` that [`ReportFacts`] are made of.
#[derive(Queryable, Selectable)]
#[diesel(table_name = nodes)]
pub struct FactsRow {
    last_seq: Option<i64>,
    last_epoch: Option<String>,
    workspace_id: String,
    waiting_conversations: Option<i64>,
    waiting_notified_at: Option<i64>,
    state: String,
}

impl From<FactsRow> for ReportFacts {
    fn from(r: FactsRow) -> Self {
        ReportFacts {
            last: r.last_seq.map(|s| (s, r.last_epoch.unwrap_or_default())),
            workspace_id: r.workspace_id,
            waiting: r.waiting_conversations,
            waiting_notified_at: r.waiting_notified_at,
            state: r.state,
        }
    }
}

/// See [`ReportFacts`].
pub fn report_facts(conn: &mut DbConn, node_id: &str) -> AppResult<ReportFacts> {
    let row: FactsRow = nodes::table
        .find(node_id)
        .select(FactsRow::as_select())
        .first(conn)?;
    Ok(row.into())
}

/// What the newest report sets on its node (`checks_json` already bounded).
#[derive(Debug)]
pub struct Reported<'a> {
    /// The report's epoch (`""` when it has none).
    pub epoch: &'a str,
    /// The report.
    pub report: &'a Report,
    /// Its checks as stored.
    pub checks_json: String,
    /// The waiting count to store and when the members were last told.
    pub waiting: (i64, Option<i64>),
    /// When it arrived.
    pub now: i64,
}

struct SetReported;
impl FixedSql for SetReported {
    const SQL: &'static str = "UPDATE nodes SET last_seq = ?, last_epoch = ?, \
        last_report_at = ?, version = ?, uptime_s = ?, disk_used_bytes = ?, queue_depth = ?, \
        checks_json = ?, waiting_conversations = ?, waiting_notified_at = ? WHERE id = ?";
}

/// Stores the newest report's fields of a node in one statement, the same text every
/// time (prepared once per connection): health, waiting count, `last_report_at`.
pub fn set_reported(conn: &mut DbConn, node_id: &str, r: &Reported<'_>) -> AppResult<()> {
    Fixed::<SetReported>::new(reported_binds(node_id, r)).execute(conn)?;
    Ok(())
}

fn reported_binds<'a>(node_id: &'a str, r: &'a Reported<'_>) -> Vec<Bind<'a>> {
    let rep = r.report;
    vec![
        rep.seq.into(),
        r.epoch.into(),
        r.now.into(),
        super::model::stored_version(&rep.version).into(),
        rep.uptime_s.into(),
        rep.disk_used_bytes.into(),
        rep.queue_depth.into(),
        r.checks_json.as_str().into(),
        r.waiting.0.into(),
        r.waiting.1.into(),
        node_id.into(),
    ]
}

struct InsertReportAndSet;
impl FixedSql for InsertReportAndSet {
    const SQL: &'static str = "WITH receipt AS (INSERT INTO node_reports (node_id, epoch, \
        seq, produced_at, received_at) VALUES (?, ?, ?, ?, ?) \
        ON CONFLICT (node_id, epoch, seq) DO NOTHING RETURNING 1) \
        UPDATE nodes SET last_seq = ?, last_epoch = ?, \
        last_report_at = ?, version = ?, uptime_s = ?, disk_used_bytes = ?, queue_depth = ?, \
        checks_json = ?, waiting_conversations = ?, waiting_notified_at = ? \
        WHERE id = ? AND EXISTS (SELECT 1 FROM receipt)";
}

/// The newest report's receipt ([`insert_report`]) and, if it was new, its fields on the
/// node ([`set_reported`]). Returns `false` (and changes nothing) for a report seen before.
/// On PostgreSQL this is one statement (the insert is a data-modifying `WITH`), so one
/// round trip instead of two; SQLite, in process, has no such `WITH` and runs the two.
pub fn insert_report_and_set(
    conn: &mut DbConn,
    node_id: &str,
    r: &Reported<'_>,
) -> AppResult<bool> {
    if !conn.is_postgres() {
        if !insert_report(conn, node_id, r.epoch, r.report, r.now)? {
            return Ok(false);
        }
        set_reported(conn, node_id, r)?;
        return Ok(true);
    }
    let mut binds = receipt_binds(node_id, r.epoch, r.report, r.now);
    binds.extend(reported_binds(node_id, r));
    let updated = Fixed::<InsertReportAndSet>::new(binds).execute(conn)?;
    Ok(updated == 1)
}

struct TouchReport;
impl FixedSql for TouchReport {
    const SQL: &'static str = "UPDATE nodes SET last_report_at = ? WHERE id = ?";
}

/// Notes that a report arrived (an older one: nothing else changes).
pub fn touch_report(conn: &mut DbConn, node_id: &str, now: i64) -> AppResult<()> {
    Fixed::<TouchReport>::new(vec![now.into(), node_id.into()]).execute(conn)?;
    Ok(())
}

/// Whether the CP knows this export of the node.
pub fn export_known(conn: &mut DbConn, node_id: &str, export_id: &str) -> AppResult<bool> {
    let n: i64 = node_exports::table
        .find((node_id, export_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Moves a running export to `ready`. Returns whether this call did.
pub fn export_became_ready(conn: &mut DbConn, node_id: &str, export_id: &str) -> AppResult<bool> {
    let n = diesel::update(
        node_exports::table
            .find((node_id, export_id))
            .filter(node_exports::state.eq("running")),
    )
    .set(node_exports::state.eq("ready"))
    .execute(conn)?;
    Ok(n == 1)
}

/// Stores an export's newest state, size and expiry.
pub fn update_export(conn: &mut DbConn, node_id: &str, e: &ExportMeta, now: i64) -> AppResult<()> {
    diesel::update(node_exports::table.find((node_id, &e.id)))
        .set((
            node_exports::state.eq(&e.state),
            node_exports::size_bytes.eq(e.size_bytes),
            node_exports::expires_at.eq(e.expires_at),
            node_exports::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores an export the CP had not seen.
pub fn insert_export(
    conn: &mut DbConn,
    node_id: &str,
    ws_id: &str,
    e: &ExportMeta,
    now: i64,
) -> AppResult<()> {
    diesel::insert_into(node_exports::table)
        .values((
            node_exports::node_id.eq(node_id),
            node_exports::export_id.eq(&e.id),
            node_exports::workspace_id.eq(ws_id),
            node_exports::scope.eq(&e.scope),
            node_exports::state.eq(&e.state),
            node_exports::size_bytes.eq(e.size_bytes),
            node_exports::created_at.eq(e.created_at),
            node_exports::expires_at.eq(e.expires_at),
            node_exports::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores a retention sweep of the node unless it is known (a sweep is identified by its
/// time on its node).
pub fn insert_sweep_once(
    conn: &mut DbConn,
    node_id: &str,
    ws_id: &str,
    s: &RetentionSweep,
) -> AppResult<()> {
    let known: i64 = retention_sweeps::table
        .find((node_id, s.at))
        .count()
        .get_result(conn)?;
    if known == 0 {
        diesel::insert_into(retention_sweeps::table)
            .values((
                retention_sweeps::node_id.eq(node_id),
                retention_sweeps::at.eq(s.at),
                retention_sweeps::workspace_id.eq(ws_id),
                retention_sweeps::messages_deleted.eq(s.messages_deleted),
                retention_sweeps::contacts_erased.eq(s.contacts_erased),
                retention_sweeps::exports_deleted.eq(s.exports_deleted),
            ))
            .execute(conn)?;
    }
    Ok(())
}

// Commands.

/// Up to 20 unacknowledged, unexpired commands of a node, oldest first (id, payload),
/// marked delivered.
pub fn take_pending(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<(String, Option<String>)>> {
    let now = db::now();
    let rows: Vec<(String, Option<String>)> = commands::table
        .filter(commands::node_id.eq(node_id))
        .filter(commands::acked_at.is_null())
        .filter(
            commands::expires_at
                .is_null()
                .or(commands::expires_at.gt(now)),
        )
        .order(commands::created_at_ms.asc())
        .select((commands::id, commands::payload))
        .limit(20)
        .load(conn)?;
    if rows.is_empty() {
        return Ok(rows);
    }
    let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    diesel::update(
        commands::table
            .filter(commands::id.eq_any(ids))
            .filter(commands::delivered_at.is_null()),
    )
    .set(commands::delivered_at.eq(now))
    .execute(conn)?;
    Ok(rows)
}

/// A command of this node (never another node's): its kind name and payload.
pub fn command_of(
    conn: &mut DbConn,
    cmd_id: &str,
    node_id: &str,
) -> AppResult<Option<(String, Option<String>)>> {
    Ok(commands::table
        .filter(commands::id.eq(cmd_id))
        .filter(commands::node_id.eq(node_id))
        .select((commands::kind, commands::payload))
        .first(conn)
        .optional()?)
}

/// Records the first acknowledgement of a command and erases its payload.
pub fn record_ack(
    conn: &mut DbConn,
    cmd_id: &str,
    ok: bool,
    error_code: Option<&str>,
) -> AppResult<()> {
    diesel::update(
        commands::table
            .find(cmd_id)
            .filter(commands::acked_at.is_null()),
    )
    .set((
        commands::acked_at.eq(db::now()),
        commands::ack_ok.eq(ok),
        commands::error_code.eq(error_code),
        // Payloads may hold sealed secrets: nothing is kept once acknowledged.
        commands::payload.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(())
}
