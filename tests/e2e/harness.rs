//! Test harness: starts the real `control-plane` binary on 127.0.0.1 with ephemeral ports
//! and a fresh database (SQLite in a temp dir, or a new PostgreSQL database when
//! `TEST_DATABASE_URL` is set), and talks to it as a browser, an API client or a node.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use control_plane::infra::db::DbPool;

/// Options for a control plane under test.
#[derive(Clone)]
pub struct Opts {
    pub provisioner: &'static str,
    pub report_interval: f64,
    /// Extra environment for the CP; local nodes inherit it (provider base URLs).
    pub env: Vec<(&'static str, String)>,
    /// `--enroll-timeout-secs`: a node not enrolled this long after boot fails.
    pub enroll_timeout_secs: u64,
    /// PostgreSQL only: `serve` reaches the database through this address (a fault
    /// injection proxy in front of the server) instead of the server's own. The test's
    /// own connections (`Cp::db`) and the CLI commands still go straight to the server.
    pub database_via: Option<std::net::SocketAddr>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            provisioner: "local",
            report_interval: 1.0,
            env: vec![],
            enroll_timeout_secs: 120,
            database_via: None,
        }
    }
}

/// A running control plane.
pub struct Cp {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub ui: String,
    pub gateway: String,
    pub db_url: String,
    /// Drops the PostgreSQL database (if any) with the harness; `None` for a replica,
    /// whose database belongs to the first control plane.
    scratch: Option<control_plane::infra::db::ScratchDb>,
    /// `--data-dir`: in `dir`, or the first control plane's for a replica (replicas share
    /// the CA and keys).
    data: PathBuf,
    opts: Opts,
    listen: String,
    gateway_listen: String,
}

impl Cp {
    pub fn start() -> Cp {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let scratch = control_plane::infra::db::ScratchDb::new(
            &dir.path().join("data/outpost.sqlite"),
            "outpost_e2e",
        );
        let data = dir.path().join("data");
        let mut cp = Cp {
            dir,
            child: None,
            ui: String::new(),
            gateway: String::new(),
            db_url: scratch.url.clone(),
            scratch: Some(scratch),
            data,
            opts,
            listen: "127.0.0.1:0".into(),
            gateway_listen: "127.0.0.1:0".into(),
        };
        cp.spawn();
        cp
    }

    /// A second `control-plane serve` on the same database and data directory (its own
    /// ports and log), as a replica behind a load balancer would be.
    pub fn start_replica(&self, opts: Opts) -> Cp {
        let mut cp = Cp {
            dir: tempfile::tempdir().unwrap(),
            child: None,
            ui: String::new(),
            gateway: String::new(),
            db_url: self.db_url.clone(),
            scratch: None,
            data: self.data.clone(),
            opts,
            listen: "127.0.0.1:0".into(),
            gateway_listen: "127.0.0.1:0".into(),
        };
        cp.spawn();
        cp
    }

    /// The process id of the running control plane.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("cp.log")
    }

    fn base_args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--database-url".into(),
            self.db_url.clone(),
        ]
    }

    /// The database URL `serve` is given: through `Opts::database_via` when set.
    fn serve_db_url(&self) -> String {
        match self.opts.database_via {
            Some(via) => with_authority(&self.db_url, &via.to_string()),
            None => self.db_url.clone(),
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--database-url", &self.serve_db_url()])
            .args([
                "--listen",
                &self.listen,
                "--gateway-listen",
                &self.gateway_listen,
            ])
            .args([
                "--report-interval-secs",
                &self.opts.report_interval.to_string(),
            ])
            .args([
                "--node-max-backoff-secs",
                "2",
                "--enroll-timeout-secs",
                &self.opts.enroll_timeout_secs.to_string(),
            ])
            .args([
                "--deprovision-timeout-secs",
                "60",
                "--provisioner",
                self.opts.provisioner,
            ])
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .envs(self.opts.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut ui = None;
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(v) = line.trim().strip_prefix("UI:") {
                    ui = Some(v.trim().to_owned());
                }
                if let Some(v) = line.trim().strip_prefix("Node gateway:") {
                    let _ = tx.send((ui.clone().unwrap_or_default(), v.trim().to_owned()));
                }
            }
        });
        let (ui, gw) = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "control plane did not start; log:\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                )
            });
        self.listen = ui.trim_start_matches("http://").to_owned();
        self.gateway_listen = gw.clone();
        self.ui = ui;
        self.gateway = format!("https://{gw}");
        self.child = Some(child);
    }

    /// Kills the control plane (SIGKILL: no graceful shutdown). Node processes survive.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports, data dir and database.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn db(&self) -> DbPool {
        control_plane::infra::db::connect(&self.db_url).unwrap()
    }

    /// `control-plane token create --email …`
    pub fn api_token(&self, email: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .args(["token", "create", "--email", email])
            .args(self.base_args())
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Runs a `control-plane` command against this CP's database with `env` added:
    /// (exit success, stdout, stderr).
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .args(args)
            .args(self.base_args())
            .env_remove("DATABASE_URL")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `control-plane audit verify`: (exit success, stdout).
    pub fn audit_verify(&self) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .args(["audit", "verify"])
            .args(self.base_args())
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The newest sign-in link in the dev outbox for `email`.
    pub fn outbox_link(&self, email: &str) -> String {
        self.outbox_find(email, "/auth/verify?token=")
            .unwrap_or_else(|| panic!("no email for {email} in the outbox"))
    }

    /// Waits (up to 20 s) until the CP's mail outbox has sent every email that is due:
    /// notices are queued in the `mail_outbox` table with the change and written to the dev
    /// outbox by a worker a moment later, so a test that reads the outbox (or checks that
    /// an email is absent) settles it first. Sign-in links are sent at once, not queued.
    pub fn settle_outbox(&self) {
        use control_plane::infra::schema::mail_outbox as m;
        use diesel::prelude::*;
        // One connection, not a pool: this runs before every outbox read.
        let mut conn =
            <control_plane::infra::db::DbConn as diesel::Connection>::establish(&self.db_url)
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let due: i64 = m::table
                .filter(m::state.eq("queued"))
                .filter(m::next_attempt_at.le(now))
                .count()
                .get_result(&mut conn)
                .unwrap();
            if due == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{due} emails still due in the mail outbox after 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first word containing `needle` in the newest dev-outbox email to `email` that
    /// has one (notifications such as "provisioning done" go to the same addresses), once
    /// the outbox is settled ([`Cp::settle_outbox`]).
    pub fn outbox_find(&self, email: &str, needle: &str) -> Option<String> {
        self.settle_outbox();
        let mut files: Vec<_> = std::fs::read_dir(self.data_dir().join("outbox"))
            .ok()?
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().rev().find_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            if !text.contains(&format!("To: {email}")) {
                return None;
            }
            text.split_whitespace()
                .find(|w| w.contains(needle))
                .map(str::to_owned)
        })
    }

    /// The id of the account with `email`, if there is one.
    pub fn user_id(&self, email: &str) -> Option<String> {
        use control_plane::infra::schema::users;
        use diesel::prelude::*;
        let mut conn = self.db().get().unwrap();
        users::table
            .filter(users::email.eq(email))
            .select(users::id)
            .first(&mut conn)
            .optional()
            .unwrap()
    }

    pub fn node_dir(&self, node_id: &str) -> PathBuf {
        self.data_dir().join("nodes").join(node_id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// `postgres://user@host:port/db` with `host:port` replaced by `authority`.
pub fn with_authority(url: &str, authority: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (server, path) = rest.split_once('/').unwrap_or((rest, ""));
    let user = server.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!("{scheme}://{}{authority}/{path}", user.unwrap_or_default())
}

fn kill_nodes(nodes: &Path) {
    let Ok(entries) = std::fs::read_dir(nodes) else {
        return;
    };
    for e in entries.flatten() {
        if let Ok(pid) = std::fs::read_to_string(e.path().join("pid")) {
            let _ = Command::new("kill").arg("-KILL").arg(pid.trim()).status();
        }
    }
}

impl Drop for Cp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- control-plane log (last 40 lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        self.kill();
        kill_nodes(&self.data_dir().join("nodes"));
        // The scratch database is dropped with `self.scratch`, after the processes ended.
    }
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `secs`.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Plain-HTTP reqwest clients still build a rustls config; make it ring's.
pub fn ring_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn no_redirect_client() -> reqwest::Client {
    ring_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A browser: keeps the session cookie, sends Origin on posts, reads CSRF tokens.
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub cookie: Option<String>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: no_redirect_client(),
            cookie: None,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        r.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .form(form);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        r.send().await.unwrap()
    }

    /// Posts a form with this session's CSRF token added.
    pub async fn post_csrf(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut f = form.to_vec();
        f.push(("csrf", &csrf));
        self.post(path, &f).await
    }

    pub async fn csrf(&self) -> String {
        let page = self.get("/workspaces").await.text().await.unwrap();
        extract_attr(&page, "name=\"csrf\" value=\"").expect("csrf field on the page")
    }

    /// Signs in through the magic link in the dev outbox.
    pub async fn signin(cp: &Cp, email: &str) -> Browser {
        let mut b = Browser::new(&cp.ui);
        let r = b.post("/signin", &[("email", email)]).await;
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("We sent a sign-in link"));
        let link = cp.outbox_link(email);
        let token = link.split("token=").nth(1).unwrap().to_owned();
        let page = b.client.get(&link).send().await.unwrap();
        assert_eq!(
            page.status(),
            200,
            "GET of the link only shows a confirmation"
        );
        let r = b.post("/auth/verify", &[("token", &token)]).await;
        assert_eq!(r.status(), 303, "sign-in redirects");
        b.cookie = Some(session_cookie(&r, "outpost_session").expect("session cookie set"));
        b
    }
}

pub fn session_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

pub fn extract_attr(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    Some(html[start..].split('"').next()?.to_owned())
}

/// An API client with a bearer token.
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(cp: &Cp, email: &str) -> Api {
        Api {
            base: cp.ui.clone(),
            token: cp.api_token(email),
            client: no_redirect_client(),
        }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn create_workspace(&self, name: &str) -> serde_json::Value {
        let r = self
            .req(reqwest::Method::POST, "/api/v1/workspaces")
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// Waits until the workspace's node reaches `state`; returns the detail JSON.
    pub async fn wait_node_state(&self, ws_id: &str, state: &str, secs: u64) -> serde_json::Value {
        let path = format!("/api/v1/workspaces/{ws_id}");
        wait_for(&format!("node {state}"), secs, || async {
            let (_, v) = self.get_json(&path).await;
            (v["node"]["state"] == state).then_some(v)
        })
        .await
    }
}

/// A client speaking to the node gateway as a node would (real TLS, pinned CA).
pub fn gateway_client(ca_pem: &str, cert: Option<(&str, &rcgen::KeyPair)>) -> reqwest::Client {
    let tls = outpost_pki::node_client_config(ca_pem, cert).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A signed-in session on a node's console, reached like a browser would: the CP's
/// "Open node console" button → capability-token handoff → the node's own cookie.
pub struct NodeConsole {
    pub base: String,
    pub client: reqwest::Client,
    pub cookie: String,
    pub port: u16,
}

impl NodeConsole {
    pub async fn open(browser: &Browser, ws_id: &str) -> NodeConsole {
        let r = browser
            .post_csrf(&format!("/workspaces/{ws_id}/console"), &[])
            .await;
        assert_eq!(r.status(), 303);
        let handoff = r.headers()["location"].to_str().unwrap().to_owned();
        let authority = handoff
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let (host, port) = authority.rsplit_once(':').unwrap();
        let port: u16 = port.parse().unwrap();
        ring_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(host, ([127, 0, 0, 1], port).into())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let r = client.get(&handoff).send().await.unwrap();
        assert_eq!(r.status(), 200, "handoff accepted");
        let cookie = session_cookie(&r, "outpost_node_session").unwrap();
        NodeConsole {
            base: format!("http://{authority}"),
            client,
            cookie,
            port,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a file as the console's form does (multipart field `file`).
    pub async fn upload(&self, path: &str, filename: &str, body: &[u8]) -> reqwest::Response {
        let boundary = "outpost-test-boundary-7d1f";
        let mut data = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        data.extend_from_slice(body);
        data.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(data)
            .send()
            .await
            .unwrap()
    }
}

/// A web-chat visitor on a given website (Origin), talking to a node's widget API.
pub struct Visitor {
    pub api: String,
    pub origin: Option<String>,
    pub client: reqwest::Client,
    pub token: String,
}

/// One answer read from the widget's event stream.
#[derive(Debug, Default)]
pub struct Answer {
    pub deltas: Vec<String>,
    /// `done`, `queued` or `error`.
    pub event: String,
    pub data: serde_json::Value,
}

impl Answer {
    pub fn text(&self) -> String {
        self.data["text"].as_str().unwrap_or_default().to_owned()
    }
}

impl Visitor {
    pub fn new(node: &NodeConsole, agent_id: &str, origin: Option<&str>) -> Visitor {
        Visitor {
            api: format!("{}/widget/v1/{agent_id}", node.base),
            origin: origin.map(str::to_owned),
            client: node.client.clone(),
            token: String::new(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.api));
        if let Some(o) = &self.origin {
            r = r.header("origin", o);
        }
        if !self.token.is_empty() {
            r = r.bearer_auth(&self.token);
        }
        r
    }

    pub async fn start(&self) -> reqwest::Response {
        let body = if self.token.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "visitor": self.token })
        };
        self.req(reqwest::Method::POST, "/session")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Starts a session (a new visitor has no token until its first message); panics
    /// unless 200.
    pub async fn begin(&mut self) -> serde_json::Value {
        let r = self.start().await;
        assert_eq!(r.status(), 200, "session");
        let v: serde_json::Value = r.json().await.unwrap();
        self.token = v["visitor"].as_str().unwrap_or_default().to_owned();
        v
    }

    pub async fn post_raw(&self, body: &str) -> reqwest::Response {
        self.req(reqwest::Method::POST, "/messages")
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Sends a message and reads the whole event stream; keeps the visitor token a
    /// first message returns.
    pub async fn say(&mut self, text: &str) -> Answer {
        let r = self
            .req(reqwest::Method::POST, "/messages")
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "message accepted");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let body = r.text().await.unwrap();
        let mut answer = Answer::default();
        for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut event = "";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            if event == "visitor" {
                self.token = v["visitor"].as_str().unwrap().to_owned();
            } else if event == "delta" {
                answer.deltas.push(v["text"].as_str().unwrap().to_owned());
            } else {
                answer.event = event.to_owned();
                answer.data = v;
            }
        }
        answer
    }

    pub async fn req_get(&self, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, path).send().await.unwrap()
    }

    pub async fn messages_after(&self, after: i64) -> Vec<serde_json::Value> {
        let r = self
            .req(reqwest::Method::GET, &format!("/messages?after={after}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        v["messages"].as_array().unwrap().clone()
    }
}

/// Creates an agent through the API and waits until the node has applied it (its
/// widget session answers).
pub async fn create_agent(
    api: &Api,
    node: &NodeConsole,
    ws_id: &str,
    body: serde_json::Value,
) -> String {
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/agents"),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "agent created");
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    let probe = Visitor::new(node, &id, None);
    wait_for("the node to apply the agent", 30, || async {
        (probe.start().await.status() == 200).then_some(())
    })
    .await;
    id
}

/// Signs in, creates a workspace and waits for its node; returns the pieces.
pub async fn workspace_with_node(
    cp: &Cp,
    email: &str,
    name: &str,
) -> (Browser, Api, String, NodeConsole) {
    let browser = Browser::signin(cp, email).await;
    let api = Api::new(cp, email);
    let ws = api.create_workspace(name).await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    api.wait_node_state(&ws_id, "healthy", 90).await;
    let node = NodeConsole::open(&browser, &ws_id).await;
    (browser, api, ws_id, node)
}
