//! The state both listeners and every worker share. Only `app/`, `cli/` and the domains'
//! `web.rs` see it: domain services take the pieces they need (a connection, the mailer).

use crate::config::Config;
use crate::infra::db::DbPool;
use crate::infra::mail::Mailer;
use crate::notify::Notifier;
use crate::provisioning::Provisioner;
use actix_web::web as aw;
use outpost_common::rate_limit::KeyedLimiter;
use outpost_crypto::CapabilitySigner;
use outpost_pki::CertificateAuthority;

/// Shared state of both listeners and the workers.
pub struct AppState {
    /// Database pool.
    pub db: DbPool,
    /// Resolved configuration.
    pub config: Config,
    /// Public base URL of the UI (no trailing slash).
    pub public_url: String,
    /// URL nodes use to reach the gateway.
    pub gateway_url: String,
    /// Internal CA.
    pub ca: CertificateAuthority,
    /// Signs capability tokens for the node consoles.
    pub capability: CapabilitySigner,
    /// Outgoing mail.
    pub mailer: Mailer,
    /// Node provider.
    pub provisioner: std::sync::Arc<Provisioner>,
    /// Unix seconds when this process started: no offline transitions for
    /// `offline_after_secs` after it, nor after the end of a database outage
    /// (`infra::db::health`).
    pub started_at: i64,
    /// Queue of the report writers (group commit, `gateway::ingest`).
    pub reports: crate::gateway::ingest::Batcher,
    /// Wakes command long-polls when a command is queued.
    pub command_notify: crate::infra::wake::CommandNotify,
    /// Whether this replica runs the periodic sweeps (`infra::leader`).
    pub leader: std::sync::Arc<crate::infra::leader::Leadership>,
    /// Caps CSR signing (DESIGN §6: 50/s): one bucket, [`crate::gateway::CSR_LIMIT_KEY`].
    pub csr_limiter: KeyedLimiter,
    /// `/api/v1` requests per API token.
    pub api_limiter: KeyedLimiter,
    /// Unknown API tokens per client address (guessing).
    pub unknown_token_limiter: KeyedLimiter,
    /// Keys the fingerprints of validated secrets (`fingerprint.key`, 0600).
    pub fingerprint_key: Vec<u8>,
    /// Client for Stripe and the mail APIs (rustls + ring, public roots): addresses the
    /// operator configured.
    pub http: reqwest::Client,
    /// Client for every request to an address a customer gave, and for validating
    /// secrets with their providers: the outbound-URL policy, no redirects.
    pub outbound: outpost_common::outbound::Client,
    /// Sign in with Google, GitHub, Apple: providers that are on, rate limits.
    pub oauth: crate::oauth::OAuth,
}

/// Shared state handle.
pub type State = aw::Data<AppState>;

/// The CP's `User-Agent` on every outbound request (mail APIs, Stripe, OAuth providers,
/// secret validation).
pub const USER_AGENT: &str = concat!("outpost-control-plane/", env!("CARGO_PKG_VERSION"));

impl AppState {
    /// What notices need for their links (the public URL); they go to the mail outbox.
    pub fn notifier(&self) -> Notifier<'_> {
        Notifier {
            public_url: &self.public_url,
        }
    }

    /// What creating or changing an agent needs: the long-poll wake-ups and the policy
    /// its model endpoint must pass.
    pub fn agents_ctx(&self) -> crate::agents::service::AgentsCtx<'_> {
        crate::agents::service::AgentsCtx {
            command_notify: &self.command_notify,
            endpoints: self.config.outbound_policy(),
        }
    }

    /// Where suspension emails go out from, and the long-poll wake-ups.
    pub fn suspension(&self) -> crate::suspension::service::Context<'_> {
        crate::suspension::service::Context {
            notifier: self.notifier(),
            command_notify: &self.command_notify,
        }
    }
}
