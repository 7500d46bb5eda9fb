//! The gateway's handlers (a separate TLS listener). `POST /v1/enroll` needs only
//! server-auth TLS and a bootstrap token; every `/v1/node/*` route requires a client
//! certificate chained to the internal CA, whose serial is checked against the database
//! on a connection's first request and again whenever the verdict kept with the
//! connection no longer holds ([`NodeIdentity`]). The other domains' reactions to enrollment and
//! acknowledgements are wired in `app::reactions`.

use super::model::{NodeIdentity, Verdict, CSR_LIMIT_KEY};
use super::service::{self, EnrollContext};
use crate::app::reactions::NodeReactions;
use crate::app::State;
use crate::error::{AppError, AppResult, Code};
use crate::infra::{db, revocations};
use actix_web::dev::{Extensions, Payload};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use outpost_protocol::{
    CommandAck, CommandBatch, EnrollRequest, RenewRequest, RenewResponse, Report, ReportAck,
    MAX_COMMAND_WAIT_SECS,
};
use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The client certificate presented on this connection (DER, verified by rustls) and
/// the database's last good verdict on it. A connection lives on one worker thread, so
/// the verdict needs no lock.
#[derive(Clone)]
struct PeerCert {
    der: std::sync::Arc<[u8]>,
    verdict: Rc<RefCell<Option<Verdict>>>,
}

/// `on_connect` hook of the gateway: keeps the verified client certificate with the
/// connection so handlers can read it.
pub fn capture_peer_cert(conn: &dyn Any, ext: &mut Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
        let (_, session) = tls.get_ref();
        if let Some(cert) = session.peer_certificates().and_then(|c| c.first()) {
            ext.insert(PeerCert {
                der: cert.as_ref().into(),
                verdict: Rc::default(),
            });
        }
    }
}

/// The node behind the connection's certificate. The database is asked on the
/// connection's first request; later requests on it reuse that verdict while it
/// [holds](Verdict::holds): no revocation in this process since, at most
/// [`VERDICT_TTL`](super::model::VERDICT_TTL) old.
impl FromRequest for NodeIdentity {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let cert = req.conn_data::<PeerCert>().cloned();
        let state = req.app_data::<State>().cloned();
        Box::pin(async move {
            let (identity, ()) = identified(cert, state, |_, _| Ok(())).await?;
            Ok(identity)
        })
    }
}

/// The node behind the connection's certificate, and `then` run for it, in one trip to
/// the blocking pool and the database. The verdict kept with the connection is reused
/// while it [holds](Verdict::holds); otherwise the certificate is checked in the same
/// trip as `then` (a new connection's first request pays one trip, not two), and `then`
/// runs only if the certificate is good.
async fn identified<T, F>(
    cert: Option<PeerCert>,
    state: Option<State>,
    then: F,
) -> AppResult<(NodeIdentity, T)>
where
    F: FnOnce(&mut db::DbConn, &NodeIdentity) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let cert = cert.ok_or(AppError::Unauthorized(Code::ClientCertificateRequired))?;
    let state = state.ok_or_else(|| AppError::internal(anyhow::anyhow!("no state")))?;
    let generation = revocations::generation();
    let cached = cert.verdict.borrow().clone();
    if let Some(v) = cached {
        if v.holds(generation, Instant::now(), db::now()) {
            let identity = v.identity;
            let node = identity.clone();
            let out = db::run(&state.db, move |conn| then(conn, &node)).await?;
            return Ok((identity, out));
        }
    }
    let der = cert.der.clone();
    let at = Instant::now();
    let checked = db::run(&state.db, move |conn| {
        let (identity, not_after) = service::authorize_cert_until(conn, &der)?;
        // A failure of `then` must not throw away a good verdict.
        let out = then(conn, &identity);
        Ok((identity, not_after, out))
    })
    .await
    .inspect_err(|_| *cert.verdict.borrow_mut() = None)?;
    let (identity, not_after, out) = checked;
    *cert.verdict.borrow_mut() = Some(Verdict {
        identity: identity.clone(),
        not_after,
        generation,
        at,
    });
    Ok((identity, out?))
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
        let cx = EnrollContext {
            ca: &st.ca,
            capability_public_key: st.capability.public_key_b64(),
            notifier: st.notifier(),
            reactions: &NodeReactions,
        };
        service::enroll(conn, &cx, &body, &ip)
    })
    .await?;
    Ok(HttpResponse::Ok().json(resp))
}

pub(crate) async fn report(
    state: State,
    node: NodeIdentity,
    body: web::Json<Report>,
) -> AppResult<HttpResponse> {
    let r = body.into_inner();
    let seq = r.seq;
    let accepted = state.reports.submit(node.node_id, r).await?;
    Ok(HttpResponse::Ok().json(ReportAck { seq, accepted }))
}

#[derive(serde::Deserialize)]
pub(crate) struct WaitQuery {
    wait: Option<u64>,
}

/// `GET /v1/node/commands?wait=N`: the node's pending commands, or a long-poll of up to
/// [`MAX_COMMAND_WAIT_SECS`] for one. The certificate check and the first read of the
/// pending commands share one trip to the database ([`identified`]).
pub(crate) async fn poll_commands(
    state: State,
    req: HttpRequest,
    q: web::Query<WaitQuery>,
) -> AppResult<HttpResponse> {
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_COMMAND_WAIT_SECS));
    let deadline = Instant::now() + wait;
    let (node, mut cmds) = identified(
        req.conn_data::<PeerCert>().cloned(),
        Some(state.clone()),
        |conn, node| service::pending_commands(conn, &node.node_id),
    )
    .await?;
    let notify = state.command_notify.handle(&node.node_id);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !cmds.is_empty() || left.is_zero() {
            return Ok(HttpResponse::Ok().json(CommandBatch { commands: cmds }));
        }
        let _ = tokio::time::timeout(left.min(Duration::from_secs(2)), notify.notified()).await;
        let id = node.node_id.clone();
        cmds = db::run(&state.db, move |conn| service::pending_commands(conn, &id)).await?;
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
        service::acknowledge(conn, &node, &cmd_id, &ack, &NodeReactions)
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "destroyed": destroyed})))
}

pub(crate) async fn renew(
    state: State,
    node: NodeIdentity,
    body: web::Json<RenewRequest>,
) -> AppResult<HttpResponse> {
    if state.csr_limiter.check(CSR_LIMIT_KEY).is_err() {
        return Err(AppError::RateLimited(1));
    }
    let presented = node.clone();
    db::run(&state.db, move |conn| {
        service::check_renewal(conn, &presented)
    })
    .await?;
    let issued = service::sign_csr(&state.ca, &body.csr_pem, &node.node_id)?;
    let pem = issued.pem.clone();
    db::run(&state.db, move |conn| {
        service::renew(conn, &node.node_id, &issued)
    })
    .await?;
    Ok(HttpResponse::Ok().json(RenewResponse { cert_pem: pem }))
}
