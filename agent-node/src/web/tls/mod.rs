//! HTTPS on a real node (DESIGN §8): a node given a public host (`<slug>.<nodes_domain>`)
//! obtains its own certificate over ACME, serves the console, widget, channel webhooks and
//! export links on HTTPS, and answers port 80 with ACME HTTP-01 challenges and a redirect
//! to https for everything else. Without a public host nothing here runs and the node
//! serves plain HTTP on its bundle's listen address, as local nodes always have.
//!
//! - [`Settings`]: the public host and ports, from the run arguments and the bundle.
//! - [`CertSlot`]: the certificate rustls serves, swapped in place at renewal (no restart).
//! - [`acme`]: obtaining and renewing the certificate (account and certificate sealed in the
//!   data directory, renewal at two thirds of its life, backoff on failure).
//! - [`redirect`]: the port-80 server.
//! - [`TlsStatus`]: the `tls` check in the node's reports.
//!
//! TLS ends on the node: DNS is "DNS only" at Cloudflare, so no third party sees content.

pub mod acme;
mod client;
pub mod redirect;
mod stored;

use crate::cli::RunArgs;
use anyhow::Context as _;
use outpost_protocol::Check;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// `Strict-Transport-Security` on every HTTPS answer: one year. No `includeSubDomains`:
/// the node owns its name only, not the names below it.
pub const HSTS: &str = "max-age=31536000";

/// How a node with a public host is reached.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The public DNS name, lower case, without a trailing dot.
    pub host: String,
    /// The HTTPS port (443 in production).
    pub https_port: u16,
    /// The HTTP port: challenges and the redirect (80 in production).
    pub http_port: u16,
    /// The address both ports are bound on.
    pub bind: IpAddr,
    /// ACME, or `None` when a reverse proxy terminates TLS for the node.
    pub acme: Option<AcmeSettings>,
}

/// Where and how the certificate is obtained.
#[derive(Clone)]
pub struct AcmeSettings {
    /// The ACME directory URL.
    pub directory: String,
    /// Contact address for the CA, if any.
    pub email: Option<String>,
    /// Extra roots trusted for the ACME server's own TLS.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Cap of the backoff between failed attempts.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for AcmeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeSettings")
            .field("directory", &self.directory)
            .field("extra_roots", &self.extra_roots.len())
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// From the run arguments, or the host the bundle named (`stored_host`) when the
    /// arguments name none. `Ok(None)`: no public host, a local node.
    pub fn resolve(args: &RunArgs, stored_host: Option<String>) -> anyhow::Result<Option<Self>> {
        let Some(raw) = args.public_host.clone().or(stored_host) else {
            return Ok(None);
        };
        let host = normalize_host(&raw).with_context(|| {
            format!(
                "the public host {raw:?} is not a DNS name (letters, digits and hyphens in \
                 dot-separated labels, such as acme-dental.nodes.example.com)"
            )
        })?;
        anyhow::ensure!(
            !args.acme || args.https_port != args.http_port,
            "--https-port and --http-port are both {}: HTTPS and the port-80 redirect need \
             two ports",
            args.https_port
        );
        let acme = if args.acme {
            let extra_roots = match &args.acme_ca_file {
                Some(path) => {
                    let pem = std::fs::read_to_string(path)
                        .with_context(|| format!("reading the ACME CA file {}", path.display()))?;
                    outpost_pki::pem_to_certs(&pem)
                        .with_context(|| format!("{} holds no PEM certificate", path.display()))?
                }
                None => Vec::new(),
            };
            anyhow::ensure!(
                args.acme_directory.starts_with("https://"),
                "the ACME directory must be an https:// URL (RFC 8555), not {:?}",
                args.acme_directory
            );
            Some(AcmeSettings {
                directory: args.acme_directory.clone(),
                email: args.acme_email.clone().filter(|e| !e.trim().is_empty()),
                extra_roots,
                max_backoff: Duration::from_secs(args.acme_max_backoff_secs.max(1)),
            })
        } else {
            None
        };
        Ok(Some(Self {
            host,
            https_port: args.https_port,
            http_port: args.http_port,
            bind: args.bind_address,
            acme,
        }))
    }

    /// The node's public base URL: `https://<host>`, with the port when it is not 443.
    /// Behind a reverse proxy the proxy's port (443) is the public one.
    pub fn public_url(&self) -> String {
        match (&self.acme, self.https_port) {
            (Some(_), port) if port != 443 => format!("https://{}:{port}", self.host),
            _ => format!("https://{}", self.host),
        }
    }

    /// The HTTPS listening address.
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.https_port)
    }

    /// The HTTP (challenges and redirect) listening address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.http_port)
    }
}

/// Binds `addr`. `::` (IPv4 and IPv6 on Linux) falls back to `0.0.0.0` on a machine
/// without IPv6, so the default works on both.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    match std::net::TcpListener::bind(addr) {
        Ok(l) => Ok(l),
        Err(e)
            if addr.ip() == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
                && (e.kind() == std::io::ErrorKind::AddrNotAvailable
                    || e.raw_os_error() == Some(97)) =>
        {
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            tracing::info!(%addr, %v4, "no IPv6 on this machine; listening on IPv4 only");
            std::net::TcpListener::bind(v4).with_context(|| format!("binding {v4}"))
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "binding {addr}{}",
                if addr.port() < 1024 {
                    " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                } else {
                    ""
                }
            )
        }),
    }
}

/// Lower case, no trailing dot; `None` unless a DNS name of at least two labels, each of
/// 1–63 letters, digits or inner hyphens, 253 characters at most, not all digits (an
/// IPv4 address is not a host name a CA validates over HTTP-01).
pub fn normalize_host(raw: &str) -> Option<String> {
    let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let numeric = labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (host.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) && !numeric)
        .then_some(host)
}

/// The certificate the HTTPS listener presents; empty until the first one is obtained
/// (handshakes fail meanwhile), replaced in place when renewed.
#[derive(Default)]
pub struct CertSlot {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for CertSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSlot")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl CertSlot {
    /// Serves `key` from the next handshake on; connections already open keep theirs.
    pub fn install(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
    }

    /// Whether a certificate is being served.
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The rustls configuration of the HTTPS listener (ring provider, certificates from
/// `slot`). actix adds the `http/1.1` ALPN protocol.
pub fn server_config(slot: Arc<CertSlot>) -> anyhow::Result<rustls::ServerConfig> {
    Ok(
        rustls::ServerConfig::builder_with_provider(outpost_pki::provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(slot),
    )
}

/// A served certificate and key from PEM: the chain as the CA sent it, the key PKCS#8.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> anyhow::Result<CertifiedKey> {
    use rustls::pki_types::pem::PemObject as _;
    let chain = outpost_pki::pem_to_certs(chain_pem).context("the certificate chain")?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| anyhow::anyhow!("the certificate's private key is malformed"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| anyhow::anyhow!("the certificate's private key is not supported"))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// Key authorizations of the HTTP-01 challenges in progress, by token.
#[derive(Default, Debug)]
pub struct Challenges {
    pending: Mutex<std::collections::HashMap<String, String>>,
}

impl Challenges {
    /// Answers `token` with `key_authorization` until removed.
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    /// The key authorization for `token`, if a challenge is in progress.
    pub fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `tls` check: absent until the first attempt has an outcome (a node still getting
/// its first certificate has nothing to report yet), then passing, or failing with the
/// code of the last failure (`acme_unreachable`, `acme_rate_limited`, `acme_refused`,
/// `challenge_failed`, `acme_timeout`, `not_saved`) until an attempt succeeds.
#[derive(Default, Debug)]
pub struct TlsStatus {
    last: Mutex<Option<Result<(), &'static str>>>,
}

impl TlsStatus {
    /// An attempt succeeded (or a stored certificate was loaded).
    pub fn set_ok(&self) {
        *self.lock() = Some(Ok(()));
    }

    /// An attempt failed with `code`.
    pub fn set_failed(&self, code: &'static str) {
        *self.lock() = Some(Err(code));
    }

    /// The check for the next report, once there is an outcome.
    pub fn check(&self) -> Option<Check> {
        let last = *self.lock();
        last.map(|r| Check {
            name: "tls".into(),
            ok: r.is_ok(),
            detail_code: r.err().map(str::to_owned),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Result<(), &'static str>>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked_and_normalized() {
        assert_eq!(
            normalize_host(" Acme-Dental.Nodes.Example.COM. ").as_deref(),
            Some("acme-dental.nodes.example.com")
        );
        for bad in [
            "",
            "localhost",
            "acme dental.example.com",
            "-acme.example.com",
            "acme-.example.com",
            "acme..example.com",
            "acme.example.com:443",
            "https://acme.example.com",
            "127.0.0.1",
            "acme_dental.example.com",
            &format!("{}.example.com", "a".repeat(64)),
        ] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_status_says_nothing_until_an_outcome_then_the_last_one() {
        let s = TlsStatus::default();
        assert_eq!(s.check(), None);
        s.set_failed("acme_unreachable");
        let c = s.check().expect("check");
        assert_eq!(
            (c.name.as_str(), c.ok, c.detail_code.as_deref()),
            ("tls", false, Some("acme_unreachable"))
        );
        s.set_ok();
        let c = s.check().expect("check");
        assert!(c.ok && c.detail_code.is_none());
    }
}
