//! HTTPS on a real node (issue 15): a node started from its bootstrap bundle with a public
//! host gets its certificate over ACME from pebble (Let's Encrypt's test CA, the Debian
//! package), answering HTTP-01 on its port 80, and serves the console over HTTPS with a
//! chain to pebble's root. pebble resolves the node's name through pebble-challtestsrv's
//! mock DNS, which answers 127.0.0.1 for every name.
//!
//! Without pebble installed these tests print why and pass; with `CI=true` (or
//! `OUTPOST_PEBBLE_TESTS=required`) a missing pebble fails them.

use crate::gateway::bundle_for;
use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HOST: &str = "acme-dental.nodes.test";

/// Whether pebble can run here; panics when it must and cannot.
pub(crate) fn pebble_available() -> bool {
    let found = ["pebble", "pebble-challtestsrv"].iter().all(|b| {
        Command::new(b)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if found {
        return true;
    }
    let required = std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("OUTPOST_PEBBLE_TESTS").as_deref() == Ok("required");
    let msg = "HTTPS tests SKIPPED: they need pebble and pebble-challtestsrv (Debian: apt-get install pebble)";
    assert!(!required, "{msg}");
    eprintln!("!!! {msg}");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running process killed with the test.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pebble and its mock DNS, configured (ports chosen) before they are started, so a node
/// can be pointed at an ACME server that is not there yet.
pub(crate) struct Pebble {
    dir: tempfile::TempDir,
    acme_port: u16,
    mgmt_port: u16,
    dns_port: u16,
    /// The CA of pebble's own TLS certificate (the test's, made here with rcgen).
    tls_ca_pem: String,
    procs: Vec<Proc>,
}

impl Pebble {
    /// Validation on the node's `http_port`; certificates valid `validity_secs`.
    pub(crate) fn configure(http_port: u16, validity_secs: u64) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "e2e pebble TLS CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let (acme_port, mgmt_port, dns_port) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pebble {
            dir,
            acme_port,
            mgmt_port,
            dns_port,
            tls_ca_pem: ca.pem(),
            procs: vec![],
        }
    }

    pub(crate) fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    fn client(&self) -> reqwest::Client {
        client_trusting(&self.tls_ca_pem, None)
    }

    pub(crate) async fn start(&mut self) {
        let out = |name: &str| std::fs::File::create(self.dir.path().join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{}", self.dns_port)])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            // A records only: the node listens on 127.0.0.1.
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(out("dns.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.procs.push(Proc(dns));
        let pebble = Command::new("pebble")
            .args([
                "-config",
                &self.dir.path().join("pebble.json").display().to_string(),
            ])
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(out("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.procs.push(Proc(pebble));
        let client = self.client();
        let dir = self.directory();
        wait_for("pebble's directory", 30, || async {
            let r = client.get(&dir).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }

    /// pebble's root (made anew at every start): what a browser would trust.
    pub(crate) async fn root_pem(&self) -> String {
        let r = self
            .client()
            .get(format!("https://127.0.0.1:{}/roots/0", self.mgmt_port))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
}

/// A reqwest client trusting only `root_pem`, with `host` resolved to `port` on
/// 127.0.0.1 (and no connection reuse, so each request shows the certificate served now).
pub(crate) fn client_trusting(root_pem: &str, resolve: Option<(&str, u16)>) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    if let Some((host, port)) = resolve {
        b = b.resolve(host, ([127, 0, 0, 1], port).into());
    }
    b.build().unwrap()
}

/// The node, started as the server's systemd unit would: `node run` over the bundle
/// cloud-init wrote (with its public host), HTTPS and HTTP on 127.0.0.1 test ports.
struct RealNode {
    dir: PathBuf,
    https_port: u16,
    http_port: u16,
    acme_directory: String,
    acme_ca_file: PathBuf,
    proc: Option<Proc>,
}

impl RealNode {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .args(["node", "run", "--data-dir"])
            .arg(&self.dir)
            .args(["--https-port", &self.https_port.to_string()])
            .args(["--http-port", &self.http_port.to_string()])
            .args(["--bind-address", "127.0.0.1", "--max-backoff-secs", "1"])
            .env("OUTPOST_ACME_DIRECTORY", &self.acme_directory)
            .env("OUTPOST_ACME_CA_FILE", &self.acme_ca_file)
            .env("OUTPOST_ACME_EMAIL", "ops@outpost.test")
            .env("OUTPOST_ACME_MAX_BACKOFF_SECS", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.proc = Some(Proc(child));
    }

    fn stop(&mut self) {
        self.proc = None;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- node log ---\n{}", self.log());
        }
    }
}

/// A control plane (manual provisioner), a workspace, and its node started from the
/// bundle with `public_host` added, as the OVH provisioner's cloud-init writes it.
async fn node_with_public_host(cp: &Cp, pebble: &Pebble) -> (Api, String, RealNode) {
    let api = Api::new(cp, "owner@acme.test");
    let (ws, mut bundle) = bundle_for(cp, &api, "Acme Dental").await;
    bundle.public_host = Some(HOST.to_owned());
    let dir = cp.dir.path().join("server/data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bootstrap.json");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut node = RealNode {
        dir,
        https_port: free_port(),
        http_port: pebble_http_port(pebble),
        acme_directory: pebble.directory(),
        acme_ca_file: pebble.ca_file(),
        proc: None,
    };
    node.start();
    (api, ws, node)
}

fn pebble_http_port(p: &Pebble) -> u16 {
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.dir.path().join("pebble.json")).unwrap()).unwrap();
    u16::try_from(cfg["pebble"]["httpPort"].as_u64().unwrap()).unwrap()
}

/// The node's `tls` check as the CP shows it: `(ok, detail_code)`.
pub(crate) async fn tls_check(api: &Api, ws: &str) -> Option<(bool, Option<String>)> {
    let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws}")).await;
    let checks: serde_json::Value =
        serde_json::from_str(d["node"]["checks_json"].as_str()?).ok()?;
    let c = checks.as_array()?.iter().find(|c| c["name"] == "tls")?;
    Some((
        c["ok"].as_bool()?,
        c["detail_code"].as_str().map(str::to_owned),
    ))
}

/// The leaf certificate the node serves now, over a new client: a client that resumed
/// an earlier TLS session would be shown that session's certificate again.
async fn served_leaf(root_pem: &str, port: u16) -> Option<Vec<u8>> {
    let r = client_trusting(root_pem, Some((HOST, port)))
        .get(format!("https://{HOST}:{port}/healthz"))
        .send()
        .await
        .ok()?;
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()
        .map(<[u8]>::to_vec)
}

fn validity(der: &[u8]) -> (i64, i64) {
    let p = rcgen::CertificateParams::from_ca_cert_der(&der.to_vec().into()).unwrap();
    (p.not_before.unix_timestamp(), p.not_after.unix_timestamp())
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_node_with_a_public_host_gets_its_certificate_over_acme_and_serves_https() {
    if !pebble_available() {
        return;
    }
    ring_default();
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let mut pebble = Pebble::configure(free_port(), 90 * 86_400);
    // The ACME server is down at first: the node enrolls, reports the failing `tls`
    // check, and keeps trying.
    let (api, ws, mut node) = node_with_public_host(&cp, &pebble).await;
    let failing = wait_for("the failing tls check", 60, || async {
        tls_check(&api, &ws).await.filter(|c| !c.0)
    })
    .await;
    assert_eq!(failing.1.as_deref(), Some("acme_unreachable"));
    let browser = Browser::signin(&cp, "owner@acme.test").await;
    let page = browser
        .get(&format!("/workspaces/{ws}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "HTTPS fails (the certificate authority cannot be reached; the node keeps trying)"
        ),
        "the workspace page says it in words: {page}"
    );
    assert_eq!(
        api.get_json(&format!("/api/v1/workspaces/{ws}")).await.1["node"]["state"],
        "degraded"
    );

    // pebble comes up: the next attempt gets the certificate over HTTP-01.
    pebble.start().await;
    wait_for("the tls check to pass", 60, || async {
        tls_check(&api, &ws).await.filter(|c| c.0)
    })
    .await;
    api.wait_node_state(&ws, "healthy", 30).await;

    // The console over HTTPS: the client trusts pebble's root only and checks the name.
    let root = pebble.root_pem().await;
    let https = client_trusting(&root, Some((HOST, node.https_port)));
    let base = format!("https://{HOST}:{}", node.https_port);
    let r = https.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    // The CP's console link carries a capability token; the browser follows it to the node.
    let r = browser
        .post_csrf(&format!("/workspaces/{ws}/console"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let handoff = r.headers()["location"].to_str().unwrap().to_owned();
    let query = handoff.split_once('?').unwrap().1;
    let r = https
        .get(format!("{base}/auth/handoff?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "handoff over https");
    let set_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("outpost_node_session="))
        .expect("session cookie");
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let r = https
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));
    assert!(r.text().await.unwrap().contains("Acme Dental"));
    // A client that does not trust pebble's root refuses the certificate, and so does one
    // asking for another name: the chain and the name are really checked.
    let stranger = client_trusting(&pebble.tls_ca_pem, Some((HOST, node.https_port)));
    assert!(stranger
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());
    let wrong_name = client_trusting(&root, None);
    assert!(wrong_name
        .get(format!("https://127.0.0.1:{}/healthz", node.https_port))
        .send()
        .await
        .is_err());

    // Port 80 redirects everything to https, path and query kept, to the node's own name.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(HOST, ([127, 0, 0, 1], node.http_port).into())
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://{HOST}:{}/inbox?page=2", node.http_port))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], format!("{base}/inbox?page=2"));
    let r = plain
        .get(format!(
            "http://{HOST}:{}/.well-known/acme-challenge/not-a-token",
            node.http_port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "only tokens of a challenge in progress");

    // Account and certificate are private files sealed under the master key.
    for f in ["acme-account", "https-certificate"] {
        let path = node.dir.join(f);
        assert_eq!(mode(&path), 0o600, "{f}");
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("BEGIN"),
            "{f} is sealed"
        );
    }

    // A restart serves the stored certificate at once: no new order, no new account.
    let first = served_leaf(&root, node.https_port).await.unwrap();
    let account = std::fs::read(node.dir.join("acme-account")).unwrap();
    let orders_before = pebble.log().matches("Added order").count();
    node.stop();
    node.start();
    let again = wait_for("the restarted node's https", 60, || async {
        served_leaf(&root, node.https_port).await
    })
    .await;
    assert_eq!(again, first, "the same certificate after a restart");
    assert_eq!(
        std::fs::read(node.dir.join("acme-account")).unwrap(),
        account
    );
    assert!(
        node.log().contains("serving the stored HTTPS certificate"),
        "{}",
        node.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.log().matches("Added order").count(),
        orders_before,
        "nothing ordered after the restart"
    );
}

#[tokio::test]
async fn the_certificate_is_renewed_two_thirds_into_its_life_without_a_restart() {
    if !pebble_available() {
        return;
    }
    ring_default();
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    // Certificates of 24 seconds: renewal is due 16 seconds after each one starts.
    let mut pebble = Pebble::configure(free_port(), 24);
    pebble.start().await;
    let (api, ws, node) = node_with_public_host(&cp, &pebble).await;
    wait_for("the tls check to pass", 60, || async {
        tls_check(&api, &ws).await.filter(|c| c.0)
    })
    .await;
    let root = pebble.root_pem().await;
    let first = wait_for("the first certificate", 30, || async {
        served_leaf(&root, node.https_port).await
    })
    .await;
    let account = std::fs::read(node.dir.join("acme-account")).unwrap();
    let renewed = wait_for("a renewed certificate", 60, || async {
        served_leaf(&root, node.https_port)
            .await
            .filter(|c| *c != first)
    })
    .await;
    // The new one was ordered once two thirds of the first one's life had passed (by the
    // certificates' own dates), and is served by the same process.
    let (nb1, na1) = validity(&first);
    let (nb2, _) = validity(&renewed);
    assert!(
        nb2 >= nb1 + (na1 - nb1) * 2 / 3 - 1,
        "renewed at {nb2}, first valid {nb1}..{na1}"
    );
    assert_eq!(
        std::fs::read(node.dir.join("acme-account")).unwrap(),
        account,
        "the account is reused"
    );
    assert!(node.log().matches("ordering the HTTPS certificate").count() >= 2);
    assert_eq!(tls_check(&api, &ws).await.map(|c| c.0), Some(true));
}
