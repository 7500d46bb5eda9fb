//! B1 — report ingest: enrolled fake nodes POST reports over mTLS keep-alive to the real
//! node gateway (serial check, idempotency insert, usage upsert, node update in SQLite or
//! PostgreSQL).
//! Reference: a bare actix-web handler deserializing the same JSON over plain HTTP, no DB.

use crate::cp::{ControlPlane, FakeNode};
use crate::load::{self, OP_TIMEOUT};
use crate::output::Comparison;
use crate::Settings;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use outpost_protocol::{Check, CountBucket, Report, ReportAck};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A healthy node's report: two checks, one hour of web counts.
pub(crate) fn report(seq: i64, hour: i64) -> Report {
    Report {
        seq,
        epoch: None,
        produced_at: hour,
        version: "bench".into(),
        uptime_s: seq,
        checks: vec![
            Check {
                name: "storage".into(),
                ok: true,
                detail_code: None,
            },
            Check {
                name: "llm".into(),
                ok: true,
                detail_code: None,
            },
        ],
        counts: vec![CountBucket {
            channel: "web".into(),
            hour,
            inbound: seq,
            outbound: seq,
            conversations: 1,
        }],
        disk_used_bytes: 1 << 20,
        queue_depth: 0,
        exports: vec![],
        retention_sweeps: vec![],
        waiting_conversations: 0,
        ai_counts: vec![],
        booking_counts: vec![],
        call_counts: vec![],
    }
}

/// One report: POST, read the whole body, expect 200 and an accepting ack for `seq`.
/// The same code drives the gateway and the reference.
async fn post_report(
    client: reqwest::Client,
    url: Arc<str>,
    seq: i64,
    hour: i64,
) -> Result<(), String> {
    let resp = client
        .post(&*url)
        .json(&report(seq, hour))
        .send()
        .await
        .map_err(|e| format!("{e:#}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("{e:#}"))?;
    if status.as_u16() != 200 {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    let ack: ReportAck = serde_json::from_slice(&body).map_err(|e| format!("bad ack: {e}"))?;
    if ack.seq != seq || !ack.accepted {
        return Err(format!(
            "ack for seq {seq} was seq {} accepted {}",
            ack.seq, ack.accepted
        ));
    }
    Ok(())
}

/// The load of one side: `clients.len()` nodes, each with its own strictly increasing
/// seq shared by the tasks bound to it.
fn reports_to(
    clients: Vec<reqwest::Client>,
    url: String,
    hour: i64,
) -> impl Fn(usize) -> BoxedOp + Send + Sync + 'static {
    let n = clients.len();
    let seqs: Vec<AtomicI64> = (0..n).map(|_| AtomicI64::new(0)).collect();
    let url: Arc<str> = url.into();
    move |worker| {
        let i = worker % n;
        let seq = seqs[i].fetch_add(1, Ordering::Relaxed) + 1;
        Box::pin(post_report(clients[i].clone(), url.clone(), seq, hour))
    }
}

type BoxedOp = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// The reference server: actix-web on its own System and thread, as the gateway is.
struct ReferenceServer {
    url: String,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

async fn ack(r: web::Json<Report>) -> HttpResponse {
    HttpResponse::Ok().json(ReportAck {
        seq: r.seq,
        accepted: true,
    })
}

fn start_reference() -> anyhow::Result<ReferenceServer> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("b1-reference".into())
        .spawn(move || {
            let r = actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(|| App::new().route("/report", web::post().to(ack)))
                    .listen(listener)?
                    .run();
                let _ = tx.send(server.handle());
                server.await
            });
            if let Err(e) = r {
                eprintln!("B1 reference server failed: {e}");
            }
        })?;
    let handle = rx
        .recv_timeout(Duration::from_secs(10))
        .context("B1 reference server did not start")?;
    Ok(ReferenceServer {
        url: format!("http://{addr}/report"),
        handle,
        thread,
    })
}

/// Runs B1.
pub async fn run(
    cp: &ControlPlane,
    nodes: &[FakeNode],
    s: &Settings,
) -> anyhow::Result<Comparison> {
    anyhow::ensure!(!nodes.is_empty(), "B1 needs at least one node");
    let mut gw_clients = Vec::with_capacity(nodes.len());
    let mut plain_clients = Vec::with_capacity(nodes.len());
    for n in nodes {
        gw_clients.push(
            reqwest::Client::builder()
                .use_preconfigured_tls(n.tls_config()?)
                .timeout(OP_TIMEOUT)
                .build()?,
        );
        plain_clients.push(reqwest::Client::builder().timeout(OP_TIMEOUT).build()?);
    }

    let hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64
        / 3600
        * 3600;
    let reference_server = start_reference()?;
    let measured = load::alternate(
        s.plan(s.b1_concurrency),
        reports_to(
            gw_clients,
            format!("{}/v1/node/report", cp.gateway_url),
            hour,
        ),
        reports_to(plain_clients, reference_server.url.clone(), hour),
    )
    .await;
    reference_server.handle.stop(false).await;
    let _ = tokio::task::spawn_blocking(move || reference_server.thread.join()).await;
    let (gateway, reference) = measured?;

    Ok(Comparison {
        id: "B1",
        title: "report ingest: nodes POST reports over mTLS keep-alive to the node gateway".into(),
        unit: "reports/s",
        params: vec![
            ("nodes", nodes.len().into()),
            ("clients", s.b1_concurrency.into()),
            ("window_s", s.duration.as_secs_f64().into()),
            ("rounds", s.rounds.into()),
            ("warmup_s", s.warmup.as_secs_f64().into()),
            (
                "database",
                cp.backend
                    .split_whitespace()
                    .next()
                    .unwrap_or("unknown")
                    .into(),
            ),
        ],
        subject_label: "gateway (mTLS + database writes)",
        subject: gateway,
        reference_label: "reference (bare actix JSON, no TLS/DB)",
        reference,
        min_ratio: 0.5,
        min_rate: Some((10_000.0, 2)),
        notes: vec![format!(
            "control plane database: {} (SQLite: a temp file, WAL; PostgreSQL: --database-url)",
            cp.backend.split_whitespace().next().unwrap_or("unknown")
        )],
    })
}
