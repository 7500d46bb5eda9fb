//! Messaging channels besides the web widget: Telegram (Bot API) and WhatsApp (Cloud API).
//!
//! Inbound: a channel message is deduplicated by its provider id (only a SHA-256 of the id
//! is kept), stored with
//! [`Content::ingest_once`](crate::domain::content::Content::ingest_once) in the
//! transaction that marks the id as seen, and answered by [`Runtime::answer`] in a
//! background task, so webhooks return at once.
//!
//! Outbound ([`delivery`]): one delivery loop is the only sender. It keeps, per channel conversation,
//! the id of the last message it handled (`channel_conversations.delivered_id`) and
//! sends every later agent or staff (`Author::Human`) message, in order. An answer is
//! therefore sent exactly like a reply typed in the inbox or a due follow-up, progress is
//! persisted after each message, and a transient failure (network, 5xx, 429, revoked
//! token) leaves the message for the next round with full-jitter backoff (cap 60 s).
//! A permanent refusal (WhatsApp's 24-hour window, a bot blocked by the user) is recorded
//! as a system message in the conversation and as the channel check's detail code. A
//! message whose sending a crash interrupted is not sent again (it may have arrived, and
//! the providers do not deduplicate); a system message says it may not have.
//!
//! Architecture invariant: tokens and app secrets are read from the [`SecretStore`] when
//! needed and never logged; provider errors are logged by code only (a Telegram URL
//! carries the bot token, so `reqwest` errors are never formatted).

pub mod call_counts;
mod delivery;
mod health;
mod media;
pub mod numbers;
pub mod recording;
pub mod telegram;
pub mod twilio;
pub mod voice;
pub mod voice_takeover;
mod wa_followups;
pub mod wa_templates;
pub mod whatsapp;

pub use delivery::{delivery_loop, INTERRUPTED_NOTE};
pub use health::{checks, ChannelHealth, REFUSAL_WINDOW};

use crate::domain::content::Inbound;
use crate::domain::secrets::SecretStore;
use crate::engine::agent::Runtime;
use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store, StoreError};
use actix_web::web;
use outpost_protocol::AgentConfig;
use rusqlite::{params, OptionalExtension as _};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Migration adding the channel tables (see `MIGRATIONS` in `src/migrations.rs`). No content and no
/// provider identifier in clear: inbound ids are SHA-256 hashes.
pub const SCHEMA: &str = r#"
CREATE TABLE channel_inbound (
    channel TEXT NOT NULL,
    id_hash TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (channel, id_hash)
);
CREATE TABLE channel_conversations (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    delivered_id INTEGER NOT NULL,
    last_inbound_at INTEGER NOT NULL
);
CREATE INDEX channel_conversations_channel ON channel_conversations (channel);
CREATE TABLE channel_statuses (
    channel TEXT NOT NULL,
    id_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (channel, id_hash)
);
"#;

/// Channel name of Telegram conversations.
pub const TELEGRAM: &str = "telegram";
/// Channel name of WhatsApp conversations.
pub const WHATSAPP: &str = "whatsapp";
/// Channel name of SMS conversations (Twilio).
pub const SMS: &str = "sms";
/// Channel name of phone calls (Twilio).
pub const VOICE: &str = crate::domain::content::VOICE_CHANNEL;

/// How long processed inbound ids are remembered (providers redeliver for a few days).
const INBOUND_RETENTION_SECS: i64 = 14 * 86_400;
/// Cap of the channels' backoff (polling and delivery).
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Provider base URLs (tests point them at local fakes).
#[derive(Clone, Debug)]
pub struct ChannelUrls {
    /// Telegram Bot API, e.g. `https://api.telegram.org`.
    pub telegram: String,
    /// Graph API with its version, e.g. `https://graph.facebook.com/v21.0`.
    pub graph: String,
    /// Twilio REST API, e.g. `https://api.twilio.com`.
    pub twilio: String,
}

impl Default for ChannelUrls {
    fn default() -> Self {
        Self {
            telegram: "https://api.telegram.org".into(),
            graph: "https://graph.facebook.com/v21.0".into(),
            twilio: "https://api.twilio.com".into(),
        }
    }
}

/// Errors of the channels; logged by code only.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The node database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] crate::domain::content::ContentError),
    /// The agent runtime failed.
    #[error(transparent)]
    Agent(#[from] crate::engine::agent::AgentError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Join,
}

/// Why a message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Try again later (network, 5xx, 429, revoked token); the code goes to the check.
    Retry(&'static str),
    /// Never going to work for this message; it is skipped and the failure recorded.
    Permanent(&'static str),
}

/// Migration adding the message being sent per channel conversation, so a crash between
/// handing a message to the provider and recording it as delivered is known (see
/// [`Channels::deliver_conversation`]).
pub const SENDING_SCHEMA: &str = "ALTER TABLE channel_conversations ADD COLUMN sending_id INTEGER;";

/// Everything the channels share: the runtime, the secrets, an HTTP client, the health.
pub struct Channels {
    runtime: Arc<Runtime>,
    store: Arc<Store>,
    master: Arc<MasterKey>,
    secrets: SecretStore,
    http: reqwest::Client,
    urls: ChannelUrls,
    public_url: String,
    health: Arc<ChannelHealth>,
    wake: Notify,
    /// Seconds Telegram holds a `getUpdates` call open.
    poll_timeout_secs: u64,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Channels")
    }
}

impl Channels {
    /// The channels of this node. `public_url` decides Telegram's mode: an `https://` URL
    /// gets a webhook, anything else long polling.
    pub fn new(
        runtime: Arc<Runtime>,
        store: Arc<Store>,
        master: Arc<MasterKey>,
        urls: ChannelUrls,
        public_url: &str,
    ) -> anyhow::Result<Self> {
        let http = crate::engine::llm::http_client(&crate::engine::llm::Timeouts::default())?;
        runtime.set_followup_gate(wa_templates::followup_gate(store.clone(), &runtime));
        Ok(Self {
            health: Arc::new(ChannelHealth::persisted(store.clone())),
            runtime,
            secrets: SecretStore::new(store.clone(), master.clone()),
            store,
            master,
            http,
            urls: ChannelUrls {
                telegram: urls.telegram.trim_end_matches('/').to_owned(),
                graph: urls.graph.trim_end_matches('/').to_owned(),
                twilio: urls.twilio.trim_end_matches('/').to_owned(),
            },
            public_url: public_url.trim_end_matches('/').to_owned(),
            wake: Notify::new(),
            poll_timeout_secs: 25,
        })
    }

    /// The node database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node's public URL (what Twilio signs and calls).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The channel checks (see [`ChannelHealth::checks`]).
    pub fn health(&self) -> &Arc<ChannelHealth> {
        &self.health
    }

    /// The agent answering `channel`: the first claiming it, else the first agent.
    fn agent_for(&self, channel: &str) -> Result<Option<AgentConfig>, ChannelError> {
        let config = self.runtime.config()?;
        Ok(config
            .agents
            .iter()
            .find(|a| a.channels.iter().any(|c| c == channel))
            .or_else(|| config.agents.first())
            .cloned())
    }

    /// Stores one inbound message unless its provider id was seen before, then answers it
    /// in the background. Returns whether it was new.
    async fn receive(
        self: &Arc<Self>,
        channel: &'static str,
        provider_id: &str,
        sender: &str,
        name: Option<&str>,
        body: &str,
        media: Option<crate::domain::content::MediaIn>,
    ) -> Result<bool, ChannelError> {
        self.receive_with(
            channel,
            provider_id,
            sender,
            name,
            body,
            media,
            InboundExtra::default(),
        )
        .await
    }

    /// [`Channels::receive`] with what SMS adds: the number written to, and opt-outs. A
    /// STOP or START message is stored but not answered; a contact who opted out is not
    /// answered either.
    #[allow(clippy::too_many_arguments)] // the inbound message's parts, each from the provider
    async fn receive_with(
        self: &Arc<Self>,
        channel: &'static str,
        provider_id: &str,
        sender: &str,
        name: Option<&str>,
        body: &str,
        media: Option<crate::domain::content::MediaIn>,
        extra: InboundExtra,
    ) -> Result<bool, ChannelError> {
        let Some(agent) = self.agent_for_number(channel, extra.local_address.as_deref())? else {
            tracing::warn!(channel, "no agent configured; inbound message ignored");
            return Ok(false);
        };
        let id_hash = hash_id(channel, provider_id);
        let (this, sender, name, body_owned) = (
            self.clone(),
            sender.to_owned(),
            name.map(str::to_owned),
            body.to_owned(),
        );
        let agent_id = agent.id.clone();
        let stored = blocking(move || -> Result<Option<(String, bool)>, ChannelError> {
            let now = store::now();
            let last_inbound = extra.written_at.map_or(now, |at| at.min(now));
            let mut quiet = extra.opt_out.is_some();
            // The id is claimed in the transaction that stores the message: a crash
            // leaves both or neither, so a redelivery is stored once and never lost.
            let stored = this.runtime.content().ingest_once_with_media(
                Inbound {
                    channel,
                    external_id: &sender,
                    name: name.as_deref(),
                    agent_id: &agent_id,
                    body: &body_owned,
                },
                media.as_ref(),
                |c| {
                    c.execute(
                        "DELETE FROM channel_inbound WHERE received_at < ?1",
                        [now - INBOUND_RETENTION_SECS],
                    )?;
                    Ok(c.execute(
                        "INSERT OR IGNORE INTO channel_inbound (channel, id_hash, received_at)
                         VALUES (?1, ?2, ?3)",
                        params![channel, id_hash, now],
                    )? == 1)
                },
                |c, conv, msg| {
                    c.execute(
                        "INSERT INTO channel_conversations
                           (conversation_id, channel, delivered_id, last_inbound_at, local_address)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (conversation_id) DO UPDATE
                           SET last_inbound_at = MAX(last_inbound_at, excluded.last_inbound_at),
                               local_address = COALESCE(excluded.local_address, local_address)",
                        params![conv.id, channel, msg.id, last_inbound, extra.local_address],
                    )?;
                    if let Some(out) = extra.opt_out {
                        twilio::set_opted_out(c, &conv.contact_id, out.then_some(now))?;
                    } else if twilio::opted_out(c, &conv.contact_id)? {
                        quiet = true;
                    }
                    Ok(())
                },
            )?;
            Ok(stored.map(|(conv, _)| (conv.id, quiet)))
        })
        .await??;
        let Some((conversation_id, quiet)) = stored else {
            tracing::info!(channel, "duplicate inbound message ignored");
            return Ok(false);
        };
        if quiet {
            tracing::info!(
                channel,
                "opt-out keyword or opted-out contact: not answered"
            );
            return Ok(true);
        }
        let (this, text) = (self.clone(), body.to_owned());
        tokio::spawn(async move {
            // Messaging channels send the final text; deltas are dropped.
            let (tx, rx) = tokio::sync::mpsc::channel::<String>(1);
            drop(rx);
            match this
                .runtime
                .answer(&agent, &conversation_id, &text, tx)
                .await
            {
                Ok(_) => this.wake.notify_one(),
                Err(e) => tracing::error!(channel, error = %e, "answering failed"),
            }
        });
        Ok(true)
    }

    /// Whether the provider message id was stored already (a redelivery): its files are
    /// then not downloaded again. [`Self::receive`] decides for good.
    async fn seen(self: &Arc<Self>, channel: &'static str, provider_id: &str) -> bool {
        let (this, id_hash) = (self.clone(), hash_id(channel, provider_id));
        blocking(move || {
            this.store.with(|c| {
                Ok(c.query_row(
                    "SELECT 1 FROM channel_inbound WHERE channel = ?1 AND id_hash = ?2",
                    params![channel, id_hash],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
            })
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false)
    }

    /// Records the status the provider reported for one of our messages (by id hash).
    fn record_status(&self, channel: &'static str, provider_id: &str, status: &str) {
        let hash = hash_id(channel, provider_id);
        let r = self.store.with(|c| {
            c.execute(
                "DELETE FROM channel_statuses WHERE updated_at < ?1",
                [store::now() - INBOUND_RETENTION_SECS],
            )?;
            c.execute(
                "INSERT INTO channel_statuses (channel, id_hash, status, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (channel, id_hash) DO UPDATE
                   SET status = excluded.status, updated_at = excluded.updated_at",
                params![channel, hash, status, store::now()],
            )?;
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(channel, error = %e, "recording a delivery status failed");
        }
    }

    /// The last status recorded for one of our messages.
    pub fn status_of(
        &self,
        channel: &str,
        provider_id: &str,
    ) -> Result<Option<String>, ChannelError> {
        let hash = hash_id(channel, provider_id);
        Ok(self.store.with(|c| {
            Ok(c.query_row(
                "SELECT status FROM channel_statuses WHERE channel = ?1 AND id_hash = ?2",
                params![channel, hash],
                |r| r.get(0),
            )
            .optional()?)
        })?)
    }
}

/// What a channel knows about an inbound message besides its text.
#[derive(Debug, Default)]
struct InboundExtra {
    /// Our own address the customer wrote to (the Twilio number); replies go out from it.
    local_address: Option<String>,
    /// `Some(true)`: the customer opted out (STOP); `Some(false)`: back in (START).
    opt_out: Option<bool>,
    /// When the customer wrote (WhatsApp's `timestamp`): the 24-hour window counts from it,
    /// as Meta's does, not from a late redelivery. Never later than the arrival.
    written_at: Option<i64>,
}

/// Starts the channels' background tasks (Telegram polling or webhook registration, and
/// delivery). Abort the handle to stop them all.
pub fn spawn(channels: Arc<Channels>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(
            telegram::run(channels.clone()),
            delivery_loop(channels.clone()),
            wa_templates::refresh_loop(channels.clone()),
            recording::deletion_loop(channels.clone())
        );
    })
}

/// The webhook routes (`/channels/telegram/webhook`, `/channels/whatsapp/webhook`,
/// `/channels/twilio/…`); they need `web::Data<Channels>` in the app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    twilio::routes(cfg);
    cfg.service(
        web::resource("/channels/telegram/webhook")
            .app_data(web::PayloadConfig::new(whatsapp::MAX_BODY))
            .route(web::post().to(telegram::webhook)),
    )
    .service(
        web::resource("/channels/whatsapp/webhook")
            .app_data(web::PayloadConfig::new(whatsapp::MAX_BODY))
            .route(web::get().to(whatsapp::verify))
            .route(web::post().to(whatsapp::webhook)),
    );
}

/// SHA-256 (hex) of a provider message id: WhatsApp ids embed the phone number, so only
/// the hash is kept for deduplication.
fn hash_id(channel: &str, id: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{channel}\n{id}").as_bytes());
    outpost_common::hex(d.as_ref())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ChannelError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ChannelError::Join)
}

#[cfg(test)]
pub(crate) mod testkit;
