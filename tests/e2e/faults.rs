//! Nodes under faults (issue 18): a clock behind at enrollment and a full disk. The node
//! is the real one the local provisioner starts; its clock is shifted with the hidden
//! `OUTPOST_NODE_CLOCK_SKEW_SECS` (which its TLS client honours too), its database capped
//! with the hidden `OUTPOST_NODE_DB_MAX_PAGES` (SQLite then fails with SQLITE_FULL, as on
//! a full disk).

use crate::gateway::{bundle_for, try_enroll_at};
use crate::harness::*;
use std::process::{Child, Command, Stdio};

const TWO_HOURS: i64 = 2 * 3600;

/// Kills a node process the test started itself.
struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kill_pid_file(path: &std::path::Path) {
    if let Ok(pid) = std::fs::read_to_string(path) {
        let _ = Command::new("kill").arg("-KILL").arg(pid.trim()).status();
    }
}

/// The words and code of a failed node, from the workspace API.
fn failure(v: &serde_json::Value) -> (String, String, String) {
    let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_owned();
    (
        s(&v["node"]["failed_step"]),
        s(&v["node"]["error_code"]),
        s(&v["node_error"]),
    )
}

#[actix_web::test]
async fn a_node_whose_clock_is_behind_is_told_why_and_enrolls_once_it_is_right() {
    let cp = Cp::start_with(Opts {
        env: vec![("OUTPOST_NODE_CLOCK_SKEW_SECS", (-TWO_HOURS).to_string())],
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    let ws = api.create_workspace("Skewed Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let node_id = ws["node"]["id"].as_str().unwrap().to_owned();

    // The CP shows the failed step in words, with its code.
    let v = api.wait_node_state(&ws_id, "failed", 60).await;
    let (step, code, words) = failure(&v);
    assert_eq!(
        (step.as_str(), code.as_str()),
        ("enrolling", "clock_skew"),
        "{v}"
    );
    assert!(words.contains("clock") && words.contains("NTP"), "{words}");
    let events = v["events"].to_string();
    assert!(
        events.contains("120 minutes behind the control plane"),
        "{events}"
    );

    // The node's log says why, in words, and never "unreachable".
    let log_path = cp.node_dir(&node_id).join("node.log");
    let log = wait_for("the node's log to name the skew", 30, || async {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.contains("this machine's clock is 120 minutes behind the control plane's; fix NTP")
            .then_some(log)
    })
    .await;
    assert!(!log.contains("control plane unreachable"), "{log}");
    // Still refusing, the CP writes nothing more than the first time.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, v2) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
    assert_eq!(v2["events"], v["events"], "no event per refused attempt");

    // The clock is fixed (the node's process restarted without the skew, as after NTP
    // was set up and the service restarted): it enrolls with the same bootstrap token.
    kill_pid_file(&cp.node_dir(&node_id).join("pid"));
    let fixed = Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .args(["node", "run", "--data-dir"])
        .arg(cp.node_dir(&node_id).join("data"))
        .env("OUTPOST_NODE_MAX_BACKOFF_SECS", "2")
        .env_remove("OUTPOST_NODE_CLOCK_SKEW_SECS")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let _fixed = NodeProc(fixed);
    let v = api.wait_node_state(&ws_id, "healthy", 60).await;
    assert_eq!(v["node_error"], serde_json::Value::Null, "{v}");
}

/// The CP's side alone: a node saying its time 2 h behind is refused with 409
/// `clock_skew`, in words, without spending its token; said right, the same token enrolls
/// and the node leaves `failed`.
#[actix_web::test]
async fn the_gateway_refuses_an_enrollment_with_a_skewed_clock_and_keeps_the_token() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "ops@acme.test");
    let (ws_id, bundle) = bundle_for(&cp, &api, "Manual Skew").await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let (status, body, node) =
        try_enroll_at(&cp, &bundle, &bundle.token, Some(now - TWO_HOURS)).await;
    assert!(node.is_none());
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "clock_skew", "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains("120 minutes behind"), "{msg}");
    let v = api.wait_node_state(&ws_id, "failed", 10).await;
    assert_eq!(failure(&v).1, "clock_skew", "{v}");

    // Ahead is refused as well.
    let (status, _, _) = try_enroll_at(&cp, &bundle, &bundle.token, Some(now + 600)).await;
    assert_eq!(status, 409);

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (status, body, node) = try_enroll_at(&cp, &bundle, &bundle.token, Some(now)).await;
    assert_eq!(status, 200, "{body}");
    assert!(node.is_some());
    let v = api.wait_node_state(&ws_id, "enrolling", 10).await;
    assert_eq!(v["node_error"], serde_json::Value::Null, "{v}");
}

/// Text that indexes into many pages: `words` distinct words, seeded by `seed`.
fn filler(seed: usize, words: usize) -> String {
    let mut out = String::with_capacity(words * 9);
    let mut x = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..words {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("w{:07x} ", x & 0xFFF_FFFF));
    }
    out
}

/// Adds notes of `chars` characters to `contact` until the console refuses one for want
/// of space (notes grow the database row by row, with no index to merge); returns that
/// page.
async fn fill_notes(node: &NodeConsole, contact: &str, chars: usize) -> String {
    let note = "n".repeat(chars);
    for i in 0..2000 {
        let r = node
            .post(&format!("/contacts/{contact}/notes"), &[("text", &note)])
            .await;
        match r.status().as_u16() {
            303 => continue,
            503 => return r.text().await.unwrap(),
            s => panic!("note {i}: {s}: {}", r.text().await.unwrap()),
        }
    }
    panic!("the node's database never filled up");
}

#[actix_web::test]
async fn a_full_disk_is_reported_visitors_are_told_and_all_comes_back_when_space_frees() {
    let cp = Cp::start_with(Opts {
        env: vec![("OUTPOST_NODE_DB_HEADROOM_PAGES", "300".into())],
        ..Opts::default()
    });
    let (browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Full Disk Dental").await;
    let agent = create_agent(
        &api,
        &node,
        &ws_id,
        crate::agents::agent_body("Ava", "retrieval", "", ""),
    )
    .await;
    let mut early = Visitor::new(&node, &agent, Some("https://shop.example"));
    early.begin().await;
    assert_eq!(early.say("Do you open on Sundays?").await.event, "done");
    let acknowledged = early.messages_after(0).await;
    assert_eq!(acknowledged.len(), 2, "{acknowledged:?}");

    // The disk fills up: the console says so in words (503), big documents first, then
    // small ones until even those do not fit.
    let contacts = node.get("/contacts").await.text().await.unwrap();
    let contact = contacts
        .split("href=\"/contacts/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    // Two documents the owner can delete later.
    for i in 0..2 {
        let r = node
            .upload(
                "/kb/upload",
                &format!("big-{i}.txt"),
                filler(i, 8_000).as_bytes(),
            )
            .await;
        assert_eq!(r.status(), 303, "upload {i}");
    }
    // The disk fills up (notes grow the database row by row): the console says so in
    // words (503).
    let page = fill_notes(&node, &contact, 4_000).await;
    assert!(page.contains("storage is full"), "{page}");

    // Visitors, new or known, get a 503 with words the widget shows.
    let mut late = Visitor::new(&node, &agent, Some("https://shop.example"));
    late.begin().await;
    for v in [&late, &early] {
        let r = v.post_raw(r#"{"text":"Hello, anyone there?"}"#).await;
        assert_eq!(r.status(), 503);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://shop.example",
            "the widget may read the refusal"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "storage_full", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("out of storage"),
            "{body}"
        );
    }

    // The CP hears of it: degraded, and the page says why in words.
    api.wait_node_state(&ws_id, "degraded", 30).await;
    let page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("the disk is full"), "{page}");

    // Space frees (the owner deletes the documents, which the released reserve allows):
    // back to healthy.
    let kb = node.get("/kb").await.text().await.unwrap();
    let ids: Vec<String> = kb
        .split("action=\"/kb/")
        .skip(1)
        .filter_map(|s| s.split_once("/delete\"").map(|(id, _)| id.to_owned()))
        .collect();
    assert!(!ids.is_empty(), "{kb}");
    for id in &ids {
        let r = node.post(&format!("/kb/{id}/delete"), &[]).await;
        assert_eq!(r.status(), 303, "delete {id}");
    }
    api.wait_node_state(&ws_id, "healthy", 30).await;
    let a = late.say("Hello again?").await;
    assert_eq!(a.event, "done", "{:?}", a.data);

    // Nothing acknowledged before the disk filled was lost.
    let now = early.messages_after(0).await;
    assert_eq!(now[..acknowledged.len()], acknowledged[..]);
}
