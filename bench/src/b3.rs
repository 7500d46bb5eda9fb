//! Long because the fleet simulator, its CP child process, its measurements and their unit tests belong together.
//! B3 — fleet soak: one process plays N nodes against the real control plane running in
//! a child process of its own (this binary with `--b3-cp-child`), so the CP's CPU and RSS
//! are read from `/proc/<pid>` apart from the simulator's. Every node is enrolled through
//! the real path (workspace created with `POST /api/v1/workspaces`, the manual
//! provisioner's `bootstrap.json`, `POST /v1/enroll` with its own key and CSR), then
//! reports every interval ±20 % over mTLS (rustls session resumption on, as the node's
//! client has it) and keeps a command long-poll open (`wait=25`) on a second connection.
//! Commands are queued during the run through the JSON API (creating an agent pushes the
//! workspace's configuration to its node) and timed until the node's long-poll returns
//! them. Lost reports are the acknowledged `(node, seq)` pairs missing from the CP's
//! `node_reports` table at the end. No target is asserted: misses are printed.

use crate::cp;
use crate::load::{percentile, round2};
use crate::output::RunInfo;
use crate::wire::{Conn, Phases};
use anyhow::Context as _;
use outpost_protocol::{CommandAck, CommandBatch, Report, ReportAck, MAX_COMMAND_WAIT_SECS};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// B3's parameters.
pub struct Settings {
    /// Simulated nodes.
    pub nodes: usize,
    /// Measurement window (after one interval of warm-up in which every node connects).
    pub duration: Duration,
    /// Report interval of each node (30 s in the product; smaller compresses time).
    pub interval: Duration,
    /// A command is queued every this long during the window.
    pub command_every: Duration,
    /// Local source addresses the nodes' connections are spread over (127.0.0.2 …).
    pub source_addrs: u8,
    /// The nodes open their long-polls spread over this long, not all at once.
    pub ramp: Duration,
    /// A node reuses its report connection only if it was idle less than this (set it
    /// under the gateway's keep-alive; past it the gateway has closed the connection).
    pub reuse_within: Duration,
}

/// What the child control plane tells the parent (one JSON line on stdout).
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildInfo {
    ui: String,
    gateway_url: String,
    nodes_dir: PathBuf,
    database_url: String,
    tokens: Vec<String>,
}

/// The child CP's rate limits: the API's (a burst of 60 and 120 a minute per token) and
/// certificate signing's (50 a second) would make 10,000 nodes take 5 minutes to set up
/// and 100,000 nearly an hour; B3 measures the fleet, not its enrollment.
const BENCH_LIMITS: control_plane::config::Limits = control_plane::config::Limits {
    api_burst: 1_000_000,
    api_per_minute: 60_000_000,
    csr_per_sec: 100_000,
};

/// API tokens the child makes (the API allows a token a burst of 60 requests, 120 a minute).
const TOKENS: usize = 16;

/// `--b3-cp-child`: runs the control plane (SQLite in a temp dir), creates the API tokens,
/// prints [`ChildInfo`] and serves until stdin closes, then removes its temp dir.
pub fn serve_child() -> anyhow::Result<()> {
    let cp = cp::start_with(None, BENCH_LIMITS)?;
    let mut tokens = Vec::with_capacity(TOKENS);
    for i in 0..TOKENS {
        let new = control_plane::accounts::NewToken {
            name: format!("b3-{i}"),
            ..Default::default()
        };
        tokens.push(control_plane::cli::token_create(
            &cp.config,
            "bench@example.test",
            &new,
        )?);
    }
    let info = ChildInfo {
        ui: cp.ui.clone(),
        gateway_url: cp.gateway_url.clone(),
        nodes_dir: cp.config.nodes_dir.clone(),
        database_url: cp.config.database_url.clone(),
        tokens,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&info)?)?;
    out.flush()?;
    drop(out);
    let mut sink = String::new();
    while std::io::stdin().lock().read_line(&mut sink)? > 0 {
        sink.clear();
    }
    drop(cp);
    Ok(())
}

/// A tiny deterministic generator (splitmix64) for the jitter: no dependency, and a node's
/// schedule is the same from run to run.
pub struct Jitter(u64);

impl Jitter {
    /// A generator seeded for node `i`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `interval` ±20 %, uniform.
    pub fn around(&mut self, interval: Duration) -> Duration {
        interval.mul_f64(0.8 + 0.4 * self.unit())
    }
}

/// CPU time of a process in clock ticks (utime + stime, fields 14 and 15 of
/// `/proc/<pid>/stat`; the command name in field 2 may hold spaces, so count after `)`).
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the fields start at 3 (state): utime is field 14 → index 11.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `kB` figure of `/proc/<pid>/status` (e.g. `VmRSS`, `VmHWM`), in bytes.
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kb = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kb * 1024)
}

/// CPU use of `ticks` clock ticks over `secs` seconds as a share of `cores` cores, in %.
pub fn cpu_share(ticks: u64, secs: f64, cores: usize) -> f64 {
    // USER_HZ: 100 on every Linux the benchmarks run on.
    if secs <= 0.0 || cores == 0 {
        return 0.0;
    }
    ticks as f64 / 100.0 / secs / cores as f64 * 100.0
}

/// Acknowledged `(node, seq)` pairs missing from what the database holds.
pub fn lost(acked: &[Vec<i64>], stored: &[HashSet<i64>]) -> u64 {
    acked
        .iter()
        .zip(stored.iter().chain(std::iter::repeat(&HashSet::new())))
        .map(|(a, s)| a.iter().filter(|seq| !s.contains(seq)).count() as u64)
        .sum()
}

/// B1's report, from one boot (`epoch`) of the simulated node.
fn report(seq: i64, epoch: &str, hour: i64) -> Report {
    Report {
        epoch: Some(epoch.to_owned()),
        ..crate::b1::report(seq, hour)
    }
}

/// One simulated node.
struct SimNode {
    workspace_id: String,
    node_id: String,
    /// Its rustls client config (its certificate; the session store that resumption
    /// uses is shared by its two connections, as in the node's own client).
    tls: Arc<rustls::ClientConfig>,
    /// The local address its connections come from.
    source: IpAddr,
    /// When a command was queued for it and not yet seen by its long-poll.
    issued: Mutex<Option<Instant>>,
    /// Sequence numbers the CP acknowledged as accepted.
    acked: Mutex<Vec<i64>>,
}

/// Where the reports' time went (window only) and what the long-polls' connections cost
/// (whole run: the opening burst is in the warm-up).
#[derive(Default)]
struct PhaseTally {
    /// Reports on a new connection: TCP connect, TLS handshake.
    report_connect_us: Vec<u64>,
    report_handshake_us: Vec<u64>,
    /// Every report: request written to response read.
    report_request_us: Vec<u64>,
    report_new_conns: u64,
    report_resumed: u64,
    poll_connect_us: Vec<u64>,
    poll_handshake_us: Vec<u64>,
    poll_new_conns: u64,
    poll_resumed: u64,
}

impl PhaseTally {
    fn report(&mut self, p: &Phases) {
        if p.new_conn {
            self.report_new_conns += 1;
            self.report_resumed += u64::from(p.resumed);
            self.report_connect_us.push(p.connect_us);
            self.report_handshake_us.push(p.handshake_us);
        }
        self.report_request_us.push(p.request_us);
    }

    fn poll(&mut self, p: &Phases) {
        if p.new_conn {
            self.poll_new_conns += 1;
            self.poll_resumed += u64::from(p.resumed);
            self.poll_connect_us.push(p.connect_us);
            self.poll_handshake_us.push(p.handshake_us);
        }
    }
}

#[derive(Default)]
struct Tally {
    phases: Mutex<PhaseTally>,
    report_lat_us: Mutex<Vec<u64>>,
    report_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    command_lat_us: Mutex<Vec<u64>>,
    commands_issued: AtomicU64,
    command_issue_errors: AtomicU64,
    poll_errors: AtomicU64,
    polls: AtomicU64,
}

impl Tally {
    fn error(&self, counter: &AtomicU64, e: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
    }
}

/// B3's figures.
pub struct Outcome {
    /// Printed and stored as `target/bench/b3.json`.
    pub json: serde_json::Value,
    /// Whether every target was met (the targets are defined at 100,000 nodes).
    pub met: bool,
    /// Set when the run itself failed (no report acknowledged, reports lost).
    pub problem: Option<String>,
}

fn spawn_child() -> anyhow::Result<(std::process::Child, ChildInfo)> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--b3-cp-child")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("starting the control plane child")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let info: ChildInfo = serde_json::from_str(line.trim())
        .with_context(|| format!("control plane child said {line:?}"))?;
    Ok((child, info))
}

async fn create_workspaces(info: &ChildInfo, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let api = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..info.tokens.len() {
        let (api, next, token, ui) = (
            api.clone(),
            next.clone(),
            info.tokens[t].clone(),
            info.ui.clone(),
        );
        tasks.spawn(async move {
            let mut made = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return anyhow::Ok(made);
                }
                loop {
                    let resp = api
                        .post(format!("{ui}/api/v1/workspaces"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({ "name": format!("Fleet {i}") }))
                        .send()
                        .await?;
                    let status = resp.status().as_u16();
                    if status == 429 {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                    let body = resp.text().await?;
                    anyhow::ensure!(status == 201, "workspace {i}: HTTP {status}: {body}");
                    let v: serde_json::Value = serde_json::from_str(&body)?;
                    let ws = v["workspace"]["id"]
                        .as_str()
                        .context("no workspace.id")?
                        .to_owned();
                    let node = v["node"]["id"].as_str().context("no node.id")?.to_owned();
                    made.push((i, ws, node));
                    break;
                }
            }
        });
    }
    let mut all = vec![(String::new(), String::new()); n];
    while let Some(r) = tasks.join_next().await {
        for (i, ws, node) in r?? {
            all[i] = (ws, node);
        }
    }
    Ok(all)
}

async fn enroll_all(
    info: &ChildInfo,
    made: Vec<(String, String)>,
    source_addrs: u8,
) -> anyhow::Result<Vec<Arc<SimNode>>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (ws, node_id)) in made.into_iter().enumerate() {
        let (sem, nodes_dir, gw) = (
            sem.clone(),
            info.nodes_dir.clone(),
            info.gateway_url.clone(),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let path = nodes_dir.join(&node_id).join("data").join("bootstrap.json");
            let bundle = cp::wait_bundle_at(&path).await?;
            let fake = cp::enroll_at(&gw, bundle).await?;
            let source = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                2 + (i % usize::from(source_addrs.max(1))) as u8,
            ));
            anyhow::Ok((
                i,
                SimNode {
                    workspace_id: ws,
                    node_id,
                    tls: Arc::new(fake.tls_config()?),
                    source,
                    issued: Mutex::new(None),
                    acked: Mutex::new(vec![]),
                },
            ))
        });
    }
    let mut nodes: Vec<Option<Arc<SimNode>>> = Vec::new();
    nodes.resize_with(tasks.len(), || None);
    while let Some(r) = tasks.join_next().await {
        let (i, n) = r??;
        nodes[i] = Some(Arc::new(n));
    }
    nodes
        .into_iter()
        .map(|n| n.context("a node was not enrolled"))
        .collect()
}

async fn post_report(conn: &mut Conn, r: &Report) -> Result<(bool, Phases), String> {
    let body = serde_json::to_vec(r).map_err(|e| e.to_string())?;
    let (resp, phases) = conn.request("POST", "/v1/node/report", Some(&body)).await?;
    if resp.status != 200 {
        let text = String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned();
        return Err(format!("report: HTTP {}: {text}", resp.status));
    }
    let ack: ReportAck = serde_json::from_slice(&resp.body).map_err(|e| format!("bad ack: {e}"))?;
    Ok((ack.seq == r.seq && ack.accepted, phases))
}

struct Clock {
    measure_from: Instant,
    end: Instant,
}

/// The gateway's address and how long a node reuses an idle connection.
#[derive(Clone, Copy)]
struct Target {
    gw: SocketAddr,
    reuse_within: Duration,
}

impl Target {
    fn conn(&self, n: &SimNode) -> Conn {
        Conn::new(n.tls.clone(), self.gw, n.source, self.reuse_within)
    }
}

#[allow(clippy::too_many_arguments)]
async fn reporter(
    i: usize,
    n: Arc<SimNode>,
    target: Target,
    epoch: Arc<str>,
    interval: Duration,
    clock: Arc<Clock>,
    tally: Arc<Tally>,
) {
    let mut jitter = Jitter::new(i as u64);
    let hour = unix_now() / 3600 * 3600;
    let mut conn = target.conn(&n);
    tokio::time::sleep(interval.mul_f64(jitter.unit())).await;
    let mut seq = 0;
    loop {
        let t0 = Instant::now();
        if t0 >= clock.end {
            return;
        }
        seq += 1;
        let r = report(seq, &epoch, hour);
        match tokio::time::timeout(Duration::from_secs(30), post_report(&mut conn, &r)).await {
            Ok(Ok((true, phases))) => {
                n.acked.lock().unwrap_or_else(|p| p.into_inner()).push(seq);
                if t0 >= clock.measure_from {
                    let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                    tally
                        .report_lat_us
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(us);
                    tally
                        .phases
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .report(&phases);
                }
            }
            Ok(Ok((false, _))) => {
                tally.error(&tally.report_errors, format!("seq {seq} not accepted"));
            }
            Ok(Err(e)) => tally.error(&tally.report_errors, e),
            Err(_) => {
                // The connection may be mid-request: start afresh.
                conn = target.conn(&n);
                tally.error(&tally.report_errors, "report timed out after 30 s".into());
            }
        }
        tokio::time::sleep_until((t0 + jitter.around(interval)).into()).await;
    }
}

async fn poller(
    i: usize,
    n: Arc<SimNode>,
    target: Target,
    ramp: Duration,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let path = format!("/v1/node/commands?wait={MAX_COMMAND_WAIT_SECS}");
    // Long-polls are never idle long: keep the connection whatever the reuse window.
    let mut conn = Conn::new(
        n.tls.clone(),
        target.gw,
        n.source,
        Duration::from_secs(3600),
    );
    tokio::time::sleep(ramp.mul_f64(Jitter::new(!(i as u64)).unit())).await;
    while !stop.load(Ordering::Relaxed) {
        let got = async {
            let (resp, phases) = conn.request("GET", &path, None).await?;
            tally
                .phases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .poll(&phases);
            if resp.status != 200 {
                return Err(format!("poll: HTTP {}", resp.status));
            }
            serde_json::from_slice::<CommandBatch>(&resp.body).map_err(|e| format!("poll: {e}"))
        }
        .await;
        tally.polls.fetch_add(1, Ordering::Relaxed);
        let batch = match got {
            Ok(b) => b,
            Err(e) => {
                tally.error(&tally.poll_errors, e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !batch.commands.is_empty() {
            let issued = n.issued.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(t) = issued {
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally
                    .command_lat_us
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(us);
            }
        }
        for c in batch.commands {
            let ack = CommandAck {
                ok: true,
                error_code: None,
                receipt: None,
            };
            let body = serde_json::to_vec(&ack).unwrap_or_default();
            let r = conn
                .request(
                    "POST",
                    &format!("/v1/node/commands/{}/ack", c.id),
                    Some(&body),
                )
                .await;
            match r {
                Ok((resp, _)) if resp.status == 200 => {}
                Ok((resp, _)) => {
                    tally.error(&tally.poll_errors, format!("ack: HTTP {}", resp.status))
                }
                Err(e) => tally.error(&tally.poll_errors, format!("ack: {e}")),
            }
        }
    }
}

fn agent_body(k: u64) -> serde_json::Value {
    serde_json::json!({
        "name": format!("Fleet agent {k}"),
        "greeting": "Hello!",
        "instructions": "Be brief.",
        "language": "en",
        "fallback_message": "Sorry.",
        "open": "00:00",
        "close": "24:00",
        "time_zone": "UTC",
        "provider": "retrieval",
        "model": "",
        "base_url": "",
        "allowed_origins": [],
        "channels": []
    })
}

/// Queues a command every `every` during the window: an agent created in a node's
/// workspace pushes its configuration to the node.
async fn issuer(
    nodes: Arc<Vec<Arc<SimNode>>>,
    info: Arc<ChildInfo>,
    every: Duration,
    clock: Arc<Clock>,
    tally: Arc<Tally>,
) {
    let api = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => return tally.error(&tally.command_issue_errors, format!("{e:#}")),
    };
    let mut jitter = Jitter::new(0xC0DE);
    tokio::time::sleep_until(clock.measure_from.into()).await;
    let mut k = 0u64;
    // Leave the last seconds to deliver what was queued.
    while Instant::now() + Duration::from_secs(5) < clock.end {
        let t = Instant::now();
        let n = &nodes[(jitter.next_u64() % nodes.len() as u64) as usize];
        {
            let mut issued = n.issued.lock().unwrap_or_else(|p| p.into_inner());
            if issued.is_some() {
                continue;
            }
            *issued = Some(t);
        }
        k += 1;
        let token = &info.tokens[(k as usize) % info.tokens.len()];
        let r = api
            .post(format!(
                "{}/api/v1/workspaces/{}/agents",
                info.ui, n.workspace_id
            ))
            .bearer_auth(token)
            .json(&agent_body(k))
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().as_u16() == 201 => {
                tally.commands_issued.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                *n.issued.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let why = match other {
                    Ok(resp) => format!("agent create: HTTP {}", resp.status()),
                    Err(e) => format!("agent create: {e:#}"),
                };
                tally.error(&tally.command_issue_errors, why);
            }
        }
        tokio::time::sleep_until((t + every).into()).await;
    }
}

/// Nanoseconds the threads of `pid` spent runnable but waiting for a CPU (the second
/// field of each `/proc/<pid>/task/<tid>/schedstat`), summed: when it grows as fast as
/// their CPU time, the process is short of CPU, whatever its CPU share says.
fn run_delay_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Samples the child's CPU ticks, RSS and run delay, and this process's CPU ticks and run
/// delay, every second until `stop`.
async fn sampler(pid: u32, stop: Arc<AtomicBool>) -> Vec<(Instant, u64, u64, u64, (u64, u64))> {
    let mut out = vec![];
    while !stop.load(Ordering::Relaxed) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        if let (Some(t), Some(rss)) = (cpu_ticks(&stat), status_kb(&status, "VmRSS")) {
            let delays = (run_delay_ns(&pid.to_string()), run_delay_ns("self"));
            out.push((Instant::now(), t, rss, cpu_ticks(&me).unwrap_or(0), delays));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    out
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Reads the `(node_id, seq)` receipts of this run's epoch from the CP's SQLite file.
fn stored_receipts(
    database_url: &str,
    epoch: &str,
) -> anyhow::Result<HashMap<String, HashSet<i64>>> {
    let path = database_url
        .strip_prefix("sqlite://")
        .unwrap_or(database_url);
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = db.prepare("SELECT node_id, seq FROM node_reports WHERE epoch = ?1")?;
    let mut out: HashMap<String, HashSet<i64>> = HashMap::new();
    let rows = st.query_map([epoch], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (node, seq) = row?;
        out.entry(node).or_default().insert(seq);
    }
    Ok(out)
}

/// Raises this process's soft limit on open files to its hard limit (the CP child
/// inherits it) and returns `(soft, hard)` after; `None` when the limit cannot be read.
pub fn raise_nofile() -> Option<(u64, u64)> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    let l = getrlimit(Resource::Nofile);
    Some((l.current?, l.maximum.unwrap_or(u64::MAX)))
}

/// Open files B3 needs per process for `nodes`: a long-poll connection per node, a report
/// connection for those inside the reuse window, and some slack for the rest.
pub fn files_needed(nodes: usize, interval: Duration, reuse_within: Duration) -> u64 {
    let reporting = if reuse_within >= interval.mul_f64(0.8) {
        nodes as f64
    } else {
        // At most this share of the nodes holds a report connection at a time.
        nodes as f64 * ((reuse_within.as_secs_f64() + 1.0) / interval.as_secs_f64()).min(1.0)
    };
    nodes as u64 + reporting.ceil() as u64 + 256
}

/// Runs B3.
pub async fn run(s: &Settings, run: &RunInfo) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let need = files_needed(s.nodes, s.interval, s.reuse_within);
    match raise_nofile() {
        Some((soft, hard)) if soft < need => println!(
            "B3: open files limit {soft} (hard {hard}) is below the ~{need} each process needs for {} nodes: expect connection errors (raise the hard limit as root: `ulimit -Hn`)",
            s.nodes
        ),
        Some((soft, _)) => println!("B3: open files limit {soft} (need ~{need})"),
        None => {}
    }
    let (mut child, info) = tokio::task::spawn_blocking(spawn_child).await??;
    let pid = child.id();
    let info = Arc::new(info);
    let result = fleet(s, run, pid, info.clone(), started).await;
    // Closing stdin stops the child, which removes its temp dir.
    drop(child.stdin.take());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    result
}

async fn fleet(
    s: &Settings,
    run: &RunInfo,
    pid: u32,
    info: Arc<ChildInfo>,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let made = create_workspaces(&info, s.nodes).await?;
    let created_in = started.elapsed();
    let nodes = Arc::new(enroll_all(&info, made, s.source_addrs).await?);
    let enrolled_in = started.elapsed();
    println!(
        "B3 setup: control plane in a child process (pid {pid}, SQLite), {} workspaces created in {:.0} s, {} nodes enrolled by {:.0} s",
        nodes.len(),
        created_in.as_secs_f64(),
        nodes.len(),
        enrolled_in.as_secs_f64()
    );

    let t0 = Instant::now();
    let clock = Arc::new(Clock {
        measure_from: t0 + s.interval,
        end: t0 + s.interval + s.duration,
    });
    let target = Target {
        gw: info
            .gateway_url
            .trim_start_matches("https://")
            .parse()
            .with_context(|| format!("gateway address {}", info.gateway_url))?,
        reuse_within: s.reuse_within,
    };
    let epoch: Arc<str> = format!("b3-{}", unix_now()).into();
    let tally = Arc::new(Tally::default());
    let stop_polls = Arc::new(AtomicBool::new(false));
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let sampling = tokio::spawn(sampler(pid, stop_sampler.clone()));
    let mut reporters = tokio::task::JoinSet::new();
    let mut pollers = tokio::task::JoinSet::new();
    for (i, n) in nodes.iter().enumerate() {
        reporters.spawn(reporter(
            i,
            n.clone(),
            target,
            epoch.clone(),
            s.interval,
            clock.clone(),
            tally.clone(),
        ));
        pollers.spawn(poller(
            i,
            n.clone(),
            target,
            s.ramp,
            stop_polls.clone(),
            tally.clone(),
        ));
    }
    let issuing = tokio::spawn(issuer(
        nodes.clone(),
        info.clone(),
        s.command_every,
        clock.clone(),
        tally.clone(),
    ));
    tokio::time::sleep_until(clock.measure_from.into()).await;
    let load_start = loadavg();
    while reporters.join_next().await.is_some() {}
    let load_end = loadavg();
    let _ = issuing.await;
    stop_polls.store(true, Ordering::Relaxed);
    stop_sampler.store(true, Ordering::Relaxed);
    pollers.abort_all();
    while pollers.join_next().await.is_some() {}
    let samples = sampling.await.unwrap_or_default();

    // CPU over the measurement window; the worst 10 s inside it.
    let window: Vec<_> = samples
        .iter()
        .filter(|(t, ..)| *t >= clock.measure_from && *t <= clock.end)
        .collect();
    let cpu_mean = match (window.first(), window.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            cpu_share(b.1 - a.1, (b.0 - a.0).as_secs_f64(), run.cores)
        }
        _ => 0.0,
    };
    let sim_cpu = match (window.first(), window.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            cpu_share(b.3 - a.3, (b.0 - a.0).as_secs_f64(), run.cores)
        }
        _ => 0.0,
    };
    // Seconds of waiting for a CPU per second of the window, summed over threads.
    let (cp_wait, sim_wait) = match (window.first(), window.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let secs = (b.0 - a.0).as_secs_f64();
            (
                b.4 .0.saturating_sub(a.4 .0) as f64 / 1e9 / secs,
                b.4 .1.saturating_sub(a.4 .1) as f64 / 1e9 / secs,
            )
        }
        _ => (0.0, 0.0),
    };
    let cpu_worst_10s = window
        .windows(11)
        .map(|w| {
            cpu_share(
                w[10].1 - w[0].1,
                (w[10].0 - w[0].0).as_secs_f64(),
                run.cores,
            )
        })
        .fold(cpu_mean, f64::max);
    let rss_max = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status_kb(&status, "VmHWM").unwrap_or(0);

    let stored = {
        let (url, epoch) = (info.database_url.clone(), epoch.to_string());
        tokio::task::spawn_blocking(move || stored_receipts(&url, &epoch)).await??
    };
    let acked: Vec<Vec<i64>> = nodes
        .iter()
        .map(|n| n.acked.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .collect();
    let stored_per_node: Vec<HashSet<i64>> = nodes
        .iter()
        .map(|n| stored.get(&n.node_id).cloned().unwrap_or_default())
        .collect();
    let acked_total: u64 = acked.iter().map(|a| a.len() as u64).sum();
    let lost_reports = lost(&acked, &stored_per_node);

    let mut rep = std::mem::take(
        &mut *tally
            .report_lat_us
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    rep.sort_unstable();
    let mut cmd = std::mem::take(
        &mut *tally
            .command_lat_us
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    cmd.sort_unstable();
    let issued = tally.commands_issued.load(Ordering::Relaxed);
    let undelivered = nodes
        .iter()
        .filter(|n| n.issued.lock().unwrap_or_else(|p| p.into_inner()).is_some())
        .count() as u64;
    let ms = |us: u64| round2(us as f64 / 1000.0);
    let (rep_p50, rep_p99) = (ms(percentile(&rep, 0.5)), ms(percentile(&rep, 0.99)));
    let (cmd_p50, cmd_p99) = (ms(percentile(&cmd, 0.5)), ms(percentile(&cmd, 0.99)));
    let gib = 1u64 << 30;

    let mut misses = vec![];
    if cpu_mean >= 50.0 {
        misses.push(format!(
            "CP CPU {cpu_mean:.1} % of {} cores (target < 50 %)",
            run.cores
        ));
    }
    if rep_p99 >= 50.0 {
        misses.push(format!("report p99 {rep_p99} ms (target < 50 ms)"));
    }
    if hwm.max(rss_max) >= gib {
        misses.push("CP RSS ≥ 1 GiB".into());
    }
    if lost_reports > 0 {
        misses.push(format!(
            "{lost_reports} acknowledged reports missing from the database"
        ));
    }
    if cmd_p99 >= 2000.0 || undelivered > 0 {
        misses.push(format!(
            "command p99 {cmd_p99} ms, {undelivered} undelivered (target < 2 s, all delivered)"
        ));
    }
    let problem = if acked_total == 0 {
        Some(format!(
            "no report was acknowledged (first error: {})",
            tally
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
                .unwrap_or("none")
        ))
    } else if lost_reports > 0 {
        Some(format!(
            "{lost_reports} acknowledged reports are not in the database"
        ))
    } else {
        None
    };
    let window_secs = s.duration.as_secs_f64();
    let met = misses.is_empty();
    let phases = phase_figures(&mut tally.phases.lock().unwrap_or_else(|p| p.into_inner()));
    let json = serde_json::json!({
        "id": "B3",
        "smoke": run.smoke,
        "machine": run.machine,
        "nodes": nodes.len(),
        "interval_secs": s.interval.as_secs_f64(),
        "window_secs": window_secs,
        "setup_secs": round2(enrolled_in.as_secs_f64()),
        "offered_reports_per_sec": round2(nodes.len() as f64 / s.interval.as_secs_f64()),
        "reports_in_window": rep.len(),
        "reports_per_sec": round2(rep.len() as f64 / window_secs),
        "report_p50_ms": rep_p50,
        "report_p99_ms": rep_p99,
        "report_errors": tally.report_errors.load(Ordering::Relaxed),
        "acked": acked_total,
        "lost": lost_reports,
        "cp_cpu_pct_of_all_cores": round2(cpu_mean),
        "cp_cpu_pct_worst_10s": round2(cpu_worst_10s),
        "simulator_cpu_pct_of_all_cores": round2(sim_cpu),
        "cp_run_queue_wait_per_sec": round2(cp_wait),
        "simulator_run_queue_wait_per_sec": round2(sim_wait),
        "cp_rss_max_mib": round2(rss_max as f64 / 1048576.0),
        "cp_rss_hwm_mib": round2(hwm as f64 / 1048576.0),
        "commands_issued": issued,
        "commands_delivered": cmd.len(),
        "commands_undelivered": undelivered,
        "command_issue_errors": tally.command_issue_errors.load(Ordering::Relaxed),
        "command_p50_ms": cmd_p50,
        "command_p99_ms": cmd_p99,
        "polls": tally.polls.load(Ordering::Relaxed),
        "poll_errors": tally.poll_errors.load(Ordering::Relaxed),
        "phases": phases,
        "ramp_secs": s.ramp.as_secs_f64(),
        "reuse_within_secs": s.reuse_within.as_secs_f64(),
        "first_error": tally.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "target": "at 100,000 nodes: CP CPU < 50 % of 2 cores, report p99 < 50 ms, RSS < 1 GiB, zero lost, command p99 < 2 s",
        "met": met,
        "misses": misses,
    });
    Ok(Outcome { met, json, problem })
}

/// p50/p99/max in ms of each phase, and how many connections were new and resumed.
fn phase_figures(p: &mut PhaseTally) -> serde_json::Value {
    let fig = |v: &mut Vec<u64>| {
        v.sort_unstable();
        serde_json::json!({
            "n": v.len(),
            "p50_ms": round2(percentile(v, 0.5) as f64 / 1000.0),
            "p99_ms": round2(percentile(v, 0.99) as f64 / 1000.0),
            "max_ms": round2(v.last().copied().unwrap_or(0) as f64 / 1000.0),
        })
    };
    serde_json::json!({
        "report_connect": fig(&mut p.report_connect_us),
        "report_handshake": fig(&mut p.report_handshake_us),
        "report_request": fig(&mut p.report_request_us),
        "report_new_conns": p.report_new_conns,
        "report_resumed": p.report_resumed,
        "poll_connect": fig(&mut p.poll_connect_us),
        "poll_handshake": fig(&mut p.poll_handshake_us),
        "poll_new_conns": p.poll_new_conns,
        "poll_resumed": p.poll_resumed,
    })
}

/// Prints B3's figures.
pub fn print(o: &Outcome) {
    let j = &o.json;
    println!();
    println!(
        "B3 — fleet soak: {} nodes, a report every {} s ±20 % each ({} reports/s offered), long-polls, commands; window {} s",
        j["nodes"], j["interval_secs"], j["offered_reports_per_sec"], j["window_secs"]
    );
    println!(
        "  reports: {} in window ({} /s), p50 {} ms, p99 {} ms, errors {}; acked {} lost {}",
        j["reports_in_window"],
        j["reports_per_sec"],
        j["report_p50_ms"],
        j["report_p99_ms"],
        j["report_errors"],
        j["acked"],
        j["lost"]
    );
    println!(
        "  CP (child process): CPU {} % of all cores (worst 10 s {} %), RSS max {} MiB (VmHWM {} MiB)",
        j["cp_cpu_pct_of_all_cores"], j["cp_cpu_pct_worst_10s"], j["cp_rss_max_mib"], j["cp_rss_hwm_mib"]
    );
    println!(
        "  simulator (this process, the nodes' side): CPU {} % of all cores",
        j["simulator_cpu_pct_of_all_cores"]
    );
    println!(
        "  waiting for a CPU (runnable, not running; s per s, summed over threads): CP {}, simulator {}",
        j["cp_run_queue_wait_per_sec"], j["simulator_run_queue_wait_per_sec"]
    );
    println!(
        "  commands: {} queued, {} delivered, {} undelivered, p50 {} ms, p99 {} ms; polls {} (errors {})",
        j["commands_issued"],
        j["commands_delivered"],
        j["commands_undelivered"],
        j["command_p50_ms"],
        j["command_p99_ms"],
        j["polls"],
        j["poll_errors"]
    );
    let ph = &j["phases"];
    let f = |k: &str| {
        format!(
            "p50 {} / p99 {} / max {} ms (n {})",
            ph[k]["p50_ms"], ph[k]["p99_ms"], ph[k]["max_ms"], ph[k]["n"]
        )
    };
    println!(
        "  report phases: new connections {} (resumed {}); TCP connect {}; TLS handshake {}; request {}",
        ph["report_new_conns"],
        ph["report_resumed"],
        f("report_connect"),
        f("report_handshake"),
        f("report_request")
    );
    println!(
        "  long-poll connections (whole run, opened over {} s): {} (resumed {}); TCP connect {}; TLS handshake {}",
        j["ramp_secs"],
        ph["poll_new_conns"],
        ph["poll_resumed"],
        f("poll_connect"),
        f("poll_handshake")
    );
    println!(
        "  load average: {} at the window's start, {} at its end",
        j["loadavg_start"], j["loadavg_end"]
    );
    if let Some(e) = j["first_error"].as_str() {
        println!("  first error: {e}");
    }
    println!(
        "  {}: {}",
        if o.met { "MET" } else { "NOT MET" },
        j["misses"]
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent_and_spreads() {
        let mut j = Jitter::new(7);
        let base = Duration::from_secs(30);
        let d: Vec<f64> = (0..10_000).map(|_| j.around(base).as_secs_f64()).collect();
        assert!(d.iter().all(|v| (24.0..36.0).contains(v)));
        let (lo, hi) = d
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
        assert!(lo < 24.5 && hi > 35.5, "covers the range: {lo}..{hi}");
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        assert!((mean - 30.0).abs() < 0.2, "centred: {mean}");
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        // A command name with spaces and a parenthesis, as `comm` may hold.
        let stat = "4242 (control (plane) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1000 1000000 2000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
        assert!(
            (cpu_share(100, 1.0, 2) - 50.0).abs() < 1e-9,
            "1 s of CPU per second is half of 2 cores"
        );
    }

    #[test]
    fn status_figures_are_bytes() {
        let status = "Name:\toutpost\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(status_kb(status, "VmRSS"), Some(100 << 20));
        assert_eq!(status_kb(status, "VmHWM"), Some(200 << 20));
        assert_eq!(status_kb(status, "VmRS"), None);
    }

    #[test]
    fn files_needed_counts_a_long_poll_per_node_and_the_open_report_connections() {
        let thirty = Duration::from_secs(30);
        // Reports every 30 s on connections kept 4 s: a sixth of the nodes hold one.
        assert_eq!(
            files_needed(10_000, thirty, Duration::from_secs(4)),
            10_000 + 1_667 + 256
        );
        // Connections kept across the interval: two per node.
        assert_eq!(
            files_needed(10_000, thirty, Duration::from_secs(60)),
            20_256
        );
    }

    #[test]
    fn lost_counts_acknowledged_reports_the_database_lacks() {
        let acked = vec![vec![1, 2, 3], vec![1, 2], vec![5]];
        let stored = vec![HashSet::from([1, 2, 3, 4]), HashSet::from([2])];
        assert_eq!(
            lost(&acked, &stored),
            2,
            "node 1's seq 1 and node 2's seq 5"
        );
    }
}
