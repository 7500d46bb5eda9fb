//! PostgreSQL goes away under a running control plane (issue 18, defect 5). A TCP relay
//! (`relay.rs`) sits between the CP and the server, so the test cuts the CP's
//! database without touching the server other tests use. While it is cut the CP cannot
//! ingest reports; once it is back the nodes get the usual grace to report again, instead
//! of all being marked offline at once. `/healthz` says the database is down within
//! seconds, and the log names the connection error libpq gave.
//!
//! PostgreSQL only (`TEST_DATABASE_URL`): on the SQLite pass these tests return at once.

use crate::harness::*;
use crate::relay::Relay;
use diesel::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The PostgreSQL server of `TEST_DATABASE_URL`, or `None` on the SQLite pass.
async fn postgres_server() -> Option<SocketAddr> {
    let url = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let rest = url.split_once("://").unwrap().1;
    let server = rest.split('/').next().unwrap();
    let authority = server.rsplit_once('@').map_or(server, |(_, a)| a);
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:5432")
    };
    tokio::net::lookup_host(authority).await.unwrap().next()
}

/// A CP whose database is reached through a fresh [`Relay`].
async fn cp_behind_proxy(env: Vec<(&'static str, String)>) -> Option<(Cp, Relay)> {
    let Some(server) = postgres_server().await else {
        eprintln!("skipped: PostgreSQL only (TEST_DATABASE_URL is not set)");
        return None;
    };
    let proxy = Relay::start(vec![server]);
    let cp = Cp::start_with(Opts {
        database_via: Some(proxy.addr),
        env,
        ..Opts::default()
    });
    Some((cp, proxy))
}

fn client() -> reqwest::Client {
    ring_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn healthz(cp: &Cp) -> (u16, serde_json::Value) {
    let r = client()
        .get(format!("{}/healthz", cp.ui))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// The node's state changes into `offline`, read straight from the database.
fn offline_events(cp: &Cp, node_id: &str) -> Vec<String> {
    use control_plane::infra::schema::node_events::dsl as e;
    let mut conn = cp.db().get().unwrap();
    e::node_events
        .filter(e::node_id.eq(node_id))
        .filter(e::kind.eq("state"))
        .select(e::detail)
        .load::<String>(&mut conn)
        .unwrap()
        .into_iter()
        .filter(|d| d.ends_with("→ offline"))
        .collect()
}

fn last_report_at(cp: &Cp, node_id: &str) -> i64 {
    use control_plane::infra::schema::nodes::dsl as n;
    let mut conn = cp.db().get().unwrap();
    n::nodes
        .filter(n::id.eq(node_id))
        .select(n::last_report_at)
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap_or(0)
}

fn signal(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid.trim()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// (a) A healthy node, then the database cut for longer than `--offline-after-secs`:
/// when it is back the node is not marked offline, because it reports within the grace
/// that follows the outage. The node is paused from mid-outage until a few seconds after
/// the database is back, like a node whose next retry falls late in its backoff window;
/// before the fix the first sweep after the outage marked it offline in that time.
#[tokio::test]
async fn nodes_are_not_marked_offline_when_the_database_comes_back() {
    const OFFLINE_AFTER: i64 = 10;
    let env = vec![("OUTPOST_OFFLINE_AFTER_SECS", OFFLINE_AFTER.to_string())];
    let Some((cp, mut proxy)) = cp_behind_proxy(env).await else {
        return;
    };
    let api = Api::new(&cp, "owner@db-outage.test");
    let ws = api.create_workspace("Outage Bakery").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let d = api.wait_node_state(&ws_id, "healthy", 90).await;
    let node_id = d["node"]["id"].as_str().unwrap().to_owned();
    let pid = std::fs::read_to_string(cp.node_dir(&node_id).join("pid")).unwrap();

    // Longer than OFFLINE_AFTER, and the node keeps trying (and failing) to report for a
    // few seconds of it.
    proxy.cut().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal(&pid, "-STOP");
    tokio::time::sleep(Duration::from_secs(OFFLINE_AFTER as u64)).await;
    proxy.restore().await;
    let back = control_plane::infra::db::now();

    // The CP reaches its database again (its pool reconnects), then the node stays silent
    // for a few more seconds, well within the grace.
    wait_for("the CP's database back", 60, || async {
        (healthz(&cp).await.0 == 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal(&pid, "-CONT");
    wait_for("a report after the outage", 30, || async {
        (last_report_at(&cp, &node_id) >= back).then_some(())
    })
    .await;
    // Past the grace: still no offline transition, and the node is healthy.
    tokio::time::sleep(Duration::from_secs(OFFLINE_AFTER as u64)).await;
    assert_eq!(offline_events(&cp, &node_id), Vec::<String>::new());
    let (_, v) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
    assert_eq!(v["node"]["state"], "healthy", "{v}");

    // The grace is a grace, not immunity: a node that stays silent past it goes offline.
    signal(&pid, "-STOP");
    let offline = wait_for("the silent node offline", 60, || async {
        let e = offline_events(&cp, &node_id);
        (!e.is_empty()).then_some(e)
    })
    .await;
    signal(&pid, "-CONT");
    assert_eq!(offline, ["healthy → offline"]);
}

/// (b) `/healthz` answers 503 with words soon after the database goes away (it used to
/// wait out the pool's 30 s and answer 500), and 200 again once it is back.
#[tokio::test]
async fn healthz_says_the_database_is_down_within_seconds() {
    let Some((cp, mut proxy)) = cp_behind_proxy(vec![]).await else {
        return;
    };
    assert_eq!(healthz(&cp).await.0, 200);
    proxy.cut().await;
    let cut = Instant::now();
    let (status, body) = loop {
        let (status, body) = healthz(&cp).await;
        if status != 200 {
            break (status, body);
        }
        assert!(cut.elapsed() < Duration::from_secs(10), "still 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = cut.elapsed();
    assert_eq!(status, 503, "{body}");
    // A generous bound (the aim is 2 s): what matters is that it does not hang for 30 s.
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["database"], "unreachable", "{body}");
    assert_eq!(body["code"], "database_unavailable", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("database"),
        "{body}"
    );

    // Other requests say the same, promptly, instead of hanging and answering 500.
    let api = Api::new(&cp, "owner@healthz.test");
    let asked = Instant::now();
    let (status, body) = api.get_json("/api/v1/workspaces").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "database_unavailable", "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );

    proxy.restore().await;
    wait_for("healthz 200 again", 30, || async {
        (healthz(&cp).await.0 == 200).then_some(())
    })
    .await;
}

/// (c) The log names the connection error PostgreSQL's client library gave ("Connection
/// refused": nothing listens while the proxy is cut), not diesel's "Invalid connection url
/// for multiconnection", and says when the database is back.
#[tokio::test]
async fn the_log_names_the_real_connection_error() {
    let Some((cp, mut proxy)) = cp_behind_proxy(vec![]).await else {
        return;
    };
    proxy.cut().await;
    // The pool's line; other parts (the wake-up listener) may log the same refusal first,
    // in their own words.
    let said = |l: &str| l.contains("database unreachable") && l.contains("Connection refused");
    let log = wait_for("the connection error in the log", 60, || async {
        let log = cp.log();
        log.lines().any(said).then_some(log)
    })
    .await;
    assert!(!log.contains("Invalid connection url"), "{log}");
    // Where, but no credentials: no line naming the refusal logs the URL.
    for line in log.lines().filter(|l| l.contains("Connection refused")) {
        assert!(!line.contains("postgres://"), "{line}");
    }

    proxy.restore().await;
    wait_for("the recovery in the log", 60, || async {
        cp.log().contains("database reachable again").then_some(())
    })
    .await;
}
