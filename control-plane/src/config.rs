//! Configuration: one optional TOML file, overridden by `OUTPOST_*` environment variables
//! and command-line flags (clap reads both). Every option is documented in `--help`.

use clap::Args;
use outpost_common::outbound::Policy;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `control-plane serve` (and the subcommands that touch the database).
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML file with any of the options below (snake_case keys); flags and env win.
    #[arg(long, env = "OUTPOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, CA, keys and the dev mail outbox [default: ./data]
    #[arg(long, env = "OUTPOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` for PostgreSQL; default: SQLite at <data_dir>/outpost.sqlite
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address of the web UI and JSON API [default: 127.0.0.1:8080]
    #[arg(long, env = "OUTPOST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Public base URL of the web UI (used in emails and Origin checks) [default: http://<listen>]
    #[arg(long, env = "OUTPOST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Address of the node gateway (TLS; mTLS for /v1/node/*) [default: 127.0.0.1:8443]
    #[arg(long, env = "OUTPOST_GATEWAY_LISTEN")]
    pub gateway_listen: Option<SocketAddr>,
    /// URL nodes use to reach the gateway [default: https://<gateway_listen>]
    #[arg(long, env = "OUTPOST_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Where the local provisioner keeps each node's directory (stands in for the node's own disk) [default: <data_dir>/nodes]
    #[arg(long, env = "OUTPOST_NODES_DIR")]
    pub nodes_dir: Option<PathBuf>,
    /// Seconds between node health reports [default: 30]
    #[arg(long, env = "OUTPOST_REPORT_INTERVAL_SECS")]
    pub report_interval_secs: Option<f64>,
    /// Cap of a node's reconnect backoff, seconds [default: 300]
    #[arg(long, env = "OUTPOST_NODE_MAX_BACKOFF_SECS")]
    pub node_max_backoff_secs: Option<u64>,
    /// Make local nodes renew their certificate after this many seconds (testing renewal)
    #[arg(long, env = "OUTPOST_NODE_RENEW_AFTER_SECS")]
    pub node_renew_after_secs: Option<u64>,
    /// A node that has not enrolled this many seconds after boot is marked failed [default: 300]
    #[arg(long, env = "OUTPOST_ENROLL_TIMEOUT_SECS")]
    pub enroll_timeout_secs: Option<i64>,
    /// Without a destruction receipt after this many seconds, the server is destroyed anyway [default: 600]
    #[arg(long, env = "OUTPOST_DEPROVISION_TIMEOUT_SECS")]
    pub deprovision_timeout_secs: Option<i64>,
    /// Seconds without a report before a node is marked offline; must exceed
    /// --node-max-backoff-secs plus 1.2 × --report-interval-secs [default: 600]
    #[arg(long, env = "OUTPOST_OFFLINE_AFTER_SECS")]
    pub offline_after_secs: Option<i64>,
    /// A request whose body sends no byte for this many seconds is answered 408 and closed,
    /// on both listeners [default: 10]
    #[arg(long, env = "OUTPOST_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// After a workspace is cancelled, its node stays up (suspended, console and exports
    /// only) this many seconds before it is deprovisioned [default: 2592000 = 30 days]
    #[arg(long, env = "OUTPOST_EXPORT_WINDOW_SECS")]
    pub export_window_secs: Option<i64>,
    /// Release public key (Ed25519, 32 bytes, base64url; `control-plane release keygen`
    /// prints one). Handed to every node provisioned from now on in its bootstrap bundle:
    /// a node installs an upgrade only if this key signed its SHA-256, and a node without
    /// a key refuses upgrades [default: none]
    #[arg(long, allow_hyphen_values = true, env = "OUTPOST_RELEASE_PUBLIC_KEY")]
    pub release_public_key: Option<String>,
    /// During a fleet upgrade, seconds an upgraded node has to report the new version and
    /// be healthy before the upgrade halts [default: 600]
    #[arg(long, env = "OUTPOST_UPGRADE_TIMEOUT_SECS")]
    pub upgrade_timeout_secs: Option<i64>,
    /// Log format: `text` or `json` [default: text]
    #[arg(long, env = "OUTPOST_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// `local` spawns one agent-node process per workspace; `manual` only writes each node's
    /// bootstrap.json under nodes_dir, for you to start `agent-node run` yourself; `ovh`
    /// creates an OVHcloud Public Cloud server per workspace, named on Cloudflare DNS (needs
    /// the OVH, Cloudflare and node release options below) [default: local]
    #[arg(long, env = "OUTPOST_PROVISIONER")]
    pub provisioner: Option<String>,
    /// OpenAI API base URL, for validating keys [default: https://api.openai.com/v1]
    #[arg(long, env = "OUTPOST_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// Anthropic API base URL, for validating keys [default: https://api.anthropic.com/v1]
    #[arg(long, env = "OUTPOST_ANTHROPIC_BASE_URL")]
    pub anthropic_base_url: Option<String>,
    /// Telegram Bot API base URL, for validating bot tokens [default: https://api.telegram.org]
    #[arg(long, env = "OUTPOST_TELEGRAM_BASE_URL")]
    pub telegram_base_url: Option<String>,
    /// Meta Graph API base URL, for validating WhatsApp tokens [default: https://graph.facebook.com/v21.0]
    #[arg(long, env = "OUTPOST_GRAPH_BASE_URL")]
    pub graph_base_url: Option<String>,
    /// Twilio REST API base URL, for validating Twilio credentials [default: https://api.twilio.com]
    #[arg(long, env = "OUTPOST_TWILIO_API_BASE")]
    pub twilio_api_base: Option<String>,
    /// Allow model endpoints and provider URLs on this machine (loopback, plain http too):
    /// for a model served locally and for tests' fake providers. Nothing else private is
    /// ever allowed. Local nodes get the same setting [default: false]
    #[arg(
        long,
        env = "OUTPOST_ALLOW_LOCAL_PROVIDERS",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_local_providers: Option<bool>,
    /// Reverse proxies in front of the UI whose `X-Forwarded-For` is believed, comma
    /// separated addresses or networks (`127.0.0.1,10.0.0.0/8`): behind them the client's
    /// address (rate limits, sessions, audit) is the one they name. Empty: the header is
    /// ignored [default: none]
    #[arg(long, env = "OUTPOST_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Outgoing mail: dev outbox (default), SMTP, Resend, Postmark or Amazon SES (TOML: a
    /// `[mail]` table with the same names less the `mail_` prefix).
    #[command(flatten)]
    pub mail: crate::infra::mail::config::MailArgs,
    /// Sign in with Google, GitHub, Apple (TOML: `[oauth.google]`, `[oauth.github]`,
    /// `[oauth.apple]` tables with the same names less the provider prefix).
    #[command(flatten)]
    pub oauth: crate::oauth::config::OAuthArgs,
    /// Stripe billing (TOML: a `[billing]` table); off unless its keys and prices are set.
    #[command(flatten)]
    pub billing: crate::billing::config::BillingArgs,
    /// Real nodes: OVHcloud servers, Cloudflare DNS, the node release they install.
    #[command(flatten)]
    pub cloud: crate::provisioning::providers::ovh::config::CloudArgs,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    gateway_listen: Option<SocketAddr>,
    gateway_url: Option<String>,
    nodes_dir: Option<PathBuf>,
    report_interval_secs: Option<f64>,
    node_max_backoff_secs: Option<u64>,
    node_renew_after_secs: Option<u64>,
    enroll_timeout_secs: Option<i64>,
    deprovision_timeout_secs: Option<i64>,
    offline_after_secs: Option<i64>,
    body_timeout_secs: Option<u64>,
    export_window_secs: Option<i64>,
    log_format: Option<String>,
    provisioner: Option<String>,
    openai_base_url: Option<String>,
    anthropic_base_url: Option<String>,
    telegram_base_url: Option<String>,
    graph_base_url: Option<String>,
    twilio_api_base: Option<String>,
    allow_local_providers: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    mail: Option<crate::infra::mail::config::MailFile>,
    oauth: Option<crate::oauth::config::OAuthFile>,
    billing: Option<crate::billing::config::BillingFile>,
    ovh: Option<crate::provisioning::providers::ovh::config::OvhFile>,
    cloudflare: Option<crate::provisioning::providers::ovh::config::CloudflareFile>,
    nodes_domain: Option<String>,
    node_release_url: Option<String>,
    node_release_sha256: Option<String>,
    release_public_key: Option<String>,
    upgrade_timeout_secs: Option<i64>,
}

/// The post-termination export window the privacy promise names: 30 days.
pub const DEFAULT_EXPORT_WINDOW_SECS: i64 = 30 * 24 * 3600;

fn pick(flag: &Option<String>, file: Option<String>, default: &str) -> String {
    flag.clone()
        .or(file)
        .unwrap_or_else(|| default.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL (SQLite path or postgres URL).
    pub database_url: String,
    /// UI/API listen address (port 0 = pick one).
    pub listen: SocketAddr,
    /// Explicit public URL, if configured; otherwise derived from the bound address.
    pub public_url: Option<String>,
    /// Gateway listen address.
    pub gateway_listen: SocketAddr,
    /// Explicit gateway URL, if configured.
    pub gateway_url: Option<String>,
    /// Local provisioner's node directories.
    pub nodes_dir: PathBuf,
    /// Report interval, seconds.
    pub report_interval_secs: f64,
    /// Node reconnect backoff cap, seconds.
    pub node_max_backoff_secs: u64,
    /// Test override for node certificate renewal.
    pub node_renew_after_secs: Option<u64>,
    /// Enrollment timeout, seconds.
    pub enroll_timeout_secs: i64,
    /// Deprovision timeout, seconds.
    pub deprovision_timeout_secs: i64,
    /// Offline threshold, seconds.
    pub offline_after_secs: i64,
    /// Idle time after which a request body read fails (408), seconds (at least 1).
    pub body_timeout_secs: u64,
    /// Post-termination export window, seconds.
    pub export_window_secs: i64,
    /// `text` or `json`.
    pub log_format: String,
    /// `local`, `manual` or `ovh`.
    pub provisioner: String,
    /// Real nodes (OVHcloud, Cloudflare, node release); `None` when not configured.
    pub cloud: Option<crate::provisioning::providers::ovh::config::CloudConfig>,
    /// Where secrets are validated.
    pub providers: ProviderUrls,
    /// `--allow-local-providers`: loopback (and plain http to it) is allowed for model
    /// endpoints and provider URLs. See [`Config::outbound_policy`].
    pub allow_local_providers: bool,
    /// `--trusted-proxies`: peers whose `X-Forwarded-For` names the client
    /// (`http::forwarded`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Mail transport (the dev outbox by default).
    pub mail: crate::infra::mail::config::MailConfig,
    /// Sign-in providers that are on (none by default).
    pub oauth: crate::oauth::config::OAuthConfig,
    /// Stripe billing; `None`: billing is off (the default).
    pub billing: Option<crate::billing::config::BillingConfig>,
    /// The release public key handed to new nodes (base64url); `None`: nodes refuse
    /// upgrades.
    pub release_public_key: Option<String>,
    /// Time an upgraded node has to come back healthy on the new version, seconds.
    pub upgrade_timeout_secs: i64,
    /// Rate limits of the API and of certificate signing. Not an option: always
    /// [`Limits::default`] from the command line, environment and file; only the fleet
    /// benchmark (B3), which enrolls tens of thousands of nodes through the real API and
    /// enrollment path, sets other values in code.
    pub limits: Limits,
}

/// Rate limits the control plane applies (`Config::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests a token (or a session) may make to the JSON API in one burst.
    pub api_burst: u32,
    /// Requests it may make a minute after the burst.
    pub api_per_minute: u32,
    /// Certificate signing requests (enrollments and renewals) signed a second, in all.
    pub csr_per_sec: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            api_burst: 60,
            api_per_minute: 120,
            csr_per_sec: 50,
        }
    }
}

/// Base URLs of the services whose credentials the CP validates (tests point them at
/// local fakes).
#[derive(Debug, Clone)]
pub struct ProviderUrls {
    /// OpenAI, e.g. `https://api.openai.com/v1`.
    pub openai: String,
    /// Anthropic, e.g. `https://api.anthropic.com/v1`.
    pub anthropic: String,
    /// Telegram Bot API, e.g. `https://api.telegram.org`.
    pub telegram: String,
    /// Meta Graph API, e.g. `https://graph.facebook.com/v21.0`.
    pub graph: String,
    /// Twilio REST API, e.g. `https://api.twilio.com`.
    pub twilio: String,
}

impl Config {
    /// The policy for every request to an address a customer (or the provider URLs)
    /// gave: public https only, loopback too with `--allow-local-providers`.
    pub fn outbound_policy(&self) -> Policy {
        Policy::new(self.allow_local_providers)
    }
}

impl ProviderUrls {
    /// Refuses, at start-up, a provider URL the outbound policy would refuse at the
    /// first validation (a fake on 127.0.0.1 without `--allow-local-providers`).
    fn check(&self, policy: Policy) -> anyhow::Result<()> {
        for (key, url) in [
            ("openai_base_url", &self.openai),
            ("anthropic_base_url", &self.anthropic),
            ("telegram_base_url", &self.telegram),
            ("graph_base_url", &self.graph),
            ("twilio_api_base", &self.twilio),
        ] {
            if let Err(r) = policy.check(url) {
                let hint = if policy.allows_local() {
                    ""
                } else {
                    " (a provider on this machine needs --allow-local-providers)"
                };
                anyhow::bail!("{key} {url}: {r}{hint}");
            }
        }
        Ok(())
    }
}

impl ServeArgs {
    /// Merges flags/env over the TOML file over defaults.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let file: FileConfig =
            match &self.config {
                Some(p) => toml::from_str(&std::fs::read_to_string(p).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", p.display())
                })?)?,
                None => FileConfig::default(),
            };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        // An empty `DATABASE_URL=` means unset: SQLite would take "" as a private
        // in-memory database per connection, with no tables on the next one.
        let database_url = self
            .database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or(file.database_url)
            .unwrap_or_else(|| {
                data_dir
                    .join("outpost.sqlite")
                    .to_string_lossy()
                    .into_owned()
            });
        let nodes_dir = self
            .nodes_dir
            .clone()
            .or(file.nodes_dir)
            .unwrap_or_else(|| data_dir.join("nodes"));
        let log_format = self
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        anyhow::ensure!(
            log_format == "text" || log_format == "json",
            "log_format must be `text` or `json`"
        );
        let provisioner = self
            .provisioner
            .clone()
            .or(file.provisioner)
            .unwrap_or_else(|| "local".into());
        anyhow::ensure!(
            ["local", "manual", "ovh"].contains(&provisioner.as_str()),
            "provisioner must be `local`, `manual` or `ovh`"
        );
        let cloud = self
            .cloud
            .resolve(crate::provisioning::providers::ovh::config::CloudFile {
                ovh: file.ovh,
                cloudflare: file.cloudflare,
                nodes_domain: file.nodes_domain,
                node_release_url: file.node_release_url,
                node_release_sha256: file.node_release_sha256,
            })?;
        anyhow::ensure!(
            provisioner != "ovh" || cloud.is_some(),
            "provisioner `ovh` needs OUTPOST_OVH_APPLICATION_KEY, OUTPOST_OVH_APPLICATION_SECRET, OUTPOST_OVH_CONSUMER_KEY, OUTPOST_OVH_PROJECT_ID, OUTPOST_OVH_REGIONS, OUTPOST_OVH_FLAVOR_ID, OUTPOST_OVH_IMAGE_ID, OUTPOST_CLOUDFLARE_API_TOKEN, OUTPOST_CLOUDFLARE_ZONE_ID, OUTPOST_NODES_DOMAIN, OUTPOST_NODE_RELEASE_URL and OUTPOST_NODE_RELEASE_SHA256"
        );
        let export_window_secs = self
            .export_window_secs
            .or(file.export_window_secs)
            .unwrap_or(DEFAULT_EXPORT_WINDOW_SECS);
        anyhow::ensure!(
            export_window_secs >= 0,
            "export_window_secs must be 0 or more"
        );
        let report_interval_secs = self
            .report_interval_secs
            .or(file.report_interval_secs)
            .unwrap_or(30.0);
        let node_max_backoff_secs = self
            .node_max_backoff_secs
            .or(file.node_max_backoff_secs)
            .unwrap_or(300);
        let offline_after_secs = self
            .offline_after_secs
            .or(file.offline_after_secs)
            .unwrap_or(DEFAULT_OFFLINE_AFTER_SECS);
        check_offline_after(
            offline_after_secs,
            node_max_backoff_secs,
            report_interval_secs,
        )?;
        let mail = self.mail.resolve(file.mail)?;
        let oauth = self.oauth.resolve(file.oauth)?;
        let billing = self.billing.resolve(file.billing)?;
        let allow_local_providers = self
            .allow_local_providers
            .or(file.allow_local_providers)
            .unwrap_or(false);
        let providers = ProviderUrls {
            openai: pick(
                &self.openai_base_url,
                file.openai_base_url,
                "https://api.openai.com/v1",
            ),
            anthropic: pick(
                &self.anthropic_base_url,
                file.anthropic_base_url,
                "https://api.anthropic.com/v1",
            ),
            telegram: pick(
                &self.telegram_base_url,
                file.telegram_base_url,
                "https://api.telegram.org",
            ),
            graph: pick(
                &self.graph_base_url,
                file.graph_base_url,
                "https://graph.facebook.com/v21.0",
            ),
            twilio: pick(
                &self.twilio_api_base,
                file.twilio_api_base,
                "https://api.twilio.com",
            ),
        };
        providers.check(Policy::new(allow_local_providers))?;
        let trusted_proxies =
            crate::http::forwarded::parse_trusted(if self.trusted_proxies.is_empty() {
                file.trusted_proxies.as_deref().unwrap_or_default()
            } else {
                &self.trusted_proxies
            })?;
        let release_public_key = self
            .release_public_key
            .clone()
            .or(file.release_public_key)
            .map(|k| {
                outpost_crypto::release::ReleaseKey::from_b64(&k)
                    .map(|k| k.to_b64())
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "OUTPOST_RELEASE_PUBLIC_KEY is not an Ed25519 public key (32 bytes, base64url, as `control-plane release keygen` prints it)"
                        )
                    })
            })
            .transpose()?;
        let upgrade_timeout_secs = self
            .upgrade_timeout_secs
            .or(file.upgrade_timeout_secs)
            .unwrap_or(600)
            .max(1);
        let default_addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Ok(Config {
            data_dir,
            database_url,
            listen: self.listen.or(file.listen).unwrap_or(default_addr(8080)),
            public_url: self.public_url.clone().or(file.public_url),
            gateway_listen: self
                .gateway_listen
                .or(file.gateway_listen)
                .unwrap_or(default_addr(8443)),
            gateway_url: self.gateway_url.clone().or(file.gateway_url),
            nodes_dir,
            report_interval_secs,
            node_max_backoff_secs,
            node_renew_after_secs: self.node_renew_after_secs.or(file.node_renew_after_secs),
            enroll_timeout_secs: self
                .enroll_timeout_secs
                .or(file.enroll_timeout_secs)
                .unwrap_or(300),
            deprovision_timeout_secs: self
                .deprovision_timeout_secs
                .or(file.deprovision_timeout_secs)
                .unwrap_or(600),
            offline_after_secs,
            body_timeout_secs: self
                .body_timeout_secs
                .or(file.body_timeout_secs)
                .unwrap_or(10)
                .max(1),
            export_window_secs,
            log_format,
            provisioner,
            cloud,
            mail,
            providers,
            allow_local_providers,
            trusted_proxies,
            oauth,
            billing,
            release_public_key,
            upgrade_timeout_secs,
            limits: Limits::default(),
        })
    }
}

/// Default of `--offline-after-secs`: above the default node backoff cap (300 s) plus a
/// jittered report interval (36 s), with room to spare.
pub const DEFAULT_OFFLINE_AFTER_SECS: i64 = 600;

/// The longest a live node can stay silent after a CP restart: its reconnect backoff cap
/// (full jitter: at most the cap) and then its next report (interval +20 %). An offline
/// threshold at or below it would mark live nodes offline once the restart grace (itself
/// `offline_after_secs` long) is over, so `serve` refuses to start with it.
pub fn check_offline_after(
    offline_after_secs: i64,
    node_max_backoff_secs: u64,
    report_interval_secs: f64,
) -> anyhow::Result<()> {
    let silent = node_max_backoff_secs as f64 + 1.2 * report_interval_secs.max(0.0);
    anyhow::ensure!(
        offline_after_secs as f64 > silent,
        "--offline-after-secs {offline_after_secs} is not longer than a live node can stay silent after a restart of the control plane ({silent:.0} s: --node-max-backoff-secs {node_max_backoff_secs} plus 1.2 × --report-interval-secs {report_interval_secs}); live nodes would be marked offline. Raise --offline-after-secs above {silent:.0} or lower --node-max-backoff-secs."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `DATABASE_URL=` (set, but empty) falls back to SQLite under the data dir, as if it
    /// were unset; SQLite would otherwise open a fresh in-memory database per connection.
    #[test]
    fn an_empty_database_url_means_the_default() {
        let args = ServeArgs {
            data_dir: Some(PathBuf::from("/tmp/outpost-x")),
            database_url: Some(String::new()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.database_url, "/tmp/outpost-x/outpost.sqlite");
    }

    /// Provider URLs on this machine (tests' fakes) need `--allow-local-providers`, and
    /// nothing else private passes even with it: refused at start, in words.
    #[test]
    fn local_provider_urls_need_the_switch() {
        let args = |url: &str, allow: Option<bool>| ServeArgs {
            openai_base_url: Some(url.into()),
            allow_local_providers: allow,
            ..Default::default()
        };
        let e = args("http://127.0.0.1:9/v1", None).resolve().unwrap_err();
        assert!(e.to_string().contains("--allow-local-providers"), "{e}");
        let c = args("http://127.0.0.1:9/v1", Some(true)).resolve().unwrap();
        assert!(c.allow_local_providers && c.outbound_policy().allows_local());
        let e = args("https://10.0.0.5/v1", Some(true))
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("private network"), "{e}");
        let c = ServeArgs::default().resolve().unwrap();
        assert!(!c.allow_local_providers);
    }

    /// A release key that is not one refuses the start, in words: new nodes would get it
    /// in their bundle and refuse every upgrade.
    #[test]
    fn the_release_key_must_be_an_ed25519_public_key() {
        let args = |key: &str| ServeArgs {
            release_public_key: Some(key.into()),
            ..Default::default()
        };
        let e = args("not-a-key").resolve().unwrap_err();
        assert!(e.to_string().contains("OUTPOST_RELEASE_PUBLIC_KEY"), "{e}");
        let (signer, _) = outpost_crypto::release::ReleaseSigner::generate().unwrap();
        let key = signer.public_key().to_b64();
        let c = args(&key).resolve().unwrap();
        assert_eq!(c.release_public_key, Some(key));
        assert_eq!(
            ServeArgs::default().resolve().unwrap().release_public_key,
            None
        );
    }

    #[test]
    fn the_offline_threshold_must_outlast_a_nodes_backoff_and_report() {
        assert!(check_offline_after(DEFAULT_OFFLINE_AFTER_SECS, 300, 30.0).is_ok());
        assert!(check_offline_after(337, 300, 30.0).is_ok());
        let e = check_offline_after(336, 300, 30.0).unwrap_err().to_string();
        assert!(e.contains("--offline-after-secs 336") && e.contains("--node-max-backoff-secs"));
        assert!(check_offline_after(300, 300, 30.0).is_err());
    }
}
