//! B4 — the node's message pipeline: an inbound webhook payload is verified (HMAC-SHA256
//! of the raw body, as WhatsApp's `X-Hub-Signature-256`), parsed, its sender found or
//! created as a contact, the message stored encrypted under the contact's key and the
//! reply queued (stored as an outbound message; the LLM is stubbed). Reference: raw
//! SQLite inserts of the same two rows per message (plaintext, same pragmas:
//! WAL + `synchronous=FULL`), one transaction per message.
//!
//! Targets (BENCHMARKS.md): p99 < 5 ms and ≥ 1,000 messages/s sustained, with
//! `synchronous=FULL`. Messages are processed one after another, as the node's single
//! database connection does; 200 senders, so most messages find an existing contact.

use crate::b5::percentile;
use crate::output::{self, RunInfo};
use agent_node::domain::content::{Author, Content};
use agent_node::platform::keys::MasterKey;
use agent_node::platform::store::Store;
use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one B4 run found.
pub struct B4Result {
    /// Subject p50/p99 (µs) and messages per second.
    pub subject: (f64, f64, f64),
    /// Reference p50/p99 (µs) and messages per second.
    pub reference: (f64, f64, f64),
    /// Whether both absolute targets are met.
    pub met: bool,
}

const P99_TARGET_MS: f64 = 5.0;
const RATE_TARGET: f64 = 1000.0;
const SENDERS: usize = 200;
const APP_SECRET: &[u8] = b"bench-app-secret";

fn payload(i: usize) -> Vec<u8> {
    serde_json::json!({
        "from": format!("+1555{:07}", i % SENDERS),
        "id": format!("wamid.{i}"),
        "text": format!("Hello, I would like to book an appointment next week, message {i}."),
    })
    .to_string()
    .into_bytes()
}

fn sign(body: &[u8]) -> String {
    let tag = outpost_crypto::hmac_sign(APP_SECRET, body);
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// The subject: verify, parse, contact, conversation, store inbound, queue the reply.
fn pipeline(content: &Content, body: &[u8], signature: &str) -> anyhow::Result<()> {
    let tag: Vec<u8> = (0..signature.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&signature[i..i + 2], 16))
        .collect::<Result<_, _>>()?;
    outpost_crypto::hmac_verify(APP_SECRET, body, &tag)
        .map_err(|_| anyhow::anyhow!("bad signature"))?;
    let msg: serde_json::Value = serde_json::from_slice(body)?;
    let from = msg["from"].as_str().context("from")?;
    let text = msg["text"].as_str().context("text")?;
    let (conv, _) = content.ingest("whatsapp", from, None, "agent-1", text)?;
    content.append_message(&conv.id, Author::Agent, "Thanks! A stubbed model reply.")?;
    Ok(())
}

fn reference_db(path: &std::path::Path) -> anyhow::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, \
         contact_id TEXT NOT NULL, author TEXT NOT NULL, body BLOB NOT NULL, created_at INTEGER NOT NULL);",
    )?;
    Ok(c)
}

fn reference_insert(c: &mut rusqlite::Connection, body: &[u8]) -> anyhow::Result<()> {
    let msg: serde_json::Value = serde_json::from_slice(body)?;
    let from = msg["from"].as_str().context("from")?;
    let text = msg["text"].as_str().context("text")?;
    let tx = c.transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO messages (conversation_id, contact_id, author, body, created_at) VALUES (?1, ?2, ?3, ?4, 0)",
        )?;
        st.execute(rusqlite::params![from, from, "contact", text])?;
        st.execute(rusqlite::params![
            from,
            from,
            "agent",
            "Thanks! A stubbed model reply."
        ])?;
    }
    tx.commit()?;
    Ok(())
}

fn measure(
    window: Duration,
    mut f: impl FnMut(usize) -> anyhow::Result<()>,
    start: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let mut lat = Vec::new();
    let began = Instant::now();
    let mut i = start;
    while began.elapsed() < window {
        let t = Instant::now();
        f(i)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        i += 1;
    }
    let rate = lat.len() as f64 / began.elapsed().as_secs_f64();
    Ok((lat, rate))
}

/// Runs B4, prints its section and writes `target/bench/b4.json`.
pub fn run(run: &RunInfo, window: Duration, rounds: u32) -> anyhow::Result<B4Result> {
    println!();
    println!(
        "B4 — message pipeline: verify → store encrypted → reply queued, vs raw SQLite inserts"
    );
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = Arc::new(Store::open(&dir.path().join("node.db")).context("opening node.db")?);
    let content = Content::new(store.clone(), &MasterKey::from_bytes([42; 32]));
    let mut reference = reference_db(&dir.path().join("reference.db"))?;
    let bodies: Vec<(Vec<u8>, String)> = (0..4096)
        .map(|i| {
            let b = payload(i);
            let s = sign(&b);
            (b, s)
        })
        .collect();
    // Warm-up: every sender exists once, caches are hot.
    for (b, s) in bodies.iter().take(SENDERS) {
        pipeline(&content, b, s)?;
        reference_insert(&mut reference, b)?;
    }
    let slice = window / rounds.max(1);
    let (mut subj, mut refr) = (Vec::new(), Vec::new());
    let (mut subj_rate, mut ref_rate) = (0.0, 0.0);
    for round in 0..rounds.max(1) {
        for side in 0..2 {
            if (side + round) % 2 == 0 {
                let (l, r) = measure(
                    slice,
                    |i| {
                        let (b, s) = &bodies[i % bodies.len()];
                        pipeline(&content, b, s)
                    },
                    SENDERS,
                )?;
                subj.extend(l);
                subj_rate += r / f64::from(rounds.max(1));
            } else {
                let (l, r) = measure(
                    slice,
                    |i| reference_insert(&mut reference, &bodies[i % bodies.len()].0),
                    SENDERS,
                )?;
                refr.extend(l);
                ref_rate += r / f64::from(rounds.max(1));
            }
        }
    }
    subj.sort_by(f64::total_cmp);
    refr.sort_by(f64::total_cmp);
    let subject = (percentile(&subj, 0.5), percentile(&subj, 0.99), subj_rate);
    let reference_r = (percentile(&refr, 0.5), percentile(&refr, 0.99), ref_rate);
    let met = subject.1 / 1000.0 < P99_TARGET_MS && subject.2 >= RATE_TARGET;
    println!("  {} messages through the pipeline, {} reference transactions; {rounds} alternating rounds", subj.len(), refr.len());
    println!(
        "  {:<46} {:>9} {:>9} {:>10}",
        "", "p50 ms", "p99 ms", "msg/s"
    );
    for (label, (p50, p99, rate)) in [
        ("pipeline (HMAC, JSON, contact, AES-GCM, 2 tx)", subject),
        ("raw SQLite inserts (plaintext, 1 tx)", reference_r),
    ] {
        println!(
            "  {label:<46} {:>9.3} {:>9.3} {:>10.0}",
            p50 / 1000.0,
            p99 / 1000.0,
            rate
        );
    }
    println!(
        "  throughput ratio {:.2}× reference   targets p99 < {P99_TARGET_MS} ms and ≥ {RATE_TARGET} msg/s   B4 {}{}",
        subject.2 / reference_r.2.max(f64::MIN_POSITIVE),
        if met { "MET" } else { "NOT MET" },
        if run.smoke { "  [smoke: not a measurement]" } else { "" }
    );
    let json = serde_json::json!({
        "id": "B4",
        "title": "node message pipeline vs raw SQLite inserts (synchronous=FULL)",
        "params": { "window_secs": window.as_secs_f64(), "rounds": rounds, "senders": SENDERS },
        "subject": { "label": "pipeline", "p50_ms": subject.0 / 1000.0, "p99_ms": subject.1 / 1000.0, "per_sec": subject.2, "samples": subj.len() },
        "reference": { "label": "raw SQLite inserts", "p50_ms": reference_r.0 / 1000.0, "p99_ms": reference_r.1 / 1000.0, "per_sec": reference_r.2, "samples": refr.len() },
        "ratio_throughput": crate::load::round2(subject.2 / reference_r.2.max(f64::MIN_POSITIVE)),
        "target": format!("p99 < {P99_TARGET_MS} ms and ≥ {RATE_TARGET} msg/s"),
        "met": met,
        "smoke": run.smoke,
        "cores": run.cores,
        "machine": run.machine,
    });
    let path = output::write_json("b4", &json)?;
    println!("  written: {}", path.display());
    drop(reference);
    store.close();
    Ok(B4Result {
        subject,
        reference: reference_r,
        met,
    })
}
