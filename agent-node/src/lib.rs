//! The Outpost agent node: one process per customer workspace.
//!
//! It enrolls with the control plane (CP), phones home over mTLS (health reports, command
//! long-poll, certificate renewal), serves the customer console reached through a
//! capability-token handoff, and destroys itself on `deprovision` with a signed receipt.
//!
//! Architecture invariant: nothing the node sends to the CP carries conversation content,
//! a contact identifier or a secret; reports carry health and counts only (DESIGN §1).
//!
//! Map of the modules, one per domain:
//! - [`config`]: run arguments, the data directory and its file names, the bootstrap bundle;
//! - [`files`]: private (0600) atomic writes, secure deletion, directory size;
//! - [`keys`]: the master key (crypto-erase target), sealed files, the node TLS identity;
//! - [`store`]: the node database (`node.db`): state, outbox, commands, sessions;
//! - [`enroll`]: first contact with the CP (`POST /v1/enroll`);
//! - [`phone_home`]: reports, commands and renewal over mTLS;
//! - [`console`]: the node's own HTTP server (customer console);
//! - [`content`]: contacts/CRM, conversations and messages, encrypted per contact;
//! - [`kb`]: the knowledge base (encrypted chunks, blind-indexed FTS5);
//! - [`llm`]: LLM providers and the built-in retrieval responder;
//! - [`secrets`]: provider keys sealed under the master key;
//! - [`agent`]: the runtime answering a customer's message;
//! - [`widget`]: the web-chat widget and its API;
//! - [`channels`]: Telegram and WhatsApp (webhooks, polling, delivery of replies);
//! - [`deprovision`]: crypto-erase and the destruction receipt.

#![warn(missing_docs)]

pub mod agent;
pub mod backoff;
pub mod channels;
pub mod config;
pub mod console;
pub mod content;
pub mod deprovision;
pub mod enroll;
pub mod exports;
pub mod files;
pub mod kb;
pub mod keys;
pub mod llm;
pub mod phone_home;
pub mod retention;
pub mod secrets;
pub mod store;
pub mod widget;

#[cfg(test)]
mod test_support;

mod node;

/// Command-line interface of the node, shared by the `agent-node` binary and the control
/// plane's embedded `control-plane node …`.
pub mod cli {
    /// What the node binary can do.
    #[derive(clap::Subcommand, Debug)]
    pub enum NodeCommand {
        /// Run the node daemon
        Run(RunArgs),
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
        /// Cap of the reconnect backoff in seconds (default 300)
        #[arg(long, env = "OUTPOST_NODE_MAX_BACKOFF_SECS", default_value_t = 300)]
        pub max_backoff_secs: u64,
    }
}

/// The node software version, as reported to the CP and shown in the console.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// Synchronous entry point: builds its own runtime, runs until deprovisioned (returns Ok) or a fatal error.
pub fn execute(cmd: cli::NodeCommand) -> anyhow::Result<()> {
    init_tracing();
    match cmd {
        cli::NodeCommand::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("agent-node")
                .enable_all()
                .build()?;
            let result = rt.block_on(Box::pin(node::run(args)));
            // A blocking task stuck on I/O must not keep a deprovisioned node alive.
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            result
        }
    }
}
