//! instant-acme's HTTP client trait over the node's reqwest (rustls with ring). Its own
//! client (hyper-rustls with the platform verifier) would bring a second HTTP stack and,
//! by default, aws-lc-rs.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Longest answer read from the ACME server: directories, orders and certificate chains
/// are a few kilobytes.
const MAX_BODY: usize = 1024 * 1024;
/// Each ACME request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Talks to the ACME server.
#[derive(Clone)]
pub(super) struct AcmeHttp(reqwest::Client);

impl AcmeHttp {
    /// Trusting the Mozilla roots and `extra` (a private ACME server's CA).
    pub(super) fn new(
        extra: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> anyhow::Result<Self> {
        let user_agent = format!("outpost-node/{}", crate::VERSION);
        Ok(Self(outpost_common::http::client_with_roots(
            &user_agent,
            Duration::from_secs(10),
            extra,
        )?))
    }
}

/// Why a request failed, kept as the error's source so [`super::acme`] can tell an
/// unreachable server from a refusal.
#[derive(Debug, thiserror::Error)]
pub(super) enum Transport {
    /// Connecting, TLS, or reading the answer failed.
    #[error("the ACME server could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The answer was larger than [`MAX_BODY`].
    #[error("the ACME server's answer is too large")]
    TooLarge,
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let mut resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .map_err(|e| Error::Other(Box::new(Transport::Unreachable(e))))?;
            let mut builder = http::Response::builder()
                .status(resp.status())
                .version(resp.version());
            if let Some(headers) = builder.headers_mut() {
                *headers = std::mem::take(resp.headers_mut());
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| Error::Other(Box::new(Transport::Unreachable(e))))?
            {
                if bytes.len() + chunk.len() > MAX_BODY {
                    return Err(Error::Other(Box::new(Transport::TooLarge)));
                }
                bytes.extend_from_slice(&chunk);
            }
            let (parts, ()) = builder.body(())?.into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(Bytes::from(bytes)),
            })
        })
    }
}
