//! The node's whole life against a fake control-plane gateway speaking the real wire
//! protocol over real TLS: enrollment, reports (through an outage), commands, renewal,
//! the console handoff, and deprovisioning with a verified destruction receipt.
//! End-to-end tests with the real control plane live in the workspace's `tests/`.

#![allow(clippy::unwrap_used)]

use actix_web::{web, App, HttpResponse, HttpServer};
use agent_node::cli::{NodeCommand, RunArgs};
use outpost_crypto::{CapabilityClaims, CapabilitySigner};
use outpost_pki::CertificateAuthority;
use outpost_protocol::{
    BootstrapBundle, Command, CommandAck, CommandBatch, CommandKind, EnrollRequest, EnrollResponse,
    NodeId, RenewRequest, RenewResponse, Report, ReportAck, WorkspaceInfo,
};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Fake {
    token_used: bool,
    reports: BTreeMap<i64, usize>,
    reports_down: bool,
    pending: VecDeque<Command>,
    acks: Vec<(String, CommandAck)>,
    certs: Vec<Vec<u8>>,
    renewals: usize,
    receipt_verified: bool,
    /// Answer 403 on every node route, as for a revoked certificate.
    refuse: bool,
    node_calls: usize,
    /// The age recipient the node enrolled with (secrets are sealed to it).
    age_recipient: Option<String>,
    /// Reports with these seqs are refused with a 400, as the CP refuses a report holding
    /// a NUL (`invalid_text`); how often each was posted.
    reject: BTreeMap<i64, usize>,
    /// Renewals are refused as the CP refuses a fresh certificate (409
    /// `certificate_fresh`); how many were asked for.
    refuse_renewal: bool,
    renew_calls: usize,
}

/// Counts a node-route call; `Some(403)` when the fake refuses the certificate.
fn refused(f: &mut Fake) -> Option<HttpResponse> {
    f.node_calls += 1;
    f.refuse.then(|| {
        HttpResponse::Forbidden()
            .json(serde_json::json!({"code": "certificate_revoked", "message": "no"}))
    })
}

struct Gateway {
    ca: CertificateAuthority,
    signer: CapabilitySigner,
    node_id: NodeId,
    token: String,
    fake: Mutex<Fake>,
}

type G = web::Data<Gateway>;

async fn enroll(g: G, body: web::Json<EnrollRequest>) -> HttpResponse {
    let mut f = g.fake.lock().unwrap();
    if body.token != g.token || f.token_used {
        return HttpResponse::Unauthorized()
            .json(serde_json::json!({"code": "invalid_bootstrap_token", "message": "no"}));
    }
    assert!(body.age_recipient.starts_with("age1"));
    f.age_recipient = Some(body.age_recipient.clone());
    f.token_used = true;
    let issued =
        g.ca.sign_node_csr(&body.csr_pem, g.node_id.as_str())
            .unwrap();
    f.certs.push(issued.der);
    HttpResponse::Ok().json(EnrollResponse {
        node_id: g.node_id.clone(),
        cert_pem: issued.pem,
        capability_public_key: g.signer.public_key_b64(),
        workspace: workspace(),
    })
}

async fn report(g: G, body: web::Json<Report>) -> HttpResponse {
    let mut f = g.fake.lock().unwrap();
    if let Some(r) = refused(&mut f) {
        return r;
    }
    if f.reports_down {
        return HttpResponse::ServiceUnavailable().finish();
    }
    if let Some(n) = f.reject.get_mut(&body.seq) {
        *n += 1;
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"code": "invalid_text", "message": "NUL"}));
    }
    assert_eq!(body.checks[0].name, "storage");
    assert!(body.checks[0].ok);
    let n = f.reports.entry(body.seq).or_default();
    *n += 1;
    HttpResponse::Ok().json(ReportAck {
        seq: body.seq,
        accepted: *n == 1,
    })
}

async fn commands(g: G) -> HttpResponse {
    let deadline = Instant::now() + Duration::from_millis(500);
    if let Some(r) = refused(&mut g.fake.lock().unwrap()) {
        return r;
    }
    loop {
        let cmds: Vec<Command> = g.fake.lock().unwrap().pending.iter().cloned().collect();
        if !cmds.is_empty() || Instant::now() > deadline {
            return HttpResponse::Ok().json(CommandBatch { commands: cmds });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ack(g: G, id: web::Path<String>, body: web::Json<CommandAck>) -> HttpResponse {
    let mut f = g.fake.lock().unwrap();
    let id = id.into_inner();
    if let Some(r) = &body.receipt {
        let parsed = r.parsed_body().unwrap();
        let der = f
            .certs
            .iter()
            .find(|d| outpost_pki::sha256_hex(d) == parsed.cert_sha256)
            .expect("receipt names a certificate we issued")
            .clone();
        let sig = outpost_crypto::unb64(&r.signature).unwrap();
        outpost_pki::verify_with_cert(&der, r.body.as_bytes(), &sig).expect("receipt verifies");
        assert_eq!(parsed.node_id, g.node_id);
        assert_eq!(parsed.workspace_id, "ws-1");
        f.receipt_verified = true;
    }
    f.pending.retain(|c| c.id != id);
    f.acks.push((id, body.into_inner()));
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

async fn renew(g: G, body: web::Json<RenewRequest>) -> HttpResponse {
    {
        let mut f = g.fake.lock().unwrap();
        f.renew_calls += 1;
        if f.refuse_renewal {
            return HttpResponse::Conflict().json(serde_json::json!({
                "code": "certificate_fresh",
                "message": "This certificate has more than half of its life left."
            }));
        }
    }
    let issued =
        g.ca.sign_node_csr(&body.csr_pem, g.node_id.as_str())
            .unwrap();
    let mut f = g.fake.lock().unwrap();
    f.certs.push(issued.der);
    f.renewals += 1;
    HttpResponse::Ok().json(RenewResponse {
        cert_pem: issued.pem,
    })
}

fn workspace() -> WorkspaceInfo {
    WorkspaceInfo {
        id: "ws-1".into(),
        slug: "acme-dental".into(),
        name: "Acme Dental".into(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the fake gateway; returns it and its URL.
fn start_gateway() -> (Arc<Gateway>, String) {
    let (ca, _) = CertificateAuthority::generate("fake cp").unwrap();
    let (chain, key) = ca.issue_server_cert(&["127.0.0.1".into()]).unwrap();
    let tls = outpost_pki::gateway_server_config(ca.cert_pem(), chain, key).unwrap();
    let node_id = NodeId::new_random();
    let g = Arc::new(Gateway {
        ca,
        signer: CapabilitySigner::generate().unwrap().0,
        token: format!("{node_id}.{}", outpost_crypto::random_token()),
        node_id,
        fake: Mutex::default(),
    });
    let data = web::Data::from(g.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/enroll", web::post().to(enroll))
            .route("/v1/node/report", web::post().to(report))
            .route("/v1/node/commands", web::get().to(commands))
            .route("/v1/node/commands/{id}/ack", web::post().to(ack))
            .route("/v1/node/renew", web::post().to(renew))
    })
    .workers(1)
    .disable_signals()
    .bind_rustls_0_23("127.0.0.1:0", tls)
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    (g, format!("https://127.0.0.1:{port}"))
}

fn write_bundle(dir: &Path, g: &Gateway, url: &str, token: &str, console_port: u16) {
    std::fs::create_dir_all(dir).unwrap();
    let bundle = BootstrapBundle {
        node_id: g.node_id.clone(),
        gateway_url: url.to_owned(),
        ca_pem: g.ca.cert_pem().to_owned(),
        token: token.to_owned(),
        listen_addr: format!("127.0.0.1:{console_port}"),
        public_url: format!("http://acme-dental.localhost:{console_port}"),
        workspace: workspace(),
        report_interval_secs: 0.2,
        public_host: None,
        release_public_key: None,
    };
    std::fs::write(
        dir.join("bootstrap.json"),
        serde_json::to_vec(&bundle).unwrap(),
    )
    .unwrap();
}

fn spawn_node(
    dir: PathBuf,
    renew_after: Option<u64>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    spawn_node_with_clock(dir, renew_after, 0)
}

/// A node whose clock is `skew` seconds off.
fn spawn_node_with_clock(
    dir: PathBuf,
    renew_after: Option<u64>,
    skew: i64,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::spawn(move || {
        agent_node::execute(NodeCommand::Run(RunArgs {
            data_dir: dir,
            renew_after_secs: renew_after,
            max_backoff_secs: 1,
            clock_skew_secs: skew,
            db_headroom_pages: None,
            // Nothing in these tests calls a model; unreachable on purpose.
            openai_base_url: "http://127.0.0.1:9/v1".into(),
            anthropic_base_url: "http://127.0.0.1:9/v1".into(),
            telegram_base_url: "http://127.0.0.1:9".into(),
            graph_base_url: "http://127.0.0.1:9/v21.0".into(),
            twilio_api_base: "http://127.0.0.1:9".into(),
            allow_local_providers: false,
            public_host: None,
            https_port: 443,
            http_port: 80,
            bind_address: std::net::Ipv4Addr::LOCALHOST.into(),
            acme: true,
            acme_directory: "https://127.0.0.1:9/dir".into(),
            acme_email: None,
            acme_ca_file: None,
            acme_max_backoff_secs: 1,
            binary_path: Some(std::path::PathBuf::from("/nonexistent/agent-node")),
            release_public_key: None,
            upgrade_max_bytes: 1024,
            probation_secs: 300,
        }))
        .map(|_| ())
    })
}

async fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn queue(g: &Gateway, id: &str, kind: CommandKind) {
    g.fake.lock().unwrap().pending.push_back(Command {
        id: id.into(),
        kind,
    });
}

fn acks_for(g: &Gateway, id: &str) -> Vec<CommandAck> {
    let f = g.fake.lock().unwrap();
    f.acks
        .iter()
        .filter(|(i, _)| i == id)
        .map(|(_, a)| a.clone())
        .collect()
}

#[actix_web::test]
async fn node_lives_and_dies_by_the_protocol() {
    let (g, url) = start_gateway();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let console_port = free_port();
    write_bundle(&dir, &g, &url, &g.token.clone(), console_port);
    let node = spawn_node(dir.clone(), Some(1));

    // Enrolled: the token is gone from disk, keys are private and sealed.
    wait_until("first reports", 20, || {
        g.fake.lock().unwrap().reports.len() >= 3
    })
    .await;
    assert!(
        !dir.join("bootstrap.json").exists(),
        "token removed from disk"
    );
    for f in [
        "master.key",
        "node.key",
        "age.identity",
        "node.crt",
        "node.db",
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let sealed = std::fs::read(dir.join("node.key")).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
    assert_eq!(std::fs::read(dir.join("master.key")).unwrap().len(), 32);

    // An outage: reports are buffered, then replayed; nothing lost, nothing doubled.
    g.fake.lock().unwrap().reports_down = true;
    let before = *g.fake.lock().unwrap().reports.keys().last().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    g.fake.lock().unwrap().reports_down = false;
    wait_until("replay after the outage", 20, || {
        let f = g.fake.lock().unwrap();
        f.reports.keys().last().is_some_and(|s| *s >= before + 6)
    })
    .await;
    {
        let f = g.fake.lock().unwrap();
        let seqs: Vec<i64> = f.reports.keys().copied().collect();
        let last = *seqs.last().unwrap();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "contiguous from 1");
    }

    // A report the CP refuses with a 400 (say a NUL it cannot store) is dropped after one
    // try, and the reports behind it go through: the outbox is not wedged. (A 5xx is
    // retried, as the outage above shows.)
    let from = *g.fake.lock().unwrap().reports.keys().last().unwrap() + 2;
    g.fake.lock().unwrap().reject = (from..from + 2).map(|s| (s, 0)).collect();
    wait_until("reports after the refused ones", 20, || {
        let f = g.fake.lock().unwrap();
        f.reports.keys().last().is_some_and(|s| *s >= from + 3)
    })
    .await;
    {
        let f = g.fake.lock().unwrap();
        assert_eq!(
            f.reject.values().copied().collect::<Vec<_>>(),
            [1, 1],
            "each refused report was sent once, then dropped"
        );
        assert!(
            f.reports.contains_key(&(from + 2)),
            "the next one was taken"
        );
    }

    // Renewal (every second here) swaps the certificate; reports keep flowing.
    wait_until("a renewal", 20, || g.fake.lock().unwrap().renewals >= 1).await;
    let after_renewal = g.fake.lock().unwrap().reports.len();
    wait_until("reports after renewal", 20, || {
        g.fake.lock().unwrap().reports.len() >= after_renewal + 3
    })
    .await;

    // Commands: executed once, acked; a redelivery is only re-acked.
    queue(
        &g,
        "c-config",
        CommandKind::ApplyConfig {
            config: serde_json::json!({"agent": {"name": "Ava"}}),
        },
    );
    queue(
        &g,
        "c-suspend",
        CommandKind::Suspend {
            reason_code: "payment_failed".into(),
        },
    );
    let recipient = g.fake.lock().unwrap().age_recipient.clone().unwrap();
    queue(
        &g,
        "c-secret",
        CommandKind::DeliverSecret {
            secret_kind: "openai_api_key".into(),
            sealed: outpost_crypto::seal_to_recipient(&recipient, b"sk-lifecycle-canary-9q")
                .unwrap(),
        },
    );
    queue(
        &g,
        "c-garbage",
        CommandKind::DeliverSecret {
            secret_kind: "openai_api_key".into(),
            sealed: "x".into(),
        },
    );
    wait_until("acks", 20, || g.fake.lock().unwrap().pending.is_empty()).await;
    assert!(acks_for(&g, "c-config")[0].ok);
    assert!(acks_for(&g, "c-suspend")[0].ok);
    assert!(
        acks_for(&g, "c-secret")[0].ok,
        "sealed to this node: stored"
    );
    let garbage = &acks_for(&g, "c-garbage")[0];
    assert!(!garbage.ok);
    assert_eq!(garbage.error_code.as_deref(), Some("cannot_open"));
    queue(
        &g,
        "c-suspend",
        CommandKind::Suspend {
            reason_code: "payment_failed".into(),
        },
    );
    wait_until("re-ack", 20, || acks_for(&g, "c-suspend").len() == 2).await;

    // Console: a capability token from the CP opens a session once.
    // Plain HTTP, but reqwest still wants a TLS config; no process-wide provider exists.
    let tls = outpost_pki::node_client_config(g.ca.cert_pem(), None).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            "acme-dental.localhost",
            ([127, 0, 0, 1], console_port).into(),
        )
        .build()
        .unwrap();
    let base = format!("http://acme-dental.localhost:{console_port}");
    let token = g.signer.sign(&CapabilityClaims {
        sub: "user-1".into(),
        ws: "ws-1".into(),
        node: g.node_id.to_string(),
        scopes: vec!["console".into()],
        exp: time::OffsetDateTime::now_utc().unix_timestamp() + 120,
        jti: outpost_crypto::random_token(),
    });
    let link = format!("{base}/auth/handoff?token={token}");
    let r = http.get(&link).send().await.unwrap();
    // The handoff's own page (it moves on to `/` by itself): see `console::handoff`.
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("outpost_node_session="))
        .expect("session cookie");
    let page = http
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Acme Dental — Outpost node"));
    assert!(page.contains(g.node_id.as_str()) && page.contains("suspended"));
    assert_eq!(
        http.get(&link).send().await.unwrap().status(),
        401,
        "replay"
    );
    assert_eq!(
        http.get(format!("{base}/")).send().await.unwrap().status(),
        401,
        "no session"
    );

    // Deprovision: crypto-erase, receipt, exit 0.
    queue(&g, "c-bye", CommandKind::Deprovision);
    wait_until("node exit", 30, || node.is_finished()).await;
    node.join()
        .unwrap()
        .expect("execute returns Ok after deprovisioning");
    assert!(!dir.exists(), "data directory removed");
    {
        let f = g.fake.lock().unwrap();
        assert!(f.receipt_verified, "receipt verified against the node cert");
        let bye = f.acks.iter().find(|(i, _)| i == "c-bye").unwrap();
        assert!(bye.1.ok);
    }
    assert!(
        http.get(format!("{base}/healthz")).send().await.is_err(),
        "console stopped"
    );
}

#[actix_web::test]
async fn a_refused_bootstrap_token_is_fatal_and_a_restart_resumes() {
    let (g, url) = start_gateway();
    let parent = tempfile::tempdir().unwrap();

    // wrong token → 401 → execute fails, nothing enrolled
    let bad = parent.path().join("bad");
    write_bundle(&bad, &g, &url, &format!("{}.nope", g.node_id), free_port());
    let node = spawn_node(bad.clone(), None);
    wait_until("refusal", 20, || node.is_finished()).await;
    let err = node.join().unwrap().expect_err("enrollment refused");
    assert!(format!("{err:#}").contains("401"), "{err:#}");
    assert!(!bad.join("node.crt").exists());

    // A restart of an enrolled node finds its certificate and resumes without the
    // (spent) token: simulated by restoring a copy of a running node's directory.
    let dir = parent.path().join("data");
    write_bundle(&dir, &g, &url, &g.token.clone(), free_port());
    let first = spawn_node(dir.clone(), None);
    wait_until("reports", 20, || !g.fake.lock().unwrap().reports.is_empty()).await;
    wait_until("bundle removed", 20, || {
        !dir.join("bootstrap.json").exists()
    })
    .await;
    // Deprovision the first process so it exits cleanly; the copy taken before stands
    // for the directory a killed process would have left behind.
    let snapshot = parent.path().join("snapshot");
    copy_dir(&dir, &snapshot);
    queue(&g, "bye-1", CommandKind::Deprovision);
    wait_until("first exit", 30, || first.is_finished()).await;
    first.join().unwrap().unwrap();

    std::fs::rename(&snapshot, &dir).unwrap();
    let seq_before = *g.fake.lock().unwrap().reports.keys().last().unwrap();
    let second = spawn_node(dir.clone(), None);
    wait_until("resumed reports", 20, || {
        g.fake
            .lock()
            .unwrap()
            .reports
            .keys()
            .last()
            .is_some_and(|s| *s > seq_before)
    })
    .await;
    assert!(g.fake.lock().unwrap().token_used);
    queue(&g, "bye-2", CommandKind::Deprovision);
    wait_until("second exit", 30, || second.is_finished()).await;
    second.join().unwrap().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[actix_web::test]
async fn a_refused_certificate_stops_phoning_home_but_keeps_the_console() {
    let (g, url) = start_gateway();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let port = free_port();
    write_bundle(&dir, &g, &url, &g.token.clone(), port);
    let node = spawn_node(dir.clone(), None);
    wait_until("reports", 20, || !g.fake.lock().unwrap().reports.is_empty()).await;
    g.fake.lock().unwrap().refuse = true;
    // Once both the poll and the flusher have met a 403, the node says nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = g.fake.lock().unwrap().node_calls;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(g.fake.lock().unwrap().node_calls, calls, "no more calls");
    assert!(!node.is_finished(), "the process stays up");
    let tls = outpost_pki::node_client_config(g.ca.cert_pem(), None).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let r = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "console still serving");
    // The node thread is left running; the test process ends with it.
}

/// Issue 18, defect 2: a node whose clock is 40 days ahead saw its new certificate as
/// already expired and renewed it in a loop. It schedules renewal in the CP's time (the
/// `Date` of the answers), so over many loop iterations it does not renew at all.
#[actix_web::test]
async fn a_node_far_ahead_of_the_control_plane_does_not_renew_in_a_loop() {
    let (g, url) = start_gateway();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    write_bundle(&dir, &g, &url, &g.token.clone(), free_port());
    let node = spawn_node_with_clock(dir.clone(), None, 40 * 86_400);
    wait_until("20 reports", 30, || {
        g.fake.lock().unwrap().reports.len() >= 20
    })
    .await;
    assert_eq!(g.fake.lock().unwrap().renew_calls, 0, "no renewal yet");
    assert!(!node.is_finished(), "still running");
    // The node thread is left running; the test process ends with it.
}

/// A renewal the CP refuses as too early (409 `certificate_fresh`, `renewal_too_soon`)
/// is not retried at the reconnect backoff: the node asks again an hour later.
#[actix_web::test]
async fn a_refused_early_renewal_is_not_retried_at_once() {
    let (g, url) = start_gateway();
    g.fake.lock().unwrap().refuse_renewal = true;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    write_bundle(&dir, &g, &url, &g.token.clone(), free_port());
    let node = spawn_node(dir.clone(), Some(0));
    wait_until("a renewal attempt", 20, || {
        g.fake.lock().unwrap().renew_calls >= 1
    })
    .await;
    let reports = g.fake.lock().unwrap().reports.len();
    wait_until("20 more reports", 30, || {
        g.fake.lock().unwrap().reports.len() >= reports + 20
    })
    .await;
    assert_eq!(g.fake.lock().unwrap().renew_calls, 1, "asked once");
    assert!(!node.is_finished(), "still running");
    // The node thread is left running; the test process ends with it.
}
