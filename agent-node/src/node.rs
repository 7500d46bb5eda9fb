//! The node's life: prepare the data directory, enroll (or resume), serve the console,
//! phone home, and on `deprovision` destroy everything and deliver the receipt.

use crate::cli::RunArgs;
use crate::domain::secrets::SecretStore;
use crate::engine::agent::Runtime;
use crate::engine::llm::{LlmHealth, ProviderUrls, Providers, Timeouts};
use crate::platform::config::{self, NodeConfig, DB_FILE, MASTER_KEY_FILE, NODE_CERT_FILE};
use crate::platform::files;
use crate::platform::keys::MasterKey;
use crate::platform::store::Store;
use crate::uplink::phone_home::{self, Exit, Gateway, PhoneHome};
use crate::uplink::{deprovision, enroll};
use crate::web::console::{self, ConsoleState};
use crate::web::widget::WidgetState;
use anyhow::Context as _;
use outpost_common::outbound::Policy;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

/// Runs the node until it is deprovisioned (Ok) or fails.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cfg = NodeConfig::from_args(&args);
    let paths = cfg.paths.clone();
    files::prepare_dir(paths.dir())
        .with_context(|| format!("preparing the data directory {}", paths.dir().display()))?;
    // Generating a fresh master key here would silently orphan every sealed file.
    anyhow::ensure!(
        !paths.file(NODE_CERT_FILE).exists() || paths.file(MASTER_KEY_FILE).exists(),
        "master.key is gone: this node was crypto-erased and cannot resume"
    );
    let master = Arc::new(MasterKey::load_or_create(&paths)?);
    let store = Arc::new(Store::open(&paths.file(DB_FILE)).context("opening node.db")?);
    if let Some(pages) = args.db_headroom_pages {
        let cap = store.cap_pages_above_current(pages)?;
        tracing::warn!(cap, "node.db capped (test option --db-headroom-pages)");
    }
    let (state, identity) = enroll::ensure_enrolled(&cfg, &master, &store).await?;
    let span = tracing::info_span!("node", node = %state.node_id);
    async move {
        let gateway = Arc::new(Gateway::new(
            &state.gateway_url,
            &state.ca_pem,
            identity,
            cfg.clock.clone(),
        )?);
        let providers = Providers::with_policy(
            ProviderUrls {
                openai: args.openai_base_url.clone(),
                anthropic: args.anthropic_base_url.clone(),
            },
            SecretStore::new(store.clone(), master.clone()),
            Timeouts::default(),
            Policy::new(args.allow_local_providers),
        )?;
        let runtime = Arc::new(Runtime::new(
            store.clone(),
            &master,
            providers,
            Arc::new(LlmHealth::default()),
        ));
        let console_state = ConsoleState::new(store.clone(), master.clone(), &state, started)?;
        let exports = console_state.exports.clone();
        {
            let exports = exports.clone();
            tokio::task::spawn_blocking(move || exports.recover())
                .await
                .context("recovering exports")??;
        }
        let lifecycle = tokio::spawn(crate::domain::retention::run(
            store.clone(),
            master.clone(),
            exports.clone(),
        ));
        let widget = WidgetState::new(runtime.clone(), console_state.origin.clone());
        let channels = Arc::new(crate::web::channels::Channels::new(
            runtime.clone(),
            store.clone(),
            master.clone(),
            crate::web::channels::ChannelUrls {
                telegram: args.telegram_base_url.clone(),
                graph: args.graph_base_url.clone(),
            },
            &state.public_url,
        )?);
        let console = console::start(console_state, widget, channels.clone(), &state.listen_addr)?;
        let followups = tokio::spawn(crate::engine::agent::followup_loop(runtime.clone()));
        let channel_tasks = crate::web::channels::spawn(channels);
        tracing::info!(
            listen = %state.listen_addr,
            public_url = %state.public_url,
            "console listening"
        );
        let ctx = Arc::new(PhoneHome {
            node_id: state.node_id.clone(),
            store: store.clone(),
            gateway: gateway.clone(),
            paths: paths.clone(),
            master,
            report_interval: config::report_interval(state.report_interval_secs),
            max_backoff: cfg.max_backoff,
            renew_after: cfg.renew_after,
            started,
            runtime: Some(runtime),
            exports: Some(exports),
            unsaved: std::sync::Mutex::default(),
        });
        match Box::pin(phone_home::run(ctx)).await? {
            Exit::Deprovision { command_id } => {
                followups.abort();
                lifecycle.abort();
                channel_tasks.abort();
                console.stop().await;
                store.close();
                Box::pin(deprovision::run(
                    &paths,
                    &gateway,
                    &state.node_id,
                    &state.workspace.id,
                    &command_id,
                    cfg.max_backoff,
                ))
                .await
            }
            Exit::Refused | Exit::Stopped => {
                // Nothing more can be said to the CP, but the customer's data is intact:
                // keep the console up rather than exit into a restart loop.
                tracing::warn!("no longer phoning home; the console keeps serving");
                console.wait().await
            }
        }
    }
    .instrument(span)
    .await
}
