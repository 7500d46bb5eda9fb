//! Phone home (DESIGN §3): everything the node says to the CP after enrollment, over
//! mTLS with its client certificate and the CP's CA pinned.
//!
//! Four tasks run side by side until one of them ends the conversation:
//! - [`reports`]: a producer appends a health report to the outbox on schedule, and a
//!   flusher sends the outbox oldest first, backing off while the CP is away;
//! - [`commands`]: the long-poll, executing each command at most once;
//! - [`renew`]: certificate renewal at 50–70 % of its life.
//!
//! A `deprovision` command or a refused certificate (401/403) ends all four; the caller
//! decides what follows ([`Exit`]).

pub mod commands;
pub mod renew;
pub mod reports;

use crate::platform::clock::Clock;
use crate::platform::config::Paths;
use crate::platform::keys::{Identity, MasterKey};
use crate::platform::store::Store;
use anyhow::Context as _;
use outpost_protocol::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tracing::Instrument as _;

/// Why a node route call failed. Callers branch on it: retry, stop, or give up on one
/// request.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer (connection refused, TLS failure, timeout): retry with backoff.
    #[error("control plane unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    /// 401/403: the CP no longer accepts this certificate (revoked, node destroyed).
    #[error("certificate refused (HTTP {0})")]
    Refused(u16),
    /// 5xx, 408 or 429: the CP is there but cannot answer now; retry with backoff.
    #[error("control plane unavailable (HTTP {0})")]
    Unavailable(u16),
    /// Another 4xx: this request will never succeed as it is.
    #[error("request rejected (HTTP {status}, {code})")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The CP's stable error code.
        code: String,
    },
    /// A 2xx whose body could not be read; retry.
    #[error("unreadable answer: {0}")]
    Decode(#[source] reqwest::Error),
}

impl CallError {
    /// Whether the CP refused the node's certificate.
    pub fn is_refused(&self) -> bool {
        matches!(self, CallError::Refused(_))
    }
}

/// Whether a status is worth retrying (the CP is overloaded or restarting).
pub fn is_retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// The CP's stable error code from an error response, or `unknown`. Only a short
/// snake_case code is kept, so nothing else from the body reaches a log line.
pub async fn error_code(r: reqwest::Response) -> String {
    r.json::<outpost_protocol::ErrorBody>()
        .await
        .ok()
        .map(|b| b.code)
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

struct Connection {
    identity: Arc<Identity>,
    client: reqwest::Client,
}

/// The CP node gateway, reached with the node's current certificate. Renewal swaps the
/// identity and the HTTP client together.
pub struct Gateway {
    base: String,
    ca_pem: String,
    conn: RwLock<Connection>,
    clock: Arc<Clock>,
}

impl Gateway {
    /// A gateway client for `base` (`https://host:port`), pinning `ca_pem`; every answer's
    /// `Date` updates `clock`.
    pub fn new(
        base: &str,
        ca_pem: &str,
        identity: Identity,
        clock: Arc<Clock>,
    ) -> anyhow::Result<Self> {
        let client = build_client(ca_pem, &identity, &clock)?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            ca_pem: ca_pem.to_owned(),
            conn: RwLock::new(Connection {
                identity: Arc::new(identity),
                client,
            }),
            clock,
        })
    }

    /// The node's clock next to the CP's, as the last answer showed it.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The identity requests are currently made with.
    pub fn identity(&self) -> Arc<Identity> {
        self.read().identity.clone()
    }

    /// Switches to a renewed identity: later requests present the new certificate.
    pub fn install_identity(&self, identity: Identity) -> anyhow::Result<()> {
        let client = build_client(&self.ca_pem, &identity, &self.clock)?;
        let mut conn = self.conn.write().unwrap_or_else(|p| p.into_inner());
        *conn = Connection {
            identity: Arc::new(identity),
            client,
        };
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Connection> {
        // The guarded value is replaced whole, so a poisoned lock still holds a valid one.
        self.conn.read().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self) -> reqwest::Client {
        self.read().client.clone()
    }

    /// `POST {base}{path}` with a JSON body; decodes a 2xx JSON answer.
    pub async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let req = self
            .client()
            .post(format!("{}{path}", self.base))
            .json(body)
            .timeout(timeout);
        answer(&self.clock, req.send().await).await
    }

    /// `GET {base}{path}`; decodes a 2xx JSON answer.
    pub async fn get<R: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let req = self
            .client()
            .get(format!("{}{path}", self.base))
            .timeout(timeout);
        answer(&self.clock, req.send().await).await
    }
}

fn build_client(
    ca_pem: &str,
    identity: &Identity,
    clock: &Clock,
) -> anyhow::Result<reqwest::Client> {
    let tls = identity
        .key
        .client_config(ca_pem, &identity.cert_pem, clock)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        // Above the 25 s long-poll; each call sets its own timeout.
        .timeout(Duration::from_secs(35))
        .build()
        .context("building the gateway client")
}

async fn answer<R: DeserializeOwned>(
    clock: &Clock,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<R, CallError> {
    let r = sent.map_err(CallError::Transport)?;
    clock.observe(r.headers());
    let status = r.status();
    if status.is_success() {
        return r.json().await.map_err(CallError::Decode);
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(CallError::Refused(status.as_u16()));
    }
    if is_retryable(status) {
        return Err(CallError::Unavailable(status.as_u16()));
    }
    Err(CallError::Rejected {
        status: status.as_u16(),
        code: error_code(r).await,
    })
}

/// Everything the phone-home tasks share.
pub struct PhoneHome {
    /// The node id (for log fields).
    pub node_id: NodeId,
    /// The node database.
    pub store: Arc<Store>,
    /// The CP gateway.
    pub gateway: Arc<Gateway>,
    /// The data directory (renewal writes the new key and certificate there).
    pub paths: Paths,
    /// The master key sealing the renewed TLS key.
    pub master: Arc<MasterKey>,
    /// Nominal interval between reports (jittered ±20 %).
    pub report_interval: Duration,
    /// Cap of every backoff.
    pub max_backoff: Duration,
    /// Fixed renewal delay instead of 50–70 % of the certificate's life.
    pub renew_after: Option<Duration>,
    /// When the process started (uptime).
    pub started: Instant,
    /// Content counts (per channel per hour) and the `llm` check, when the agent
    /// runtime runs (always, except in phone-home tests).
    pub runtime: Option<Arc<crate::engine::agent::Runtime>>,
    /// Export metadata for reports (likewise absent in phone-home tests).
    pub exports: Option<Arc<crate::domain::exports::Exports>>,
    /// The `tls` check, on a node that obtains its HTTPS certificate itself.
    pub tls: Option<Arc<crate::web::tls::TlsStatus>>,
    /// The latest report the outbox could not take (the disk is full), sent once
    /// without it after the outbox so the CP still hears of the full disk.
    pub unsaved: std::sync::Mutex<Option<outpost_protocol::Report>>,
    /// Installs upgrades and ends a new binary's probation (absent in phone-home tests).
    pub upgrade: Option<Arc<crate::uplink::upgrade::Upgrader>>,
}

/// How phone home ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// The CP asked the node to destroy itself; the command still has to be acked with
    /// the destruction receipt.
    Deprovision {
        /// The `deprovision` command id.
        command_id: String,
    },
    /// The CP refuses the node's certificate: nothing more can be said to it.
    Refused,
    /// Stopped from outside.
    Stopped,
    /// An upgrade was installed (and acked): exit so the supervisor starts the new binary.
    Restart,
}

/// Runs reports, commands and renewal until a `deprovision` command or a refused
/// certificate; stops the other tasks before returning so nothing touches the store or
/// the gateway afterwards.
pub async fn run(ctx: Arc<PhoneHome>) -> anyhow::Result<Exit> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let flush_now = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    // Spawned tasks do not inherit the caller's span (the node id); hand it on.
    let span = tracing::Span::current();
    tasks.spawn(
        reports::produce(ctx.clone(), flush_now.clone(), stop_rx.clone()).instrument(span.clone()),
    );
    tasks.spawn(reports::flush(ctx.clone(), flush_now, stop_rx.clone()).instrument(span.clone()));
    tasks.spawn(renew::run(ctx.clone(), stop_rx.clone()).instrument(span.clone()));
    tasks.spawn(commands::run(ctx.clone(), stop_rx).instrument(span));
    let first = tasks.join_next().await;
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "phone-home task failed"),
            Err(e) => tracing::warn!(error = %e, "phone-home task panicked"),
        }
    }
    match first {
        Some(Ok(exit)) => exit,
        Some(Err(e)) => Err(anyhow::anyhow!("phone-home task panicked: {e}")),
        None => Ok(Exit::Stopped),
    }
}

/// Sleeps for `d` unless stop is signalled first; returns whether it was.
pub async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Acks a command until the CP answers 2xx (used for the destruction receipt, which has
/// no second chance: the node's data is already gone). Retries transport failures and
/// 5xx with backoff; a refusal or another 4xx is final.
pub async fn ack_until_accepted(
    gateway: &Gateway,
    command_id: &str,
    ack: &outpost_protocol::CommandAck,
    max_backoff: Duration,
) -> Result<(), CallError> {
    let path = format!("/v1/node/commands/{command_id}/ack");
    let mut backoff = crate::platform::backoff::Backoff::new(Duration::from_secs(1), max_backoff);
    loop {
        match gateway
            .post::<_, serde::de::IgnoredAny>(&path, ack, Duration::from_secs(15))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e @ (CallError::Refused(_) | CallError::Rejected { .. })) => return Err(e),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    command = %command_id,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "ack not delivered; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}
