//! The local-process provider: each workspace's node is an `agent-node` process on
//! 127.0.0.1 with its own directory under `nodes_dir` (which stands in for the node's own
//! disk). The CP binary embeds the node, so it spawns itself as `control-plane node run`
//! and the node is always the same version as the CP (DESIGN §5 pitfall).
//!
//! Processes are supervised (restarted with backoff) and, after a CP restart, re-adopted
//! when still alive (found by pid file and `/proc/<pid>/cmdline`), else restarted.

//!
//! Its supervisor tasks outlive the job that started them: they hold the shared
//! [`Runtime`](crate::provisioning::jobs::Runtime).

use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::provisioning::jobs::{Shared, StepError};
use crate::provisioning::model::{state, NodeState};
use crate::provisioning::service::{event, fail, transition};
use crate::provisioning::store;
use outpost_common::fs::write_private;
use outpost_protocol::{BootstrapBundle, NodeId};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BOOTSTRAP_TOKEN_TTL: i64 = 30 * 60;

/// Local-process provider.
pub struct LocalProcess {
    exe: PathBuf,
    embedded: bool,
    nodes_dir: PathBuf,
    report_interval_secs: f64,
    max_backoff_secs: u64,
    renew_after_secs: Option<u64>,
    /// `--allow-local-providers`, handed to the nodes (same machine, same rule).
    allow_local_providers: bool,
    /// `false` for the `manual` provisioner: bundles are written, processes not started.
    spawn_processes: bool,
    supervised: Mutex<HashSet<String>>,
}

enum Proc {
    Child(tokio::process::Child),
    Adopted(u32),
}

impl LocalProcess {
    /// Configures the provider. `OUTPOST_NODE_BINARY` may point at a separate
    /// `agent-node` binary; by default the CP spawns itself.
    pub fn new(config: &crate::Config) -> anyhow::Result<Self> {
        let exe = match std::env::var_os("OUTPOST_NODE_BINARY") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()?,
        };
        let embedded = !exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("agent-node"));
        Ok(Self {
            exe,
            embedded,
            nodes_dir: std::path::absolute(&config.nodes_dir)?,
            report_interval_secs: config.report_interval_secs,
            max_backoff_secs: config.node_max_backoff_secs,
            renew_after_secs: config.node_renew_after_secs,
            allow_local_providers: config.allow_local_providers,
            spawn_processes: config.provisioner == "local",
            supervised: Mutex::new(HashSet::new()),
        })
    }

    /// Whether this is the `manual` variant (bundles only, no processes).
    pub fn is_manual(&self) -> bool {
        !self.spawn_processes
    }

    fn server_dir(&self, node_id: &str) -> PathBuf {
        self.nodes_dir.join(node_id)
    }

    /// The node's data directory inside its server directory.
    pub fn data_dir(&self, node_id: &str) -> PathBuf {
        self.server_dir(node_id).join("data")
    }

    fn live_pid(&self, node_id: &str) -> Option<u32> {
        let dir = self.server_dir(node_id);
        let pid: u32 = std::fs::read_to_string(dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid, &dir).then_some(pid)
    }

    /// The node's own binary once an upgrade installed one (`<server>/bin/agent-node`,
    /// the local stand-in for `/opt/outpost-node/agent-node` on a real server). Until
    /// then the node runs embedded in the control plane's binary.
    pub fn binary_path(&self, node_id: &str) -> PathBuf {
        self.server_dir(node_id).join("bin").join("agent-node")
    }

    /// What systemd's `ExecStartPre` does on a real server: while a new binary is on
    /// probation, count its starts and restore the previous one after its last. Run by
    /// the control plane's own embedded node, so a new binary that cannot even start is
    /// still replaced.
    fn guard(&self, node_id: &str, log: std::fs::File) -> anyhow::Result<()> {
        let data = self.data_dir(node_id);
        if !data
            .join(agent_node::uplink::upgrade::PROBATION_FILE)
            .exists()
        {
            return Ok(());
        }
        let mut cmd = std::process::Command::new(&self.exe);
        if self.embedded {
            cmd.arg("node");
        }
        let status = cmd
            .arg("upgrade-guard")
            .arg("--data-dir")
            .arg(&data)
            .arg("--binary-path")
            .arg(self.binary_path(node_id))
            .env_remove("DATABASE_URL")
            .env_remove("OUTPOST_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            // Into the node's log, as systemd puts `ExecStartPre` in the unit's journal.
            .stderr(log)
            .status()?;
        anyhow::ensure!(status.success(), "the upgrade guard failed ({status})");
        Ok(())
    }

    fn spawn(&self, node_id: &str) -> anyhow::Result<tokio::process::Child> {
        let dir = self.server_dir(node_id);
        std::fs::create_dir_all(dir.join("bin"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))?;
        if let Err(e) = self.guard(node_id, log.try_clone()?) {
            tracing::error!(node = %node_id, error = %format!("{e:#}"), "upgrade guard");
        }
        let installed = self.binary_path(node_id);
        let mut cmd = if installed.exists() {
            tokio::process::Command::new(&installed)
        } else {
            let mut c = tokio::process::Command::new(&self.exe);
            if self.embedded {
                c.arg("node");
            }
            c
        };
        cmd.arg("run")
            .arg("--data-dir")
            .arg(self.data_dir(node_id))
            .env(
                "OUTPOST_NODE_MAX_BACKOFF_SECS",
                self.max_backoff_secs.to_string(),
            )
            // Set either way, so an inherited value cannot differ from the CP's own.
            .env(
                "OUTPOST_NODE_ALLOW_LOCAL_PROVIDERS",
                self.allow_local_providers.to_string(),
            )
            // The node must never see the CP's own configuration or credentials.
            .env_remove("DATABASE_URL")
            .env_remove("OUTPOST_DATA_DIR")
            .env_remove("OUTPOST_CONFIG")
            // Local nodes are `http://<slug>.localhost`: a public host (and with it ACME
            // on ports 80 and 443) is for a node on its own server.
            .env_remove("OUTPOST_NODE_PUBLIC_HOST")
            // The release key reaches a node in its bootstrap bundle, as on a real server.
            .env_remove("OUTPOST_RELEASE_PUBLIC_KEY")
            .env("OUTPOST_NODE_BINARY_PATH", &installed)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(false);
        if let Some(s) = self.renew_after_secs {
            cmd.env("OUTPOST_NODE_RENEW_AFTER_SECS", s.to_string());
        }
        let child = cmd.spawn()?;
        if let Some(pid) = child.id() {
            std::fs::write(dir.join("pid"), pid.to_string())?;
        }
        Ok(child)
    }

    /// Creates (or finds) the node's server: writes the bootstrap bundle with a fresh
    /// single-use token and starts the process. Idempotent by node id.
    pub async fn create_server(&self, st: &Shared, node_id: &str) -> Result<(), StepError> {
        let id = node_id.to_owned();
        if self.live_pid(node_id).is_none() {
            let data = self.data_dir(node_id);
            let interval = self.report_interval_secs;
            let (gateway_url, ca_pem) = (st.gateway_url.clone(), st.ca_pem.clone());
            let release_key = st.release_public_key.clone();
            db::run(&st.db, move |conn| {
                write_bootstrap(
                    conn,
                    &id,
                    &data,
                    (gateway_url, ca_pem, release_key),
                    interval,
                )
            })
            .await?;
            if self.spawn_processes {
                let child = self.spawn(node_id).map_err(|cause| StepError {
                    step: "provisioning",
                    code: "spawn_failed",
                    permanent: false,
                    cause,
                })?;
                self.start_supervisor(st, node_id, Proc::Child(child));
            }
        }
        let id = node_id.to_owned();
        let pid = self.live_pid(node_id);
        db::run(&st.db, move |conn| {
            store::set_provider_ref(conn, &id, pid.map(|p| format!("pid:{p}")))?;
            event(
                conn,
                &id,
                "server",
                if pid.is_some() {
                    "local process started"
                } else {
                    "bootstrap bundle written; start the node yourself"
                },
            )?;
            transition(conn, &id, &[state::PROVISIONING], state::BOOTING)?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Starts an enrolled node's process again if it is not running (an operator's retry
    /// after it crashed or never reported). No bootstrap token is written: the node
    /// already holds its certificate. The `manual` variant starts nothing.
    pub async fn restart_server(&self, st: &Shared, node_id: &str) -> Result<(), StepError> {
        let detail = if !self.spawn_processes {
            "retry: start the node yourself"
        } else if let Some(pid) = self.live_pid(node_id) {
            self.start_supervisor(st, node_id, Proc::Adopted(pid));
            "retry: local process already running"
        } else {
            let child = self.spawn(node_id).map_err(|cause| StepError {
                step: "running",
                code: "spawn_failed",
                permanent: false,
                cause,
            })?;
            self.start_supervisor(st, node_id, Proc::Child(child));
            "retry: local process restarted"
        };
        let id = node_id.to_owned();
        db::run(&st.db, move |conn| event(conn, &id, "server", detail)).await?;
        Ok(())
    }

    fn start_supervisor(&self, st: &Shared, node_id: &str, proc: Proc) {
        let fresh = self
            .supervised
            .lock()
            .map(|mut s| s.insert(node_id.to_owned()))
            .unwrap_or(false);
        if fresh {
            actix_web::rt::spawn(supervise(st.clone(), node_id.to_owned(), proc));
        }
    }

    /// After a CP restart: adopt node processes that are still running, restart the
    /// others.
    pub async fn readopt(&self, st: &Shared) -> anyhow::Result<()> {
        if !self.spawn_processes {
            return Ok(());
        }
        let running: Vec<(String, String)> = db::run(&st.db, |conn| {
            // Manual nodes are not ours to restart.
            store::nodes_of_provider(
                conn,
                "local",
                &[
                    state::BOOTING,
                    state::ENROLLING,
                    state::HEALTHY,
                    state::DEGRADED,
                    state::OFFLINE,
                    state::SUSPENDED,
                    state::DEPROVISIONING,
                ],
            )
        })
        .await?;
        for (id, node_state) in running {
            let detail = if let Some(pid) = self.live_pid(&id) {
                self.start_supervisor(st, &id, Proc::Adopted(pid));
                "re-adopted after control-plane restart"
            } else if node_state == state::DEPROVISIONING || !self.data_dir(&id).exists() {
                continue;
            } else {
                let child = self.spawn(&id)?;
                self.start_supervisor(st, &id, Proc::Child(child));
                "restarted after control-plane restart"
            };
            let nid = id.clone();
            db::run(&st.db, move |conn| event(conn, &nid, "server", detail)).await?;
        }
        Ok(())
    }

    /// Deletes the node's server: waits briefly for the process to exit by itself (it
    /// does after sending its receipt), then terminates it, then removes its directory.
    pub async fn destroy_server(&self, node_id: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(pid) = self.live_pid(node_id) {
            if Instant::now() > deadline {
                let _ = std::process::Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let dir = self.server_dir(node_id);
        if dir.exists() {
            tokio::fs::remove_dir_all(&dir).await?;
        }
        Ok(())
    }
}

fn alive(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let needle = dir.to_string_lossy();
            String::from_utf8_lossy(&c).contains(needle.as_ref())
        })
        .unwrap_or(false)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn write_bootstrap(
    conn: &mut DbConn,
    node_id: &str,
    data_dir: &Path,
    (gateway_url, ca_pem, release_public_key): (String, String, Option<String>),
    interval: f64,
) -> AppResult<()> {
    let workspace = store::workspace_info(conn, node_id)?;
    let existing_url = store::public_url(conn, node_id)?;
    let port = existing_url
        .as_deref()
        .and_then(|u| u.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .map_or_else(free_port, Ok)
        .map_err(|e| crate::error::AppError::internal(e.into()))?;
    let public_url = format!("http://{}.localhost:{port}", workspace.slug);
    let now = db::now();
    // Only the newest token is valid: a retried provisioning step must not leave an
    // older token usable.
    let token = format!("{node_id}.{}", outpost_crypto::random_token());
    store::replace_bootstrap_token(
        conn,
        node_id,
        &outpost_crypto::token_hash(&token),
        now,
        now + BOOTSTRAP_TOKEN_TTL,
    )?;
    store::set_public_url(conn, node_id, &public_url)?;
    let bundle = BootstrapBundle {
        node_id: NodeId(node_id.to_owned()),
        gateway_url,
        ca_pem,
        token,
        listen_addr: format!("127.0.0.1:{port}"),
        public_url,
        workspace,
        report_interval_secs: interval,
        public_host: None,
        release_public_key,
    };
    let json = serde_json::to_vec_pretty(&bundle)
        .map_err(|e| crate::error::AppError::internal(e.into()))?;
    std::fs::create_dir_all(data_dir).map_err(|e| crate::error::AppError::internal(e.into()))?;
    write_private(&data_dir.join("bootstrap.json"), &json)
        .map_err(|e| crate::error::AppError::internal(e.into()))?;
    Ok(())
}

async fn supervise(st: Shared, node_id: String, mut proc: Proc) {
    let super::Provisioner::Local(local) = &*st.provisioner else {
        return;
    };
    let dir = local.server_dir(&node_id);
    let mut backoff = Duration::from_secs(1);
    let mut quick_exits = 0;
    loop {
        let started = Instant::now();
        let code = match &mut proc {
            Proc::Child(c) => c.wait().await.ok().and_then(|s| s.code()),
            Proc::Adopted(pid) => {
                while alive(*pid, &dir) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None
            }
        };
        let id = node_id.clone();
        let node_state = db::run(&st.db, move |conn| store::state_if_exists(conn, &id))
            .await
            .ok()
            .flatten();
        let stop = match node_state.as_deref().map(NodeState::parse) {
            None
            | Some(Some(NodeState::Deprovisioning | NodeState::Destroyed | NodeState::Failed)) => {
                true
            }
            Some(_) => code == Some(0),
        };
        if stop {
            break;
        }
        if code == Some(i32::from(agent_node::uplink::upgrade::RESTART_EXIT_CODE)) {
            // An upgrade installed or rolled back: start the binary now in place at once,
            // as systemd's `Restart=always` does; not a crash.
            let id = node_id.clone();
            let _ = db::run(&st.db, move |conn| {
                event(conn, &id, "server", "restarting into the installed binary")
            })
            .await;
            match local.spawn(&node_id) {
                Ok(c) => {
                    proc = Proc::Child(c);
                    continue;
                }
                Err(e) => {
                    tracing::error!(node = %node_id, error = %e, "restarting node failed");
                }
            }
        }
        quick_exits = if started.elapsed() < Duration::from_secs(30) {
            quick_exits + 1
        } else {
            0
        };
        if quick_exits >= 5 {
            let (id, step, s) = (node_id.clone(), node_state.unwrap_or_default(), st.clone());
            let _ = db::run(&st.db, move |conn| {
                fail(conn, &s.notifier(), &id, &step, "process_crashing")
            })
            .await;
            break;
        }
        let (id, detail) = (
            node_id.clone(),
            format!(
                "process exited ({}); restarting in {}s",
                code.map_or("signal".into(), |c| c.to_string()),
                backoff.as_secs()
            ),
        );
        tracing::warn!(node = %node_id, %detail, "local node exited");
        let _ = db::run(&st.db, move |conn| event(conn, &id, "server", &detail)).await;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
        match local.spawn(&node_id) {
            Ok(c) => proc = Proc::Child(c),
            Err(e) => {
                tracing::error!(node = %node_id, error = %e, "restarting node failed");
                let (id, s) = (node_id.clone(), st.clone());
                let _ = db::run(&st.db, move |conn| {
                    fail(conn, &s.notifier(), &id, "running", "spawn_failed")
                })
                .await;
                break;
            }
        }
    }
    if let Ok(mut s) = local.supervised.lock() {
        s.remove(&node_id);
    }
}
