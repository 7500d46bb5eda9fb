//! The node's own HTTP server: the customer console (later also the web-chat widget,
//! channel webhooks and export downloads). Browsers reach it directly, never through
//! the CP, so content never passes through the CP (DESIGN §3).
//!
//! Access starts at `GET /auth/handoff?token=…` with a capability token the CP signed;
//! the node burns its `jti` and opens its own session. What every other route needs —
//! nothing, a signed link, or a session with a given scope — is one table,
//! [`access::ROUTES`], enforced by [`access::guard`] around all of them; pages take the
//! [`ConsoleSession`] the guard found. A route missing from the table is refused, and the
//! route-coverage test names it.

pub mod access;
pub mod agents;
pub mod appointments;
pub mod contacts;
pub mod error;
pub mod exports;
pub mod flash;
pub mod handoff;
pub mod home;
pub mod inbox;
pub mod integrations;
pub mod kb;
pub mod retention;
pub mod session;
pub mod settings;
pub mod telephony;

pub use error::ConsoleError;
pub use session::{ConsoleSession, WriteSession};

use crate::platform::keys::MasterKey;
use crate::platform::store::{NodeState, Store};
use actix_web::dev::ServerHandle;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse, HttpServer};
use anyhow::Context as _;
use outpost_crypto::CapabilityVerifier;
use outpost_protocol::{NodeId, WorkspaceInfo};
use std::sync::Arc;
use std::time::Instant;

/// Tolerated clock skew between CP and node for capability-token expiry (DESIGN §6).
pub const CLOCK_SKEW_SECS: i64 = 300;

/// What console handlers share.
pub struct ConsoleState {
    /// The node database.
    pub store: Arc<Store>,
    /// The master key: opens content keys, sealed secrets and derived index keys.
    pub master: Arc<MasterKey>,
    /// This node's id: capability tokens must name it.
    pub node_id: NodeId,
    /// The workspace served.
    pub workspace: WorkspaceInfo,
    /// When the node enrolled (unix seconds).
    pub enrolled_at: i64,
    /// `Origin` that browsers send for this node (scheme://host[:port]).
    pub origin: String,
    /// Whether cookies get `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Verifies capability tokens with the CP key received at enrollment.
    pub verifier: CapabilityVerifier,
    /// Process start (uptime).
    pub started: Instant,
    /// The node's exports.
    pub exports: Arc<crate::domain::exports::Exports>,
    /// What webhook endpoint URLs must pass (public https; loopback too with
    /// `--allow-local-providers`).
    pub outbound: outpost_common::outbound::Policy,
    /// Website imports into the knowledge base (strict outbound policy unless the node
    /// sets its own, see `node.rs`).
    pub sites: Arc<crate::domain::kb::website::Importer>,
}

impl ConsoleState {
    /// From the node's state record.
    pub fn new(
        store: Arc<Store>,
        master: Arc<MasterKey>,
        state: &NodeState,
        started: Instant,
    ) -> anyhow::Result<Self> {
        let verifier = CapabilityVerifier::from_b64(&state.capability_public_key)
            .map_err(|_| anyhow::anyhow!("stored capability public key is malformed"))?;
        let exports = Arc::new(crate::domain::exports::Exports::new(
            store.clone(),
            master.clone(),
            state.node_id.clone(),
            state.workspace.clone(),
        ));
        let sites = Arc::new(crate::domain::kb::website::Importer::new(
            store.clone(),
            master.clone(),
            outpost_common::outbound::Policy::STRICT,
            crate::domain::kb::website::Limits::default(),
        )?);
        Ok(Self {
            sites,
            store,
            master,
            node_id: state.node_id.clone(),
            workspace: state.workspace.clone(),
            enrolled_at: state.enrolled_at,
            origin: origin_of(&state.public_url),
            secure_cookies: state.public_url.starts_with("https://"),
            verifier,
            exports,
            started,
            outbound: outpost_common::outbound::Policy::STRICT,
        })
    }
}

/// `scheme://authority` of a URL, as in an `Origin` header.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

/// Content-Security-Policy of every console page: nothing from other origins, no inline
/// script, no framing, forms post only to the console.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Headers on every response: the set both servers share ([`outpost_common::headers`]:
/// no sniffing, no framing, `Referrer-Policy: same-origin`, which `session::same_origin`
/// relies on) with the console's [`CSP`], and nothing cached by default (pages show
/// customer data; the CP sets `no-store` per page instead). Pages whose URL carries a
/// token (the sign-in handoff, export links) still send `no-referrer`.
pub fn security_headers() -> DefaultHeaders {
    outpost_common::headers::security_headers(CSP)
        .into_iter()
        .fold(DefaultHeaders::new(), DefaultHeaders::add)
        .add(("Cache-Control", "no-store"))
}

/// The console routes, all behind the access guard. Configure them last: their scope
/// has an empty prefix, so it takes every path no earlier service matched.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(access::guard))
            .route("/healthz", web::get().to(healthz))
            .route("/static/outpost.css", web::get().to(stylesheet))
            .route("/static/htmx.min.js", web::get().to(htmx))
            .route("/static/favicon.svg", web::get().to(favicon))
            .route("/auth/handoff", web::get().to(handoff::handoff))
            .route("/logout", web::post().to(handoff::logout))
            .route("/", web::get().to(home::home))
            .configure(inbox::routes)
            .configure(contacts::routes)
            .configure(kb::routes)
            .configure(agents::routes)
            .configure(settings::routes)
            .configure(telephony::routes)
            .configure(exports::routes)
            .configure(integrations::routes)
            .configure(appointments::routes)
            .configure(retention::routes),
    )
    .default_service(web::to(not_found));
}

/// Renders a page as a 200 HTML response.
pub(crate) fn render(page: &impl askama::Template) -> Result<HttpResponse, ConsoleError> {
    let html = page
        .render()
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("rendering a page: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// A 303 redirect (after a POST).
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// `2026-01-31 14:05 UTC`.
pub(crate) fn human_time(unix: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Ids are UUIDs; anything else cannot name a row (and is not echoed anywhere).
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Static assets are public like the pages that explain a refused link; inline styles
/// and scripts would need a CSP exception.
async fn stylesheet() -> HttpResponse {
    asset(outpost_web_assets::STYLESHEET, "text/css; charset=utf-8")
}

async fn htmx() -> HttpResponse {
    asset(
        outpost_web_assets::HTMX_JS,
        "text/javascript; charset=utf-8",
    )
}

async fn favicon() -> HttpResponse {
    asset(outpost_web_assets::FAVICON_SVG, "image/svg+xml")
}

fn asset(body: &'static [u8], content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

/// With the error attached, so the access guard gives a signed-in user the navigation.
async fn not_found() -> HttpResponse {
    HttpResponse::from_error(ConsoleError::NotFound)
}

/// The running console server.
pub struct Console {
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Console {
    /// Stops accepting connections and waits for in-flight requests (up to 5 s).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "console server task failed");
        }
    }

    /// Serves until the server ends by itself (it does not, short of an I/O failure).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("console server task")?
            .context("console server")
    }
}

/// Where the console, widget and channels are served.
pub enum Listen {
    /// Plain HTTP on an address (local nodes, or behind a TLS-terminating proxy).
    Plain(String),
    /// HTTPS on a bound socket, with HSTS on every answer (a node with a public host).
    Https {
        /// The bound socket.
        listener: std::net::TcpListener,
        /// Its TLS configuration (certificates from [`crate::web::tls::CertSlot`]).
        tls: Box<rustls::ServerConfig>,
    },
}

/// Starts serving in the current runtime.
pub fn start(
    state: ConsoleState,
    widget: crate::web::widget::WidgetState,
    channels: Arc<crate::web::channels::Channels>,
    listen: Listen,
) -> anyhow::Result<Console> {
    let data = web::Data::new(state);
    let widget = web::Data::new(widget);
    let channels = web::Data::from(channels);
    let hsts = matches!(listen, Listen::Https { .. });
    let server = HttpServer::new(move || {
        let mut headers = security_headers();
        if hsts {
            headers = headers.add(("Strict-Transport-Security", crate::web::tls::HSTS));
        }
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(widget.clone())
            .app_data(channels.clone())
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .wrap(headers)
            .configure(crate::web::widget::routes)
            .configure(crate::web::channels::routes)
            .configure(crate::web::api::routes)
            .configure(routes)
    })
    // Widget answers stream for a while; one worker would serialize visitors.
    .workers(2)
    // Without it a response written while the peer has not yet acknowledged earlier bytes
    // (a TLS session ticket, the head of a streamed answer) waits for its delayed ACK:
    // 40 ms on Linux.
    .tcp_nodelay(true)
    // The node process owns signal handling: SIGTERM ends the process, not the console.
    .disable_signals()
    .shutdown_timeout(5);
    let server = match listen {
        Listen::Plain(addr) => server
            .bind(&addr)
            .with_context(|| format!("binding the console to {addr}"))?,
        Listen::Https { listener, tls } => server
            .listen_rustls_0_23(listener, *tls)
            .context("serving HTTPS")?,
    }
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Console { handle, task })
}

#[cfg(test)]
mod appointments_tests;
#[cfg(test)]
pub(crate) mod tests;
