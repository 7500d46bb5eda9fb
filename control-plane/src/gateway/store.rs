//! The gateway's tables: `node_certs` and `bootstrap_tokens` (identity), `node_reports`,
//! `usage_counts`, `ai_counts`, `node_exports`, `retention_sweeps` and the report fields of `nodes`
//! (what reports carry), `commands` (delivery and acknowledgement).

use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    ai_counts, booking_counts, bootstrap_tokens, call_counts, commands, node_certs, node_exports,
    node_reports, nodes, retention_sweeps, usage_counts,
};
use diesel::prelude::*;
use outpost_pki::IssuedCert;
use outpost_protocol::{
    AiCount, BookingCount, CallCount, CountBucket, ExportMeta, Report, RetentionSweep,
};

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

/// Records a report's epoch and sequence number. Returns `false` if it was seen before.
pub fn insert_report(
    conn: &mut DbConn,
    node_id: &str,
    epoch: &str,
    r: &Report,
    now: i64,
) -> AppResult<bool> {
    let inserted = diesel::insert_into(node_reports::table)
        .values((
            node_reports::node_id.eq(node_id),
            node_reports::epoch.eq(epoch),
            node_reports::seq.eq(r.seq),
            node_reports::produced_at.eq(r.produced_at),
            node_reports::received_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Stores an hour's counts of a channel (the per-column maximum of stored and reported).
pub fn set_usage(
    conn: &mut DbConn,
    node_id: &str,
    c: &CountBucket,
    channel: &str,
) -> AppResult<()> {
    let key = usage_counts::table
        .filter(usage_counts::node_id.eq(node_id))
        .filter(usage_counts::channel.eq(channel))
        .filter(usage_counts::hour.eq(c.hour));
    // Each column keeps the larger of the stored and the reported total: an older report
    // that arrives after a newer one (concurrent requests, a retried outbox) carries a
    // smaller total of the same hour and must not lower what is billed.
    macro_rules! larger {
        ($col:expr, $v:expr) => {
            diesel::dsl::case_when($col.gt($v), $col).otherwise($v)
        };
    }
    let n = diesel::update(key)
        .set((
            usage_counts::inbound.eq(larger!(usage_counts::inbound, c.inbound)),
            usage_counts::outbound.eq(larger!(usage_counts::outbound, c.outbound)),
            usage_counts::conversations.eq(larger!(usage_counts::conversations, c.conversations)),
        ))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(usage_counts::table)
            .values((
                usage_counts::node_id.eq(node_id),
                usage_counts::channel.eq(channel),
                usage_counts::hour.eq(c.hour),
                usage_counts::inbound.eq(c.inbound),
                usage_counts::outbound.eq(c.outbound),
                usage_counts::conversations.eq(c.conversations),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Stores an hour's booking counts (the per-column maximum of stored and reported, as
/// for [`set_usage`]: the node reports the hour's totals so far).
pub fn set_booking_counts(conn: &mut DbConn, node_id: &str, c: &BookingCount) -> AppResult<()> {
    let key = booking_counts::table
        .filter(booking_counts::node_id.eq(node_id))
        .filter(booking_counts::hour.eq(c.hour));
    macro_rules! larger {
        ($col:expr, $v:expr) => {
            diesel::dsl::case_when($col.gt($v), $col).otherwise($v)
        };
    }
    let n = diesel::update(key)
        .set((
            booking_counts::booked.eq(larger!(booking_counts::booked, c.booked)),
            booking_counts::rescheduled.eq(larger!(booking_counts::rescheduled, c.rescheduled)),
            booking_counts::cancelled.eq(larger!(booking_counts::cancelled, c.cancelled)),
        ))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(booking_counts::table)
            .values((
                booking_counts::node_id.eq(node_id),
                booking_counts::hour.eq(c.hour),
                booking_counts::booked.eq(c.booked),
                booking_counts::rescheduled.eq(c.rescheduled),
                booking_counts::cancelled.eq(c.cancelled),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Stores an hour's call counts (the per-column maximum of stored and reported, as for
/// [`set_usage`]: the node reports the hour's totals so far).
pub fn set_call_counts(conn: &mut DbConn, node_id: &str, c: &CallCount) -> AppResult<()> {
    let key = call_counts::table
        .filter(call_counts::node_id.eq(node_id))
        .filter(call_counts::hour.eq(c.hour));
    macro_rules! larger {
        ($col:expr, $v:expr) => {
            diesel::dsl::case_when($col.gt($v), $col).otherwise($v)
        };
    }
    let n = diesel::update(key)
        .set((
            call_counts::calls.eq(larger!(call_counts::calls, c.calls)),
            call_counts::minutes.eq(larger!(call_counts::minutes, c.minutes)),
        ))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(call_counts::table)
            .values((
                call_counts::node_id.eq(node_id),
                call_counts::hour.eq(c.hour),
                call_counts::calls.eq(c.calls),
                call_counts::minutes.eq(c.minutes),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Stores a day's AI counts of a model (the per-column maximum of stored and reported,
/// as for [`set_usage`]: the node reports the day's totals so far).
pub fn set_ai_usage(conn: &mut DbConn, node_id: &str, c: &AiCount) -> AppResult<()> {
    let key = ai_counts::table
        .filter(ai_counts::node_id.eq(node_id))
        .filter(ai_counts::day.eq(c.day))
        .filter(ai_counts::model.eq(&c.model));
    macro_rules! larger {
        ($col:expr, $v:expr) => {
            diesel::dsl::case_when($col.gt($v), $col).otherwise($v)
        };
    }
    let n = diesel::update(key)
        .set((
            ai_counts::requests.eq(larger!(ai_counts::requests, c.requests)),
            ai_counts::input_tokens.eq(larger!(ai_counts::input_tokens, c.input_tokens)),
            ai_counts::output_tokens.eq(larger!(ai_counts::output_tokens, c.output_tokens)),
        ))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(ai_counts::table)
            .values((
                ai_counts::node_id.eq(node_id),
                ai_counts::day.eq(c.day),
                ai_counts::model.eq(&c.model),
                ai_counts::requests.eq(c.requests),
                ai_counts::input_tokens.eq(c.input_tokens),
                ai_counts::output_tokens.eq(c.output_tokens),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The newest applied report's sequence number and epoch (`""` for a node that sends
/// none), and the node's workspace.
pub fn last_seq_and_workspace(
    conn: &mut DbConn,
    node_id: &str,
) -> AppResult<(Option<(i64, String)>, String)> {
    let (seq, epoch, ws): (Option<i64>, Option<String>, String) = nodes::table
        .find(node_id)
        .select((nodes::last_seq, nodes::last_epoch, nodes::workspace_id))
        .first(conn)?;
    Ok((seq.map(|s| (s, epoch.unwrap_or_default())), ws))
}

/// The stored waiting count and when the members were last told.
pub fn waiting(conn: &mut DbConn, node_id: &str) -> AppResult<(Option<i64>, Option<i64>)> {
    Ok(nodes::table
        .find(node_id)
        .select((nodes::waiting_conversations, nodes::waiting_notified_at))
        .first(conn)?)
}

/// Stores the waiting count and when the members were last told.
pub fn set_waiting(
    conn: &mut DbConn,
    node_id: &str,
    waiting: i64,
    notified_at: Option<i64>,
) -> AppResult<()> {
    diesel::update(nodes::table.find(node_id))
        .set((
            nodes::waiting_conversations.eq(waiting),
            nodes::waiting_notified_at.eq(notified_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores the newest report's health fields (`checks_json` already bounded).
pub fn set_health(
    conn: &mut DbConn,
    node_id: &str,
    epoch: &str,
    r: &Report,
    checks_json: String,
    now: i64,
) -> AppResult<()> {
    diesel::update(nodes::table.find(node_id))
        .set((
            nodes::last_seq.eq(r.seq),
            nodes::last_epoch.eq(epoch),
            nodes::last_report_at.eq(now),
            nodes::version.eq(r.version.chars().take(64).collect::<String>()),
            nodes::uptime_s.eq(r.uptime_s),
            nodes::disk_used_bytes.eq(r.disk_used_bytes),
            nodes::queue_depth.eq(r.queue_depth),
            nodes::checks_json.eq(checks_json),
        ))
        .execute(conn)?;
    Ok(())
}

/// Notes that a report arrived (an older one: nothing else changes).
pub fn touch_report(conn: &mut DbConn, node_id: &str, now: i64) -> AppResult<()> {
    diesel::update(nodes::table.find(node_id))
        .set(nodes::last_report_at.eq(now))
        .execute(conn)?;
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
