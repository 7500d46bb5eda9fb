//! The node's life: prepare the data directory, enroll (or resume), serve the console,
//! phone home, and on `deprovision` destroy everything and deliver the receipt.

use crate::cli::RunArgs;
use crate::domain::secrets::SecretStore;
use crate::engine::agent::Runtime;
use crate::engine::llm::{LlmHealth, ProviderUrls, Providers, Timeouts};
use crate::platform::config::{self, NodeConfig, DB_FILE, MASTER_KEY_FILE, NODE_CERT_FILE};
use crate::platform::files;
use crate::platform::keys::MasterKey;
use crate::platform::store::{NodeState, Store, PUBLIC_HOST_KEY, RELEASE_KEY_KEY};
use crate::uplink::phone_home::{self, Exit, Gateway, PhoneHome};
use crate::uplink::{deprovision, enroll};
use crate::web::console::{self, ConsoleState, Listen};
use crate::web::tls;
use crate::web::widget::WidgetState;
use anyhow::Context as _;
use outpost_common::outbound::Policy;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

/// Runs the node until it is deprovisioned (`Ok(false)`), asks its supervisor for a
/// restart after an upgrade or a rollback (`Ok(true)`), or fails.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<bool> {
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
    // A wrong --public-host stops the node before it spends its bootstrap token.
    tls::Settings::resolve(&args, None)?;
    let master = Arc::new(MasterKey::load_or_create(&paths)?);
    let store = Arc::new(Store::open(&paths.file(DB_FILE)).context("opening node.db")?);
    if let Some(pages) = args.db_headroom_pages {
        let cap = store.cap_pages_above_current(pages)?;
        tracing::warn!(cap, "node.db capped (test option --db-headroom-pages)");
    }
    let (mut state, identity) = enroll::ensure_enrolled(&cfg, &master, &store).await?;
    let https = tls::Settings::resolve(&args, store.meta(PUBLIC_HOST_KEY)?)?;
    if let Some(h) = &https {
        // Console origin, cookies' `Secure`, export links and Telegram's webhook mode all
        // follow the public URL.
        state.public_url = h.public_url();
    }
    let upgrader = Arc::new(upgrader(&args, &store)?);
    let span = tracing::info_span!("node", node = %state.node_id);
    async move {
        if let Some(p) = upgrader.probation() {
            tracing::warn!(
                from = %p.from_version,
                to = %p.to_version,
                probation_secs = args.probation_secs,
                "running a new version on probation: it stays once the control plane accepts a report"
            );
        }
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
        {
            // Documents cut by an older chunker are cut again before anyone asks.
            let kb = crate::domain::kb::KnowledgeBase::new(store.clone(), &master);
            match tokio::task::spawn_blocking(move || kb.rechunk_outdated()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(documents)) => {
                    tracing::info!(
                        documents,
                        "knowledge-base documents cut into sections again"
                    )
                }
                Ok(Err(e)) => tracing::error!(error = %e, "re-chunking the knowledge base failed"),
                Err(e) => tracing::error!(error = %e, "the re-chunking task panicked"),
            }
        }
        let mut console_state =
            ConsoleState::new(store.clone(), master.clone(), &state, started)?;
        // Webhook endpoints follow the providers' rule: public https, loopback only for
        // tests and local setups that allow it.
        let outbound_policy = Policy::new(args.allow_local_providers);
        console_state.outbound = outbound_policy;
        // Website imports follow the same outbound policy as model calls.
        console_state.sites = Arc::new(crate::domain::kb::website::Importer::new(
            store.clone(),
            master.clone(),
            Policy::new(args.allow_local_providers),
            crate::domain::kb::website::Limits::default(),
        )?);
        let site_imports = tokio::spawn(console_state.sites.clone().run());
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
                twilio: args.twilio_api_base.clone(),
            },
            &state.public_url,
        )?);
        let serving = Serving::start(https.as_ref(), &state, &paths, &master)?;
        let console = console::start(console_state, widget, channels.clone(), serving.listen)?;
        let followups = tokio::spawn(crate::engine::agent::followup_loop(runtime.clone()));
        let webhooks = tokio::spawn(crate::domain::webhooks::deliver::run(Arc::new(
            crate::domain::webhooks::deliver::Sender::new(
                crate::domain::webhooks::Webhooks::new(store.clone(), &master),
                crate::domain::content::Content::new(store.clone(), &master),
                outpost_common::outbound::Client::new(
                    crate::engine::llm::USER_AGENT,
                    std::time::Duration::from_secs(10),
                    outbound_policy,
                    outpost_common::outbound::Redirects::None,
                )?,
            ),
        )));
        let channel_tasks = crate::web::channels::spawn(channels);
        tracing::info!(
            listen = %serving.describe,
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
            tls: serving.status.clone(),
            unsaved: std::sync::Mutex::default(),
            upgrade: Some(upgrader.clone()),
        });
        let running = Running {
            tasks: [
                followups,
                webhooks,
                site_imports,
                lifecycle,
                channel_tasks,
            ]
            .iter()
            .map(tokio::task::JoinHandle::abort_handle)
            .collect(),
            https: serving.https,
            console,
            store: store.clone(),
        };
        let exit = tokio::select! {
            exit = Box::pin(phone_home::run(ctx)) => exit?,
            true = upgrader.watch_probation() => Exit::Restart,
        };
        match exit {
            Exit::Deprovision { command_id } => {
                running.stop().await;
                Box::pin(deprovision::run(
                    &paths,
                    &gateway,
                    &state.node_id,
                    &state.workspace.id,
                    &command_id,
                    cfg.max_backoff,
                ))
                .await
                .map(|()| false)
            }
            Exit::Restart => {
                running.stop().await;
                tracing::info!("exiting for the supervisor to start the installed binary");
                Ok(true)
            }
            Exit::Refused | Exit::Stopped => {
                // Nothing more can be said to the CP, but the customer's data is intact:
                // keep the console up rather than exit into a restart loop.
                tracing::warn!("no longer phoning home; the console keeps serving");
                running.console.wait().await.map(|()| false)
            }
        }
    }
    .instrument(span)
    .await
}

/// The upgrade settings: the binary the supervisor starts (`--binary-path`, else this
/// one) and the release key (`--release-public-key`, else the bootstrap bundle's).
fn upgrader(args: &RunArgs, store: &Store) -> anyhow::Result<crate::uplink::upgrade::Upgrader> {
    use outpost_crypto::release::ReleaseKey;
    let release_key = match &args.release_public_key {
        Some(k) => Some(ReleaseKey::from_b64(k).map_err(|_| {
            anyhow::anyhow!(
                "--release-public-key is not an Ed25519 public key (32 bytes, base64url)"
            )
        })?),
        None => store
            .meta(RELEASE_KEY_KEY)?
            .and_then(|k| ReleaseKey::from_b64(&k).ok()),
    };
    if release_key.is_none() {
        tracing::info!("no release public key: this node refuses upgrades");
    }
    let binary = match &args.binary_path {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("finding this binary's path")?,
    };
    crate::uplink::upgrade::Upgrader::new(crate::uplink::upgrade::Settings {
        data_dir: args.data_dir.clone(),
        binary,
        release_key,
        max_bytes: args.upgrade_max_bytes,
        probation: std::time::Duration::from_secs(args.probation_secs.max(1)),
    })
}

/// What runs while the node serves, stopped in one order whatever ends it (deprovisioning,
/// an upgrade's restart).
struct Running {
    /// The background loops (follow-ups, webhooks, website imports, retention, channels):
    /// they hold no connection a client waits on, so they are aborted.
    tasks: Vec<tokio::task::AbortHandle>,
    /// The port-80 server and the certificate loop.
    https: Option<(tls::redirect::Redirect, tokio::task::JoinHandle<()>)>,
    console: console::Console,
    store: Arc<Store>,
}

impl Running {
    /// Stops the loops, then the servers (in-flight requests finish), then closes the
    /// database.
    async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some((redirect, acme)) = self.https {
            acme.abort();
            redirect.stop().await;
        }
        self.console.stop().await;
        self.store.close();
    }
}

/// How the node's HTTP surfaces are served, and what runs beside them for HTTPS.
struct Serving {
    listen: Listen,
    /// For the log line.
    describe: String,
    /// The `tls` check, when the node obtains its certificate itself.
    status: Option<Arc<tls::TlsStatus>>,
    /// The port-80 server and the certificate loop, stopped at deprovisioning.
    https: Option<(tls::redirect::Redirect, tokio::task::JoinHandle<()>)>,
}

impl Serving {
    /// Plain HTTP on the bundle's listen address, or, with a public host and ACME, HTTPS
    /// and port 80 on the bind address with the certificate loop started.
    fn start(
        https: Option<&tls::Settings>,
        state: &NodeState,
        paths: &crate::platform::config::Paths,
        master: &Arc<MasterKey>,
    ) -> anyhow::Result<Self> {
        let Some((h, acme)) = https.and_then(|h| h.acme.clone().map(|a| (h, a))) else {
            return Ok(Self {
                listen: Listen::Plain(state.listen_addr.clone()),
                describe: state.listen_addr.clone(),
                status: None,
                https: None,
            });
        };
        let https_listener = tls::bind(h.https_addr())?;
        let http_listener = tls::bind(h.http_addr())?;
        let describe = format!(
            "https {} + http {}",
            https_listener.local_addr()?,
            http_listener.local_addr()?
        );
        let slot = Arc::new(tls::CertSlot::default());
        let challenges = Arc::new(tls::Challenges::default());
        let status = Arc::new(tls::TlsStatus::default());
        // Port 80 first: the certificate loop's first challenge is answered there.
        let redirect = tls::redirect::start(challenges.clone(), &state.public_url, http_listener)?;
        let acme = tls::acme::Acme::new(
            acme,
            h.host.clone(),
            paths.clone(),
            master.clone(),
            slot.clone(),
            challenges,
            status.clone(),
        )?;
        let task = tokio::spawn(acme.run());
        Ok(Self {
            listen: Listen::Https {
                listener: https_listener,
                tls: Box::new(tls::server_config(slot)?),
            },
            describe,
            status: Some(status),
            https: Some((redirect, task)),
        })
    }
}
