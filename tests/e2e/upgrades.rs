//! Fleet upgrades with the local provisioner (issue 15): a release signed with the
//! operator's release key, served by a local HTTP server, goes to one canary node, then
//! to the others in batches; a release whose bytes do not match its SHA-256 is refused by
//! the node, which keeps running, and the upgrade halts in words; a new binary that
//! crashes at start is replaced by the previous one.
//!
//! The "new release" is honest about what it is: a small script that runs this very node
//! binary (`control-plane node …`) with `OUTPOST_NODE_VERSION_OVERRIDE`, so it reports a
//! distinct version; the crashing release is a script that exits 3. Both are installed,
//! started and judged exactly as a real binary would be.

use crate::harness::{wait_for, Api, Cp, Opts};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `control-plane release …`: needs no database (the key stays off the CP's machine).
fn release_cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .arg("release")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn keygen(file: &Path) -> String {
    let (ok, out, err) = release_cli(&["keygen", "--out", file.to_str().unwrap()]);
    assert!(ok, "keygen failed: {err}");
    assert_eq!(
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the private key is private"
    );
    out.lines()
        .find_map(|l| l.strip_prefix("OUTPOST_RELEASE_PUBLIC_KEY="))
        .expect("public key printed")
        .to_owned()
}

/// `release sign`: (sha256, signature).
fn sign(key: &Path, binary: &Path) -> (String, String) {
    let (ok, out, err) = release_cli(&[
        "sign",
        "--key",
        key.to_str().unwrap(),
        binary.to_str().unwrap(),
    ]);
    assert!(ok, "sign failed: {err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    (field("sha256:"), field("signature:"))
}

fn status(cp: &Cp, public_key: &str) -> String {
    let (ok, out, err) = cp.cli(
        &["upgrade", "status"],
        &[("OUTPOST_RELEASE_PUBLIC_KEY", public_key)],
    );
    assert!(ok, "status failed: {err}");
    out
}

/// The newest upgrade's lines only (status lists the three newest).
fn newest(status: &str) -> String {
    let mut out = vec![];
    for (i, l) in status.lines().enumerate() {
        if i > 0 && l.starts_with("upgrade ") {
            break;
        }
        out.push(l);
    }
    out.join("\n")
}

fn start(
    cp: &Cp,
    public_key: &str,
    url: &str,
    (sha, sig): &(String, String),
    version: &str,
) -> (bool, String) {
    let (ok, out, err) = cp.cli(
        &[
            "upgrade",
            "start",
            "--url",
            url,
            "--sha256",
            sha,
            "--signature",
            sig,
            "--version",
            version,
            "--batch-size",
            "2",
        ],
        &[("OUTPOST_RELEASE_PUBLIC_KEY", public_key)],
    );
    (ok, format!("{out}{err}"))
}

async fn versions(api: &[(Api, String)]) -> Vec<(String, String)> {
    let mut out = vec![];
    for (a, ws) in api {
        let (_, v) = a.get_json(&format!("/api/v1/workspaces/{ws}")).await;
        out.push((
            v["node"]["state"].as_str().unwrap_or("").to_owned(),
            v["node"]["version"].as_str().unwrap_or("").to_owned(),
        ));
    }
    out
}

async fn wait_state(cp: &Cp, public_key: &str, state: &str, secs: u64) -> String {
    wait_for(&format!("upgrade {state}"), secs, || async {
        let s = newest(&status(cp, public_key));
        s.lines()
            .next()
            .is_some_and(|l| l.contains(&format!(": {state} (")))
            .then_some(s)
    })
    .await
}

#[tokio::test]
async fn a_signed_release_goes_to_a_canary_then_in_batches_and_bad_ones_stop_in_words() {
    let keys = tempfile::tempdir().unwrap();
    // The release key is a file on the operator's machine; the CP gets the public half.
    let key_file = keys.path().join("release.key");
    let public_key = keygen(&key_file);
    let (again, _, err) = release_cli(&["keygen", "--out", key_file.to_str().unwrap()]);
    assert!(!again && err.contains("not overwritten"), "{err}");
    let stranger_key = keys.path().join("stranger.key");
    keygen(&stranger_key);

    let cp = Cp::start_with(Opts {
        env: vec![
            ("OUTPOST_RELEASE_PUBLIC_KEY", public_key.clone()),
            ("OUTPOST_UPGRADE_TIMEOUT_SECS", "30".into()),
        ],
        ..Opts::default()
    });
    let mut nodes = vec![];
    for name in ["Alpha", "Bravo", "Charlie"] {
        let api = Api::new(&cp, &format!("owner@{}.test", name.to_lowercase()));
        let ws = api.create_workspace(name).await;
        let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
        nodes.push((api, ws_id));
    }
    for (api, ws) in &nodes {
        api.wait_node_state(ws, "healthy", 90).await;
    }
    assert!(
        versions(&nodes).await.iter().all(|(_, v)| v == "0.1.0"),
        "the fleet page's version column starts at the built version"
    );

    let good = keys.path().join("agent-node-9.9.0");
    std::fs::write(
        &good,
        format!(
            "#!/bin/sh\nOUTPOST_NODE_VERSION_OVERRIDE=9.9.0 exec '{}' node \"$@\"\n",
            env!("CARGO_BIN_EXE_control-plane")
        ),
    )
    .unwrap();
    let crashing = keys.path().join("agent-node-9.9.1");
    std::fs::write(&crashing, "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n").unwrap();
    let server = MockServer::start().await;
    for (at, file) in [("/good", &good), ("/crashing", &crashing)] {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(std::fs::read(file).unwrap()))
            .mount(&server)
            .await;
    }
    // Someone swapped the file on the server: same name, other bytes.
    Mock::given(method("GET"))
        .and(path("/tampered"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"#!/bin/sh\nexit 0\n".to_vec()))
        .mount(&server)
        .await;
    let good_signed = sign(&key_file, &good);

    // A signature by another key is refused before any node is asked.
    let forged = (good_signed.0.clone(), sign(&stranger_key, &good).1);
    let (ok, out) = start(
        &cp,
        &public_key,
        &format!("{}/good", server.uri()),
        &forged,
        "9.9.0",
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("does not verify with OUTPOST_RELEASE_PUBLIC_KEY"),
        "{out}"
    );

    // Bytes that are not the signed ones: the canary downloads, refuses, keeps running.
    let (ok, out) = start(
        &cp,
        &public_key,
        &format!("{}/tampered", server.uri()),
        &good_signed,
        "9.9.0",
    );
    assert!(ok, "{out}");
    assert!(out.contains("canary"), "{out}");
    let halted = wait_state(&cp, &public_key, "halted", 60).await;
    assert!(
        halted
            .contains("refused the release: the downloaded binary's SHA-256 is not the one given"),
        "{halted}"
    );
    assert_eq!(
        halted.matches("\tpending").count(),
        2,
        "no other node was sent the release: {halted}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for (state, version) in versions(&nodes).await {
        if state != "healthy" {
            let (_, v) = nodes[0]
                .0
                .get_json(&format!("/api/v1/workspaces/{}", nodes[0].1))
                .await;
            let id = v["node"]["id"].as_str().unwrap().to_owned();
            let log = std::fs::read_to_string(cp.node_dir(&id).join("node.log")).unwrap();
            panic!("{v}\n{log}");
        }
        assert_eq!((state.as_str(), version.as_str()), ("healthy", "0.1.0"));
    }
    let log = cp.log();
    assert!(log.contains("fleet upgrade halted"), "the CP logs the halt");

    // The signed release: the canary first, then the two others in one batch.
    let (ok, out) = start(
        &cp,
        &public_key,
        &format!("{}/good", server.uri()),
        &good_signed,
        "9.9.0",
    );
    assert!(ok, "{out}");
    let mut seen = vec![];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let done = loop {
        let s = newest(&status(&cp, &public_key));
        seen.push(s.clone());
        if s.lines()
            .next()
            .is_some_and(|l| l.contains(": completed ("))
        {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "not completed:\n{s}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    for s in &seen {
        let canary_done = s
            .lines()
            .any(|l| l.starts_with("  canary") && l.ends_with("\tdone"));
        let batch_started = s
            .lines()
            .any(|l| l.starts_with("  wave 1") && !l.ends_with("\tpending"));
        assert!(
            canary_done || !batch_started,
            "the batch waited for the canary:\n{s}"
        );
    }
    assert!(done.contains("3 of 3 nodes done"), "{done}");
    // The operator console's fleet page shows it, and each node's version.
    let op = crate::operator::operator(&cp, "staff@outpost.test").await;
    let page = op.get("/operator").await.text().await.unwrap();
    assert!(page.contains("Fleet upgrade"), "{page}");
    assert!(page.contains("to 9.9.0: completed"), "{page}");
    assert_eq!(page.matches("<td>9.9.0</td>").count(), 3, "{page}");
    for (state, version) in versions(&nodes).await {
        assert_eq!((state.as_str(), version.as_str()), ("healthy", "9.9.0"));
    }

    // A release that crashes at start: the canary is rolled back to 9.9.0 by the guard,
    // and the upgrade halts saying it did not come back.
    let crash_signed = sign(&key_file, &crashing);
    let (ok, out) = start(
        &cp,
        &public_key,
        &format!("{}/crashing", server.uri()),
        &crash_signed,
        "9.9.1",
    );
    assert!(ok, "{out}");
    let halted = wait_state(&cp, &public_key, "halted", 90).await;
    assert!(
        halted.contains("did not come back healthy on 9.9.1 within 30 s: it still reports 9.9.0"),
        "{halted}"
    );
    let canary = halted
        .lines()
        .find(|l| l.starts_with("  canary"))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap()
        .to_owned();
    let node_log = std::fs::read_to_string(cp.node_dir(&canary).join("node.log")).unwrap();
    assert!(
        node_log.contains("cannot start"),
        "the new binary ran and crashed"
    );
    assert!(node_log.contains("upgrade rolled back"), "{node_log}");
    for (state, version) in versions(&nodes).await {
        assert_eq!((state.as_str(), version.as_str()), ("healthy", "9.9.0"));
    }
    let (ok, audit) = cp.audit_verify();
    assert!(ok, "{audit}");
}

/// The operator console starts, halts and resumes an upgrade (forms with the CSRF token,
/// audited with the operator and their address); a resumed upgrade carries on from the
/// wave where it halted. The CLI's `halt` and `resume` refuse in words when there is
/// nothing to do.
#[tokio::test]
async fn the_operator_console_starts_halts_and_resumes_an_upgrade() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("release.key");
    let public_key = keygen(&key_file);
    let stranger_key = keys.path().join("stranger.key");
    keygen(&stranger_key);
    let cp = Cp::start_with(Opts {
        env: vec![
            ("OUTPOST_RELEASE_PUBLIC_KEY", public_key.clone()),
            ("OUTPOST_UPGRADE_TIMEOUT_SECS", "60".into()),
        ],
        ..Opts::default()
    });
    let mut nodes = vec![];
    for name in ["Delta", "Echo", "Foxtrot"] {
        let api = Api::new(&cp, &format!("owner@{}.test", name.to_lowercase()));
        let ws = api.create_workspace(name).await;
        let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
        nodes.push((api, ws_id));
    }
    for (api, ws) in &nodes {
        api.wait_node_state(ws, "healthy", 90).await;
    }
    let good = keys.path().join("agent-node-9.9.0");
    std::fs::write(
        &good,
        format!(
            "#!/bin/sh\nOUTPOST_NODE_VERSION_OVERRIDE=9.9.0 exec '{}' node \"$@\"\n",
            env!("CARGO_BIN_EXE_control-plane")
        ),
    )
    .unwrap();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/good"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(std::fs::read(&good).unwrap()))
        .mount(&server)
        .await;
    let (sha, sig) = sign(&key_file, &good);
    let url = format!("{}/good", server.uri());

    let op = crate::operator::operator(&cp, "staff@outpost.test").await;
    let page = op.get("/operator").await.text().await.unwrap();
    assert!(
        page.contains(r#"action="/operator/upgrades/start""#),
        "{page}"
    );
    assert!(!page.contains(r#"action="/operator/upgrades/halt""#));

    // Without the session's CSRF token the form does nothing.
    let r = op
        .post(
            "/operator/upgrades/start",
            &[
                ("url", &url),
                ("sha256", &sha),
                ("signature", &sig),
                ("version", "9.9.0"),
                ("batch_size", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(
        status(&cp, &public_key).trim() == "no upgrades",
        "nothing started"
    );

    // A signature by another key is refused on the page, in words.
    let forged = sign(&stranger_key, &good).1;
    let r = op
        .post_csrf(
            "/operator/upgrades/start",
            &[
                ("url", &url),
                ("sha256", &sha),
                ("signature", &forged),
                ("version", "9.9.0"),
                ("batch_size", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("does not verify with OUTPOST_RELEASE_PUBLIC_KEY"),
        "{text}"
    );

    // Started from the console with batches of one: canary, then two waves of one.
    let r = op
        .post_csrf(
            "/operator/upgrades/start",
            &[
                ("url", &url),
                ("sha256", &sha),
                ("signature", &sig),
                ("version", "9.9.0"),
                ("batch_size", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    // Halted while the canary is in flight: it finishes its own upgrade, no wave follows.
    wait_for("the canary sent the release", 30, || async {
        let s = newest(&status(&cp, &public_key));
        s.lines()
            .any(|l| l.starts_with("  canary") && !l.ends_with("\tpending"))
            .then_some(())
    })
    .await;
    let r = op.post_csrf("/operator/upgrades/halt", &[]).await;
    assert_eq!(r.status(), 303);
    let halted = wait_state(&cp, &public_key, "halted", 10).await;
    assert!(halted.contains("halted by an operator"), "{halted}");
    wait_for("the canary on 9.9.0", 60, || async {
        let v = versions(&nodes).await;
        v.iter()
            .any(|(s, v)| s == "healthy" && v == "9.9.0")
            .then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let still = newest(&status(&cp, &public_key));
    assert!(still.contains(": halted ("), "{still}");
    assert_eq!(
        still.matches("\tpending").count(),
        2,
        "no wave after the halt: {still}"
    );
    let on_new = versions(&nodes)
        .await
        .iter()
        .filter(|(_, v)| v == "9.9.0")
        .count();
    assert_eq!(on_new, 1, "only the canary upgraded");
    let page = op.get("/operator").await.text().await.unwrap();
    assert!(
        page.contains(r#"action="/operator/upgrades/resume""#),
        "{page}"
    );

    // Halting again: nothing runs, said on the page and by the CLI.
    let r = op.post_csrf("/operator/upgrades/halt", &[]).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("no upgrade is running"));
    let (ok, out, _) = cp.cli(&["upgrade", "halt"], &[]);
    assert!(!ok && out.contains("nothing to halt"), "{out}");

    // Resumed: from where it halted, to the end.
    let r = op.post_csrf("/operator/upgrades/resume", &[]).await;
    assert_eq!(r.status(), 303);
    let done = wait_state(&cp, &public_key, "completed", 120).await;
    assert!(done.contains("3 of 3 nodes done"), "{done}");
    for (state, version) in versions(&nodes).await {
        assert_eq!((state.as_str(), version.as_str()), ("healthy", "9.9.0"));
    }
    let (ok, out, _) = cp.cli(&["upgrade", "resume"], &[]);
    assert!(
        !ok && out.contains("only a halted upgrade resumes"),
        "{out}"
    );

    let staff = cp.user_id("staff@outpost.test").unwrap();
    let events = crate::operator::audit(&cp);
    for action in ["upgrade.started", "upgrade.halted", "upgrade.resumed"] {
        assert!(
            events.iter().any(|(a, actor, _, d)| a == action
                && actor.as_deref() == Some(&staff)
                && d == "9.9.0"),
            "{action} by the operator: {events:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|(a, _, ip, _)| a == "upgrade.resumed" && ip.as_deref() == Some("127.0.0.1")),
        "{events:?}"
    );
    let (ok, audit) = cp.audit_verify();
    assert!(ok, "{audit}");
}

/// `control-plane upgrade halt` and `resume` from the command line.
#[tokio::test]
async fn the_cli_halts_and_resumes_an_upgrade() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("release.key");
    let public_key = keygen(&key_file);
    let cp = Cp::start_with(Opts {
        env: vec![("OUTPOST_RELEASE_PUBLIC_KEY", public_key.clone())],
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@golf.test");
    let ws = api.create_workspace("Golf").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    api.wait_node_state(&ws_id, "healthy", 90).await;
    let bin = keys.path().join("agent-node-9.9.0");
    std::fs::write(&bin, "#!/bin/sh\nexit 3\n").unwrap();
    let signed = sign(&key_file, &bin);
    // Nothing serves the URL: the canary cannot download it, so the upgrade would halt
    // on its own; it is halted first.
    let (ok, out) = start(
        &cp,
        &public_key,
        "http://127.0.0.1:9/none",
        &signed,
        "9.9.0",
    );
    assert!(ok, "{out}");
    let (ok, out, err) = cp.cli(&["upgrade", "halt"], &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("halted: no further wave is sent"), "{out}");
    let halted = newest(&status(&cp, &public_key));
    assert!(
        halted.contains(": halted (") && halted.contains("halted by an operator (cli)"),
        "{halted}"
    );
    let (ok, out, err) = cp.cli(&["upgrade", "resume"], &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("resumed"), "{out}");
    let running = newest(&status(&cp, &public_key));
    assert!(
        !running.contains("halted:"),
        "the reason is cleared: {running}"
    );
    // The cause is still there: it halts again, in words.
    let again = wait_state(&cp, &public_key, "halted", 60).await;
    assert!(again.contains("could not download the binary"), "{again}");
}
