//! A node's DNS name on Cloudflare, with the `cloudflare` crate (built with reqwest's rustls
//! on ring, no OpenSSL): `<slug>.<nodes_domain>` A and AAAA records, **DNS only**
//! (`proxied: false`), so TLS ends on the node and Cloudflare never carries a message.
//! Idempotent by name: the records of that name are read first, then created, corrected
//! (address or proxying) or deleted to match.

use super::config::CloudflareConfig;
use cloudflare::endpoints::dns::dns::{
    CreateDnsRecord, CreateDnsRecordParams, DeleteDnsRecord, DnsContent, DnsRecord, ListDnsRecords,
    ListDnsRecordsParams, UpdateDnsRecord, UpdateDnsRecordParams,
};
use cloudflare::framework::auth::Credentials;
use cloudflare::framework::client::async_api::Client;
use cloudflare::framework::client::ClientConfig;
use cloudflare::framework::response::ApiFailure;
use cloudflare::framework::Environment;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Time-to-live of a node's records: 5 minutes, so a changed address spreads soon.
const TTL: u32 = 300;

/// A failed Cloudflare call, safe to log (status and Cloudflare's error codes only).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Cloudflare answered with an error.
    #[error("cloudflare error {status}: codes {codes:?}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Cloudflare's `errors[].code`.
        codes: Vec<u16>,
    },
    /// No answer, or not the JSON expected.
    #[error("cloudflare unreachable or answer not understood: {0}")]
    Transport(String),
}

impl DnsError {
    /// Whether trying later may help (everything but refused credentials).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            DnsError::Api {
                status: 401 | 403,
                ..
            }
        )
    }

    /// The failure code shown in words.
    pub fn code(&self) -> &'static str {
        if self.is_transient() {
            "dns_error"
        } else {
            "dns_credentials"
        }
    }
}

impl From<ApiFailure> for DnsError {
    fn from(e: ApiFailure) -> Self {
        match e {
            ApiFailure::Error(status, errs) => DnsError::Api {
                status: status.as_u16(),
                codes: errs.errors.iter().map(|e| e.code).collect(),
            },
            // reqwest's error, without the URL (it holds only the zone id, but stay terse).
            ApiFailure::Invalid(e) => DnsError::Transport(e.without_url().to_string()),
        }
    }
}

/// The nodes' zone.
pub struct Dns {
    client: Client,
    zone: String,
}

impl Dns {
    /// A client for the configured zone.
    pub fn new(cfg: &CloudflareConfig) -> anyhow::Result<Self> {
        // The crate joins paths onto the base: it must end with a slash.
        let base = format!("{}/", cfg.api_base);
        let client = Client::new(
            Credentials::UserAuthToken {
                token: cfg.api_token.expose().to_owned(),
            },
            ClientConfig {
                http_timeout: Duration::from_secs(30),
                ..Default::default()
            },
            Environment::Custom(base),
        )
        .map_err(|e| anyhow::anyhow!("cloudflare client: {e}"))?;
        Ok(Self {
            client,
            zone: cfg.zone_id.clone(),
        })
    }

    async fn records(&self, name: &str) -> Result<Vec<DnsRecord>, DnsError> {
        let r = self
            .client
            .request(&ListDnsRecords {
                zone_identifier: &self.zone,
                params: ListDnsRecordsParams {
                    name: Some(name.to_owned()),
                    per_page: Some(100),
                    ..Default::default()
                },
            })
            .await?;
        // Filtered here too: the name filter is the API's, the promise is ours.
        Ok(r.result.into_iter().filter(|d| d.name == name).collect())
    }

    /// Makes `name` point at exactly `v4` (A) and `v6` (AAAA), not proxied.
    pub async fn upsert(
        &self,
        name: &str,
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
    ) -> Result<(), DnsError> {
        let existing = self.records(name).await?;
        for want in [v4.map(IpAddr::V4), v6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
        {
            let content = match want {
                IpAddr::V4(a) => DnsContent::A { content: a },
                IpAddr::V6(a) => DnsContent::AAAA { content: a },
            };
            let same_type: Vec<&DnsRecord> = existing
                .iter()
                .filter(|r| ip_of(&r.content).is_some_and(|ip| ip.is_ipv4() == want.is_ipv4()))
                .collect();
            match same_type.split_first() {
                None => {
                    self.client
                        .request(&CreateDnsRecord {
                            zone_identifier: &self.zone,
                            params: CreateDnsRecordParams {
                                ttl: Some(TTL),
                                priority: None,
                                proxied: Some(false),
                                name,
                                content,
                            },
                        })
                        .await?;
                }
                Some((first, extra)) => {
                    if ip_of(&first.content) != Some(want) || first.proxied {
                        self.client
                            .request(&UpdateDnsRecord {
                                zone_identifier: &self.zone,
                                identifier: &first.id,
                                params: UpdateDnsRecordParams {
                                    ttl: Some(TTL),
                                    proxied: Some(false),
                                    name,
                                    content,
                                },
                            })
                            .await?;
                    }
                    for r in extra {
                        self.delete_record(&r.id).await?;
                    }
                }
            }
        }
        // An address family the server no longer has.
        for r in &existing {
            match ip_of(&r.content) {
                Some(IpAddr::V4(_)) if v4.is_none() => self.delete_record(&r.id).await?,
                Some(IpAddr::V6(_)) if v6.is_none() => self.delete_record(&r.id).await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes every A and AAAA record of `name` (none left is fine).
    pub async fn delete(&self, name: &str) -> Result<(), DnsError> {
        for r in self.records(name).await? {
            if ip_of(&r.content).is_some() {
                self.delete_record(&r.id).await?;
            }
        }
        Ok(())
    }

    async fn delete_record(&self, id: &str) -> Result<(), DnsError> {
        match self
            .client
            .request(&DeleteDnsRecord {
                zone_identifier: &self.zone,
                identifier: id,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(ApiFailure::Error(s, _)) if s.as_u16() == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn ip_of(c: &DnsContent) -> Option<IpAddr> {
    match c {
        DnsContent::A { content } => Some(IpAddr::V4(*content)),
        DnsContent::AAAA { content } => Some(IpAddr::V6(*content)),
        _ => None,
    }
}
