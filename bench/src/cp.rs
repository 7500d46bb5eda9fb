//! The control plane under test, in this process (manual provisioner, SQLite in a temp
//! dir or the PostgreSQL database given with `--database-url`), and fake nodes enrolled against it the way `tests/e2e/gateway.rs` plays them:
//! own key, CSR, bootstrap token, real client certificate.

use anyhow::Context as _;
use outpost_protocol::{BootstrapBundle, EnrollRequest, EnrollResponse};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A running control plane. It lives until the process exits (serve has no stop handle);
/// its temp dir is removed when this is dropped.
pub struct ControlPlane {
    /// Base URL of the UI / JSON API, `http://127.0.0.1:<port>`.
    pub ui: String,
    /// Address of the node gateway (TLS, mTLS for `/v1/node/*`).
    pub gateway_addr: SocketAddr,
    /// `https://<gateway_addr>`.
    pub gateway_url: String,
    /// The resolved configuration it runs with.
    pub config: control_plane::Config,
    /// What `serve` reported as its database backend.
    pub backend: String,
    _dir: tempfile::TempDir,
}

type Ready = Result<(String, String, String), String>;

/// Starts `control_plane::serve` on its own thread with its own actix System, on
/// `database_url` (PostgreSQL, which must be empty or hold only earlier bench runs) or a
/// fresh SQLite file.
pub fn start(database_url: Option<String>) -> anyhow::Result<ControlPlane> {
    start_with(database_url, control_plane::config::Limits::default())
}

/// [`start`] with other rate limits (B3 enrolls thousands of nodes through the API).
pub fn start_with(
    database_url: Option<String>,
    limits: control_plane::config::Limits,
) -> anyhow::Result<ControlPlane> {
    let dir = tempfile::Builder::new()
        .prefix("outpost-bench-")
        .tempdir()?;
    let config = control_plane::ServeArgs {
        data_dir: Some(dir.path().join("data")),
        listen: Some("127.0.0.1:0".parse()?),
        gateway_listen: Some("127.0.0.1:0".parse()?),
        provisioner: Some("manual".into()),
        database_url,
        report_interval_secs: Some(30.0),
        ..Default::default()
    }
    .resolve()?;
    let config = control_plane::Config { limits, ..config };
    let (tx, rx) = std::sync::mpsc::channel::<Ready>();
    let cfg = config.clone();
    std::thread::Builder::new()
        .name("control-plane".into())
        .spawn(move || {
            let ready = tx.clone();
            let r = actix_web::rt::System::new().block_on(control_plane::serve(
                cfg,
                move |ui, gw, backend| {
                    let _ = ready.send(Ok((ui.to_owned(), gw.to_owned(), backend.to_owned())));
                },
            ));
            let msg = match r {
                Ok(()) => "control plane stopped".to_owned(),
                Err(e) => format!("control plane failed: {e:#}"),
            };
            // Only read if the control plane never became ready; afterwards nobody listens.
            let _ = tx.send(Err(msg));
        })?;
    let (ui, gw, backend) = rx
        .recv_timeout(Duration::from_secs(60))
        .context("control plane did not start within 60 s")?
        .map_err(anyhow::Error::msg)?;
    let gateway_addr: SocketAddr = gw
        .parse()
        .with_context(|| format!("gateway address {gw:?}"))?;
    Ok(ControlPlane {
        ui: ui.trim_end_matches('/').to_owned(),
        gateway_url: format!("https://{gateway_addr}"),
        gateway_addr,
        config,
        backend: backend
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        _dir: dir,
    })
}

/// A node played by the benchmark: its enrolled identity.
pub struct FakeNode {
    /// CA the node pins.
    pub ca_pem: String,
    /// Client certificate issued at enrollment.
    pub cert_pem: String,
    /// The node's TLS key.
    pub key: rcgen::KeyPair,
}

impl FakeNode {
    /// The node's rustls client config: pinned CA, its client certificate, ring.
    pub fn tls_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        Ok(outpost_pki::node_client_config(
            &self.ca_pem,
            Some((&self.cert_pem, &self.key)),
        )?)
    }
}

fn bootstrap_path(cp: &ControlPlane, node_id: &str) -> PathBuf {
    cp.config
        .nodes_dir
        .join(node_id)
        .join("data")
        .join("bootstrap.json")
}

/// Creates `n` workspaces through the JSON API and enrolls each one's node.
pub async fn enroll_nodes(cp: &ControlPlane, n: usize) -> anyhow::Result<Vec<FakeNode>> {
    let cfg = cp.config.clone();
    let token = tokio::task::spawn_blocking(move || {
        let new = control_plane::accounts::NewToken {
            name: "bench".into(),
            ..Default::default()
        };
        control_plane::cli::token_create(&cfg, "bench@example.test", &new)
    })
    .await??;
    let api = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut node_ids = Vec::with_capacity(n);
    for i in 0..n {
        let resp = api
            .post(format!("{}/api/v1/workspaces", cp.ui))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": format!("Bench {i}") }))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        anyhow::ensure!(
            status.as_u16() == 201,
            "creating workspace {i}: HTTP {status}: {body}"
        );
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let id = v["node"]["id"]
            .as_str()
            .context("workspace response without node.id")?;
        node_ids.push(id.to_owned());
    }
    let mut nodes = Vec::with_capacity(n);
    for id in node_ids {
        let bundle = wait_bundle(cp, &id).await?;
        nodes.push(enroll(cp, bundle).await?);
    }
    Ok(nodes)
}

async fn wait_bundle(cp: &ControlPlane, node_id: &str) -> anyhow::Result<BootstrapBundle> {
    wait_bundle_at(&bootstrap_path(cp, node_id)).await
}

/// Waits (up to 60 s) for the manual provisioner to write the bootstrap bundle at `path`.
pub async fn wait_bundle_at(path: &std::path::Path) -> anyhow::Result<BootstrapBundle> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = tokio::fs::read_to_string(path).await {
            if let Ok(b) = serde_json::from_str(&text) {
                return Ok(b);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no bootstrap bundle at {} after 60 s",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn enroll(cp: &ControlPlane, bundle: BootstrapBundle) -> anyhow::Result<FakeNode> {
    enroll_at(&cp.gateway_url, bundle).await
}

/// Enrolls a node through the gateway's real `POST /v1/enroll` at `gateway_url` with its
/// bootstrap bundle: a fresh P-256 key, a CSR, the single-use token; retries on 429 (the
/// CP signs at most 50 CSRs a second).
pub async fn enroll_at(gateway_url: &str, bundle: BootstrapBundle) -> anyhow::Result<FakeNode> {
    let key = outpost_pki::generate_key()?;
    let req = EnrollRequest {
        token: bundle.token.clone(),
        csr_pem: outpost_pki::make_csr(&key, bundle.node_id.as_str())?,
        age_recipient: outpost_crypto::generate_age_identity().1,
        version: "bench".into(),
        node_time: None,
    };
    let anon = reqwest::Client::builder()
        .use_preconfigured_tls(outpost_pki::node_client_config(&bundle.ca_pem, None)?)
        .timeout(Duration::from_secs(30))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let sent = anon
            .post(format!("{gateway_url}/v1/enroll"))
            .json(&req)
            .send()
            .await;
        // A loaded control plane may drop or time out a connection: try again.
        let resp = match sent {
            Ok(r) => r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let status = resp.status();
        // CSR signing is rate limited (50/s): wait and retry on 429.
        if status.as_u16() == 429 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let body = resp.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "enrolling node {}: HTTP {status}: {body}",
            bundle.node_id
        );
        let r: EnrollResponse = serde_json::from_str(&body)?;
        anyhow::ensure!(
            r.node_id == bundle.node_id,
            "enrolled as {} instead of {}",
            r.node_id,
            bundle.node_id
        );
        return Ok(FakeNode {
            ca_pem: bundle.ca_pem,
            cert_pem: r.cert_pem,
            key,
        });
    }
}
