//! The gateway's use cases: authorizing a node's certificate, enrollment, reports,
//! command delivery and acknowledgement, renewal. They take a connection and the pieces
//! they need; what other (higher) domains do when a node enrolls or acknowledges a
//! command is handed in as [`Reactions`], wired by `web.rs`.

use super::counts::Counts;
use super::model::{self, NodeIdentity};
use super::store;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::notify::notices::{self, Notice};
use crate::notify::Notifier;
use crate::provisioning::{self, jobs, NodeState};
use outpost_pki::{CertificateAuthority, IssuedCert};
use outpost_protocol::{Command, CommandAck, CommandKind, EnrollRequest, EnrollResponse, Report};

/// What other domains do when a node enrolls or acknowledges a command. The gateway sits
/// below them, so it does not call them: the web layer hands their reactions in.
pub trait Reactions {
    /// Inside the enrollment's transaction, once the node holds its certificate.
    fn enrolled(&self, conn: &mut DbConn, node_id: &str, workspace_id: &str) -> AppResult<()>;
    /// Before the acknowledgement is recorded (an error leaves it unrecorded, so the node
    /// acks again).
    fn acked(&self, conn: &mut DbConn, ack: &Acked<'_>) -> AppResult<()>;
}

/// An acknowledged command, as [`Reactions::acked`] sees it.
pub struct Acked<'a> {
    /// Command id.
    pub command_id: &'a str,
    /// The node that acknowledged it.
    pub node_id: &'a str,
    /// What it asked.
    pub kind: &'a CommandKind,
    /// Whether the node carried it out.
    pub ok: bool,
    /// The node's error code (bounded) when it did not.
    pub error_code: Option<&'a str>,
}

/// Checks a presented certificate against the database.
pub fn authorize_cert(conn: &mut DbConn, der: &[u8]) -> AppResult<NodeIdentity> {
    authorize_cert_until(conn, der).map(|(id, _)| id)
}

/// [`authorize_cert`], with the certificate's expiry (unix seconds) for a cached verdict.
pub fn authorize_cert_until(conn: &mut DbConn, der: &[u8]) -> AppResult<(NodeIdentity, i64)> {
    let id =
        outpost_pki::peer_identity(der).map_err(|_| AppError::Forbidden(Code::BadCertificate))?;
    let now = db::now();
    match store::cert_status(conn, &id.serial)? {
        Some((node_id, None, not_after, st))
            if node_id == id.node_id && not_after > now && st != NodeState::Destroyed.as_str() =>
        {
            Ok((
                NodeIdentity {
                    node_id,
                    serial: id.serial,
                    cert_der: der.to_vec(),
                },
                not_after,
            ))
        }
        Some((_, Some(_), _, _)) => Err(AppError::Forbidden(Code::CertificateRevoked)),
        _ => Err(AppError::Forbidden(Code::CertificateUnknown)),
    }
}

/// Signs a node's certificate signing request with the internal CA.
pub fn sign_csr(ca: &CertificateAuthority, csr_pem: &str, node_id: &str) -> AppResult<IssuedCert> {
    ca.sign_node_csr(csr_pem, node_id).map_err(|_| {
        AppError::invalid(
            Code::InvalidCsr,
            "The certificate signing request could not be read.",
        )
    })
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

/// A node whose clock is off asked to enroll with a valid token. The token is not spent:
/// the same node enrolls once its clock is right. The first refusal fails a node still
/// booting with `failed(enrolling, clock_skew)` (audited, an event in words, the failure
/// email); later ones while it stays failed write nothing, so a node retrying for hours
/// adds no rows.
fn refuse_skewed(
    conn: &mut DbConn,
    cx: &EnrollContext<'_>,
    ip: &str,
    node_id: &str,
    offset: i64,
) -> AppResult<()> {
    tracing::warn!(
        node = node_id,
        offset_secs = offset,
        "enrollment refused: the node's clock is off"
    );
    let cur = provisioning::store::state_if_exists(conn, node_id)?;
    let waiting = [
        NodeState::Booting.as_str(),
        NodeState::Provisioning.as_str(),
    ];
    if !cur.is_some_and(|s| waiting.contains(&s.as_str())) {
        return Ok(());
    }
    audit::record(
        conn,
        &Entry {
            action: "node.enroll_refused",
            object_type: "node",
            object_id: node_id,
            ip: Some(ip),
            detail: "clock_skew",
            ..Default::default()
        },
    )?;
    provisioning::fail(conn, &cx.notifier, node_id, "enrolling", "clock_skew")?;
    provisioning::event(
        conn,
        node_id,
        "clock",
        &format!(
            "the node's clock is {} the control plane's; fix NTP on the node",
            model::skew_words(offset)
        ),
    )
}

/// A node failed at enrollment only for its clock is enrolling now, with the clock
/// right: it leaves `failed` for `enrolling`. Returns whether it did.
fn recover_from_skew(conn: &mut DbConn, node_id: &str) -> AppResult<bool> {
    let (st, step, code, _) = provisioning::store::failure_of(conn, node_id)?;
    let skewed = st == NodeState::Failed.as_str()
        && step.as_deref() == Some("enrolling")
        && code.as_deref() == Some("clock_skew");
    if !skewed
        || provisioning::store::clear_failure(conn, node_id, NodeState::Enrolling.as_str())? != 1
    {
        return Ok(false);
    }
    provisioning::event(
        conn,
        node_id,
        "state",
        "failed → enrolling (clock right again)",
    )?;
    tracing::info!(node = node_id, "node's clock is right again; enrolling");
    Ok(true)
}

/// What enrollment needs besides the connection.
pub struct EnrollContext<'a> {
    /// Signs the node's certificate.
    pub ca: &'a CertificateAuthority,
    /// The capability signer's public key, handed to the node.
    pub capability_public_key: String,
    /// Where a failure email goes out from (a refused token fails a booting node).
    pub notifier: Notifier<'a>,
    /// What other domains do once the node is enrolled.
    pub reactions: &'a dyn Reactions,
}

/// Enrolls a node with its single-use bootstrap token: issues its certificate, moves it
/// to `enrolling`. A refused token is audited, and fails a node still booting.
pub fn enroll(
    conn: &mut DbConn,
    cx: &EnrollContext<'_>,
    body: &EnrollRequest,
    ip: &str,
) -> AppResult<EnrollResponse> {
    let node_part = body.token.split_once('.').map(|(n, _)| n).unwrap_or("");
    let Some(node_id) = outpost_protocol::NodeId::parse(node_part) else {
        return Err(refuse_enroll(conn, ip, "unknown", "malformed_token"));
    };
    let hash = outpost_crypto::token_hash(&body.token);
    let now = db::now();
    let row = store::bootstrap_token(conn, &hash)?;
    if let Some(code) = model::token_refusal(row.as_ref(), &node_id.0, now) {
        let err = refuse_enroll(conn, ip, node_id.as_str(), code);
        if code != "unknown_token" {
            let cur = provisioning::store::state_if_exists(conn, node_id.as_str())?;
            if cur.as_deref() == Some(NodeState::Booting.as_str()) {
                provisioning::fail(
                    conn,
                    &cx.notifier,
                    node_id.as_str(),
                    "enrolling",
                    "enroll_refused",
                )?;
            }
        }
        return Err(err);
    }
    if let Some((offset, err)) = model::skew_refusal(body.node_time, now) {
        refuse_skewed(conn, cx, ip, node_id.as_str(), offset)?;
        return Err(err);
    }
    if !model::plausible_age_recipient(&body.age_recipient) {
        return Err(AppError::invalid(
            Code::InvalidAgeRecipient,
            "The age recipient is malformed.",
        ));
    }
    let issued = sign_csr(cx.ca, &body.csr_pem, node_id.as_str())?;
    let version = model::stored_version(&body.version);
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        if !store::use_token(conn, &hash, now)? {
            return Err(AppError::Unauthorized(Code::InvalidBootstrapToken));
        }
        store::insert_cert(conn, node_id.as_str(), &issued, now)?;
        store::set_enrolled(conn, node_id.as_str(), &body.age_recipient, &version, now)?;
        if !recover_from_skew(conn, node_id.as_str())? {
            provisioning::move_node(
                conn,
                node_id.as_str(),
                &[NodeState::Booting, NodeState::Provisioning],
                NodeState::Enrolling,
            )?;
        }
        provisioning::event(
            conn,
            node_id.as_str(),
            "certificate",
            &format!("issued serial {}", issued.serial),
        )?;
        let ws_id = store::workspace_of(conn, node_id.as_str())?;
        cx.reactions.enrolled(conn, node_id.as_str(), &ws_id)
    })?;
    audit::record(
        conn,
        &Entry {
            actor: Some(&format!("node:{node_id}")),
            action: "node.enrolled",
            object_type: "node",
            object_id: node_id.as_str(),
            ip: Some(ip),
            detail: &issued.serial,
            ..Default::default()
        },
    )?;
    let workspace = provisioning::workspace_info(conn, node_id.as_str())?;
    Ok(EnrollResponse {
        node_id,
        cert_pem: issued.pem,
        capability_public_key: cx.capability_public_key.clone(),
        workspace,
    })
}

/// Stores a report and queues the emails its transitions are worth in one transaction
/// (an email never announces a transition that was rolled back, and a crash loses
/// neither alone). Returns whether it was new.
pub fn report(
    conn: &mut DbConn,
    notifier: &Notifier<'_>,
    node_id: &str,
    r: &Report,
) -> AppResult<bool> {
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let mut counts = Counts::default();
        let accepted = report_deferring_counts(conn, notifier, node_id, r, &mut counts)??;
        store::write_counts(conn, &counts)?;
        Ok(accepted)
    })
}

/// [`report`] inside the caller's transaction, except the counts: a new report's buckets
/// are added to `counts` for the caller to write with the rest of its batch
/// ([`store::write_counts`]) in the same transaction. Stored counts keep the largest
/// total reported, so writing them later and together stores what writing each report's
/// at once would.
///
/// A report is checked in full before its first write, so a refused one writes nothing
/// and needs no savepoint to undo (a savepoint and its release are two more round trips
/// per report on PostgreSQL): the inner `Err` is that refusal, and the transaction goes
/// on. The outer `Err` is a failure after writing began, which leaves the transaction
/// holding part of a report: the caller must roll it back (the batch writer then applies
/// each report alone, so each gets its own answer).
pub fn report_deferring_counts(
    conn: &mut DbConn,
    notifier: &Notifier<'_>,
    node_id: &str,
    r: &Report,
    counts: &mut Counts,
) -> AppResult<AppResult<bool>> {
    // One read for everything the report is checked and applied against.
    let facts = store::report_facts(conn, node_id)?;
    let newest = match check_report(&facts, r) {
        Ok(newest) => newest,
        Err(refused) => return Ok(Err(refused)),
    };
    let mut notices = vec![];
    let accepted = ingest_report(conn, node_id, r, &facts, newest, &mut notices)?;
    notices::send(conn, notifier, &notices)?;
    if accepted {
        // Counts are the totals of their hour so far: keeping the larger value (not
        // adding) keeps a replayed report from counting twice and a late older one from
        // lowering it.
        counts.add(node_id, r);
    }
    Ok(Ok(accepted))
}

/// Everything a report can be refused for, checked before anything is written: its place
/// in the node's order and its counts. Returns whether it is the newest.
pub(super) fn check_report(facts: &store::ReportFacts, r: &Report) -> AppResult<bool> {
    let epoch = r.epoch.as_deref().unwrap_or("");
    let last = facts.last.as_ref().map(|(s, e)| (*s, e.as_str()));
    let newest = model::order_report(last, r.seq, epoch)?;
    model::check_counts(&r.counts)?;
    model::check_ai_counts(&r.ai_counts)?;
    model::check_booking_counts(&r.booking_counts)?;
    model::check_call_counts(&r.call_counts)?;
    Ok(newest)
}

/// Stores a checked report ([`check_report`]), all but its counts (see
/// [`report_deferring_counts`]). Transitions worth an email (the first report after
/// enrollment, an export that became ready) are added to `notices`, to be sent once the
/// transaction has committed. Returns `false` for a report seen before.
fn ingest_report(
    conn: &mut DbConn,
    node_id: &str,
    r: &Report,
    facts: &store::ReportFacts,
    newest: bool,
    notices: &mut Vec<Notice>,
) -> AppResult<bool> {
    let now = db::now();
    let epoch = r.epoch.as_deref().unwrap_or("");
    if !newest {
        // An older report (or a replay): its receipt and exports, nothing of its status.
        if !store::insert_report(conn, node_id, epoch, r, now)? {
            return Ok(false);
        }
        ingest_lifecycle(conn, node_id, &facts.workspace_id, r, false, now, notices)?;
        store::touch_report(conn, node_id, now)?;
        return Ok(true);
    }
    let mut waiting_notice = vec![];
    let waiting = waiting_and_notice(
        node_id,
        r.waiting_conversations,
        facts,
        now,
        &mut waiting_notice,
    );
    // The receipt, then health, waiting count and `last_report_at`: one statement on
    // PostgreSQL, two on SQLite; nothing but the receipt check for a replay.
    let reported = store::Reported {
        epoch,
        report: r,
        checks_json: stored_checks(r),
        waiting,
        now,
    };
    if !store::insert_report_and_set(conn, node_id, &reported)? {
        return Ok(false);
    }
    ingest_lifecycle(conn, node_id, &facts.workspace_id, r, true, now, notices)?;
    // After the exports' notices, as before the receipt and the update were one statement.
    notices.append(&mut waiting_notice);
    let (target, checks_ok) = state_reported(r);
    if facts.state == target.as_str() {
        // The usual report: the state stays (a transition would read it again to find
        // nothing to do).
        return Ok(true);
    }
    // The report that moves the node out of `enrolling` ends its provisioning (the
    // transition is conditional, so one report does).
    let enrolling = facts.state == NodeState::Enrolling.as_str();
    let moved = provisioning::move_node(conn, node_id, &NodeState::REPORTING, target)?;
    if moved && enrolling {
        notices.push(Notice::ProvisioningDone {
            node_id: node_id.to_owned(),
            checks_ok,
        });
    }
    Ok(true)
}

/// The report's checks as `nodes.checks_json` stores them (names and codes bounded).
pub(super) fn stored_checks(r: &Report) -> String {
    let checks: Vec<_> = r
        .checks
        .iter()
        .map(|c| {
            serde_json::json!({"name": c.name.chars().take(32).collect::<String>(), "ok": c.ok,
             "detail_code": c.detail_code.as_ref().map(|d| d.chars().take(64).collect::<String>())})
        })
        .collect();
    serde_json::Value::from(checks).to_string()
}

/// The state the newest report puts its node in, and whether its checks all passed.
pub(super) fn state_reported(r: &Report) -> (NodeState, bool) {
    let checks_ok = r.checks.iter().all(|c| c.ok);
    let state = if checks_ok {
        NodeState::Healthy
    } else {
        NodeState::Degraded
    };
    (state, checks_ok)
}

/// The number of conversations waiting for the team to store, and when the members were
/// last told, telling them now when it rose ([`model::waiting_notice`]). The report
/// carries a count only: which conversations, and what they say, stay on the node.
fn waiting_and_notice(
    node_id: &str,
    waiting: i64,
    facts: &store::ReportFacts,
    now: i64,
    notices: &mut Vec<Notice>,
) -> (i64, Option<i64>) {
    let notified_at = facts.waiting_notified_at;
    let (waiting, notify) = model::waiting_notice(waiting, facts.waiting, notified_at, now);
    if notify {
        notices.push(Notice::CustomersWaiting {
            node_id: node_id.to_owned(),
            count: waiting,
        });
        return (waiting, Some(now));
    }
    (waiting, notified_at)
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
    for e in r.exports.iter().take(model::MAX_EXPORTS_PER_REPORT) {
        let Some(e) = model::valid_export(e, now) else {
            continue;
        };
        let ready = || Notice::ExportReady {
            node_id: node_id.to_owned(),
            scope: e.scope.clone(),
            expires_at: e.expires_at,
        };
        if store::export_known(conn, node_id, &e.id)? {
            if newest {
                // Conditional on `running`: of the reports saying `ready`, the first moves
                // it, and only that one announces it.
                let became_ready =
                    e.state == "ready" && store::export_became_ready(conn, node_id, &e.id)?;
                if became_ready {
                    notices.push(ready());
                }
                store::update_export(conn, node_id, &e, now)?;
            }
            continue;
        }
        store::insert_export(conn, node_id, ws_id, &e, now)?;
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
            notices.push(ready());
        }
    }
    for s in r.retention_sweeps.iter().take(model::MAX_SWEEPS_PER_REPORT) {
        if let Some(s) = model::valid_sweep(s, now) {
            // A re-sent sweep changes nothing.
            store::insert_sweep_once(conn, node_id, ws_id, &s)?;
        }
    }
    Ok(())
}

/// The node's pending commands (marked delivered).
pub fn pending_commands(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<Command>> {
    let rows = store::take_pending(conn, node_id)?;
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

/// Records a node's acknowledgement of one of its commands (another node's is a 404).
/// A successful `deprovision` must carry a destruction receipt that verifies: the node is
/// then destroyed and its server deleted. Other domains react through `reactions`.
/// Returns whether the node was destroyed.
pub fn acknowledge(
    conn: &mut DbConn,
    node: &NodeIdentity,
    cmd_id: &str,
    ack: &CommandAck,
    reactions: &dyn Reactions,
) -> AppResult<bool> {
    // Scoped to the caller's node: node A cannot see or ack node B's commands.
    let (name, payload) =
        store::command_of(conn, cmd_id, &node.node_id)?.ok_or(AppError::NotFound)?;
    let kind = model::acked_kind(&name, payload.as_deref());
    let mut destroyed = false;
    if matches!(kind, Some(CommandKind::Deprovision)) && ack.ok {
        let receipt = ack.receipt.as_ref().ok_or_else(|| {
            AppError::invalid(
                Code::ReceiptRequired,
                "A deprovision ack must carry the destruction receipt.",
            )
        })?;
        model::verify_receipt(node, receipt)?;
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
        jobs::enqueue(conn, jobs::DESTROY_SERVER, &node.node_id, 0)?;
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
    let error_code = ack
        .error_code
        .as_ref()
        .map(|c| c.chars().take(64).collect::<String>());
    if let Some(kind) = &kind {
        reactions.acked(
            conn,
            &Acked {
                command_id: cmd_id,
                node_id: &node.node_id,
                kind,
                ok: ack.ok,
                error_code: error_code.as_deref(),
            },
        )?;
    }
    store::record_ack(conn, cmd_id, ack.ok, error_code.as_deref())?;
    Ok(destroyed)
}

/// Refuses a renewal that comes too early (see [`model::renewal_refusal`]); nothing is
/// written for a refusal.
pub fn check_renewal(conn: &mut DbConn, node: &NodeIdentity) -> AppResult<()> {
    let facts = store::renewal_facts(conn, &node.node_id, &node.serial)?;
    let Some((issued_at, not_after, newest)) = facts else {
        return Err(AppError::Unauthorized(Code::CertificateUnknown));
    };
    match model::renewal_refusal(issued_at, not_after, newest, db::now()) {
        Some(e) => {
            tracing::info!(node = %node.node_id, code = e.code(), "certificate renewal refused");
            Err(e)
        }
        None => Ok(()),
    }
}

/// Stores a renewed certificate of a node.
pub fn renew(conn: &mut DbConn, node_id: &str, issued: &IssuedCert) -> AppResult<()> {
    store::insert_cert(conn, node_id, issued, db::now())?;
    provisioning::event(
        conn,
        node_id,
        "certificate",
        &format!("renewed, serial {}", issued.serial),
    )?;
    Ok(())
}
