//! The node gateway: a separate TLS listener. `POST /v1/enroll` needs only server-auth
//! TLS and a bootstrap token; every `/v1/node/*` route requires a client certificate
//! chained to the internal CA, whose serial is checked against the database on every
//! request ([`NodeIdentity`]).

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    bootstrap_tokens, commands, node_certs, node_exports, node_reports, nodes, retention_sweeps,
    usage_counts,
};
use crate::notify::notices::Notice;
use crate::provisioning::{self, state};
use actix_web::dev::{Extensions, Payload};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use diesel::prelude::*;
use futures_util::future::LocalBoxFuture;
use outpost_protocol::{
    Command, CommandAck, CommandBatch, CommandKind, EnrollRequest, EnrollResponse, ExportMeta,
    RenewRequest, RenewResponse, Report, ReportAck, RetentionSweep, MAX_COMMAND_WAIT_SECS,
};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// DER of the client certificate presented on this connection (verified by rustls).
#[derive(Clone)]
struct PeerCert(Vec<u8>);

/// `on_connect` hook of the gateway: keeps the verified client certificate with the
/// connection so handlers can read it.
pub fn capture_peer_cert(conn: &dyn Any, ext: &mut Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
        let (_, session) = tls.get_ref();
        if let Some(cert) = session.peer_certificates().and_then(|c| c.first()) {
            ext.insert(PeerCert(cert.to_vec()));
        }
    }
}

/// Wakes long-polls when commands are queued (in this process; other replicas fall back
/// to polling the database every 2 s).
#[derive(Default)]
pub struct CommandNotify(Mutex<HashMap<String, Arc<Notify>>>);

impl CommandNotify {
    fn handle(&self, node_id: &str) -> Arc<Notify> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(node_id.to_owned()).or_default().clone()
    }

    /// Wakes the node's long-poll, if any.
    pub fn notify(&self, node_id: &str) {
        self.handle(node_id).notify_one();
    }
}

/// The one key of `AppState::csr_limiter`: DESIGN §6 caps CSR signing (enrollment and
/// renewal) at 50/s for all nodes together, not per node.
pub const CSR_LIMIT_KEY: &str = "csr";

/// An authenticated node: its certificate chained to our CA (checked by rustls), its
/// serial is current or a still-valid previous one, not revoked, and the node is not
/// destroyed.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Node id from the certificate SAN.
    pub node_id: String,
    /// Certificate serial.
    pub serial: String,
    /// Certificate DER (to verify receipts signed by the node key).
    pub cert_der: Vec<u8>,
}

/// Checks a presented certificate against the database.
pub fn authorize_cert(conn: &mut DbConn, der: &[u8]) -> AppResult<NodeIdentity> {
    let id =
        outpost_pki::peer_identity(der).map_err(|_| AppError::Forbidden(Code::BadCertificate))?;
    let now = db::now();
    let row: Option<(String, Option<i64>, i64, String)> = node_certs::table
        .inner_join(nodes::table)
        .filter(node_certs::serial.eq(&id.serial))
        .select((
            node_certs::node_id,
            node_certs::revoked_at,
            node_certs::not_after,
            nodes::state,
        ))
        .first(conn)
        .optional()?;
    match row {
        Some((node_id, None, not_after, st))
            if node_id == id.node_id && not_after > now && st != state::DESTROYED =>
        {
            Ok(NodeIdentity {
                node_id,
                serial: id.serial,
                cert_der: der.to_vec(),
            })
        }
        Some((_, Some(_), _, _)) => Err(AppError::Forbidden(Code::CertificateRevoked)),
        _ => Err(AppError::Forbidden(Code::CertificateUnknown)),
    }
}

impl FromRequest for NodeIdentity {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let cert = req.conn_data::<PeerCert>().cloned();
        let state = req.app_data::<State>().cloned();
        Box::pin(async move {
            let cert = cert.ok_or(AppError::Unauthorized(Code::ClientCertificateRequired))?;
            let state = state.ok_or_else(|| AppError::internal(anyhow::anyhow!("no state")))?;
            db::run(&state.db, move |conn| authorize_cert(conn, &cert.0)).await
        })
    }
}

fn refuse_enroll(conn: &mut DbConn, ip: &str, object: &str, code: &'static str) -> AppError {
    let r = audit::record(
        conn,
        &Entry {
            action: "node.enroll_refused",
            object_type: "node",
            object_id: object,
            ip: Some(ip),
            detail: code,
            ..Default::default()
        },
    );
    if let Err(e) = r {
        return e;
    }
    tracing::warn!(node = object, code, "enrollment refused");
    AppError::Unauthorized(Code::InvalidBootstrapToken)
}

pub(crate) async fn enroll(
    state: State,
    req: HttpRequest,
    body: web::Json<EnrollRequest>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let ip = crate::http::client_ip(&req);
    if state.csr_limiter.check(CSR_LIMIT_KEY).is_err() {
        return Err(AppError::RateLimited(1));
    }
    let st = state.clone();
    let resp = db::run(&state.db, move |conn| {
        let node_part = body.token.split_once('.').map(|(n, _)| n).unwrap_or("");
        let Some(node_id) = outpost_protocol::NodeId::parse(node_part) else {
            return Err(refuse_enroll(conn, &ip, "unknown", "malformed_token"));
        };
        let hash = outpost_crypto::token_hash(&body.token);
        let now = db::now();
        let row: Option<(String, i64, Option<i64>)> = bootstrap_tokens::table
            .find(&hash)
            .select((
                bootstrap_tokens::node_id,
                bootstrap_tokens::expires_at,
                bootstrap_tokens::used_at,
            ))
            .first(conn)
            .optional()?;
        let code = match &row {
            None => Some("unknown_token"),
            Some((n, _, _)) if *n != node_id.0 => Some("unknown_token"),
            Some((_, _, Some(_))) => Some("token_reused"),
            Some((_, exp, _)) if *exp <= now => Some("token_expired"),
            _ => None,
        };
        if let Some(code) = code {
            let err = refuse_enroll(conn, &ip, node_id.as_str(), code);
            if code != "unknown_token" {
                let cur: Option<String> = nodes::table
                    .find(node_id.as_str())
                    .select(nodes::state)
                    .first(conn)
                    .optional()?;
                if cur.as_deref() == Some(state::BOOTING) {
                    provisioning::fail(conn, &st, node_id.as_str(), "enrolling", "enroll_refused")?;
                }
            }
            return Err(err);
        }
        if !body.age_recipient.starts_with("age1") || body.age_recipient.len() > 200 {
            return Err(AppError::invalid(
                Code::InvalidAgeRecipient,
                "The age recipient is malformed.",
            ));
        }
        let issued = st
            .ca
            .sign_node_csr(&body.csr_pem, node_id.as_str())
            .map_err(|_| {
                AppError::invalid(
                    Code::InvalidCsr,
                    "The certificate signing request could not be read.",
                )
            })?;
        let version: String = body.version.chars().take(64).collect();
        crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
            let n = diesel::update(
                bootstrap_tokens::table
                    .find(&hash)
                    .filter(bootstrap_tokens::used_at.is_null()),
            )
            .set(bootstrap_tokens::used_at.eq(now))
            .execute(conn)?;
            if n != 1 {
                return Err(AppError::Unauthorized(Code::InvalidBootstrapToken));
            }
            diesel::insert_into(node_certs::table)
                .values((
                    node_certs::serial.eq(&issued.serial),
                    node_certs::node_id.eq(node_id.as_str()),
                    node_certs::cert_pem.eq(&issued.pem),
                    node_certs::not_after.eq(issued.not_after.unix_timestamp()),
                    node_certs::created_at.eq(now),
                ))
                .execute(conn)?;
            diesel::update(nodes::table.find(node_id.as_str()))
                .set((
                    nodes::age_recipient.eq(&body.age_recipient),
                    nodes::version.eq(&version),
                    nodes::enrolled_at.eq(now),
                ))
                .execute(conn)?;
            provisioning::transition(
                conn,
                node_id.as_str(),
                &[state::BOOTING, state::PROVISIONING],
                state::ENROLLING,
            )?;
            provisioning::event(
                conn,
                node_id.as_str(),
                "certificate",
                &format!("issued serial {}", issued.serial),
            )?;
            // The node starts with the workspace's current agents.
            let ws_id: String = nodes::table
                .find(node_id.as_str())
                .select(nodes::workspace_id)
                .first(conn)?;
            crate::agents::queue_config(conn, node_id.as_str(), &ws_id)?;
            // Suspended before it enrolled: it must not start answering.
            crate::suspension::sync_node(conn, node_id.as_str(), false)?;
            Ok(())
        })?;
        audit::record(
            conn,
            &Entry {
                actor: Some(&format!("node:{node_id}")),
                action: "node.enrolled",
                object_type: "node",
                object_id: node_id.as_str(),
                ip: Some(&ip),
                detail: &issued.serial,
                ..Default::default()
            },
        )?;
        let workspace = provisioning::workspace_info(conn, node_id.as_str())?;
        Ok(EnrollResponse {
            node_id,
            cert_pem: issued.pem,
            capability_public_key: st.capability.public_key_b64(),
            workspace,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(resp))
}

/// Stores a report. Transitions worth an email (the first report after enrollment, an
/// export that became ready) are added to `notices`, to be sent once the transaction has
/// committed.
fn ingest_report(
    conn: &mut DbConn,
    node_id: &str,
    r: &Report,
    notices: &mut Vec<Notice>,
) -> AppResult<bool> {
    let now = db::now();
    let inserted = diesel::insert_into(node_reports::table)
        .values((
            node_reports::node_id.eq(node_id),
            node_reports::seq.eq(r.seq),
            node_reports::produced_at.eq(r.produced_at),
            node_reports::received_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    // Counts are the totals of their hour so far: storing the latest value (not adding)
    // keeps a replayed or reordered report from counting twice.
    for c in &r.counts {
        let channel: String = c.channel.chars().take(32).collect();
        let key = usage_counts::table
            .filter(usage_counts::node_id.eq(node_id))
            .filter(usage_counts::channel.eq(&channel))
            .filter(usage_counts::hour.eq(c.hour));
        let n = diesel::update(key)
            .set((
                usage_counts::inbound.eq(c.inbound),
                usage_counts::outbound.eq(c.outbound),
                usage_counts::conversations.eq(c.conversations),
            ))
            .execute(conn)?;
        if n == 0 {
            diesel::insert_into(usage_counts::table)
                .values((
                    usage_counts::node_id.eq(node_id),
                    usage_counts::channel.eq(&channel),
                    usage_counts::hour.eq(c.hour),
                    usage_counts::inbound.eq(c.inbound),
                    usage_counts::outbound.eq(c.outbound),
                    usage_counts::conversations.eq(c.conversations),
                ))
                .execute(conn)?;
        }
    }
    let (last_seq, ws_id): (Option<i64>, String) = nodes::table
        .find(node_id)
        .select((nodes::last_seq, nodes::workspace_id))
        .first(conn)?;
    let newest = last_seq.is_none_or(|s| r.seq > s);
    ingest_lifecycle(conn, node_id, &ws_id, r, newest, now, notices)?;
    if newest {
        notify_waiting(conn, node_id, r.waiting_conversations, now, notices)?;
        let checks: Vec<_> = r
            .checks
            .iter()
            .map(|c| serde_json::json!({"name": c.name.chars().take(32).collect::<String>(), "ok": c.ok,
                 "detail_code": c.detail_code.as_ref().map(|d| d.chars().take(64).collect::<String>())}))
            .collect();
        diesel::update(nodes::table.find(node_id))
            .set((
                nodes::last_seq.eq(r.seq),
                nodes::last_report_at.eq(now),
                nodes::version.eq(r.version.chars().take(64).collect::<String>()),
                nodes::uptime_s.eq(r.uptime_s),
                nodes::disk_used_bytes.eq(r.disk_used_bytes),
                nodes::queue_depth.eq(r.queue_depth),
                nodes::checks_json.eq(serde_json::Value::from(checks).to_string()),
            ))
            .execute(conn)?;
        let checks_ok = r.checks.iter().all(|c| c.ok);
        let target = if checks_ok {
            state::HEALTHY
        } else {
            state::DEGRADED
        };
        // The report that moves the node out of `enrolling` ends its provisioning (the
        // transition is conditional, so one report does).
        let enrolling = nodes::table
            .find(node_id)
            .select(nodes::state)
            .first::<String>(conn)?
            == state::ENROLLING;
        let moved = provisioning::transition(
            conn,
            node_id,
            &[
                state::ENROLLING,
                state::HEALTHY,
                state::DEGRADED,
                state::OFFLINE,
            ],
            target,
        )?;
        if moved && enrolling {
            notices.push(Notice::ProvisioningDone {
                node_id: node_id.to_owned(),
                checks_ok,
            });
        }
    } else {
        diesel::update(nodes::table.find(node_id))
            .set(nodes::last_report_at.eq(now))
            .execute(conn)?;
    }
    Ok(true)
}

/// How long after telling a workspace's members that customers wait for them the CP
/// stays quiet about new ones (a busy morning must not flood their mailboxes).
pub const WAITING_NOTICE_QUIET_SECS: i64 = 600;

/// Stores the number of conversations waiting for the team, and tells the members when it
/// rose, unless they were told within [`WAITING_NOTICE_QUIET_SECS`]. The report carries a
/// count only: which conversations, and what they say, stay on the node.
fn notify_waiting(
    conn: &mut DbConn,
    node_id: &str,
    waiting: i64,
    now: i64,
    notices: &mut Vec<Notice>,
) -> AppResult<()> {
    let waiting = waiting.clamp(0, 1_000_000);
    let (before, notified_at): (Option<i64>, Option<i64>) = nodes::table
        .find(node_id)
        .select((nodes::waiting_conversations, nodes::waiting_notified_at))
        .first(conn)?;
    let rose = waiting > before.unwrap_or(0);
    let quiet = notified_at.is_some_and(|t| now - t < WAITING_NOTICE_QUIET_SECS);
    let notify = rose && !quiet;
    diesel::update(nodes::table.find(node_id))
        .set((
            nodes::waiting_conversations.eq(waiting),
            nodes::waiting_notified_at.eq(if notify { Some(now) } else { notified_at }),
        ))
        .execute(conn)?;
    if notify {
        notices.push(Notice::CustomersWaiting {
            node_id: node_id.to_owned(),
            count: waiting,
        });
    }
    Ok(())
}

/// Most exports and sweeps one report may carry; more are ignored (a node reports 30 days
/// of exports and 7 days of daily sweeps).
const MAX_EXPORTS_PER_REPORT: usize = 200;
const MAX_SWEEPS_PER_REPORT: usize = 64;
/// Larger sizes or counts than this are not plausible and are ignored (1 PiB, 10^12).
const MAX_EXPORT_BYTES: i64 = 1 << 50;
const MAX_SWEEP_COUNT: i64 = 1_000_000_000_000;
/// Times before 2020 or more than the skew tolerance (DESIGN §6: 5 min) ahead are ignored.
const EARLIEST_PLAUSIBLE: i64 = 1_577_836_800;
const CLOCK_SKEW_S: i64 = 300;
/// A link is valid 7 days at most from when the export finished (which may be well after
/// it was requested), and an expired one carries when it expired; a node reports exports
/// of its last 30 days, so any expiry within 31 days of the request is plausible.
const MAX_EXPORT_LIFETIME_S: i64 = 31 * 24 * 3600;

/// An export's metadata as the CP may store it, or `None` if any field is not what the
/// protocol allows (the id must be a UUID, scope and state from their lists, size and
/// times plausible). Garbage is dropped quietly: one bad entry must not cost the node its
/// health report, and nothing but these fields is ever kept.
pub fn valid_export(e: &ExportMeta, now: i64) -> Option<ExportMeta> {
    let id = uuid::Uuid::parse_str(&e.id).ok()?.to_string();
    let scope = ["workspace", "contact"]
        .into_iter()
        .find(|s| *s == e.scope)?;
    let state = ["running", "ready", "failed", "expired"]
        .into_iter()
        .find(|s| *s == e.state)?;
    let plausible = (0..=MAX_EXPORT_BYTES).contains(&e.size_bytes)
        && (EARLIEST_PLAUSIBLE..=now + CLOCK_SKEW_S).contains(&e.created_at)
        && (e.created_at..=e.created_at + MAX_EXPORT_LIFETIME_S).contains(&e.expires_at);
    plausible.then(|| ExportMeta {
        id,
        scope: scope.to_owned(),
        state: state.to_owned(),
        size_bytes: e.size_bytes,
        created_at: e.created_at,
        expires_at: e.expires_at,
    })
}

/// A retention sweep's counts if they are plausible.
pub fn valid_sweep(s: &RetentionSweep, now: i64) -> Option<RetentionSweep> {
    let counts = [s.messages_deleted, s.contacts_erased, s.exports_deleted];
    let plausible = counts.iter().all(|c| (0..=MAX_SWEEP_COUNT).contains(c))
        && (EARLIEST_PLAUSIBLE..=now + CLOCK_SKEW_S).contains(&s.at);
    plausible.then(|| s.clone())
}

/// Stores the report's export metadata and retention sweep counts. A new export id is
/// recorded with an `export.created` audit event. A replayed (older) report only adds
/// exports the CP has not seen, so it cannot move an export back to an earlier state.
/// An export seen `ready` for the first time (inserted as ready, or moved from running)
/// adds an "export ready" notice.
fn ingest_lifecycle(
    conn: &mut DbConn,
    node_id: &str,
    ws_id: &str,
    r: &Report,
    newest: bool,
    now: i64,
    notices: &mut Vec<Notice>,
) -> AppResult<()> {
    for e in r.exports.iter().take(MAX_EXPORTS_PER_REPORT) {
        let Some(e) = valid_export(e, now) else {
            continue;
        };
        let key = node_exports::table.find((node_id, &e.id));
        let known: i64 = key.count().get_result(conn)?;
        let ready = |e: &ExportMeta| Notice::ExportReady {
            node_id: node_id.to_owned(),
            scope: e.scope.clone(),
            expires_at: e.expires_at,
        };
        if known > 0 {
            if newest {
                // Conditional on `running`: of the reports saying `ready`, the first moves
                // it, and only that one announces it.
                let became_ready = e.state == "ready"
                    && diesel::update(key.filter(node_exports::state.eq("running")))
                        .set(node_exports::state.eq("ready"))
                        .execute(conn)?
                        == 1;
                if became_ready {
                    notices.push(ready(&e));
                }
                diesel::update(key)
                    .set((
                        node_exports::state.eq(&e.state),
                        node_exports::size_bytes.eq(e.size_bytes),
                        node_exports::expires_at.eq(e.expires_at),
                        node_exports::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            continue;
        }
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
        audit::record(
            conn,
            &Entry {
                actor: Some(&format!("node:{node_id}")),
                action: "export.created",
                object_type: "export",
                object_id: &e.id,
                workspace_id: Some(ws_id),
                detail: &e.scope,
                ..Default::default()
            },
        )?;
        if e.state == "ready" && e.expires_at > now {
            notices.push(ready(&e));
        }
    }
    for s in r.retention_sweeps.iter().take(MAX_SWEEPS_PER_REPORT) {
        let Some(s) = valid_sweep(s, now) else {
            continue;
        };
        // A sweep is identified by its time on its node; a re-sent one changes nothing.
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
    }
    Ok(())
}

pub(crate) async fn report(
    state: State,
    node: NodeIdentity,
    body: web::Json<Report>,
) -> AppResult<HttpResponse> {
    let r = body.into_inner();
    let seq = r.seq;
    if seq < 1 {
        return Err(AppError::invalid(Code::InvalidSeq, "seq starts at 1."));
    }
    let st = state.clone();
    let accepted = db::run(&state.db, move |conn| {
        let mut notices = vec![];
        let accepted = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
            ingest_report(conn, &node.node_id, &r, &mut notices)
        })?;
        // Only once committed: an email never announces a transition that was rolled back.
        crate::notify::notices::send(conn, &st.notifier(), &notices);
        Ok(accepted)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ReportAck { seq, accepted }))
}

#[derive(serde::Deserialize)]
pub(crate) struct WaitQuery {
    wait: Option<u64>,
}

fn pending_commands(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<Command>> {
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
        return Ok(vec![]);
    }
    let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    diesel::update(
        commands::table
            .filter(commands::id.eq_any(ids))
            .filter(commands::delivered_at.is_null()),
    )
    .set(commands::delivered_at.eq(now))
    .execute(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, payload) in rows {
        let kind: CommandKind = serde_json::from_str(payload.as_deref().unwrap_or("null"))
            .map_err(|e| {
                AppError::internal(anyhow::anyhow!("stored command {id} unreadable: {e}"))
            })?;
        out.push(Command { id, kind });
    }
    Ok(out)
}

pub(crate) async fn poll_commands(
    state: State,
    node: NodeIdentity,
    q: web::Query<WaitQuery>,
) -> AppResult<HttpResponse> {
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_COMMAND_WAIT_SECS));
    let deadline = Instant::now() + wait;
    let notify = state.command_notify.handle(&node.node_id);
    loop {
        let id = node.node_id.clone();
        let cmds = db::run(&state.db, move |conn| pending_commands(conn, &id)).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        if !cmds.is_empty() || left.is_zero() {
            return Ok(HttpResponse::Ok().json(CommandBatch { commands: cmds }));
        }
        let _ = tokio::time::timeout(left.min(Duration::from_secs(2)), notify.notified()).await;
    }
}

pub(crate) async fn ack_command(
    state: State,
    node: NodeIdentity,
    path: web::Path<String>,
    body: web::Json<CommandAck>,
) -> AppResult<HttpResponse> {
    let cmd_id = path.into_inner();
    let ack = body.into_inner();
    let destroyed = db::run(&state.db, move |conn| {
        // Scoped to the caller's node: node A cannot see or ack node B's commands.
        let kind: String = commands::table
            .filter(commands::id.eq(&cmd_id))
            .filter(commands::node_id.eq(&node.node_id))
            .select(commands::kind)
            .first(conn)
            .optional()?
            .ok_or(AppError::NotFound)?;
        let mut destroyed = false;
        if kind == "deprovision" && ack.ok {
            let receipt = ack.receipt.as_ref().ok_or_else(|| {
                AppError::invalid(
                    Code::ReceiptRequired,
                    "A deprovision ack must carry the destruction receipt.",
                )
            })?;
            verify_receipt(&node, receipt)?;
            provisioning::mark_destroyed(
                conn,
                &node.node_id,
                Some((&receipt.body, &receipt.signature)),
            )?;
            provisioning::event(
                conn,
                &node.node_id,
                "receipt",
                "destruction receipt verified",
            )?;
            provisioning::jobs::enqueue(
                conn,
                provisioning::jobs::DESTROY_SERVER,
                &node.node_id,
                0,
            )?;
            audit::record(
                conn,
                &Entry {
                    actor: Some(&format!("node:{}", node.node_id)),
                    action: "node.destroyed",
                    object_type: "node",
                    object_id: &node.node_id,
                    detail: "receipt_verified",
                    ..Default::default()
                },
            )?;
            destroyed = true;
        }
        if kind == "suspend" && ack.ok {
            // The node confirmed that its channels stopped: only now is it shown suspended.
            provisioning::transition(
                conn,
                &node.node_id,
                &[
                    state::ENROLLING,
                    state::HEALTHY,
                    state::DEGRADED,
                    state::OFFLINE,
                ],
                state::SUSPENDED,
            )?;
        }
        if kind == "resume" && ack.ok {
            crate::suspension::on_resume_ack(conn, &node.node_id)?;
        }
        let error_code = ack
            .error_code
            .map(|c| c.chars().take(64).collect::<String>());
        if kind == "deliver_secret" || kind == "remove_secret" {
            crate::secrets::on_ack(conn, &cmd_id, ack.ok, error_code.as_deref())?;
        }
        diesel::update(
            commands::table
                .find(&cmd_id)
                .filter(commands::acked_at.is_null()),
        )
        .set((
            commands::acked_at.eq(db::now()),
            commands::ack_ok.eq(ack.ok),
            commands::error_code.eq(error_code),
            // Payloads may hold sealed secrets: nothing is kept once acknowledged.
            commands::payload.eq(None::<String>),
        ))
        .execute(conn)?;
        Ok(destroyed)
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "destroyed": destroyed})))
}

/// Verifies a destruction receipt: signed by the key of the certificate the node
/// presented, for this node, naming this certificate.
pub fn verify_receipt(
    node: &NodeIdentity,
    r: &outpost_protocol::DestructionReceipt,
) -> AppResult<()> {
    let bad = || {
        AppError::invalid(
            Code::InvalidReceipt,
            "The destruction receipt does not verify.",
        )
    };
    let sig = outpost_crypto::unb64(&r.signature).map_err(|_| bad())?;
    outpost_pki::verify_with_cert(&node.cert_der, r.body.as_bytes(), &sig).map_err(|_| bad())?;
    let body = r.parsed_body().map_err(|_| bad())?;
    if body.format != outpost_protocol::RECEIPT_FORMAT
        || body.node_id.as_str() != node.node_id
        || body.cert_sha256 != outpost_pki::sha256_hex(&node.cert_der)
    {
        return Err(bad());
    }
    Ok(())
}

pub(crate) async fn renew(
    state: State,
    node: NodeIdentity,
    body: web::Json<RenewRequest>,
) -> AppResult<HttpResponse> {
    if state.csr_limiter.check(CSR_LIMIT_KEY).is_err() {
        return Err(AppError::RateLimited(1));
    }
    let issued = state
        .ca
        .sign_node_csr(&body.csr_pem, &node.node_id)
        .map_err(|_| {
            AppError::invalid(
                Code::InvalidCsr,
                "The certificate signing request could not be read.",
            )
        })?;
    let pem = issued.pem.clone();
    db::run(&state.db, move |conn| {
        diesel::insert_into(node_certs::table)
            .values((
                node_certs::serial.eq(&issued.serial),
                node_certs::node_id.eq(&node.node_id),
                node_certs::cert_pem.eq(&issued.pem),
                node_certs::not_after.eq(issued.not_after.unix_timestamp()),
                node_certs::created_at.eq(db::now()),
            ))
            .execute(conn)?;
        provisioning::event(
            conn,
            &node.node_id,
            "certificate",
            &format!("renewed, serial {}", issued.serial),
        )?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().json(RenewResponse { cert_pem: pem }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(
        id: &str,
        scope: &str,
        state: &str,
        size: i64,
        created: i64,
        expires: i64,
    ) -> ExportMeta {
        ExportMeta {
            id: id.into(),
            scope: scope.into(),
            state: state.into(),
            size_bytes: size,
            created_at: created,
            expires_at: expires,
        }
    }

    #[test]
    fn export_metadata_is_kept_only_when_every_field_is_what_the_protocol_allows() {
        let now = 1_800_000_000;
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        let ok = valid_export(
            &export(id, "workspace", "ready", 10, now, now + 86_400),
            now,
        )
        .expect("valid");
        assert_eq!(ok.id, "6f9619ff-8b86-d011-b42d-00c04fc964ff", "normalised");
        assert!(valid_export(&export(id, "contact", "running", 0, now, now), now).is_some());
        for bad in [
            export("not-a-uuid", "workspace", "ready", 1, now, now + 1),
            export(
                "https://node/x?sig=1",
                "workspace",
                "ready",
                1,
                now,
                now + 1,
            ),
            export(id, "everything", "ready", 1, now, now + 1),
            export(id, "workspace", "downloadable", 1, now, now + 1),
            export(id, "workspace", "ready", -1, now, now + 1),
            export(id, "workspace", "ready", MAX_EXPORT_BYTES + 1, now, now + 1),
            export(id, "workspace", "ready", 1, now + 3600, now + 7200),
            export(id, "workspace", "ready", 1, 5, 6),
            export(id, "workspace", "ready", 1, now, now - 1),
            export(id, "workspace", "ready", 1, now, now + 40 * 86_400),
        ] {
            assert!(valid_export(&bad, now).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sweep_counts_must_be_plausible() {
        let now = 1_800_000_000;
        let s = |at, m, c, e| RetentionSweep {
            at,
            messages_deleted: m,
            contacts_erased: c,
            exports_deleted: e,
        };
        assert!(valid_sweep(&s(now - 60, 1204, 3, 0), now).is_some());
        for bad in [
            s(now, -1, 0, 0),
            s(now, 0, -1, 0),
            s(now, 0, 0, MAX_SWEEP_COUNT + 1),
            s(now + 3600, 0, 0, 0),
            s(0, 0, 0, 0),
        ] {
            assert!(valid_sweep(&bad, now).is_none(), "{bad:?}");
        }
    }
}
