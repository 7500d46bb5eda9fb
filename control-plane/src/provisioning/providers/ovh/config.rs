//! Configuration of real nodes: OVHcloud (`OUTPOST_OVH_*`), Cloudflare DNS
//! (`OUTPOST_CLOUDFLARE_*`, `OUTPOST_NODES_DOMAIN`) and the node release the servers install
//! (`OUTPOST_NODE_RELEASE_URL`, `OUTPOST_NODE_RELEASE_SHA256`); or the matching flags, or
//! `[ovh]` and `[cloudflare]` tables and top-level keys in the TOML file. They go together:
//! none set is fine (no real nodes), all set enables `--provisioner ovh`, anything between
//! refuses to start and names what is missing.

use clap::Args;
use outpost_crypto::Secret;
use serde::Deserialize;

/// Cloudflare's API.
pub const DEFAULT_CLOUDFLARE_API_BASE: &str = "https://api.cloudflare.com/client/v4";

fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s.to_owned()))
}

/// Flags and environment variables of `serve` for real nodes. Prefer the environment or
/// the TOML file for the secrets: flags show in the process list.
#[derive(Args, Debug, Clone, Default)]
pub struct CloudArgs {
    /// OVH API endpoint: `ovh-eu`, `ovh-ca`, `ovh-us` or a base URL [default: ovh-eu].
    /// TOML: an `[ovh]` table with `endpoint`, `application_key`, `application_secret`,
    /// `consumer_key`, `project_id`, `regions` (a list), `flavor_id`, `image_id`
    #[arg(long, env = "OUTPOST_OVH_ENDPOINT")]
    pub ovh_endpoint: Option<String>,
    /// OVH application key
    #[arg(long, env = "OUTPOST_OVH_APPLICATION_KEY")]
    pub ovh_application_key: Option<String>,
    /// OVH application secret
    #[arg(long, env = "OUTPOST_OVH_APPLICATION_SECRET", hide_env_values = true, value_parser = secret)]
    pub ovh_application_secret: Option<Secret>,
    /// OVH consumer key (the token; see docs/OPERATIONS.md for the rights it needs)
    #[arg(long, env = "OUTPOST_OVH_CONSUMER_KEY", hide_env_values = true, value_parser = secret)]
    pub ovh_consumer_key: Option<Secret>,
    /// OVH Public Cloud project id (`serviceName`)
    #[arg(long, env = "OUTPOST_OVH_PROJECT_ID")]
    pub ovh_project_id: Option<String>,
    /// Regions offered for new nodes, comma-separated, the default first: `GRA11,SBG5`
    #[arg(long, env = "OUTPOST_OVH_REGIONS")]
    pub ovh_regions: Option<String>,
    /// Flavor (server size) id of new nodes (`control-plane ovh check` lists them)
    #[arg(long, env = "OUTPOST_OVH_FLAVOR_ID")]
    pub ovh_flavor_id: Option<String>,
    /// Image (OS) id of new nodes: a Debian 12 image of the region
    #[arg(long, env = "OUTPOST_OVH_IMAGE_ID")]
    pub ovh_image_id: Option<String>,
    /// Cloudflare API token, scope Zone:DNS:Edit on the nodes' zone only. TOML: a
    /// `[cloudflare]` table with `api_token`, `zone_id`, `api_base`
    #[arg(long, env = "OUTPOST_CLOUDFLARE_API_TOKEN", hide_env_values = true, value_parser = secret)]
    pub cloudflare_api_token: Option<Secret>,
    /// Cloudflare zone id of the nodes' domain
    #[arg(long, env = "OUTPOST_CLOUDFLARE_ZONE_ID")]
    pub cloudflare_zone_id: Option<String>,
    /// Cloudflare API base URL [default: https://api.cloudflare.com/client/v4]
    #[arg(long, env = "OUTPOST_CLOUDFLARE_API_BASE")]
    pub cloudflare_api_base: Option<String>,
    /// Domain under which each node is `<slug>.<nodes_domain>` (DNS only, not proxied)
    #[arg(long, env = "OUTPOST_NODES_DOMAIN")]
    pub nodes_domain: Option<String>,
    /// https URL of the `agent-node` release binary the servers install
    #[arg(long, env = "OUTPOST_NODE_RELEASE_URL")]
    pub node_release_url: Option<String>,
    /// SHA-256 (hex) of that binary: a server refuses any other
    #[arg(long, env = "OUTPOST_NODE_RELEASE_SHA256")]
    pub node_release_sha256: Option<String>,
    /// Address a cloud node's own plain listener binds (tests run the node on loopback)
    #[arg(long, env = "OUTPOST_CLOUD_NODE_LISTEN", hide = true)]
    pub cloud_node_listen: Option<String>,
}

/// The `[ovh]` table of the TOML file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OvhFile {
    endpoint: Option<String>,
    application_key: Option<String>,
    application_secret: Option<String>,
    consumer_key: Option<String>,
    project_id: Option<String>,
    regions: Option<Vec<String>>,
    flavor_id: Option<String>,
    image_id: Option<String>,
}

impl std::fmt::Debug for OvhFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvhFile")
            .field("endpoint", &self.endpoint)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// The `[cloudflare]` table of the TOML file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CloudflareFile {
    api_token: Option<String>,
    zone_id: Option<String>,
    api_base: Option<String>,
}

impl std::fmt::Debug for CloudflareFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareFile")
            .field("zone_id", &self.zone_id)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// The TOML file's part of the cloud configuration.
#[derive(Debug, Default)]
pub struct CloudFile {
    /// `[ovh]`.
    pub ovh: Option<OvhFile>,
    /// `[cloudflare]`.
    pub cloudflare: Option<CloudflareFile>,
    /// `nodes_domain`.
    pub nodes_domain: Option<String>,
    /// `node_release_url`.
    pub node_release_url: Option<String>,
    /// `node_release_sha256`.
    pub node_release_sha256: Option<String>,
}

/// OVH credentials and choices. Debug prints the secrets as `***`.
#[derive(Debug, Clone)]
pub struct OvhConfig {
    /// API base, e.g. `https://eu.api.ovh.com/1.0`, no trailing slash.
    pub endpoint: String,
    /// Application key.
    pub application_key: String,
    /// Application secret.
    pub application_secret: Secret,
    /// Consumer key.
    pub consumer_key: Secret,
    /// Public Cloud project id.
    pub project_id: String,
    /// Regions offered, the default first; at least one.
    pub regions: Vec<String>,
    /// Flavor id.
    pub flavor_id: String,
    /// Image id.
    pub image_id: String,
}

/// Cloudflare DNS settings. Debug prints the token as `***`.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// API token.
    pub api_token: Secret,
    /// Zone id.
    pub zone_id: String,
    /// API base URL, no trailing slash.
    pub api_base: String,
}

/// Everything real nodes need.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// OVHcloud.
    pub ovh: OvhConfig,
    /// Cloudflare DNS.
    pub dns: CloudflareConfig,
    /// Nodes are `<slug>.<nodes_domain>`.
    pub nodes_domain: String,
    /// Release binary URL (https).
    pub release_url: String,
    /// Its SHA-256, lowercase hex.
    pub release_sha256: String,
    /// The node's own plain listener (`listen_addr` of its bootstrap bundle).
    pub node_listen: String,
}

/// OVH's API bases by endpoint name (those of OVH's own client libraries).
pub fn endpoint_url(name: &str) -> Option<&'static str> {
    match name {
        "ovh-eu" | "eu" => Some("https://eu.api.ovh.com/1.0"),
        "ovh-ca" | "ca" => Some("https://ca.api.ovh.com/1.0"),
        "ovh-us" | "us" => Some("https://api.us.ovhcloud.com/1.0"),
        _ => None,
    }
}

fn is_http_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// A domain name of letters, digits, hyphens and dots (what DNS and certificates take).
fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 200
        && d.split('.').count() >= 2
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

impl CloudArgs {
    /// Merges flags/env over the file. `None`: nothing set, no real nodes.
    pub fn resolve(&self, file: CloudFile) -> anyhow::Result<Option<CloudConfig>> {
        let o = file.ovh.unwrap_or_default();
        let c = file.cloudflare.unwrap_or_default();
        let text = |flag: &Option<String>, f: Option<String>| {
            flag.clone()
                .or(f)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let sec = |flag: &Option<Secret>, f: Option<String>| {
            flag.clone()
                .or(f.map(Secret::new))
                .filter(|s| !s.expose().trim().is_empty())
        };
        let application_key = text(&self.ovh_application_key, o.application_key);
        let application_secret = sec(&self.ovh_application_secret, o.application_secret);
        let consumer_key = sec(&self.ovh_consumer_key, o.consumer_key);
        let project_id = text(&self.ovh_project_id, o.project_id);
        let regions: Vec<String> = match &self.ovh_regions {
            Some(r) => r.split(',').map(|s| s.trim().to_owned()).collect(),
            None => o.regions.unwrap_or_default(),
        }
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
        let flavor_id = text(&self.ovh_flavor_id, o.flavor_id);
        let image_id = text(&self.ovh_image_id, o.image_id);
        let api_token = sec(&self.cloudflare_api_token, c.api_token);
        let zone_id = text(&self.cloudflare_zone_id, c.zone_id);
        let nodes_domain = text(&self.nodes_domain, file.nodes_domain);
        let release_url = text(&self.node_release_url, file.node_release_url);
        let release_sha256 = text(&self.node_release_sha256, file.node_release_sha256);

        let required = [
            ("OUTPOST_OVH_APPLICATION_KEY", application_key.is_some()),
            (
                "OUTPOST_OVH_APPLICATION_SECRET",
                application_secret.is_some(),
            ),
            ("OUTPOST_OVH_CONSUMER_KEY", consumer_key.is_some()),
            ("OUTPOST_OVH_PROJECT_ID", project_id.is_some()),
            ("OUTPOST_OVH_REGIONS", !regions.is_empty()),
            ("OUTPOST_OVH_FLAVOR_ID", flavor_id.is_some()),
            ("OUTPOST_OVH_IMAGE_ID", image_id.is_some()),
            ("OUTPOST_CLOUDFLARE_API_TOKEN", api_token.is_some()),
            ("OUTPOST_CLOUDFLARE_ZONE_ID", zone_id.is_some()),
            ("OUTPOST_NODES_DOMAIN", nodes_domain.is_some()),
            ("OUTPOST_NODE_RELEASE_URL", release_url.is_some()),
            ("OUTPOST_NODE_RELEASE_SHA256", release_sha256.is_some()),
        ];
        let missing: Vec<&str> = required
            .iter()
            .filter(|(_, set)| !set)
            .map(|(n, _)| *n)
            .collect();
        if missing.len() == required.len() {
            return Ok(None);
        }
        let (
            Some(application_key),
            Some(application_secret),
            Some(consumer_key),
            Some(project_id),
            Some(flavor_id),
            Some(image_id),
            Some(api_token),
            Some(zone_id),
            Some(nodes_domain),
            Some(release_url),
            Some(release_sha256),
            false,
        ) = (
            application_key,
            application_secret,
            consumer_key,
            project_id,
            flavor_id,
            image_id,
            api_token,
            zone_id,
            nodes_domain,
            release_url,
            release_sha256,
            regions.is_empty(),
        )
        else {
            anyhow::bail!(
                "real nodes (OVHcloud + Cloudflare) are partly configured: set {} as well, or unset the others (TOML: the [ovh] and [cloudflare] tables, nodes_domain, node_release_url, node_release_sha256)",
                missing.join(", ")
            );
        };
        let endpoint_raw = text(&self.ovh_endpoint, o.endpoint).unwrap_or("ovh-eu".into());
        let endpoint = match endpoint_url(&endpoint_raw) {
            Some(u) => u.to_owned(),
            None if is_http_url(&endpoint_raw) => endpoint_raw.trim_end_matches('/').to_owned(),
            None => anyhow::bail!(
                "ovh_endpoint `{endpoint_raw}` is neither ovh-eu, ovh-ca, ovh-us nor an http(s) URL"
            ),
        };
        let api_base = text(&self.cloudflare_api_base, c.api_base)
            .unwrap_or_else(|| DEFAULT_CLOUDFLARE_API_BASE.into())
            .trim_end_matches('/')
            .to_owned();
        anyhow::ensure!(
            is_http_url(&api_base) && url::Url::parse(&api_base).is_ok(),
            "cloudflare_api_base must be an http(s) URL"
        );
        let nodes_domain = nodes_domain.trim_end_matches('.').to_ascii_lowercase();
        anyhow::ensure!(
            valid_domain(&nodes_domain),
            "nodes_domain `{nodes_domain}` is not a domain name like nodes.example.com"
        );
        // Both go into the servers' user-data and a shell line: only a plain https URL
        // and a hex digest, nothing that quotes or expands.
        anyhow::ensure!(
            release_url.starts_with("https://")
                && url::Url::parse(&release_url).is_ok()
                && release_url
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"'\"`$\\;&|<>(){}".contains(c)),
            "node_release_url must be a plain https URL"
        );
        let release_sha256 = release_sha256.to_ascii_lowercase();
        anyhow::ensure!(
            release_sha256.len() == 64 && release_sha256.chars().all(|c| c.is_ascii_hexdigit()),
            "node_release_sha256 must be 64 hex digits (sha256sum of the binary)"
        );
        for (name, v) in [
            ("ovh_project_id", &project_id),
            ("ovh_flavor_id", &flavor_id),
            ("ovh_image_id", &image_id),
            ("cloudflare_zone_id", &zone_id),
        ] {
            anyhow::ensure!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name} must be letters, digits, - or _"
            );
        }
        for r in &regions {
            anyhow::ensure!(
                r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "ovh_regions: `{r}` is not a region name like GRA11"
            );
        }
        Ok(Some(CloudConfig {
            ovh: OvhConfig {
                endpoint,
                application_key,
                application_secret,
                consumer_key,
                project_id,
                regions,
                flavor_id,
                image_id,
            },
            dns: CloudflareConfig {
                api_token,
                zone_id,
                api_base,
            },
            nodes_domain,
            release_url,
            release_sha256,
            node_listen: self
                .cloud_node_listen
                .clone()
                .unwrap_or_else(|| DEFAULT_NODE_LISTEN.into()),
        }))
    }
}

/// The node's own plain listener on a real server: loopback only. The public ports (443,
/// and 80 for ACME and the redirect) are the node's HTTPS side, which it opens itself.
pub const DEFAULT_NODE_LISTEN: &str = "127.0.0.1:8080";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn full() -> CloudArgs {
        CloudArgs {
            ovh_application_key: Some("ak".into()),
            ovh_application_secret: Some(Secret::new("as".into())),
            ovh_consumer_key: Some(Secret::new("ck".into())),
            ovh_project_id: Some("p1".into()),
            ovh_regions: Some("GRA11, SBG5".into()),
            ovh_flavor_id: Some("f1".into()),
            ovh_image_id: Some("i1".into()),
            cloudflare_api_token: Some(Secret::new("cf".into())),
            cloudflare_zone_id: Some("z1".into()),
            nodes_domain: Some("Nodes.Example.com".into()),
            node_release_url: Some("https://example.com/agent-node".into()),
            node_release_sha256: Some("A".repeat(64)),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_set_is_off_and_everything_set_is_on() {
        assert!(CloudArgs::default()
            .resolve(CloudFile::default())
            .unwrap()
            .is_none());
        let c = full().resolve(CloudFile::default()).unwrap().unwrap();
        assert_eq!(c.ovh.endpoint, "https://eu.api.ovh.com/1.0");
        assert_eq!(c.ovh.regions, ["GRA11", "SBG5"]);
        assert_eq!(c.nodes_domain, "nodes.example.com");
        assert_eq!(c.release_sha256, "a".repeat(64));
        assert_eq!(c.dns.api_base, DEFAULT_CLOUDFLARE_API_BASE);
        assert!(!format!("{c:?}").contains("\"cf\""), "secrets masked");
    }

    #[test]
    fn a_partial_configuration_names_what_is_missing() {
        let mut a = full();
        a.ovh_consumer_key = None;
        a.cloudflare_zone_id = None;
        let e = a.resolve(CloudFile::default()).unwrap_err().to_string();
        assert!(e.contains("OUTPOST_OVH_CONSUMER_KEY"), "{e}");
        assert!(e.contains("OUTPOST_CLOUDFLARE_ZONE_ID"), "{e}");
        assert!(!e.contains("OUTPOST_OVH_APPLICATION_KEY"), "{e}");
        let only = CloudArgs {
            nodes_domain: Some("nodes.example.com".into()),
            ..Default::default()
        };
        let e = only.resolve(CloudFile::default()).unwrap_err().to_string();
        assert!(e.contains("OUTPOST_OVH_APPLICATION_SECRET"), "{e}");
    }

    #[test]
    fn release_url_and_digest_are_checked() {
        let mut a = full();
        a.node_release_url = Some("https://example.com/x';reboot;'".into());
        assert!(a.resolve(CloudFile::default()).is_err());
        let mut a = full();
        a.node_release_sha256 = Some("abc".into());
        assert!(a.resolve(CloudFile::default()).is_err());
        let mut a = full();
        a.node_release_url = Some("http://example.com/agent-node".into());
        assert!(a.resolve(CloudFile::default()).is_err());
    }
}
