//! Real nodes (issue 15) end to end: the control plane with `--provisioner ovh` against a
//! fake OVHcloud API and a fake Cloudflare (tests/e2e/cloud_fakes.rs, which check OVH's
//! signatures and Cloudflare's token with their own code). The test plays the server: it
//! takes the bootstrap file out of the user-data the fake OVH received, exactly as
//! cloud-init writes it (base64 `write_files` entry, mode 0600), and starts the node with it.

use crate::cloud_fakes::*;
use crate::harness::*;
use base64::Engine as _;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

pub(crate) const OWNER: &str = "owner@cloud.test";
const RELEASE_SHA: &str = "7daf48f924f246f48e576104ccc8c6e2fd7ef4a9f427ac9a8e7f7dfd43f87b1d";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn cloud_env(
    ovh: &FakeOvh,
    cf: &FakeCloudflare,
    node_port: u16,
) -> Vec<(&'static str, String)> {
    vec![
        ("OUTPOST_OVH_ENDPOINT", ovh.uri.clone()),
        ("OUTPOST_OVH_APPLICATION_KEY", AK.into()),
        ("OUTPOST_OVH_APPLICATION_SECRET", AS.into()),
        ("OUTPOST_OVH_CONSUMER_KEY", CK.into()),
        ("OUTPOST_OVH_PROJECT_ID", PROJECT.into()),
        ("OUTPOST_OVH_REGIONS", REGION.into()),
        ("OUTPOST_OVH_FLAVOR_ID", FLAVOR.into()),
        ("OUTPOST_OVH_IMAGE_ID", IMAGE.into()),
        ("OUTPOST_CLOUDFLARE_API_TOKEN", CF_TOKEN.into()),
        ("OUTPOST_CLOUDFLARE_ZONE_ID", ZONE.into()),
        ("OUTPOST_CLOUDFLARE_API_BASE", cf.uri.clone()),
        ("OUTPOST_NODES_DOMAIN", DOMAIN.into()),
        (
            "OUTPOST_NODE_RELEASE_URL",
            "https://releases.outpost.test/agent-node".into(),
        ),
        ("OUTPOST_NODE_RELEASE_SHA256", RELEASE_SHA.into()),
        (
            "OUTPOST_CLOUD_NODE_LISTEN",
            format!("127.0.0.1:{node_port}"),
        ),
        ("OUTPOST_EXPORT_WINDOW_SECS", "0".into()),
    ]
}

struct Cloud {
    ovh: FakeOvh,
    cf: FakeCloudflare,
    cp: Cp,
    node_port: u16,
}

async fn start() -> Cloud {
    let ovh = FakeOvh::start().await;
    let cf = FakeCloudflare::start().await;
    let node_port = free_port();
    let cp = Cp::start_with(Opts {
        provisioner: "ovh",
        env: cloud_env(&ovh, &cf, node_port),
        ..Default::default()
    });
    Cloud {
        ovh,
        cf,
        cp,
        node_port,
    }
}

/// The bootstrap file as cloud-init writes it: the `write_files` entry for its path, with
/// its permissions, base64-decoded.
pub(crate) fn bootstrap_from_user_data(user_data: &str) -> (Vec<u8>, String) {
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    let lines: Vec<&str> = user_data.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "- path: /var/lib/outpost-node/bootstrap.json")
        .expect("a write_files entry for bootstrap.json");
    let entry: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with("- ") && l.starts_with("    "))
        .copied()
        .collect();
    let field = |k: &str| {
        entry
            .iter()
            .find_map(|l| l.trim().strip_prefix(&format!("{k}: ")))
            .unwrap_or_else(|| panic!("no {k} in {entry:?}"))
            .trim_matches('"')
            .to_owned()
    };
    assert_eq!(field("encoding"), "b64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(field("content"))
        .unwrap();
    (bytes, field("permissions"))
}

/// Plays the server's first boot: writes the bootstrap file and starts the node (the CP's
/// binary embeds it) on its data directory. The pid file lets the harness kill it.
///
/// A real server's node serves HTTPS on 443 and port 80 on every address and gets its
/// certificate from Let's Encrypt. Here it stays on loopback: port 80's place is the
/// bundle's listen port (the test knows it), HTTPS gets a free port, and the ACME
/// directory is a loopback address nothing listens on, so the `tls` check fails at once
/// and nothing leaves the machine ([`boot_server_with`] uses pebble instead).
pub(crate) fn boot_server(cp: &Cp, node_id: &str, user_data: &str) -> std::process::Child {
    boot_server_with(cp, node_id, user_data, None, free_port())
}

/// [`boot_server`] with its certificate from `acme` (pebble) and HTTPS on `https_port`.
pub(crate) fn boot_server_with(
    cp: &Cp,
    node_id: &str,
    user_data: &str,
    acme: Option<&crate::https::Pebble>,
    https_port: u16,
) -> std::process::Child {
    let (bundle, mode) = bootstrap_from_user_data(user_data);
    assert_eq!(mode, "0600");
    let server = cp.node_dir(node_id);
    let data = server.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let f = data.join("bootstrap.json");
    std::fs::write(&f, &bundle).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = std::fs::File::create(server.join("node.log")).unwrap();
    let listen: Value = serde_json::from_slice(&bundle).unwrap();
    let http_port = listen["listen_addr"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .expect("the bundle's listen address")
        .to_owned();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_control-plane"));
    cmd.args(["node", "run", "--data-dir"])
        .arg(&data)
        .env("OUTPOST_NODE_MAX_BACKOFF_SECS", "2")
        .env("OUTPOST_NODE_BIND_ADDRESS", "127.0.0.1")
        .env("OUTPOST_NODE_HTTP_PORT", http_port)
        .env("OUTPOST_NODE_HTTPS_PORT", https_port.to_string())
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    match acme {
        Some(pebble) => cmd
            .env("OUTPOST_ACME_DIRECTORY", pebble.directory())
            .env("OUTPOST_ACME_CA_FILE", pebble.ca_file())
            .env("OUTPOST_ACME_EMAIL", "ops@outpost.test")
            .env("OUTPOST_ACME_MAX_BACKOFF_SECS", "1"),
        None => cmd.env("OUTPOST_ACME_DIRECTORY", "https://127.0.0.1:9/directory"),
    };
    let child = cmd.spawn().unwrap();
    std::fs::write(server.join("pid"), child.id().to_string()).unwrap();
    child
}

pub(crate) fn node_id_of(d: &Value) -> String {
    d["node"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_ovh_node_is_created_enrolls_and_is_deleted_with_its_dns_records() {
    let c = start().await;
    c.ovh.with(|s| s.build_polls = 1);
    let api = Api::new(&c.cp, OWNER);
    let ws = api.create_workspace("Acme Cloud").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let d = api.wait_node_state(&ws_id, "booting", 60).await;
    let node_id = node_id_of(&d);
    assert_eq!(d["node"]["region"], REGION);

    // One instance, named by the node id, with the configured flavor, image and region.
    let creates = c.ovh.with(|s| s.creates.clone());
    assert_eq!(creates.len(), 1, "{creates:?}");
    let create = &creates[0];
    assert_eq!(create["name"], node_id.as_str());
    assert_eq!(create["flavorId"], FLAVOR);
    assert_eq!(create["imageId"], IMAGE);
    assert_eq!(create["region"], REGION);
    let user_data = create["userData"].as_str().unwrap().to_owned();
    assert!(user_data.contains(RELEASE_SHA), "release digest checked");
    assert!(user_data.contains("sha256sum -c -"));
    assert_eq!(c.ovh.with(|s| s.refused), 0, "every call signed right");

    // DNS only, never proxied: <slug>.<nodes_domain> → the server's public addresses.
    let host = format!("acme-cloud.{DOMAIN}");
    let records = c.cf.with(|s| s.records.clone());
    let mut got: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["name"], host.as_str());
            assert_eq!(r["proxied"], false);
            (
                r["type"].as_str().unwrap().to_owned(),
                r["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("A".into(), "127.0.0.1".into()),
            ("AAAA".into(), "::1".into())
        ]
    );
    assert!(c
        .cf
        .with(|s| s.written.iter().all(|w| w["proxied"] == false)));

    // The server boots: the bundle from the user-data enrolls the node, which reports.
    let bundle: Value = serde_json::from_slice(&bootstrap_from_user_data(&user_data).0).unwrap();
    assert_eq!(bundle["node_id"], node_id.as_str());
    assert_eq!(bundle["public_url"], format!("https://{host}"));
    assert_eq!(bundle["public_host"], host.as_str());
    assert_eq!(bundle["listen_addr"], format!("127.0.0.1:{}", c.node_port));
    // The server gets its certificate from pebble (Let's Encrypt's test CA) at its DNS
    // name, which pebble's mock DNS resolves to 127.0.0.1, answering HTTP-01 on the
    // bundle's port; without pebble installed (outside CI) it stays healthy but for its
    // certificate.
    let mut pebble = crate::https::pebble_available()
        .then(|| crate::https::Pebble::configure(c.node_port, 3600));
    if let Some(p) = pebble.as_mut() {
        p.start().await;
    }
    let https_port = free_port();
    let mut node = boot_server_with(&c.cp, &node_id, &user_data, pebble.as_ref(), https_port);
    match &pebble {
        Some(p) => {
            wait_for("the certificate from pebble", 90, || async {
                let tls = crate::https::tls_check(&api, &ws_id).await;
                (tls.as_ref().map(|t| t.0) == Some(true)).then_some(())
            })
            .await;
            api.wait_node_state(&ws_id, "healthy", 30).await;
            let root = p.root_pem().await;
            let r = crate::https::client_trusting(&root, Some((host.as_str(), https_port)))
                .get(format!("https://{host}:{https_port}/healthz"))
                .send()
                .await
                .expect("the node serves HTTPS at its DNS name with pebble's certificate");
            assert!(r.status().is_success(), "{}", r.status());
        }
        None => crate::replicas::reports_well(&c.cp, &node_id).await,
    }
    // Port 80 sends every visitor to https://<its DNS name>/.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/console", c.node_port))
        .header("host", host.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 308, "the node answers on port 80");
    // To the HTTPS port (443 on a real server; a free port here, so it is named).
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("https://{host}")) && location.ends_with("/console"),
        "{location}"
    );

    // Cancelled with no export window: deprovisioned, receipt verified, instance and
    // records deleted.
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let d = api.wait_node_state(&ws_id, "destroyed", 90).await;
    assert!(d["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["detail"] == "destruction receipt verified"));
    wait_for("instance deleted", 30, || async {
        c.ovh
            .with(|s| s.instances.is_empty() && s.deletes.len() == 1)
            .then_some(())
    })
    .await;
    assert!(c.cf.with(|s| s.records.is_empty()), "DNS records deleted");
    assert_eq!(c.ovh.with(|s| s.creates.len()), 1, "still one server");
    assert_eq!(c.ovh.with(|s| s.refused), 0);
    // The node destroyed its data and stopped by itself after its receipt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "node still running after its receipt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_owner_chooses_the_region_among_those_configured() {
    let ovh = FakeOvh::start().await;
    let cf = FakeCloudflare::start().await;
    let mut env = cloud_env(&ovh, &cf, free_port());
    for (k, v) in &mut env {
        if *k == "OUTPOST_OVH_REGIONS" {
            *v = format!("{REGION},{REGION2}");
        }
    }
    let cp = Cp::start_with(Opts {
        provisioner: "ovh",
        env,
        ..Default::default()
    });
    let api = Api::new(&cp, OWNER);
    let (status, regions) = api.get_json("/api/v1/regions").await;
    assert_eq!(status, 200);
    assert_eq!(regions["regions"], serde_json::json!([REGION, REGION2]));

    // The page offers both, the first picked; the owner picks the second.
    let b = Browser::signin(&cp, OWNER).await;
    let page = b.get("/workspaces").await.text().await.unwrap();
    assert!(
        page.contains(r#"<select id="region" name="region""#),
        "{page}"
    );
    assert!(page.contains(&format!(r#"<option value="{REGION}" selected>"#)));
    assert!(page.contains(&format!(r#"<option value="{REGION2}">"#)));
    let r = b
        .post_csrf(
            "/workspaces",
            &[("name", "Strasbourg Dental"), ("region", REGION2)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let ws_id = r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/workspaces/")
        .to_owned();
    let d = api.wait_node_state(&ws_id, "booting", 60).await;
    assert_eq!(d["workspace"]["region"], REGION2, "{d}");
    assert_eq!(d["node"]["region"], REGION2, "{d}");
    let creates = ovh.with(|s| s.creates.clone());
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(
        creates[0]["region"], REGION2,
        "the instance is in the chosen region"
    );

    // A region not offered is refused in words, and nothing is created.
    let r = api
        .req(reqwest::Method::POST, "/api/v1/workspaces")
        .json(&serde_json::json!({"name": "Nowhere Co", "region": "BHS5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "unknown_region", "{e}");
    let words = e["message"].as_str().unwrap();
    assert!(
        words.contains("BHS5") && words.contains(&format!("choose one of {REGION}, {REGION2}")),
        "{words}"
    );
    let (_, list) = api.get_json("/api/v1/workspaces").await;
    assert_eq!(list["workspaces"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn local_nodes_offer_no_region_to_choose() {
    let cp = Cp::start();
    let b = Browser::signin(&cp, OWNER).await;
    let page = b.get("/workspaces").await.text().await.unwrap();
    assert!(page.contains("Create a workspace"));
    assert!(
        !page.contains(r#"name="region""#),
        "no choice shown: {page}"
    );
    let api = Api::new(&cp, OWNER);
    let (_, regions) = api.get_json("/api/v1/regions").await;
    assert_eq!(regions["regions"], serde_json::json!([]));
    let r = api
        .req(reqwest::Method::POST, "/api/v1/workspaces")
        .json(&serde_json::json!({"name": "Local Co", "region": REGION}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "unknown_region", "{e}");
}

#[tokio::test]
async fn a_quota_error_fails_the_node_at_once_in_words() {
    let c = start().await;
    c.ovh.with(|s| s.quota = true);
    let api = Api::new(&c.cp, OWNER);
    let ws = api.create_workspace("Quota Co").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let d = api.wait_node_state(&ws_id, "failed", 30).await;
    assert_eq!(d["node"]["failed_step"], "provisioning", "{d}");
    assert_eq!(d["node"]["error_code"], "provider_quota", "{d}");
    let words = d["node_error"].as_str().unwrap();
    assert!(words.contains("quota"), "explained in words: {words}");
    assert_eq!(c.ovh.with(|s| s.creates.len()), 1, "not retried");
    assert!(c.ovh.with(|s| s.instances.is_empty()));
}

#[tokio::test]
async fn ovh_5xx_and_a_dns_api_that_is_down_are_retried() {
    let c = start().await;
    c.ovh.with(|s| s.fail_5xx = 1);
    c.cf.with(|s| s.down = 2);
    let api = Api::new(&c.cp, OWNER);
    let ws = api.create_workspace("Retry Co").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let d = api.wait_node_state(&ws_id, "booting", 90).await;
    let events = d["events"].to_string();
    assert!(events.contains("provider_unavailable"), "{events}");
    assert!(events.contains("dns_error"), "{events}");
    assert_eq!(c.ovh.with(|s| s.creates.len()), 1, "one server");
    assert_eq!(c.cf.with(|s| s.records.len()), 2);
}

#[tokio::test]
async fn an_instance_in_error_fails_the_node_and_is_deleted() {
    let c = start().await;
    c.ovh.with(|s| s.end_in_error = true);
    let api = Api::new(&c.cp, OWNER);
    let ws = api.create_workspace("Broken Co").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let d = api.wait_node_state(&ws_id, "failed", 30).await;
    assert_eq!(d["node"]["failed_step"], "provisioning");
    assert_eq!(d["node"]["error_code"], "server_error");
    assert_eq!(
        c.ovh.with(|s| s.deletes.len()),
        1,
        "the broken server deleted"
    );
    assert!(c.cf.with(|s| s.records.is_empty()), "no DNS for it");
}

/// The fake refuses what OVH refuses, by its own computation: a wrong signature, and a
/// right one over a timestamp from the caller's clock instead of OVH's.
#[tokio::test]
async fn the_fake_ovh_refuses_bad_signatures_and_stale_timestamps() {
    let ovh = FakeOvh::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/auth/currentCredential", ovh.uri);
    let send = |ts: i64, sig: String| {
        http.get(&url)
            .header("X-Ovh-Application", AK)
            .header("X-Ovh-Consumer", CK)
            .header("X-Ovh-Timestamp", ts.to_string())
            .header("X-Ovh-Signature", sig)
            .send()
    };
    let server_ts: i64 = http
        .get(format!("{}/auth/time", ovh.uri))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let good = ovh_signature(AS, CK, "GET", &url, "", server_ts);
    let r = send(server_ts, good).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "{:?}",
        ovh.with(|s| s.last_refusal.clone())
    );
    let wrong = ovh_signature("not-the-secret", CK, "GET", &url, "", server_ts);
    assert_eq!(send(server_ts, wrong).await.unwrap().status(), 403);
    let local = server_ts - OVH_CLOCK_AHEAD;
    let stale = ovh_signature(AS, CK, "GET", &url, "", local);
    assert_eq!(send(local, stale).await.unwrap().status(), 403);
    assert_eq!(ovh.with(|s| s.refused), 2);
}

#[tokio::test]
async fn ovh_check_lists_regions_and_flavors_and_names_refused_credentials() {
    let ovh = FakeOvh::start().await;
    let cf = FakeCloudflare::start().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .args(["ovh", "check", "--data-dir"])
            .arg(dir.path())
            .envs(cloud_env(&ovh, &cf, 1).into_iter())
            .env("OUTPOST_OVH_APPLICATION_SECRET", secret)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = run(AS);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("credentials: accepted (validated)"), "{text}");
    assert!(text.contains("GRA11, SBG5"), "{text}");
    assert!(text.contains(&format!("{FLAVOR}  d2-2")), "{text}");
    assert!(text.contains("<- configured"), "{text}");
    let out = run("wrong-secret");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("provider_credentials"), "{err}");
    assert!(
        !err.contains("wrong-secret"),
        "no secret in the error: {err}"
    );
}

#[tokio::test]
async fn a_partial_cloud_configuration_refuses_to_start_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .args(["serve", "--provisioner", "ovh", "--data-dir"])
        .arg(dir.path())
        .env("OUTPOST_OVH_APPLICATION_KEY", AK)
        .env("OUTPOST_OVH_PROJECT_ID", PROJECT)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for name in [
        "OUTPOST_OVH_APPLICATION_SECRET",
        "OUTPOST_OVH_CONSUMER_KEY",
        "OUTPOST_CLOUDFLARE_API_TOKEN",
        "OUTPOST_NODES_DOMAIN",
        "OUTPOST_NODE_RELEASE_SHA256",
    ] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    assert!(!err.contains("OUTPOST_OVH_APPLICATION_KEY,"), "{err}");
}

/// The control plane killed (SIGKILL) while the server is building: after the restart the
/// job's lease expires, the job runs again, finds the instance by its name and carries on.
#[tokio::test]
async fn a_control_plane_killed_mid_provisioning_still_makes_one_server() {
    let mut c = start().await;
    c.ovh.with(|s| s.build_polls = 1000);
    let api = Api::new(&c.cp, OWNER);
    let ws = api.create_workspace("Crash Co").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    wait_for("instance created", 30, || async {
        (c.ovh.with(|s| s.creates.len()) == 1).then_some(())
    })
    .await;
    c.cp.kill();
    c.ovh.with(|s| s.build_polls = 0);
    c.cp.restart();
    let api = Api::new(&c.cp, OWNER);
    api.wait_node_state(&ws_id, "booting", 120).await;
    assert_eq!(c.ovh.with(|s| s.creates.len()), 1, "still one server");
    assert_eq!(c.ovh.with(|s| s.instances.len()), 1);
    assert_eq!(c.cf.with(|s| s.records.len()), 2);
}
