//! The outbound HTTP client: LLM providers and channels on the node; mail APIs, Stripe,
//! OAuth providers on the control plane. Calls to an address a customer gave (secret
//! validation, model endpoints) go through [`crate::outbound`] instead.

use std::sync::Arc;
use std::time::Duration;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// reqwest refused the settings.
    #[error("HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// An HTTP client over rustls with the **ring** provider (given explicitly: nothing relies
/// on a process-wide default, so aws-lc-rs never enters the build) and the Mozilla roots
/// from `webpki-roots` (no dependence on the machine's certificate store). `user_agent`
/// names the calling program; `connect` bounds TCP + TLS connection set-up. Per-request
/// timeouts are the caller's.
pub fn client(user_agent: &str, connect: Duration) -> Result<reqwest::Client, ClientError> {
    Ok(builder(user_agent, connect)?.build()?)
}

/// The settings of [`client`] with `extra` roots trusted beside the Mozilla ones: for a
/// server the operator runs with a private CA (the node's ACME directory in tests, which
/// is pebble's). No redirect is followed: a protocol client wants the answer as it came.
pub fn client_with_roots(
    user_agent: &str,
    connect: Duration,
    extra: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<reqwest::Client, ClientError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots.add(cert)?;
    }
    Ok(with_roots(user_agent, connect, roots)?
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// The settings of [`client`], for [`crate::outbound`] to add its resolver and redirect
/// policy to.
pub(crate) fn builder(
    user_agent: &str,
    connect: Duration,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    with_roots(user_agent, connect, roots)
}

fn with_roots(
    user_agent: &str,
    connect: Duration,
    roots: rustls::RootCertStore,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(connect)
        .user_agent(user_agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_with_the_ring_provider() {
        assert!(client("outpost-test/0", Duration::from_secs(5)).is_ok());
    }
}
