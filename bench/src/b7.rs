//! B7 — control-plane pages and API with a large fleet: the in-process control plane's
//! SQLite database is seeded directly (SQL through rusqlite, in one transaction) with
//! `--b7-nodes` workspaces, each with its node and history (hourly usage for a week,
//! timeline events, report receipts), of which the signed-in user (an operator) is a
//! member of `--b7-workspaces`. Each page is then requested one request after another
//! (`/api/v1` ones 50 times only, within the API's burst of 60 per token, a token per page) over keep-alive HTTP with the user's session cookie (pages) or API token (`/api/v1`);
//! latency is the client's, on 127.0.0.1, so it includes the HTTP round trip.
//! Target: p99 < 20 ms per page. No reference: the target is absolute.

use crate::cp;
use crate::load::{percentile, round2};
use crate::output::RunInfo;
use anyhow::Context as _;
use std::time::{Duration, Instant};

/// B7's parameters.
pub struct Settings {
    /// Workspaces the user is a member of (and sees on `/workspaces`).
    pub workspaces: usize,
    /// Workspaces (one node each) in the database, with history.
    pub nodes: usize,
    /// Requests per page.
    pub requests: usize,
}

/// History rows seeded per node.
const USAGE_HOURS: i64 = 7 * 24;
const EVENTS_PER_NODE: i64 = 20;
const RECEIPTS_PER_NODE: i64 = 100;

/// A UUID-shaped id, deterministic (`kind` keeps workspaces and nodes apart).
fn id(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// Seeds the fleet; returns the ids of a workspace the user is a member of.
fn seed(db_path: &str, user_email: &str, s: &Settings) -> anyhow::Result<String> {
    let path = db_path.strip_prefix("sqlite://").unwrap_or(db_path);
    let mut db = rusqlite::Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(30))?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    let tx = db.transaction()?;
    let user: String =
        tx.query_row("SELECT id FROM users WHERE email = ?1", [user_email], |r| {
            r.get(0)
        })?;
    tx.execute("UPDATE users SET is_operator = 1 WHERE id = ?1", [&user])?;
    {
        let mut ws = tx.prepare(
            "INSERT INTO workspaces (id, slug, name, plan, created_at, config_revision) VALUES (?1, ?2, ?3, 'dev', ?4, 1)",
        )?;
        let mut node = tx.prepare(
            "INSERT INTO nodes (id, workspace_id, state, provider, region, version, enrolled_at, last_report_at, last_seq, uptime_s, disk_used_bytes, queue_depth, checks_json, state_changed_at, created_at, waiting_conversations, last_epoch) \
             VALUES (?1, ?2, 'healthy', 'manual', 'local', 'bench', ?3, ?3, ?4, 3600, 1048576, 0, '[{\"name\":\"storage\",\"ok\":true,\"detail_code\":null}]', ?3, ?3, 0, 'b7')",
        )?;
        let mut member = tx.prepare(
            "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES (?1, ?2, 'owner', ?3)",
        )?;
        let mut usage = tx.prepare(
            "INSERT INTO usage_counts (node_id, channel, hour, inbound, outbound, conversations) VALUES (?1, 'web', ?2, ?3, ?3, 1)",
        )?;
        let mut event = tx.prepare(
            "INSERT INTO node_events (id, node_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, 'state', 'healthy → degraded')",
        )?;
        let mut receipt = tx.prepare(
            "INSERT INTO node_reports (node_id, epoch, seq, produced_at, received_at) VALUES (?1, 'b7', ?2, ?3, ?3)",
        )?;
        let hour0 = now / 3600 * 3600;
        for i in 0..s.nodes {
            let (w, n) = (id(0x0b7a, i), id(0x0b7b, i));
            ws.execute(rusqlite::params![
                w,
                format!("fleet-{i}"),
                format!("Fleet {i}"),
                now
            ])?;
            node.execute(rusqlite::params![n, w, now, RECEIPTS_PER_NODE])?;
            if i < s.workspaces {
                member.execute(rusqlite::params![w, user, now])?;
            }
            for h in 0..USAGE_HOURS {
                usage.execute(rusqlite::params![n, hour0 - h * 3600, h % 7])?;
            }
            for e in 0..EVENTS_PER_NODE {
                event.execute(rusqlite::params![
                    format!("{:08x}-0000-4000-8000-{:012x}", 0x0b7e_0000 + e, i),
                    n,
                    (now - e * 3600) * 1000
                ])?;
            }
            for q in 1..=RECEIPTS_PER_NODE {
                receipt.execute(rusqlite::params![n, q, now - (RECEIPTS_PER_NODE - q) * 30])?;
            }
        }
    }
    tx.commit()?;
    db.execute_batch("ANALYZE")?;
    Ok(id(0x0b7a, s.workspaces / 2))
}

/// One page's figures.
pub struct Page {
    /// What was asked.
    pub path: String,
    /// Requests answered 200.
    pub ok: usize,
    /// Other answers or failures.
    pub errors: usize,
    /// The first of them.
    pub first_error: Option<String>,
    /// Latency, ms.
    pub p50_ms: f64,
    /// Latency, ms.
    pub p99_ms: f64,
    /// Body size of the last answer, bytes.
    pub bytes: usize,
}

/// B7's figures.
pub struct Outcome {
    /// Per page.
    pub pages: Vec<Page>,
    /// Seeding time, s.
    pub seed_secs: f64,
    /// `/proc/loadavg` before and after the measurement.
    pub load: (String, String),
    /// Every page answered and under 20 ms p99.
    pub met: bool,
    /// Set when a page could not be measured (every request failed).
    pub problem: Option<String>,
}

async fn measure(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    auth: (&str, &str),
    n: usize,
) -> Page {
    let (mut lat, mut errors, mut first_error, mut bytes) = (vec![], 0, None, 0);
    // The API allows a token a burst of 60 requests and 120 a minute: ask within the burst.
    let n = if path.starts_with("/api/") {
        n.min(50)
    } else {
        n
    };
    for i in 0..n + 5 {
        let t0 = Instant::now();
        let r = client
            .get(format!("{base}{path}"))
            .header(auth.0, auth.1)
            .send()
            .await;
        let r = match r {
            Ok(resp) if resp.status().as_u16() == 200 => {
                resp.bytes().await.map_err(|e| e.to_string())
            }
            Ok(resp) => Err(format!("HTTP {}", resp.status())),
            Err(e) => Err(format!("{e:#}")),
        };
        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        match r {
            Ok(b) => {
                bytes = b.len();
                // The first five warm the connection and the caches.
                if i >= 5 {
                    lat.push(us);
                }
            }
            Err(e) => {
                errors += 1;
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    lat.sort_unstable();
    Page {
        path: path.to_owned(),
        ok: lat.len(),
        errors,
        first_error,
        p50_ms: round2(percentile(&lat, 0.5) as f64 / 1000.0),
        p99_ms: round2(percentile(&lat, 0.99) as f64 / 1000.0),
        bytes,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Runs B7.
pub async fn run(s: &Settings) -> anyhow::Result<Outcome> {
    let cp = cp::start(None)?;
    let email = "b7@example.test";
    let (cfg, cfg2) = (cp.config.clone(), cp.config.clone());
    // A token per API page: each gets its own burst of the API's rate limit (one token
    // spent it on the list, and the single workspace's page got only 429s).
    let (token, token2) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let new = |name: &str| control_plane::accounts::NewToken {
            name: name.into(),
            ..Default::default()
        };
        Ok((
            control_plane::cli::token_create(&cfg, email, &new("b7"))?,
            control_plane::cli::token_create(&cfg, email, &new("b7-one"))?,
        ))
    })
    .await??;
    let session = format!("b7-session-{}", outpost_crypto::token_hash(&token));
    let t0 = Instant::now();
    let (db_url, n) = (cfg2.database_url.clone(), (s.workspaces, s.nodes));
    let hash = outpost_crypto::token_hash(&session);
    let ws = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let settings = Settings {
            workspaces: n.0,
            nodes: n.1,
            requests: 0,
        };
        let ws = seed(&db_url, email, &settings)?;
        let path = db_url.strip_prefix("sqlite://").unwrap_or(&db_url);
        let db = rusqlite::Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(30))?;
        db.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, id, device, place) \
             SELECT ?1, id, 'csrf', 0, 4102444800, ?2, 'bench', '127.0.0.0/24' FROM users WHERE email = ?3",
            rusqlite::params![hash, "00000000-0000-4000-8000-0000000000b7", email],
        )?;
        Ok(ws)
    })
    .await?
    .context("seeding the control plane's database")?;
    let seed_secs = t0.elapsed().as_secs_f64();
    println!(
        "B7 setup: {} workspaces with a node and history each ({} usage hours, {} events, {} report receipts per node), the user in {}; seeded in {seed_secs:.1} s",
        s.nodes, USAGE_HOURS, EVENTS_PER_NODE, RECEIPTS_PER_NODE, s.workspaces
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = format!("outpost_session={session}");
    let (bearer, bearer2) = (format!("Bearer {token}"), format!("Bearer {token2}"));
    let page = ("cookie", cookie.as_str());
    let api = ("authorization", bearer.as_str());
    let api2 = ("authorization", bearer2.as_str());
    let load_start = loadavg();
    let mut pages = vec![];
    for (path, auth) in [
        ("/workspaces".to_owned(), page),
        (format!("/workspaces/{ws}"), page),
        (format!("/workspaces/{ws}/node-status"), page),
        (format!("/workspaces/{ws}/members"), page),
        (format!("/workspaces/{ws}/audit"), page),
        ("/operator".to_owned(), page),
        (format!("/operator/workspaces/{ws}"), page),
        ("/api/v1/workspaces".to_owned(), api),
        (format!("/api/v1/workspaces/{ws}"), api2),
    ] {
        pages.push(measure(&client, &cp.ui, &path, auth, s.requests).await);
    }
    let load_end = loadavg();
    let met = pages.iter().all(|p| p.errors == 0 && p.p99_ms < 20.0);
    let problem = pages.iter().find(|p| p.ok == 0).map(|p| {
        format!(
            "{}: no request succeeded ({})",
            p.path,
            p.first_error.as_deref().unwrap_or("?")
        )
    });
    Ok(Outcome {
        pages,
        seed_secs,
        load: (load_start, load_end),
        met,
        problem,
    })
}

/// Prints B7's table.
pub fn print(o: &Outcome, s: &Settings) {
    println!();
    println!(
        "B7 — control-plane pages: {} workspaces (nodes with history), the user in {}; {} requests per page, one after another",
        s.nodes, s.workspaces, s.requests
    );
    println!(
        "  {:<58} {:>9} {:>9} {:>10} {:>6}  status",
        "page", "p50 ms", "p99 ms", "bytes", "errors"
    );
    for p in &o.pages {
        println!(
            "  {:<58} {:>9.2} {:>9.2} {:>10} {:>6}  {}",
            p.path,
            p.p50_ms,
            p.p99_ms,
            p.bytes,
            p.errors,
            if p.errors == 0 && p.p99_ms < 20.0 {
                "MET"
            } else {
                "NOT MET"
            }
        );
        if let Some(e) = &p.first_error {
            println!("    first error: {e}");
        }
    }
    println!("  load average: {} before, {} after", o.load.0, o.load.1);
}

/// JSON for `target/bench/b7.json`.
pub fn to_json(o: &Outcome, s: &Settings, run: &RunInfo) -> serde_json::Value {
    serde_json::json!({
        "id": "B7",
        "smoke": run.smoke,
        "machine": run.machine,
        "workspaces_of_user": s.workspaces,
        "workspaces_with_history": s.nodes,
        "requests_per_page": s.requests,
        "seed_secs": round2(o.seed_secs),
        "loadavg_start": o.load.0,
        "loadavg_end": o.load.1,
        "target": "p99 < 20 ms per page",
        "met": o.met,
        "pages": o.pages.iter().map(|p| serde_json::json!({
            "path": p.path, "ok": p.ok, "errors": p.errors, "first_error": p.first_error,
            "p50_ms": p.p50_ms, "p99_ms": p.p99_ms, "bytes": p.bytes,
            "met": p.errors == 0 && p.p99_ms < 20.0,
        })).collect::<Vec<_>>(),
    })
}
