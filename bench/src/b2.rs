//! B2 — mTLS handshakes with the serial check: every operation is a new TCP connection and
//! a full TLS 1.3 handshake with a node client certificate, then one
//! `GET /v1/node/commands?wait=0` (the gateway checks the certificate serial against the
//! database) read to EOF. Reference: a plain tokio-rustls accept loop with the same kind of
//! server config (`outpost_pki::gateway_server_config`) answering a fixed response.

use crate::cp::{ControlPlane, FakeNode};
use crate::load::{self, OP_TIMEOUT};
use crate::output::Comparison;
use crate::Settings;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Same client for both sides: session resumption off, so every connection pays a full
/// handshake (the case of a fleet reconnecting to a restarted control plane).
fn connector(mut cfg: rustls::ClientConfig) -> TlsConnector {
    cfg.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(cfg))
}

fn request_bytes(addr: SocketAddr) -> Arc<[u8]> {
    format!("GET /v1/node/commands?wait=0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .into_bytes()
        .into()
}

/// One operation: connect, handshake, request, read to EOF, expect a 200.
async fn one_connection(
    connector: TlsConnector,
    addr: SocketAddr,
    request: Arc<[u8]>,
) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let mut tls = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    match tls.read_to_end(&mut buf).await {
        Ok(_) => {}
        // A peer closing TCP without close_notify still delivered its whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    if buf.starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        let line = buf.split(|b| *b == b'\r').next().unwrap_or_default();
        Err(format!(
            "unexpected response: {:?}",
            String::from_utf8_lossy(line)
        ))
    }
}

/// The load of one side: new connections, round-robin over `connectors`.
fn connections_to(
    connectors: Vec<TlsConnector>,
    addr: SocketAddr,
) -> impl Fn(usize) -> BoxedOp + Send + Sync + 'static {
    let n = connectors.len();
    let request = request_bytes(addr);
    move |worker| {
        Box::pin(one_connection(
            connectors[worker % n].clone(),
            addr,
            request.clone(),
        ))
    }
}

type BoxedOp = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// The reference accept loop, on its own tokio runtime (as the gateway has its own actix
/// workers), one worker thread per core.
struct ReferenceTls {
    addr: SocketAddr,
    client: rustls::ClientConfig,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ReferenceTls {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve_one(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(mut tls)) = tokio::time::timeout(OP_TIMEOUT, acceptor.accept(tcp)).await else {
        return;
    };
    // Read the request head.
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tokio::time::timeout(OP_TIMEOUT, tls.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let _ = tls
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .await;
    let _ = tls.shutdown().await;
}

fn start_reference(cores: usize) -> anyhow::Result<ReferenceTls> {
    let (ca, _) = outpost_pki::CertificateAuthority::generate("Outpost bench reference CA")?;
    let (chain, key) = ca.issue_server_cert(&["127.0.0.1".to_owned()])?;
    let server = outpost_pki::gateway_server_config(ca.cert_pem(), chain, key)?;
    let client_key = outpost_pki::generate_key()?;
    let node_id = "00000000-0000-4000-8000-000000000000";
    let client_cert = ca.sign_node_csr(&outpost_pki::make_csr(&client_key, node_id)?, node_id)?;
    let client =
        outpost_pki::node_client_config(ca.cert_pem(), Some((&client_cert.pem, &client_key)))?;

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.max(1))
        .thread_name("b2-reference")
        .enable_all()
        .build()?;
    let acceptor = TlsAcceptor::from(Arc::new(server));
    runtime.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("B2 reference listener failed: {e}");
                return;
            }
        };
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_one(acceptor.clone(), tcp));
                }
                // Out of file descriptors and the like: back off briefly, keep serving.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    Ok(ReferenceTls {
        addr,
        client,
        runtime: Some(runtime),
    })
}

/// Runs B2.
pub async fn run(
    cp: &ControlPlane,
    nodes: &[FakeNode],
    s: &Settings,
    cores: usize,
) -> anyhow::Result<Comparison> {
    anyhow::ensure!(!nodes.is_empty(), "B2 needs at least one node");
    let gw_connectors = nodes
        .iter()
        .map(|n| n.tls_config().map(connector))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let reference_server = start_reference(cores)?;
    let reference_connector = connector(reference_server.client.clone());
    let measured = load::alternate(
        s.plan(s.b2_concurrency),
        connections_to(gw_connectors, cp.gateway_addr),
        connections_to(vec![reference_connector], reference_server.addr),
    )
    .await;
    drop(reference_server);
    let (gateway, reference) = measured?;

    Ok(Comparison {
        id: "B2",
        title: "mTLS handshakes with the serial check: a new connection per request".into(),
        unit: "handshakes/s",
        params: vec![
            ("nodes", nodes.len().into()),
            ("clients", s.b2_concurrency.into()),
            ("window_s", s.duration.as_secs_f64().into()),
            ("rounds", s.rounds.into()),
            ("warmup_s", s.warmup.as_secs_f64().into()),
            (
                "tls",
                "TLS 1.3, full handshakes (client resumption off), P-256".into(),
            ),
        ],
        subject_label: "gateway (GET /v1/node/commands)",
        subject: gateway,
        reference_label: "reference (tokio-rustls loop)",
        reference,
        min_ratio: 0.8,
        min_rate: None,
        notes: vec![
            "gateway side also parses HTTP, checks the serial in the DB and reads pending commands"
                .into(),
        ],
    })
}
