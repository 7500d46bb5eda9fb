//! Outpost benchmarks B1 (report ingest over mTLS), B2 (mTLS handshakes with the
//! serial check), B4 (the node's message pipeline), B5 (knowledge-base retrieval) and B6
//! (workspace export), each a ratio against a reference
//! measured in the same run on the same machine (docs: `bench/README.md`). `--smoke` runs for a few seconds only, to prove the
//! benchmarks work; no wall-clock figure is ever asserted. The process exits non-zero only
//! when a benchmark could not run, never because a target was missed.

#![allow(clippy::print_stdout)]

mod b1;
mod b2;
mod b3;
mod b4;
mod b5;
mod b6;
mod b7;
mod cp;
mod load;
mod output;
mod wire;

use clap::{Parser, ValueEnum};
use output::{Comparison, RunInfo};
use std::time::Duration;

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Which {
    B1,
    B2,
    B3,
    B4,
    B5,
    B6,
    B7,
}

/// Outpost benchmarks B1 (report ingest) and B2 (mTLS handshakes). Full run:
/// `cargo run --release -p outpost-bench`; CI: `… -- --smoke`.
#[derive(Parser)]
struct Args {
    /// Short run for CI: proves the benchmarks work; the figures are not measurements.
    #[arg(long)]
    smoke: bool,
    /// Run only this benchmark.
    #[arg(long, value_enum)]
    only: Option<Which>,
    /// Seconds of each measurement window [default: 10; smoke: 2]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration_secs: Option<u64>,
    /// Simulated nodes (workspaces enrolled) [default: 20; smoke: 4]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    nodes: Option<u64>,
    /// B3: each simulated node's report interval in seconds (the product's is 30; a
    /// smaller one compresses time: N nodes at 3 s offer the report rate of 10·N at 30 s,
    /// with a tenth of the connections) [default: 30; smoke: 2]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=300))]
    interval_secs: Option<u64>,
    /// B3: queue a command (an agent created in a random node's workspace) every N ms
    /// during the window [default: 500]
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    command_every_ms: Option<u64>,
    /// B3: spread the nodes' connections over this many local source addresses
    /// (127.0.0.2 …), each with its own ephemeral ports [default: 8]
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=250))]
    source_addrs: Option<u8>,
    /// B3: the nodes open their long-polls spread over this many seconds, as a fleet
    /// does, not in one burst [default: the report interval]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3600))]
    ramp_secs: Option<u64>,
    /// B3: a node reuses its report connection only if it was idle less than this many
    /// seconds; keep it under the gateway's keep-alive [default: 4, under its 5 s]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3600))]
    reuse_within_secs: Option<u64>,
    /// Concurrent client tasks, for both B1 and B2 [default: B1 64, B2 16; smoke: B1 8, B2 4]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: Option<u64>,
    /// B5: documents in the knowledge base [default: 10000; smoke: 300]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    kb_docs: Option<u64>,
    /// B5: queries per round [default: 1000; smoke: 100]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    kb_queries: Option<u64>,
    /// B6: messages in the exported workspace [default: 1000000; smoke: 20000]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    export_messages: Option<u64>,
    /// B1/B2: the control plane's database, e.g. `postgres://postgres@127.0.0.1:55433/bench`
    /// (needs `--features postgres`) [default: SQLite in a temp dir]
    #[arg(long)]
    database_url: Option<String>,
    /// Internal: fill `<dir>/node.db` for B6 in a child process, then exit.
    #[arg(long, hide = true)]
    b6_seed: Option<std::path::PathBuf>,
    /// B7: workspaces the signed-in user is a member of (the rest of `--nodes` are other
    /// users') [default: 1000; smoke: 20]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    b7_workspaces: Option<u64>,
    /// Internal: run the control plane for B3 in this (child) process.
    #[arg(long, hide = true)]
    b3_cp_child: bool,
    /// Internal: how many messages `--b6-seed` writes.
    #[arg(long, hide = true, default_value_t = 0)]
    b6_messages: usize,
    /// Slices each window is split into, alternating gateway and reference so background
    /// load falls on both alike [default: 3; smoke: 1]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
}

/// Resolved run parameters.
pub struct Settings {
    /// Measurement window of each side.
    pub duration: Duration,
    /// Warm-up before each side's first slice (not counted).
    pub warmup: Duration,
    /// Slices each window is split into, alternating subject and reference.
    pub rounds: u32,
    /// Nodes to enroll.
    pub nodes: usize,
    /// `--nodes` as given (B3 has its own default).
    pub nodes_given: Option<usize>,
    /// B1 client tasks.
    pub b1_concurrency: usize,
    /// B2 client tasks.
    pub b2_concurrency: usize,
}

impl Settings {
    fn from_args(a: &Args) -> Self {
        let pick = |given: Option<u64>, full: usize, smoke: usize| {
            given.map_or(if a.smoke { smoke } else { full }, |v| {
                usize::try_from(v).unwrap_or(full)
            })
        };
        Self {
            duration: Duration::from_secs(a.duration_secs.unwrap_or(if a.smoke { 2 } else { 10 })),
            warmup: if a.smoke {
                Duration::from_millis(300)
            } else {
                Duration::from_secs(2)
            },
            rounds: a.rounds.unwrap_or(if a.smoke { 1 } else { 3 }),
            nodes: pick(a.nodes, 20, 4),
            nodes_given: a.nodes.and_then(|v| usize::try_from(v).ok()),
            b1_concurrency: pick(a.concurrency, 64, 8),
            b2_concurrency: pick(a.concurrency, 16, 4),
        }
    }

    /// The load plan of a benchmark with `concurrency` client tasks.
    pub fn plan(&self, concurrency: usize) -> load::Plan {
        load::Plan {
            concurrency,
            warmup: self.warmup,
            rewarm: self.warmup.min(Duration::from_millis(500)),
            window: self.duration,
            rounds: self.rounds,
        }
    }
}

/// Checks that a comparison actually ran; returns why not.
fn could_not_run(c: &Comparison, smoke: bool) -> Option<String> {
    for (label, o) in [
        (c.subject_label, &c.subject),
        (c.reference_label, &c.reference),
    ] {
        if o.ok == 0 {
            return Some(format!(
                "{}: {label} completed no request (first error: {})",
                c.id,
                o.first_error.as_deref().unwrap_or("none")
            ));
        }
        // In smoke mode the load is light: any error means something is broken.
        if smoke && o.errors > 0 {
            return Some(format!(
                "{}: {label} had {} errors in smoke mode (first: {})",
                c.id,
                o.errors,
                o.first_error.as_deref().unwrap_or("?")
            ));
        }
    }
    None
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.b6_seed {
        return b6::seed(dir, args.b6_messages);
    }
    // Plain-HTTP reqwest clients still build a rustls config: make the default ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.b3_cp_child {
        return tokio::task::spawn_blocking(b3::serve_child).await?;
    }
    let s = Settings::from_args(&args);
    let run = RunInfo::collect(args.smoke);
    let want = |w: Which| args.only.is_none_or(|o| o == w);

    println!(
        "Outpost benchmarks ({}) — every figure is a ratio against a reference measured in this run",
        if args.smoke {
            "SMOKE: proves they run, not a measurement"
        } else {
            "full run"
        }
    );
    println!("machine: {}", run.machine);

    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut results = Vec::new();
    // B1 and B2 need the control plane; B4 and B5 run on the node's database alone.
    if want(Which::B1) || want(Which::B2) {
        let cp = cp::start(args.database_url.clone())?;
        // B2 only needs one enrolled node.
        let n = if want(Which::B1) { s.nodes } else { 1 };
        let nodes = cp::enroll_nodes(&cp, n).await?;
        println!(
        "setup: control plane in-process (manual provisioner, {}), {} nodes enrolled in {:.1} s",
        cp.backend.split_whitespace().next().unwrap_or("unknown"),
        nodes.len(),
        started.elapsed().as_secs_f64()
    );

        if want(Which::B1) {
            results.push(("b1", b1::run(&cp, &nodes, &s).await?));
        }
        if want(Which::B2) {
            results.push(("b2", b2::run(&cp, &nodes, &s, run.cores).await?));
        }
    }
    for (name, c) in &results {
        c.print(&run);
        let path = output::write_json(name, &c.to_json(&run))?;
        println!("  written: {}", path.display());
        if let Some(why) = could_not_run(c, args.smoke) {
            failures.push(why);
        }
    }

    // B3 only when asked for: it enrolls thousands of nodes and soaks for minutes.
    let b3 = if args.only == Some(Which::B3) {
        let interval_secs = args
            .interval_secs
            .unwrap_or(if args.smoke { 2 } else { 30 });
        let b3s = b3::Settings {
            nodes: s.nodes_given.unwrap_or(if args.smoke { 20 } else { 1000 }),
            duration: s.duration,
            interval: std::time::Duration::from_secs(interval_secs),
            command_every: std::time::Duration::from_millis(args.command_every_ms.unwrap_or(500)),
            source_addrs: args.source_addrs.unwrap_or(8),
            ramp: std::time::Duration::from_secs(args.ramp_secs.unwrap_or(interval_secs)),
            reuse_within: std::time::Duration::from_secs(args.reuse_within_secs.unwrap_or(4)),
        };
        let r = b3::run(&b3s, &run).await?;
        b3::print(&r);
        let path = output::write_json("b3", &r.json)?;
        println!("  written: {}", path.display());
        if let Some(p) = &r.problem {
            failures.push(format!("B3: {p}"));
        }
        Some(r)
    } else {
        None
    };

    // B7 only when asked for: it seeds tens of thousands of rows.
    if args.only == Some(Which::B7) {
        let nodes = s
            .nodes_given
            .unwrap_or(if args.smoke { 50 } else { 10_000 });
        let b7s = b7::Settings {
            workspaces: args
                .b7_workspaces
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(if args.smoke { 20 } else { 1000 })
                .min(nodes),
            nodes,
            requests: if args.smoke { 10 } else { 200 },
        };
        let r = b7::run(&b7s).await?;
        b7::print(&r, &b7s);
        let path = output::write_json("b7", &b7::to_json(&r, &b7s, &run))?;
        println!("  written: {}", path.display());
        println!(
            "B7 {}",
            if r.met {
                "MET"
            } else {
                "NOT MET (p99 < 20 ms on every page)"
            }
        );
        if let Some(p) = &r.problem {
            failures.push(format!("B7: {p}"));
        }
    }

    let b4 = if want(Which::B4) {
        let (info, window, rounds) = (run.clone(), s.duration, s.rounds.max(2));
        Some(tokio::task::spawn_blocking(move || b4::run(&info, window, rounds)).await??)
    } else {
        None
    };

    let b5 = if want(Which::B5) {
        let pick = |v: Option<u64>, full: usize, smoke: usize| {
            v.map_or(if args.smoke { smoke } else { full }, |v| {
                usize::try_from(v).unwrap_or(full)
            })
        };
        let (docs, queries) = (
            pick(args.kb_docs, 10_000, 300),
            pick(args.kb_queries, 1000, 100),
        );
        let (info, rounds) = (run.clone(), s.rounds.max(2));
        let r =
            tokio::task::spawn_blocking(move || b5::run(&info, docs, queries, rounds)).await??;
        if let Some(p) = &r.problem {
            failures.push(format!("B5: {p}"));
        }
        Some(r)
    } else {
        None
    };

    let b6 = if want(Which::B6) {
        let messages = args
            .export_messages
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(if args.smoke { 20_000 } else { 1_000_000 });
        let info = run.clone();
        if args.only == Some(Which::B6) {
            Some(tokio::task::spawn_blocking(move || b6::run(&info, messages)).await??)
        } else {
            // In a process of its own, so its RSS is the export's and not what the
            // benchmarks before it left behind.
            Some(
                tokio::task::spawn_blocking(move || b6::run_in_child(args.smoke, messages))
                    .await??,
            )
        }
    } else {
        None
    };

    println!();
    println!(
        "{:<4} {:>16} {:>16} {:>8}  {:<52} status",
        "id", "subject/s", "reference/s", "ratio", "target"
    );
    for (_, c) in &results {
        println!(
            "{:<4} {:>16.0} {:>16.0} {:>7.2}×  {:<52} {}",
            c.id,
            c.subject.per_sec(),
            c.reference.per_sec(),
            c.ratio(),
            c.target(),
            if c.misses(&run).is_empty() {
                "MET"
            } else {
                "NOT MET"
            }
        );
    }
    if let Some(r) = &b3 {
        println!(
            "{:<4} {:>16} {:>16} {:>8}  {:<52} {}",
            "B3",
            format!("{} nodes", r.json["nodes"]),
            "—",
            "—",
            "CPU < 50 %, p99 < 50 ms, RSS < 1 GiB, 0 lost, cmd < 2 s",
            if r.met { "MET" } else { "NOT MET" }
        );
    }
    if let Some(r) = &b4 {
        println!(
            "{:<4} {:>16.0} {:>16.0} {:>7.2}×  {:<52} {}",
            "B4",
            r.subject.2,
            r.reference.2,
            r.subject.2 / r.reference.2.max(f64::MIN_POSITIVE),
            format!(
                "p99 < 5 ms (got {:.2} ms), ≥ 1,000 msg/s",
                r.subject.1 / 1000.0
            ),
            if r.met { "MET" } else { "NOT MET" }
        );
    }
    if let Some(r) = &b5 {
        println!(
            "{:<4} {:>13.3} ms {:>13.3} ms {:>7.2}×  {:<52} {}",
            "B5",
            r.subject.1 / 1000.0,
            r.reference.1 / 1000.0,
            r.ratio,
            "≤ 1.2× reference p99 (columns: p99 latency)",
            if r.met { "MET" } else { "NOT MET" }
        );
    }
    if let Some(r) = &b6 {
        println!(
            "{:<4} {:>11.1} MB/s {:>11} MB/s {:>7}  {:<52} {}",
            "B6",
            r.subject,
            r.reference.map_or("—".to_owned(), |v| format!("{v:.1}")),
            r.reference
                .map_or("—".to_owned(), |v| format!("{:.2}×", r.subject / v)),
            format!(
                "≥ 0.7× zip -1, peak RSS < 64 MiB (got {:.1} MiB)",
                r.peak_rss as f64 / 1048576.0
            ),
            if r.met { "MET" } else { "NOT MET" }
        );
    }
    if args.smoke {
        println!("smoke mode: windows are too short for these figures to mean anything");
    }
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    anyhow::ensure!(
        failures.is_empty(),
        "benchmark could not run: {}",
        failures.join("; ")
    );
    Ok(())
}
