//! The Outpost agent node: one process per customer workspace.
//!
//! It enrolls with the control plane (CP), phones home over mTLS (health reports, command
//! long-poll, certificate renewal), serves the customer console reached through a
//! capability-token handoff, and destroys itself on `deprovision` with a signed receipt.
//!
//! Architecture invariant: nothing the node sends to the CP carries conversation content,
//! a contact identifier or a secret; reports carry health and counts only (DESIGN §1).
//!
//! Map of the modules, in layers; each imports only itself and the layers listed before it:
//! - [`platform`]: knows nothing of the business.
//!   [`config`](platform::config) run arguments, data directory, bootstrap bundle;
//!   [`files`](platform::files) private (0600) atomic writes, secure deletion;
//!   [`keys`](platform::keys) the master key (crypto-erase target), sealed files, TLS identity;
//!   [`store`](platform::store) `node.db`: state, outbox, commands, sessions;
//!   [`backoff`](platform::backoff) full-jitter retry delays.
//! - [`domain`]: the node's data and rules.
//!   [`content`](domain::content) contacts/CRM, conversations, messages, encrypted per contact;
//!   [`kb`](domain::kb) the knowledge base (encrypted chunks, blind-indexed FTS5);
//!   [`exports`](domain::exports) workspace and contact exports, signed links;
//!   [`retention`](domain::retention) retention periods and the daily sweep;
//!   [`secrets`](domain::secrets) provider keys and channel tokens sealed under the master key.
//! - [`engine`]: answering. [`agent`](engine::agent) the runtime answering a customer's
//!   message; [`llm`](engine::llm) LLM providers and the built-in retrieval responder.
//! - [`web`]: the HTTP surfaces. [`console`](web::console) the customer console;
//!   [`widget`](web::widget) the web-chat widget and its API; [`channels`](web::channels)
//!   Telegram and WhatsApp (webhooks, polling, delivery of replies).
//! - [`uplink`]: the link to the CP. [`enroll`](uplink::enroll) first contact
//!   (`POST /v1/enroll`); [`phone_home`](uplink::phone_home) reports, commands and renewal
//!   over mTLS; [`deprovision`](uplink::deprovision) crypto-erase and the destruction receipt.
//! - `node` (the wiring, which sees everything) runs the sequence; `migrations` lists the
//!   database migrations of every layer, in order.
//!
//! Rules: `platform` imports no other layer; `domain` only `platform`; `engine` only
//! `domain` and `platform`; domain code never imports web code; `web` may import every
//! layer below it; `uplink`, like `node`, may import any layer.

#![warn(missing_docs)]

pub mod platform;

pub mod domain;

pub mod engine;

pub mod web;

pub mod uplink;

#[cfg(test)]
mod test_support;

mod migrations;
mod node;

/// Command-line interface of the node, shared by the `agent-node` binary and the control
/// plane's embedded `control-plane node …`.
pub mod cli {
    /// What the node binary can do.
    // Parsed once at start; boxing the arguments would only make every caller unbox them.
    #[allow(clippy::large_enum_variant)]
    #[derive(clap::Subcommand, Debug)]
    pub enum NodeCommand {
        /// Run the node daemon
        Run(RunArgs),
        /// Before a start, from the previous binary (systemd `ExecStartPre`): count the
        /// starts of a binary on probation after an upgrade, and restore the previous one
        /// once it has had its starts without phoning home
        UpgradeGuard(GuardArgs),
    }

    /// Arguments of `upgrade-guard`.
    #[derive(clap::Args, Debug, Clone)]
    pub struct GuardArgs {
        /// Data directory of the node
        #[arg(long, env = "OUTPOST_NODE_DATA_DIR")]
        pub data_dir: std::path::PathBuf,
        /// The binary the supervisor starts
        #[arg(long, env = "OUTPOST_NODE_BINARY_PATH")]
        pub binary_path: std::path::PathBuf,
    }

    /// Arguments of `run`.
    #[derive(clap::Args, Debug, Clone)]
    pub struct RunArgs {
        /// Data directory (holds bootstrap.json on first start, then keys and the database)
        #[arg(long, env = "OUTPOST_NODE_DATA_DIR")]
        pub data_dir: std::path::PathBuf,
        /// Override: renew the certificate after this many seconds instead of at 50–70 % of its life (tests)
        #[arg(long, env = "OUTPOST_NODE_RENEW_AFTER_SECS")]
        pub renew_after_secs: Option<u64>,
        /// Base URL of the OpenAI API (tests point it at a local fake)
        #[arg(
            long,
            env = "OUTPOST_NODE_OPENAI_BASE_URL",
            default_value = "https://api.openai.com/v1"
        )]
        pub openai_base_url: String,
        /// Base URL of the Anthropic API (tests point it at a local fake)
        #[arg(
            long,
            env = "OUTPOST_NODE_ANTHROPIC_BASE_URL",
            default_value = "https://api.anthropic.com/v1"
        )]
        pub anthropic_base_url: String,
        /// Base URL of the Telegram Bot API (tests point it at a local fake)
        #[arg(
            long,
            env = "OUTPOST_NODE_TELEGRAM_BASE_URL",
            default_value = "https://api.telegram.org"
        )]
        pub telegram_base_url: String,
        /// Base URL of the Graph API with its version, for WhatsApp (tests point it at a local fake)
        #[arg(
            long,
            env = "OUTPOST_NODE_GRAPH_BASE_URL",
            default_value = "https://graph.facebook.com/v21.0"
        )]
        pub graph_base_url: String,
        /// Base URL of the Twilio REST API, for SMS and phone numbers (tests point it at a local fake)
        #[arg(
            long,
            env = "OUTPOST_NODE_TWILIO_API_BASE",
            default_value = "https://api.twilio.com"
        )]
        pub twilio_api_base: String,
        /// Allow model endpoints on this machine (loopback, plain http too): for a model
        /// served locally and for tests' fakes. Nothing else private is ever allowed. The
        /// local provisioner passes the control plane's `--allow-local-providers`
        #[arg(
            long,
            env = "OUTPOST_NODE_ALLOW_LOCAL_PROVIDERS",
            num_args = 0..=1,
            default_value_t = false,
            default_missing_value = "true",
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        pub allow_local_providers: bool,
        /// Shift the node's clock by this many seconds (tests of a wrong clock, instead of faketime)
        #[arg(
            long,
            env = "OUTPOST_NODE_CLOCK_SKEW_SECS",
            default_value_t = 0,
            hide = true
        )]
        pub clock_skew_secs: i64,
        /// Cap node.db at its size at start plus this many pages (tests of a full disk:
        /// SQLite then fails writes with SQLITE_FULL, as on a full disk)
        #[arg(long, env = "OUTPOST_NODE_DB_HEADROOM_PAGES", hide = true)]
        pub db_headroom_pages: Option<i64>,
        /// Cap of the reconnect backoff in seconds (default 300)
        #[arg(long, env = "OUTPOST_NODE_MAX_BACKOFF_SECS", default_value_t = 300)]
        pub max_backoff_secs: u64,
        /// The node's public DNS name (`<slug>.<nodes_domain>`), on a real server. With it
        /// the node serves HTTPS at `https://<host>` with a certificate it obtains over ACME,
        /// and port 80 answers ACME challenges and redirects to https. Overrides the bootstrap
        /// bundle's `public_host`. Without either, the node serves plain HTTP on the bundle's
        /// listen address (local nodes: `http://<slug>.localhost:<port>`)
        #[arg(long, env = "OUTPOST_NODE_PUBLIC_HOST")]
        pub public_host: Option<String>,
        /// HTTPS port of a node with a public host
        #[arg(long, env = "OUTPOST_NODE_HTTPS_PORT", default_value_t = 443)]
        pub https_port: u16,
        /// HTTP port of a node with a public host: ACME HTTP-01 challenges, and a redirect to
        /// https for everything else
        #[arg(long, env = "OUTPOST_NODE_HTTP_PORT", default_value_t = 80)]
        pub http_port: u16,
        /// Address the HTTPS and HTTP ports are bound on (`::` takes IPv4 and IPv6; the node
        /// falls back to 0.0.0.0 on a machine without IPv6)
        #[arg(long, env = "OUTPOST_NODE_BIND_ADDRESS", default_value = "::")]
        pub bind_address: std::net::IpAddr,
        /// Obtain the certificate over ACME (default). `false`: a reverse proxy in front of
        /// the node terminates TLS for the public host; the node then serves plain HTTP on the
        /// bundle's listen address, still announcing `https://<host>` as its URL
        #[arg(
            long,
            env = "OUTPOST_NODE_ACME",
            num_args = 0..=1,
            default_value_t = true,
            default_missing_value = "true",
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        pub acme: bool,
        /// ACME directory URL (default: Let's Encrypt production)
        #[arg(
            long,
            env = "OUTPOST_ACME_DIRECTORY",
            default_value = "https://acme-v02.api.letsencrypt.org/directory"
        )]
        pub acme_directory: String,
        /// Contact address given to the ACME CA (expiry and incident notices); none by default
        #[arg(long, env = "OUTPOST_ACME_EMAIL")]
        pub acme_email: Option<String>,
        /// PEM file of an extra root CA trusted for the ACME server's own TLS (a private ACME
        /// server; the tests' pebble). Public CAs need none
        #[arg(long, env = "OUTPOST_ACME_CA_FILE")]
        pub acme_ca_file: Option<std::path::PathBuf>,
        /// Cap in seconds of the backoff between failed ACME attempts (default 3600, so a
        /// failing validation does not run into the CA's rate limits)
        #[arg(
            long,
            env = "OUTPOST_ACME_MAX_BACKOFF_SECS",
            default_value_t = 3600,
            hide = true
        )]
        pub acme_max_backoff_secs: u64,
        /// The file the supervisor starts, replaced by an upgrade (default: this binary).
        /// Its directory must be writable by the node
        #[arg(long, env = "OUTPOST_NODE_BINARY_PATH")]
        pub binary_path: Option<std::path::PathBuf>,
        /// Release public key (Ed25519, base64url) whose signature an upgrade needs.
        /// Overrides the one the bootstrap bundle carried; without either the node refuses
        /// upgrades
        #[arg(long, allow_hyphen_values = true, env = "OUTPOST_RELEASE_PUBLIC_KEY")]
        pub release_public_key: Option<String>,
        /// Largest release binary an upgrade downloads, bytes
        #[arg(long, env = "OUTPOST_NODE_UPGRADE_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
        pub upgrade_max_bytes: u64,
        /// Seconds a new binary has after an upgrade to get a report accepted by the
        /// control plane before the previous binary is restored
        #[arg(long, env = "OUTPOST_NODE_PROBATION_SECS", default_value_t = 300)]
        pub probation_secs: u64,
    }
}

/// The node software version this crate was built as.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version the node reports to the CP and shows in the console: [`VERSION`], unless
/// the hidden `OUTPOST_NODE_VERSION_OVERRIDE` names another (tests build a "new release"
/// as this binary reporting a distinct version).
pub fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::env::var("OUTPOST_NODE_VERSION_OVERRIDE")
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= 64)
            .unwrap_or_else(|| VERSION.to_owned())
    })
}

/// Installs the stderr log subscriber (`RUST_LOG`, default `info`). Does nothing when a
/// subscriber is already installed, so both the binary and [`execute`] may call it: the
/// CP's embedded `control-plane node run` reaches [`execute`] without installing one.
/// Colours only on a terminal: the local provisioner sends stderr to a log file.
pub fn init_tracing() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Synchronous entry point: builds its own runtime, runs until deprovisioned (exit
/// status 0), an upgrade or rollback that asks for a restart
/// ([`uplink::upgrade::RESTART_EXIT_CODE`]) or a fatal error.
pub fn execute(cmd: cli::NodeCommand) -> anyhow::Result<std::process::ExitCode> {
    init_tracing();
    match cmd {
        cli::NodeCommand::UpgradeGuard(g) => {
            use uplink::upgrade::{guard, Guarded};
            match guard(&g.data_dir, &g.binary_path)? {
                Guarded::Nothing => {}
                Guarded::Trial(n) => tracing::warn!(
                    start = n,
                    of = uplink::upgrade::MAX_STARTS,
                    "starting a new version on probation"
                ),
                Guarded::RolledBack => {}
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        cli::NodeCommand::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("agent-node")
                .enable_all()
                .build()?;
            let result = rt.block_on(Box::pin(node::run(args)));
            // A blocking task stuck on I/O must not keep a deprovisioned node alive.
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            result.map(|restart| {
                if restart {
                    std::process::ExitCode::from(uplink::upgrade::RESTART_EXIT_CODE)
                } else {
                    std::process::ExitCode::SUCCESS
                }
            })
        }
    }
}
