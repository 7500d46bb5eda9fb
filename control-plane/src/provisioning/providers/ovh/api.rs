//! A small typed client for the OVHcloud API calls the provisioner makes, over the CP's
//! shared reqwest client (rustls + ring). Every request is signed as OVH specifies:
//!
//! ```text
//! X-Ovh-Application: AK    X-Ovh-Consumer: CK    X-Ovh-Timestamp: TS
//! X-Ovh-Signature: "$1$" + hex(sha1(AS + "+" + CK + "+" + METHOD + "+" + FULL_URL + "+" + BODY + "+" + TS))
//! ```
//!
//! where TS is OVH's clock, not ours: the delta to `GET /auth/time` is measured once and
//! kept. Errors carry OVH's HTTP status and error class, and a classification into the
//! failure codes the UI explains in words; OVH's own message is kept only to classify
//! (it can name the project, never anything of a customer's).

use super::config::OvhConfig;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Per-request timeout (connecting is bounded by the client itself).
const TIMEOUT: Duration = Duration::from_secs(30);
/// Marks "no delta measured yet" (a real delta is seconds, never this).
const UNKNOWN: i64 = i64::MIN;

/// What went wrong with an OVH call, classified.
#[derive(Debug, thiserror::Error)]
pub enum OvhError {
    /// No answer (connection refused, timeout): worth retrying.
    #[error("OVH API unreachable: {0}")]
    Transport(String),
    /// OVH answered with an error status.
    #[error("OVH API error {status} ({class}): {code}")]
    Api {
        /// HTTP status.
        status: u16,
        /// OVH's error class, e.g. `Client::Forbidden`.
        class: String,
        /// Our failure code for it ([`classify`]).
        code: &'static str,
    },
    /// The answer was not the JSON expected.
    #[error("OVH answer not understood")]
    Decode,
}

impl OvhError {
    /// Whether the same call may succeed later (5xx, 429, no answer).
    pub fn is_transient(&self) -> bool {
        match self {
            OvhError::Transport(_) => true,
            OvhError::Api { status, .. } => *status >= 500 || *status == 429,
            OvhError::Decode => false,
        }
    }

    /// The failure code shown (in words) to the owner.
    pub fn code(&self) -> &'static str {
        match self {
            OvhError::Transport(_) => "provider_unreachable",
            OvhError::Api { code, .. } => code,
            OvhError::Decode => "provider_error",
        }
    }

    /// Whether OVH says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, OvhError::Api { status: 404, .. })
    }
}

/// OVH's error body: `{"class": "Client::BadRequest", "message": "…"}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    class: String,
    #[serde(default)]
    message: String,
}

/// Maps an OVH error answer to a stable failure code. OVH words its messages freely, so
/// the class and status decide first and the message only narrows a 400/404 down.
pub fn classify(status: u16, class: &str, message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if status >= 500 || status == 429 {
        "provider_unavailable"
    } else if status == 401
        || status == 403
        || class.contains("Forbidden")
        || class.contains("Unauthorized")
    {
        "provider_credentials"
    } else if m.contains("quota") || m.contains("insufficient") && m.contains("resource") {
        "provider_quota"
    } else if m.contains("flavor") {
        "provider_unknown_flavor"
    } else if m.contains("image") {
        "provider_unknown_image"
    } else if m.contains("region") {
        "provider_unknown_region"
    } else {
        "provider_error"
    }
}

/// `"$1$" + hex(sha1(AS+CK+METHOD+URL+BODY+TS joined by "+"))`.
pub fn signature(
    application_secret: &str,
    consumer_key: &str,
    method: &str,
    url: &str,
    body: &str,
    timestamp: i64,
) -> String {
    let pre = format!("{application_secret}+{consumer_key}+{method}+{url}+{body}+{timestamp}");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, pre.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("$1${hex}")
}

/// A Public Cloud instance (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct Instance {
    /// OVH's instance id (UUID).
    pub id: String,
    /// Our node id.
    pub name: String,
    /// `BUILD`, `ACTIVE`, `ERROR`, `DELETING`…
    pub status: String,
    /// Addresses, once it has them.
    #[serde(default, rename = "ipAddresses")]
    pub ip_addresses: Vec<IpAddress>,
}

/// One address of an instance.
#[derive(Debug, Clone, Deserialize)]
pub struct IpAddress {
    /// The address.
    pub ip: String,
    /// `public` or `private`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 4 or 6.
    pub version: u8,
}

impl Instance {
    /// The first public address of IP `version` (4 or 6).
    pub fn public_ip(&self, version: u8) -> Option<std::net::IpAddr> {
        self.ip_addresses
            .iter()
            .filter(|a| a.kind == "public" && a.version == version)
            .find_map(|a| a.ip.parse().ok())
    }
}

/// `POST /cloud/project/{serviceName}/instance` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstance<'a> {
    /// Our node id (the idempotency key: looked up before creating).
    pub name: &'a str,
    /// Flavor (size) id.
    pub flavor_id: &'a str,
    /// Image (OS) id.
    pub image_id: &'a str,
    /// Region, e.g. `GRA11`.
    pub region: &'a str,
    /// cloud-init user-data.
    pub user_data: &'a str,
    /// Hourly billing: a node can be deleted any day without paying the month.
    pub monthly_billing: bool,
}

/// A flavor, as `ovh check` lists them.
#[derive(Debug, Clone, Deserialize)]
pub struct Flavor {
    /// Flavor id.
    pub id: String,
    /// Name, e.g. `d2-2`.
    pub name: String,
    /// Region it is offered in.
    #[serde(default)]
    pub region: String,
    /// Virtual CPUs.
    #[serde(default)]
    pub vcpus: u32,
    /// Memory, MB.
    #[serde(default)]
    pub ram: u32,
    /// Disk, GB.
    #[serde(default)]
    pub disk: u32,
}

/// The signed client.
pub struct OvhApi {
    http: reqwest::Client,
    cfg: OvhConfig,
    /// OVH's clock minus ours, seconds.
    delta: AtomicI64,
}

impl OvhApi {
    /// A client over `http` (the CP's shared client).
    pub fn new(http: reqwest::Client, cfg: OvhConfig) -> Self {
        Self {
            http,
            cfg,
            delta: AtomicI64::new(UNKNOWN),
        }
    }

    /// The configuration it signs with.
    pub fn config(&self) -> &OvhConfig {
        &self.cfg
    }

    /// OVH's clock: `GET /auth/time` (unsigned), once; later calls reuse the delta.
    async fn timestamp(&self) -> Result<i64, OvhError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let d = self.delta.load(Ordering::Relaxed);
        if d != UNKNOWN {
            return Ok(now + d);
        }
        let server: i64 = self.unsigned(reqwest::Method::GET, "/auth/time").await?;
        let d = server - time::OffsetDateTime::now_utc().unix_timestamp();
        self.delta.store(d, Ordering::Relaxed);
        Ok(now + d)
    }

    async fn unsigned<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<T, OvhError> {
        let url = format!("{}{path}", self.cfg.endpoint);
        let r = self
            .http
            .request(method, &url)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| OvhError::Transport(e.without_url().to_string()))?;
        decode(r).await
    }

    /// A signed call. `body` is the exact JSON text sent (and signed), or empty.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<T, OvhError> {
        let url = format!("{}{path}", self.cfg.endpoint);
        let body = body.unwrap_or_default();
        let ts = self.timestamp().await?;
        let sig = signature(
            self.cfg.application_secret.expose(),
            self.cfg.consumer_key.expose(),
            method.as_str(),
            &url,
            &body,
            ts,
        );
        let mut req = self
            .http
            .request(method, &url)
            .timeout(TIMEOUT)
            .header("X-Ovh-Application", &self.cfg.application_key)
            .header("X-Ovh-Consumer", self.cfg.consumer_key.expose())
            .header("X-Ovh-Timestamp", ts.to_string())
            .header("X-Ovh-Signature", sig);
        if !body.is_empty() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let r = req
            .send()
            .await
            .map_err(|e| OvhError::Transport(e.without_url().to_string()))?;
        decode(r).await
    }

    fn project(&self) -> String {
        format!("/cloud/project/{}", self.cfg.project_id)
    }

    /// The credentials' own description (`GET /auth/currentCredential`): proves they are
    /// accepted. Returns its `status` (`validated` when usable).
    pub async fn current_credential(&self) -> Result<String, OvhError> {
        #[derive(Deserialize)]
        struct Cred {
            status: String,
        }
        let c: Cred = self
            .call(reqwest::Method::GET, "/auth/currentCredential", None)
            .await?;
        Ok(c.status)
    }

    /// Regions of the project.
    pub async fn regions(&self) -> Result<Vec<String>, OvhError> {
        let p = format!("{}/region", self.project());
        self.call(reqwest::Method::GET, &p, None).await
    }

    /// Flavors offered in `region`.
    pub async fn flavors(&self, region: &str) -> Result<Vec<Flavor>, OvhError> {
        let p = format!("{}/flavor?region={}", self.project(), urlencode(region));
        self.call(reqwest::Method::GET, &p, None).await
    }

    /// The project's instance called `name`, if any (the idempotency look-up).
    pub async fn instance_named(&self, name: &str) -> Result<Option<Instance>, OvhError> {
        let p = format!("{}/instance", self.project());
        let all: Vec<Instance> = self.call(reqwest::Method::GET, &p, None).await?;
        Ok(all.into_iter().find(|i| i.name == name))
    }

    /// One instance.
    pub async fn instance(&self, id: &str) -> Result<Instance, OvhError> {
        let p = format!("{}/instance/{}", self.project(), urlencode(id));
        self.call(reqwest::Method::GET, &p, None).await
    }

    /// Creates an instance.
    pub async fn create_instance(&self, new: &NewInstance<'_>) -> Result<Instance, OvhError> {
        let p = format!("{}/instance", self.project());
        let body = serde_json::to_string(new).map_err(|_| OvhError::Decode)?;
        self.call(reqwest::Method::POST, &p, Some(body)).await
    }

    /// Soft-reboots an instance.
    pub async fn reboot(&self, id: &str) -> Result<(), OvhError> {
        let p = format!("{}/instance/{}/reboot", self.project(), urlencode(id));
        self.call::<serde_json::Value>(
            reqwest::Method::POST,
            &p,
            Some(r#"{"type":"soft"}"#.to_owned()),
        )
        .await
        .map(|_| ())
    }

    /// Deletes an instance; one already gone is fine.
    pub async fn delete_instance(&self, id: &str) -> Result<(), OvhError> {
        let p = format!("{}/instance/{}", self.project(), urlencode(id));
        match self
            .call::<serde_json::Value>(reqwest::Method::DELETE, &p, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, OvhError> {
    let status = r.status().as_u16();
    let bytes = r
        .bytes()
        .await
        .map_err(|e| OvhError::Transport(e.without_url().to_string()))?;
    if (200..300).contains(&status) {
        // DELETE answers `null`, which a `Value` takes.
        return serde_json::from_slice(&bytes).map_err(|_| OvhError::Decode);
    }
    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
    Err(OvhError::Api {
        status,
        code: classify(status, &body.class, &body.message),
        class: body.class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_ovhs_known_answer() {
        // SHA-1 of the pre-image, worked out independently (`printf %s … | sha1sum`).
        let s = signature(
            "AS",
            "CK",
            "GET",
            "https://eu.api.ovh.com/1.0/auth/currentCredential",
            "",
            1_700_000_000,
        );
        assert_eq!(s, "$1$fa77a1a2c5b5369d18b7af7cda00808be6e8c99a");
    }

    #[test]
    fn errors_are_classified_in_words() {
        assert_eq!(
            classify(400, "Client::BadRequest", "Quota exceeded for instances"),
            "provider_quota"
        );
        assert_eq!(
            classify(403, "Client::Forbidden", "Invalid signature"),
            "provider_credentials"
        );
        assert_eq!(
            classify(400, "Client::BadRequest", "Flavor xyz does not exist"),
            "provider_unknown_flavor"
        );
        assert_eq!(
            classify(404, "Client::NotFound", "Image not found"),
            "provider_unknown_image"
        );
        assert_eq!(
            classify(400, "Client::BadRequest", "Invalid region XX1"),
            "provider_unknown_region"
        );
        assert_eq!(
            classify(503, "Server::ServiceUnavailable", ""),
            "provider_unavailable"
        );
    }
}
