//! B6 — workspace export: `Exports::run` (page through `node.db`, decrypt every message
//! with its contact's key, write CSV/JSON, deflate level 1, SHA-256 per file, encrypt
//! with age, fsync) against `zip -1` compressing the same plaintext files from disk.
//! Throughput is plaintext MB (the files the zip holds, uncompressed) per second on
//! both sides. Targets: ≥ 0.7× the reference MB/s, and the process's peak RSS during
//! the export < 64 MiB (streaming).
//!
//! The database is filled by a child process (this binary with the hidden `--b6-seed`
//! flag), so the export starts in a process that never held the seeding's memory and
//! its peak RSS is the export's own.

use crate::output::{self, RunInfo};
use agent_node::domain::content::{Content, Inbound};
use agent_node::domain::exports::{Exports, Scope};
use agent_node::platform::keys::MasterKey;
use agent_node::platform::store::Store;
use anyhow::Context as _;
use outpost_protocol::{NodeId, WorkspaceInfo};
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const MASTER: [u8; 32] = [6; 32];
const CONTACTS: usize = 5_000;
const MIN_RATIO: f64 = 0.7;
const MAX_PEAK_RSS: u64 = 64 * 1024 * 1024;

/// What one B6 run found.
pub struct B6Result {
    /// Subject MB/s.
    pub subject: f64,
    /// Reference MB/s (`zip -1`), when `zip` is installed.
    pub reference: Option<f64>,
    /// Peak RSS of the process during the export, bytes.
    pub peak_rss: u64,
    /// Whether both targets are met.
    pub met: bool,
}

/// Fills `dir/node.db` with `messages` messages (the child process's work).
pub fn seed(dir: &Path, messages: usize) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(&dir.join("node.db"))?);
    let content = Content::new(store.clone(), &MasterKey::from_bytes(MASTER));
    let senders: Vec<String> = (0..CONTACTS).map(|i| format!("+4915112{i:05}")).collect();
    let bodies: Vec<String> = (0..5_000)
        .map(|i| {
            format!(
                "Hi, do you still have the blue jacket in size M? I ordered number {i} last week \
                 and would like to exchange it."
            )
        })
        .collect();
    let mut done = 0;
    while done < messages {
        let n = (messages - done).min(bodies.len());
        let items: Vec<Inbound<'_>> = bodies[..n]
            .iter()
            .enumerate()
            .map(|(i, body)| Inbound {
                channel: "whatsapp",
                external_id: &senders[(done + i) % CONTACTS],
                name: None,
                agent_id: "agent-1",
                body,
            })
            .collect();
        content.ingest_batch(&items)?;
        done += n;
    }
    store.close();
    Ok(())
}

fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs B6 in a child process (`--only b6`), which prints its section and writes
/// `target/bench/b6.json`; reads the figures back from that file.
pub fn run_in_child(smoke: bool, messages: usize) -> anyhow::Result<B6Result> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["--only", "b6", "--export-messages", &messages.to_string()]);
    if smoke {
        cmd.arg("--smoke");
    }
    let status = cmd.status().context("starting the B6 process")?;
    anyhow::ensure!(status.success(), "the B6 process failed");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(output::path("b6"))?)?;
    Ok(B6Result {
        subject: v["subject_mb_per_s"].as_f64().unwrap_or(0.0),
        reference: v["reference_mb_per_s"].as_f64(),
        peak_rss: v["peak_rss_bytes"].as_u64().unwrap_or(0),
        met: v["met"].as_bool().unwrap_or(false),
    })
}

/// Runs B6, prints its section and writes `target/bench/b6.json`.
pub fn run(run: &RunInfo, messages: usize) -> anyhow::Result<B6Result> {
    println!();
    println!("B6 — workspace export of {messages} messages vs `zip -1` of the same plaintext");
    let dir = tempfile::tempdir().context("tempdir")?;
    let seeding = Instant::now();
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--b6-seed")
        .arg(dir.path())
        .arg("--b6-messages")
        .arg(messages.to_string())
        .status()
        .context("starting the seeding process")?;
    anyhow::ensure!(status.success(), "seeding the node database failed");
    println!(
        "  seeded {messages} messages from {CONTACTS} contacts in {:.1} s (child process)",
        seeding.elapsed().as_secs_f64()
    );

    let store = Arc::new(Store::open(&dir.path().join("node.db"))?);
    let exports = Exports::new(
        store.clone(),
        Arc::new(MasterKey::from_bytes(MASTER)),
        NodeId("bench-node".into()),
        WorkspaceInfo {
            id: "ws".into(),
            slug: "bench".into(),
            name: "Bench".into(),
        },
    );
    let id = exports.create(&Scope::Workspace, 3600, "bench")?;
    let rss_before = status_bytes("VmRSS:");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    exports.run(&id, &Scope::Workspace)?;
    let subject_secs = t.elapsed().as_secs_f64();
    let peak_rss = status_bytes("VmHWM:");

    // The plaintext the export holds, written out for the reference.
    let mut zip_bytes = Vec::new();
    exports.open(&id)?.read_to_end(&mut zip_bytes)?;
    let zip_size = zip_bytes.len();
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir(&plain_dir)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))?;
    let mut plain_bytes = 0u64;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i)?;
        let name = f.enclosed_name().context("a file name in the export")?;
        let mut out = std::fs::File::create(plain_dir.join(&name))?;
        plain_bytes += std::io::copy(&mut f, &mut out)?;
    }
    drop(archive);
    let mb = plain_bytes as f64 / 1e6;
    let subject = mb / subject_secs;

    // Reference: zip -1 over the same files (now in the page cache).
    let reference = match std::process::Command::new("zip").arg("-v").output() {
        Ok(o) if o.status.success() => {
            let t = Instant::now();
            let status = std::process::Command::new("zip")
                .current_dir(&plain_dir)
                .args(["-1", "-q", "-r", "../reference.zip", "."])
                .status()?;
            anyhow::ensure!(status.success(), "zip -1 failed");
            Some(mb / t.elapsed().as_secs_f64())
        }
        _ => None,
    };

    let ratio = reference.map(|r| subject / r);
    let met = ratio.is_some_and(|r| r >= MIN_RATIO) && peak_rss < MAX_PEAK_RSS;
    println!(
        "  export: {mb:.1} MB of plaintext in {subject_secs:.2} s = {subject:.1} MB/s; zip {:.1} MB",
        zip_size as f64 / 1e6
    );
    match reference {
        Some(r) => println!(
            "  zip -1: {r:.1} MB/s → ratio {:.2}× (target ≥ {MIN_RATIO}×)",
            subject / r
        ),
        None => println!("  zip -1: not installed here, no reference ratio"),
    }
    println!(
        "  RSS: {:.1} MiB before, peak {:.1} MiB during the export (target < 64 MiB)",
        rss_before as f64 / 1048576.0,
        peak_rss as f64 / 1048576.0
    );
    output::write_json(
        "b6",
        &serde_json::json!({
            "id": "B6",
            "messages": messages,
            "plaintext_mb": mb,
            "zip_mb": zip_size as f64 / 1e6,
            "subject_mb_per_s": subject,
            "reference_mb_per_s": reference,
            "ratio": ratio,
            "rss_before_bytes": rss_before,
            "peak_rss_bytes": peak_rss,
            "met": met,
            "smoke": run.smoke,
            "machine": run.machine,
        }),
    )?;
    Ok(B6Result {
        subject,
        reference,
        peak_rss,
        met,
    })
}
