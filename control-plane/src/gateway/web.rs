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

/// Length of the gateway's queue of connections not yet accepted (the kernel caps it at
/// `net.core.somaxconn`, 4096 on current Linux). The standard library listens with 128:
/// a fleet reconnecting at once (after a restart of the control plane, or thousands of
/// nodes opening their long-polls) overflowed it, and every dropped SYN cost its node 1,
/// then 3, 7, 15 s of TCP retransmission — the seconds of B3's report p99.
pub const GATEWAY_BACKLOG: i32 = 4096;

/// Binds the gateway's listening socket with [`GATEWAY_BACKLOG`].
pub fn listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As the standard library does: a restarted CP binds despite connections in TIME_WAIT.
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(GATEWAY_BACKLOG)?;
    Ok(s.into())
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
        Box::pin(identify(cert, state))
    }
}

/// The node behind the connection's certificate (the extractor's work): the kept
/// verdict's while it holds, with no trip to the database (a report on a kept-alive
/// connection needs none); otherwise the database's.
async fn identify(cert: Option<PeerCert>, state: Option<State>) -> AppResult<NodeIdentity> {
    if let Some(identity) = cert.as_ref().and_then(PeerCert::kept) {
        return Ok(identity);
    }
    let (identity, ()) = identified(cert, state, |_, _| Ok(())).await?;
    Ok(identity)
}

impl PeerCert {
    /// The node its kept verdict names, while that verdict [holds](Verdict::holds).
    fn kept(&self) -> Option<NodeIdentity> {
        let verdict = self.verdict.borrow();
        let v = verdict.as_ref()?;
        v.holds(revocations::generation(), Instant::now(), db::now())
            .then(|| v.identity.clone())
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
    // Read before the database is asked: a revocation meanwhile outdates the new verdict.
    let generation = revocations::generation();
    if let Some(identity) = cert.kept() {
        let node = identity.clone();
        let out = db::run(&state.db, move |conn| then(conn, &node)).await?;
        return Ok((identity, out));
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
    let deadline = tokio::time::Instant::now() + wait;
    let (node, cmds) = identified(
        req.conn_data::<PeerCert>().cloned(),
        Some(state.clone()),
        |conn, node| service::pending_commands(conn, &node.node_id),
    )
    .await?;
    if !cmds.is_empty() || wait.is_zero() {
        return Ok(HttpResponse::Ok().json(CommandBatch { commands: cmds }));
    }
    let notify = state.command_notify.handle(&node.node_id);
    let cmds = wait_for_commands(
        &notify,
        deadline,
        || state.command_notify.recheck_every(),
        || {
            let id = node.node_id.clone();
            db::run(&state.db, move |conn| service::pending_commands(conn, &id))
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(CommandBatch { commands: cmds }))
}

/// The long-poll's wait: reads the pending commands again only when `notify` fires (a
/// command was queued for this node, here or on another replica) or, while `recheck`
/// says the notifications may be lost (a replica's listener is down), every such period;
/// else not until `deadline`. It used to read every 2 s whatever happened: N/2 reads a
/// second for a fleet of N idle nodes, more than their reports.
pub(crate) async fn wait_for_commands<T, E, R, Fut>(
    notify: &tokio::sync::Notify,
    deadline: tokio::time::Instant,
    recheck: impl Fn() -> Option<Duration>,
    mut read: R,
) -> Result<Vec<T>, E>
where
    R: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, E>>,
{
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(vec![]);
        }
        let nap = recheck().map_or(left, |every| left.min(every));
        let woken = tokio::time::timeout(nap, notify.notified()).await.is_ok();
        if !woken && nap == left {
            return Ok(vec![]);
        }
        let cmds = read().await?;
        if !cmds.is_empty() {
            return Ok(cmds);
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::Cell;
    use std::sync::Arc;
    use tokio::sync::Notify;

    fn cert_with_verdict(not_after: i64) -> PeerCert {
        PeerCert {
            der: Arc::from(&b"never parsed: the verdict is kept"[..]),
            verdict: Rc::new(RefCell::new(Some(Verdict {
                identity: NodeIdentity {
                    node_id: "node-1".into(),
                    serial: "0a".into(),
                    cert_der: vec![],
                },
                not_after,
                generation: revocations::generation(),
                at: Instant::now(),
            }))),
        }
    }

    /// A request on a connection whose verdict holds is identified without a trip to
    /// the database. Every report on a kept-alive connection paid one for nothing: a hop
    /// to the blocking pool, a pooled connection and its check (`SELECT 1`). Without a
    /// state there is no pool, so a trip fails.
    #[tokio::test]
    async fn a_kept_verdict_identifies_the_node_without_the_database() {
        // Another test destroying a node meanwhile bumps the (process-wide) revocation
        // generation, which rightly outdates the verdict: asserted on a quiet attempt.
        let node = loop {
            let generation = revocations::generation();
            let kept = cert_with_verdict(db::now() + 3600);
            let got = identify(Some(kept), None).await;
            if revocations::generation() == generation {
                break got.unwrap();
            }
        };
        assert_eq!(node.node_id, "node-1");
        // A verdict that no longer holds (the certificate expired) is asked again.
        let stale = cert_with_verdict(db::now() - 1);
        assert!(identify(Some(stale), None).await.is_err());
        // No certificate: 401, whatever the state.
        let none = identify(None, None).await.unwrap_err();
        assert!(matches!(
            none,
            AppError::Unauthorized(Code::ClientCertificateRequired)
        ));
    }

    /// A long-poll of `wait` whose reads count themselves in `reads` and find a command
    /// from the `pending_from`-th read on.
    async fn poll(
        notify: &Notify,
        wait: Duration,
        recheck: Option<Duration>,
        reads: &Cell<u32>,
        pending_from: Option<u32>,
    ) -> Vec<u32> {
        let deadline = tokio::time::Instant::now() + wait;
        wait_for_commands(
            notify,
            deadline,
            || recheck,
            || {
                reads.set(reads.get() + 1);
                let n = reads.get();
                async move {
                    Ok::<_, ()>(match pending_from {
                        Some(from) if n >= from => vec![n],
                        _ => vec![],
                    })
                }
            },
        )
        .await
        .unwrap()
    }

    /// The gateway queues a fleet's burst of connections while its workers are busy (the
    /// standard library's backlog of 128 dropped the rest, and each drop cost its node
    /// seconds of SYN retransmission).
    #[test]
    fn the_gateway_listener_queues_a_burst_of_a_thousand_connections() {
        let l = listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        // Nobody accepts: each connection completes only if the queue has room for it.
        let mut open = vec![];
        for i in 0..1000 {
            let c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5));
            assert!(c.is_ok(), "connection {i} was not queued: {c:?}");
            open.push(c.unwrap());
        }
    }

    /// An idle node's long-poll does not read the database while nothing is queued for it
    /// (it read every 2 s: twelve reads per 25 s poll, for every node of the fleet).
    #[tokio::test]
    async fn an_idle_long_poll_reads_nothing_until_its_deadline() {
        let (notify, reads) = (Notify::new(), Cell::new(0));
        let got = poll(&notify, Duration::from_millis(300), None, &reads, Some(1)).await;
        assert!(got.is_empty(), "nothing was read, so nothing found");
        assert_eq!(reads.get(), 0);
    }

    /// A queued command wakes the poll, which reads once and returns it without waiting
    /// for its deadline.
    #[tokio::test]
    async fn a_queued_command_is_returned_when_its_notification_arrives() {
        let notify = Arc::new(Notify::new());
        let reads = Cell::new(0);
        let n = notify.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            n.notify_one();
        });
        let wait = Duration::from_secs(MAX_COMMAND_WAIT_SECS);
        let start = Instant::now();
        assert_eq!(poll(&notify, wait, None, &reads, Some(1)).await, vec![1]);
        assert_eq!(reads.get(), 1);
        assert!(start.elapsed() < wait, "returned before the deadline");
    }

    /// A notification sent before the poll waits (between its first read and its wait)
    /// is not lost.
    #[tokio::test]
    async fn a_notification_before_the_wait_is_kept() {
        let (notify, reads) = (Notify::new(), Cell::new(0));
        notify.notify_one();
        let wait = Duration::from_secs(MAX_COMMAND_WAIT_SECS);
        let start = Instant::now();
        assert_eq!(poll(&notify, wait, None, &reads, Some(1)).await, vec![1]);
        assert!(start.elapsed() < wait, "returned before the deadline");
    }

    /// While notifications may be lost (another replica's listener down), the poll reads
    /// at that period instead.
    #[tokio::test]
    async fn without_notifications_the_poll_falls_back_to_periodic_reads() {
        let (notify, reads) = (Notify::new(), Cell::new(0));
        let wait = Duration::from_secs(MAX_COMMAND_WAIT_SECS);
        let every = Some(Duration::from_millis(20));
        assert_eq!(poll(&notify, wait, every, &reads, Some(3)).await, vec![3]);
        assert_eq!(reads.get(), 3);
    }
}
