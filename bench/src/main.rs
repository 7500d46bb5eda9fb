//! Outpost benchmarks B1 (report ingest over mTLS) and B2 (mTLS handshakes with the
//! serial check), each as a ratio against a reference measured in the same run on the
//! same machine (shared BENCHMARKS.md). `--smoke` runs a few seconds only, to prove the
//! benchmarks work; no wall-clock figure is ever asserted.

#![allow(clippy::print_stdout)]

use anyhow::Context as _;
use clap::Parser;
use outpost_protocol::*;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Clone)]
#[command(about = "Outpost benchmarks B1 and B2")]
struct Args {
    /// A few seconds in all: proves the benchmarks run (CI).
    #[arg(long)]
    smoke: bool,
    /// Seconds each measurement runs [default: 10, smoke: 1]
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Simulated nodes for B1 [default: 20, smoke: 4]
    #[arg(long)]
    nodes: Option<usize>,
    /// Concurrent clients [default: 64 for B1, 16 for B2; smoke: 4]
    #[arg(long)]
    concurrency: Option<usize>,
}

struct Cp {
    ui: String,
    gateway: String,
    config: control_plane::Config,
    _dir: tempfile::TempDir,
}

fn start_cp() -> anyhow::Result<Cp> {
    let dir = tempfile::tempdir()?;
    let config = control_plane::ServeArgs {
        data_dir: Some(dir.path().join("data")),
        listen: Some("127.0.0.1:0".parse()?),
        gateway_listen: Some("127.0.0.1:0".parse()?),
        provisioner: Some("manual".into()),
        ..Default::default()
    }
    .resolve()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = config.clone();
    std::thread::spawn(move || {
        let r = actix_web::rt::System::new().block_on(control_plane::serve(cfg, |ui, gw, _| {
            let _ = tx.send((ui.to_owned(), gw.to_owned()));
        }));
        if let Err(e) = r {
            eprintln!("control plane stopped: {e:#}");
        }
    });
    let (ui, gw) = rx
        .recv_timeout(Duration::from_secs(60))
        .context("control plane did not start")?;
    Ok(Cp {
        ui,
        gateway: format!("https://{gw}"),
        config,
        _dir: dir,
    })
}

struct Node {
    ca_pem: String,
    cert_pem: String,
    key: rcgen::KeyPair,
}

async fn enroll_nodes(cp: &Cp, n: usize) -> anyhow::Result<Vec<Node>> {
    let token = control_plane::app::create_token_cli(&cp.config, "bench@example.test", "bench")?;
    let http = reqwest::Client::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let ws: serde_json::Value = http
            .post(format!("{}/api/v1/workspaces", cp.ui))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": format!("Bench {i}")}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let node_id = ws["node"]["id"].as_str().context("node id")?.to_owned();
        let path = cp
            .config
            .nodes_dir
            .join(&node_id)
            .join("data/bootstrap.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        let bundle: BootstrapBundle = loop {
            if let Ok(t) = std::fs::read_to_string(&path) {
                if let Ok(b) = serde_json::from_str(&t) {
                    break b;
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no bootstrap bundle for {node_id}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let key = outpost_pki::generate_key()?;
        let req = EnrollRequest {
            token: bundle.token.clone(),
            csr_pem: outpost_pki::make_csr(&key, &node_id)?,
            age_recipient: outpost_crypto::generate_age_identity().1,
            version: "bench".into(),
        };
        let anon = reqwest::Client::builder()
            .use_preconfigured_tls(outpost_pki::node_client_config(&bundle.ca_pem, None)?)
            .build()?;
        let resp: EnrollResponse = anon
            .post(format!("{}/v1/enroll", cp.gateway))
            .json(&req)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        nodes.push(Node {
            ca_pem: bundle.ca_pem,
            cert_pem: resp.cert_pem,
            key,
        });
    }
    Ok(nodes)
}

fn report(seq: i64) -> Report {
    Report {
        seq,
        produced_at: 0,
        version: "bench".into(),
        uptime_s: seq,
        checks: vec![Check {
            name: "storage".into(),
            ok: true,
            detail_code: None,
        }],
        counts: vec![CountBucket {
            channel: "web".into(),
            hour: 0,
            inbound: seq,
            outbound: seq,
            conversations: 1,
        }],
        disk_used_bytes: 1,
        queue_depth: 0,
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u64>>,
}

impl Tally {
    fn summary(&self, secs: f64) -> (f64, u64, u64, u64) {
        let mut l = self
            .latencies_us
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        l.sort_unstable();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        (
            self.ok.load(Ordering::Relaxed) as f64 / secs,
            pct(0.5),
            pct(0.99),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// Runs `concurrency` loops of `one` for `dur`; each call returns whether it succeeded.
async fn hammer<F, Fut>(concurrency: usize, dur: Duration, one: F) -> (f64, u64, u64, u64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let tally = Arc::new(Tally::default());
    let one = Arc::new(one);
    let end = Instant::now() + dur;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (tally, one) = (tally.clone(), one.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                if one(w).await {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Ok(mut l) = tally.latencies_us.lock() {
                l.extend(lat);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    tally.summary(dur.as_secs_f64())
}

fn start_reference_server() -> anyhow::Result<String> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let _ = actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                App::new().route(
                    "/report",
                    web::post().to(|r: web::Json<Report>| async move {
                        HttpResponse::Ok().json(ReportAck {
                            seq: r.seq,
                            accepted: true,
                        })
                    }),
                )
            })
            .listen(listener)?
            .run()
            .await
        });
    });
    Ok(format!("http://{addr}/report"))
}

async fn b1(
    cp: &Cp,
    nodes: &[Node],
    concurrency: usize,
    dur: Duration,
) -> anyhow::Result<serde_json::Value> {
    let mut clients = Vec::new();
    for n in nodes {
        clients.push(
            reqwest::Client::builder()
                .use_preconfigured_tls(outpost_pki::node_client_config(
                    &n.ca_pem,
                    Some((&n.cert_pem, &n.key)),
                )?)
                .build()?,
        );
    }
    let clients = Arc::new(clients);
    let seqs: Arc<Vec<AtomicI64>> = Arc::new(nodes.iter().map(|_| AtomicI64::new(0)).collect());
    let url = format!("{}/v1/node/report", cp.gateway);
    let (c, s) = (clients.clone(), seqs.clone());
    let gw = hammer(concurrency, dur, move |w| {
        let i = w % c.len();
        let (client, seq) = (c[i].clone(), s[i].fetch_add(1, Ordering::Relaxed) + 1);
        let url = url.clone();
        async move {
            matches!(client.post(&url).json(&report(seq)).send().await, Ok(r) if r.status().is_success())
        }
    })
    .await;
    let ref_url = start_reference_server()?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let plain = reqwest::Client::new();
    let reference = hammer(concurrency, dur, move |w| {
        let (client, url) = (plain.clone(), ref_url.clone());
        async move { matches!(client.post(&url).json(&report(w as i64 + 1)).send().await, Ok(r) if r.status().is_success()) }
    })
    .await;
    let ratio = gw.0 / reference.0.max(1.0);
    let met = ratio >= 0.5 && gw.0 >= 10_000.0;
    println!(
        "B1 report ingest ({} nodes, {concurrency} clients, {}s, SQLite)",
        nodes.len(),
        dur.as_secs()
    );
    println!(
        "  gateway (mTLS + DB)   {:>10.0} req/s  p50 {:>6} us  p99 {:>6} us  errors {}",
        gw.0, gw.1, gw.2, gw.3
    );
    println!(
        "  reference (bare JSON) {:>10.0} req/s  p50 {:>6} us  p99 {:>6} us  errors {}",
        reference.0, reference.1, reference.2, reference.3
    );
    println!(
        "  ratio {ratio:.2}x  target >= 0.5x and >= 10000/s: {}",
        if met { "MET" } else { "NOT MET" }
    );
    Ok(
        serde_json::json!({"id": "B1", "gateway_rps": gw.0, "gateway_p50_us": gw.1, "gateway_p99_us": gw.2, "gateway_errors": gw.3,
        "reference_rps": reference.0, "ratio": ratio, "target": ">= 0.5x and >= 10000/s", "met": met, "backend": "sqlite"}),
    )
}

async fn handshake_request(
    connector: tokio_rustls::TlsConnector,
    addr: String,
    host: &'static str,
) -> bool {
    let run = async {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let name = rustls::pki_types::ServerName::try_from(host)?.to_owned();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(format!("GET /v1/node/commands?wait=0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf).await;
        anyhow::Ok(buf.starts_with(b"HTTP/1.1 200"))
    };
    run.await.unwrap_or(false)
}

fn start_reference_tls() -> anyhow::Result<(String, String, String, rcgen::KeyPair)> {
    let (ca, _) = outpost_pki::CertificateAuthority::generate("bench reference CA")?;
    let (chain, key) = ca.issue_server_cert(&["127.0.0.1".into()])?;
    let cfg = Arc::new(outpost_pki::gateway_server_config(
        ca.cert_pem(),
        chain,
        key,
    )?);
    let ckey = outpost_pki::generate_key()?;
    let cert = ca.sign_node_csr(&outpost_pki::make_csr(&ckey, "ref")?, "ref")?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?.to_string();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Ok((addr, ca.cert_pem().to_owned(), cert.pem, ckey))
}

async fn b2(
    cp: &Cp,
    node: &Node,
    concurrency: usize,
    dur: Duration,
) -> anyhow::Result<serde_json::Value> {
    let gw_addr = cp.gateway.trim_start_matches("https://").to_owned();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(outpost_pki::node_client_config(
        &node.ca_pem,
        Some((&node.cert_pem, &node.key)),
    )?));
    let gw = hammer(concurrency, dur, move |_| {
        handshake_request(conn.clone(), gw_addr.clone(), "127.0.0.1")
    })
    .await;
    let (addr, ca_pem, cert_pem, key) = start_reference_tls()?;
    let conn = tokio_rustls::TlsConnector::from(Arc::new(outpost_pki::node_client_config(
        &ca_pem,
        Some((&cert_pem, &key)),
    )?));
    let reference = hammer(concurrency, dur, move |_| {
        handshake_request(conn.clone(), addr.clone(), "127.0.0.1")
    })
    .await;
    let ratio = gw.0 / reference.0.max(1.0);
    let met = ratio >= 0.8;
    println!(
        "B2 mTLS handshakes ({concurrency} clients, {}s; new connection per request)",
        dur.as_secs()
    );
    println!(
        "  gateway (serial check) {:>9.0} hs/s  p50 {:>6} us  p99 {:>6} us  errors {}",
        gw.0, gw.1, gw.2, gw.3
    );
    println!(
        "  reference (rustls loop){:>9.0} hs/s  p50 {:>6} us  p99 {:>6} us  errors {}",
        reference.0, reference.1, reference.2, reference.3
    );
    println!(
        "  ratio {ratio:.2}x  target >= 0.8x: {}",
        if met { "MET" } else { "NOT MET" }
    );
    Ok(
        serde_json::json!({"id": "B2", "gateway_hps": gw.0, "gateway_errors": gw.3, "reference_hps": reference.0,
        "ratio": ratio, "target": ">= 0.8x", "met": met}),
    )
}

fn write_json(name: &str, mut v: serde_json::Value, smoke: bool) -> anyhow::Result<()> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    std::fs::create_dir_all(&dir)?;
    v["smoke"] = smoke.into();
    v["cores"] = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
        .into();
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&v)?,
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dur = Duration::from_secs(a.duration_secs.unwrap_or(if a.smoke { 1 } else { 10 }));
    let nodes_n = a.nodes.unwrap_or(if a.smoke { 4 } else { 20 });
    let cp = start_cp()?;
    let nodes = enroll_nodes(&cp, nodes_n).await?;
    let b1c = a.concurrency.unwrap_or(if a.smoke { 4 } else { 64 });
    let r1 = b1(&cp, &nodes, b1c, dur).await?;
    anyhow::ensure!(r1["gateway_errors"] == 0, "B1 had errors");
    write_json("b1", r1, a.smoke)?;
    let b2c = a.concurrency.unwrap_or(if a.smoke { 4 } else { 16 });
    let r2 = b2(&cp, &nodes[0], b2c, dur).await?;
    anyhow::ensure!(r2["gateway_errors"] == 0, "B2 had errors");
    write_json("b2", r2, a.smoke)?;
    if a.smoke {
        println!("smoke mode: figures prove the benchmarks run; they are not measurements");
    }
    Ok(())
}
