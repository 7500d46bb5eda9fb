//! A node's TLS client when its clock may be behind the control plane's (issue 18).
//!
//! The gateway's certificate is issued when the CP starts, valid from 5 minutes before.
//! A node whose clock is behind sees it as "not yet valid" and, with a plain verifier,
//! cannot even tell the CP why it cannot enroll: every attempt looks like "control plane
//! unreachable". This verifier lets such a node reach the CP anyway, within strict bounds:
//!
//! - only the "not yet valid" verdict is reconsidered, never a bad signature, another CA,
//!   a wrong name or an expired certificate;
//! - the whole chain is verified again, by the same webpki verifier pinned to the CP's CA,
//!   at the certificate's own `notBefore`, so it must be one the CA signed;
//! - only when the certificate starts at most [`MAX_TOLERATED_BEHIND`] after the node's
//!   clock; beyond that the handshake fails as before.
//!
//! Each such handshake records how far behind the node is at least ([`ClockBehind`]), so
//! the node can say so in its log and in its enrollment request (`node_time`), which the
//! CP refuses with 409 `clock_skew`: the CP, not this tolerance, keeps a skewed node out.

use crate::{pem_to_certs, provider, roots, PkiError, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How far a node's clock may be behind the gateway certificate's `notBefore` and still
/// complete a handshake (to be told, in words, that its clock is wrong).
pub const MAX_TOLERATED_BEHIND: Duration = Duration::from_secs(7 * 24 * 3600);

/// The node's clock as its TLS client sees it: the system clock plus a fixed shift (0
/// outside tests, where the node's hidden `--clock-skew-secs` stands in for a wrong clock).
#[derive(Debug)]
struct ShiftedTime(i64);

impl rustls::time_provider::TimeProvider for ShiftedTime {
    fn current_time(&self) -> Option<UnixTime> {
        let now = UnixTime::now().as_secs();
        let shifted = i64::try_from(now).ok()?.checked_add(self.0)?;
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(shifted).ok()?,
        )))
    }
}

/// What the node's handshakes saw of its clock: the largest number of seconds by which a
/// gateway certificate started after the node's time (0: never seen).
#[derive(Debug, Default)]
pub struct ClockBehind(AtomicI64);

impl ClockBehind {
    /// Seconds the node's clock is behind at least, if a handshake showed it.
    pub fn at_least(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|s| *s > 0)
    }

    fn saw(&self, secs: i64) {
        self.0.fetch_max(secs, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct BehindTolerant {
    inner: Arc<WebPkiServerVerifier>,
    behind: Arc<ClockBehind>,
}

impl ServerCertVerifier for BehindTolerant {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let first = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) = &first
        else {
            return first;
        };
        let Some(not_before) = not_before(end_entity) else {
            return first;
        };
        let ahead = i64::try_from(not_before)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
        if ahead <= 0 {
            return first;
        }
        // Everything again, at the moment the certificate starts: chain to the pinned
        // CA, name, usage. Only the node's own clock is set aside, and only a
        // certificate of the CP's CA says how far behind the node is.
        let at_start = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            UnixTime::since_unix_epoch(Duration::from_secs(not_before)),
        );
        if at_start.is_err() {
            return first;
        }
        self.behind.saw(ahead);
        if ahead.unsigned_abs() > MAX_TOLERATED_BEHIND.as_secs() {
            return first;
        }
        at_start
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn not_before(der: &CertificateDer<'_>) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    u64::try_from(cert.validity().not_before.timestamp()).ok()
}

/// Client config for a node whose clock is the system's shifted by `skew_secs`: trusts
/// only the CP's CA, presents the node's certificate when given, and tolerates a gateway
/// certificate that is not yet valid by the node's clock within the bounds above,
/// recording how far behind the node is in `behind`.
pub fn node_client_config_skewed(
    ca_pem: &str,
    client: Option<(&str, &rcgen::KeyPair)>,
    skew_secs: i64,
    behind: Arc<ClockBehind>,
) -> Result<rustls::ClientConfig> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| PkiError::Verifier(e.to_string()))?;
    let builder =
        rustls::ClientConfig::builder_with_details(provider(), Arc::new(ShiftedTime(skew_secs)))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(BehindTolerant { inner, behind }));
    let mut cfg = match client {
        Some((cert_pem, key)) => {
            builder.with_client_auth_cert(pem_to_certs(cert_pem)?, crate::key_der(key))?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CertificateAuthority;

    fn verifier(ca: &CertificateAuthority) -> (BehindTolerant, Arc<ClockBehind>) {
        let behind = Arc::new(ClockBehind::default());
        let inner = WebPkiServerVerifier::builder_with_provider(
            roots(ca.cert_pem()).expect("roots"),
            provider(),
        )
        .build()
        .expect("verifier");
        (
            BehindTolerant {
                inner,
                behind: behind.clone(),
            },
            behind,
        )
    }

    fn at(offset_secs: i64) -> UnixTime {
        let now = i64::try_from(UnixTime::now().as_secs()).expect("time");
        UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(now + offset_secs).expect("time"),
        ))
    }

    #[test]
    fn a_node_behind_reaches_its_own_ca_only_within_bounds() {
        let (ca, _) = CertificateAuthority::generate("cp ca").expect("ca");
        let (chain, _) = ca
            .issue_server_cert(&["127.0.0.1".into()])
            .expect("server cert");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let (v, behind) = verifier(&ca);

        // In time: accepted, nothing recorded.
        v.verify_server_cert(&chain[0], &chain[1..], &name, &[], at(0))
            .expect("valid now");
        assert_eq!(behind.at_least(), None);

        // Two hours behind: accepted, and the node learns it is behind by ~1 h 55 min.
        v.verify_server_cert(&chain[0], &chain[1..], &name, &[], at(-7200))
            .expect("tolerated");
        let b = behind.at_least().expect("recorded");
        assert!((6_800..=7_000).contains(&b), "{b}");

        // The wrong name is still refused, however far behind.
        let other = ServerName::try_from("example.com").expect("name");
        assert!(v
            .verify_server_cert(&chain[0], &chain[1..], &other, &[], at(-7200))
            .is_err());

        // Beyond the bound: refused, but how far behind is still known.
        let err = v
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], at(-30 * 86_400))
            .expect_err("too far behind");
        assert!(matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            )
        ));
        assert!(behind.at_least().expect("recorded") > 29 * 86_400);

        // Expired stays expired.
        assert!(v
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], at(400 * 86_400))
            .is_err());
    }

    #[test]
    fn another_ca_is_refused_even_when_behind() {
        let (ca, _) = CertificateAuthority::generate("cp ca").expect("ca");
        let (rogue, _) = CertificateAuthority::generate("rogue ca").expect("ca");
        let (chain, _) = rogue
            .issue_server_cert(&["127.0.0.1".into()])
            .expect("server cert");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let (v, behind) = verifier(&ca);
        for offset in [0, -7200] {
            assert!(v
                .verify_server_cert(&chain[0], &[], &name, &[], at(offset))
                .is_err());
        }
        assert_eq!(behind.at_least(), None, "{:?}", behind.at_least());
    }

    #[test]
    fn builds_with_a_shifted_clock() {
        let (ca, _) = CertificateAuthority::generate("cp ca").expect("ca");
        node_client_config_skewed(ca.cert_pem(), None, -7200, Arc::default()).expect("config");
        let t =
            rustls::time_provider::TimeProvider::current_time(&ShiftedTime(-7200)).expect("time");
        let diff = UnixTime::now().as_secs() - t.as_secs();
        assert!((7_199..=7_201).contains(&diff), "{diff}");
    }
}
