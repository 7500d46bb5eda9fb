//! Two `control-plane serve` replicas on one PostgreSQL database (issue 15, "A control
//! plane that outgrows one machine"). Nodes reach the gateway through a TCP load
//! balancer (`relay.rs`) (mTLS passes through it untouched), as they would a DNS name
//! with both replicas behind it. The replica running the provisioning job is killed
//! (SIGKILL) while the server builds: the other takes the job over once its lease runs
//! out, finds the instance by name and makes no second one; the node it yields enrolls
//! and turns healthy; its reports and commands go through either replica, and a command
//! queued on one replica reaches a node long-polling the other at once (PostgreSQL
//! LISTEN/NOTIFY), not at the long-poll's next look at the database.
//!
//! PostgreSQL only (`TEST_DATABASE_URL`): on the SQLite pass the test returns at once.

use crate::cloud::{boot_server, cloud_env, free_port, node_id_of, OWNER};
use crate::cloud_fakes::*;
use crate::harness::*;
use crate::relay::Relay;
use diesel::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn gateway_addr(cp: &Cp) -> SocketAddr {
    cp.gateway.trim_start_matches("https://").parse().unwrap()
}

fn is_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// The same API client, talking to another replica.
fn via(api: &Api, cp: &Cp) -> Api {
    Api {
        base: cp.ui.clone(),
        token: api.token.clone(),
        client: no_redirect_client(),
    }
}

/// How many gateway requests for `path` this replica has logged.
fn gateway_hits(cp: &Cp, path: &str) -> usize {
    cp.log().lines().filter(|l| l.contains(path)).count()
}

/// Queues a command for the node through `api`'s replica (a new agent: `apply_config`)
/// and returns how long it took to be delivered to the node's long-poll.
async fn command_delivery(api: &Api, cp: &Cp, ws_id: &str, name: &str) -> Duration {
    use control_plane::infra::schema::commands;
    let body = crate::agents::agent_body(name, "retrieval", "", "");
    let pool = cp.db();
    let queued = Instant::now();
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/agents"),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    wait_for("the command delivered", 30, || {
        let pool = pool.clone();
        async move {
            let mut c = pool.get().unwrap();
            let undelivered: i64 = commands::table
                .filter(commands::kind.eq("apply_config"))
                .filter(commands::delivered_at.is_null())
                .count()
                .get_result(&mut c)
                .unwrap();
            if undelivered == 0 {
                Some(())
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                None
            }
        }
    })
    .await;
    queued.elapsed()
}

/// Waits until the node reports and every check passes, but `tls`: there is no ACME
/// server in this test (tests/e2e/https.rs has pebble), so the node's own certificate
/// cannot be had, which makes it `degraded` rather than `healthy`. Everything else the
/// node checks must pass.
pub(crate) async fn reports_well(cp: &Cp, node_id: &str) {
    use control_plane::infra::schema::nodes;
    let pool = cp.db();
    wait_for("the node healthy (but for its own certificate)", 90, || {
        let pool = pool.clone();
        async move {
            let mut c = pool.get().unwrap();
            let (state, checks): (String, Option<String>) = nodes::table
                .find(node_id)
                .select((nodes::state, nodes::checks_json))
                .first(&mut c)
                .unwrap();
            let checks: Vec<serde_json::Value> =
                serde_json::from_str(checks.as_deref().unwrap_or("[]")).unwrap();
            let failing: Vec<&str> = checks
                .iter()
                .filter(|c| c["ok"] != true)
                .map(|c| c["name"].as_str().unwrap_or(""))
                .collect();
            let fine = state == "healthy" || (state == "degraded" && failing == ["tls"]);
            fine.then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn two_replicas_share_the_work_and_survive_one_killed_mid_provisioning() {
    if !is_postgres() {
        eprintln!("skipped: PostgreSQL only (TEST_DATABASE_URL is not set)");
        return;
    }
    let ovh = FakeOvh::start().await;
    let cf = FakeCloudflare::start().await;
    let lb = Relay::start(Vec::new());
    let mut env = cloud_env(&ovh, &cf, free_port());
    env.push(("OUTPOST_GATEWAY_URL", format!("https://{}", lb.addr)));
    let opts = Opts {
        provisioner: "ovh",
        env,
        ..Default::default()
    };
    let mut a = Cp::start_with(opts.clone());
    let mut b = a.start_replica(opts);
    lb.route_to(vec![gateway_addr(&a), gateway_addr(&b)]);
    let leads = |cp: &Cp| cp.log().contains("this replica now leads");
    wait_for("a leader", 20, || async {
        (leads(&a) || leads(&b)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        leads(&a) != leads(&b),
        "exactly one replica leads the sweeps"
    );

    // The server builds for as long as the test wants.
    ovh.with(|s| s.build_polls = 100_000);
    let api = Api::new(&a, OWNER);
    let ws = api.create_workspace("Replica Co").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    wait_for("instance created", 30, || async {
        (ovh.with(|s| s.creates.len()) == 1).then_some(())
    })
    .await;

    // Which replica holds the job: its worker is named after its process id.
    let holder: String = {
        use control_plane::infra::schema::jobs;
        let mut c = a.db().get().unwrap();
        jobs::table
            .filter(jobs::kind.eq("provision"))
            .select(jobs::locked_by)
            .first::<Option<String>>(&mut c)
            .unwrap()
            .expect("the job is claimed")
    };
    let a_holds = holder.starts_with(&format!("worker-{}-", a.pid().unwrap()));
    assert!(
        a_holds || holder.starts_with(&format!("worker-{}-", b.pid().unwrap())),
        "{holder}"
    );
    let (killed, survivor) = if a_holds { (&mut a, &b) } else { (&mut b, &a) };
    killed.kill();
    ovh.with(|s| s.build_polls = 0);

    // The survivor takes the job over after its lease (60 s), finds the instance by its
    // name, and carries on: one server, its DNS records, and the survivor leads.
    let on_survivor = via(&api, survivor);
    let d = on_survivor.wait_node_state(&ws_id, "booting", 150).await;
    assert_eq!(ovh.with(|s| s.creates.len()), 1, "still one server");
    assert_eq!(ovh.with(|s| s.instances.len()), 1);
    assert_eq!(cf.with(|s| s.records.len()), 2);
    wait_for("the survivor to lead", 20, || async {
        leads(survivor).then_some(())
    })
    .await;

    // The killed replica comes back; the server boots and enrolls through the balancer.
    killed.restart();
    let (a, b) = if a_holds {
        (&*killed, survivor)
    } else {
        (survivor, &*killed)
    };
    lb.route_to(vec![gateway_addr(a), gateway_addr(b)]);
    let node_id = node_id_of(&d);
    let user_data = ovh.with(|s| s.creates[0]["userData"].as_str().unwrap().to_owned());
    let mut server = boot_server(a, &node_id, &user_data);
    let node_log = a.node_dir(&node_id).join("node.log");
    let reporting = tokio::time::timeout(Duration::from_secs(90), reports_well(a, &node_id)).await;
    assert!(
        reporting.is_ok(),
        "the node did not turn healthy; its log:\n{}",
        std::fs::read_to_string(&node_log).unwrap_or_default()
    );
    assert_eq!(ovh.with(|s| s.creates.len()), 1, "still one server");

    // Reports and commands through either replica; a command queued on the other one
    // wakes the node's long-poll at once.
    let (on_a, on_b) = (via(&api, a), via(&api, b));
    for (i, (polled, polled_name, queued_on)) in
        [(a, "a", &on_b), (b, "b", &on_a)].into_iter().enumerate()
    {
        lb.route_to(vec![gateway_addr(polled)]);
        let before = gateway_hits(polled, "/v1/node/report");
        wait_for(
            &format!("reports through replica {polled_name}"),
            30,
            || async { (gateway_hits(polled, "/v1/node/report") >= before + 2).then_some(()) },
        )
        .await;
        // The long-poll the balancer cut comes back within the node's backoff (2 s); a
        // poll is logged only when it ends, so give it that long.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for n in 0..3 {
            let took = command_delivery(queued_on, polled, &ws_id, &format!("Agent {i}{n}")).await;
            assert!(
                took < Duration::from_millis(1500),
                "a command queued on the other replica took {took:?} to reach the node polling replica {polled_name}"
            );
        }
        reports_well(polled, &node_id).await;
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// `control-plane serve` with a data directory whose keys are not those the database was
/// first used with, as a replica started without copying them would be: exit 1 before
/// taking any request, naming the keys that differ and what to do. SQLite and PostgreSQL.
#[test]
fn a_replica_with_other_keys_refuses_to_start_naming_them() {
    let mut cp = Cp::start();
    let other = tempfile::tempdir().unwrap();
    let serve = |data: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args(["--database-url", &cp.db_url])
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A fresh data directory: every key is its own.
    let (ok, err) = serve(other.path());
    assert!(!ok, "{err}");
    assert!(
        err.contains("ca.key, capability.key, fingerprint.key are not the ones this database was first used with"),
        "{err}"
    );
    assert!(
        err.contains("Copy ca.crt, ca.key, capability.key and fingerprint.key"),
        "{err}"
    );
    // The CA and capability key copied, the fingerprint key forgotten: it alone is named.
    for f in ["ca.crt", "ca.key", "capability.key"] {
        std::fs::copy(cp.data_dir().join(f), other.path().join(f)).unwrap();
    }
    let (ok, err) = serve(other.path());
    assert!(!ok, "{err}");
    assert!(
        err.contains("data directory's fingerprint.key is not the one this database"),
        "{err}"
    );
    // The first control plane, with the keys it recorded, starts again.
    cp.restart();
    assert!(!cp.ui.is_empty());
}
