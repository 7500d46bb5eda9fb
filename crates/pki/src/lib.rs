//! Outpost's internal PKI: the control plane's CA, node CSRs and certificates, rustls
//! client/server configurations and node-key signatures (destruction receipts).
//!
//! Architecture invariant: every rustls object here is built with the **ring** crypto
//! provider explicitly ([`provider`]); nothing relies on a process-wide default provider,
//! so aws-lc-rs never enters the build.

use outpost_common::hex;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

mod node_clock;
pub use node_clock::{node_client_config_skewed, ClockBehind, MAX_TOLERATED_BEHIND};

/// Errors from certificate handling.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Key or certificate generation/signing failed.
    #[error("certificate operation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM or DER input could not be parsed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// rustls rejected a configuration.
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// A signature did not verify.
    #[error("bad signature")]
    BadSignature,
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, PkiError>;

/// Lifetime of a node client certificate.
pub const NODE_CERT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How far `notBefore` is backdated to tolerate clock skew.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The ring crypto provider, the only one Outpost uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Generates a fresh P-256 key pair.
pub fn generate_key() -> Result<KeyPair> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

/// Loads a key pair from PKCS#8 PEM.
pub fn key_from_pem(pem: &str) -> Result<KeyPair> {
    KeyPair::from_pem(pem).map_err(|_| PkiError::Malformed("private key"))
}

/// Builds a PEM CSR for `key`. The CP ignores everything in it but the public key: the
/// node cannot choose its own identity.
pub fn make_csr(key: &KeyPair, node_id: &str) -> Result<String> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(&format!("outpost node {node_id}"));
    Ok(params.serialize_request(key)?.pem()?)
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Outpost");
    dn.push(DnType::CommonName, cn);
    dn
}

fn random_serial() -> (SerialNumber, String) {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).expect("system RNG available");
    bytes[0] &= 0x7f; // positive INTEGER
    bytes[0] |= 0x01; // no leading zero byte, so the DER encoding keeps all 16 bytes
    (SerialNumber::from_slice(&bytes), hex(&bytes))
}

/// SHA-256 of `data`, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// A certificate issued by the CA.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// PEM encoding.
    pub pem: String,
    /// DER encoding.
    pub der: Vec<u8>,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// Expiry.
    pub not_after: OffsetDateTime,
}

/// The control plane's internal certificate authority.
pub struct CertificateAuthority {
    cert: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
}

impl CertificateAuthority {
    /// Creates a new self-signed CA (P-256, 10 years). Returns the CA and its key PEM,
    /// which the caller stores with mode 0600.
    pub fn generate(name: &str) -> Result<(Self, String)> {
        let key = generate_key()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::from_secs(10 * 365 * 24 * 3600);
        params.serial_number = Some(random_serial().0);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let cert_pem = cert.pem();
        Ok((
            Self {
                cert,
                key,
                cert_pem,
            },
            key_pem,
        ))
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = key_from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)
            .map_err(|_| PkiError::Malformed("CA certificate"))?;
        // rcgen signs with a `Certificate` issuer; re-deriving it from the stored params
        // and key yields the same subject and key identifier, which is all that chaining
        // needs. Peers keep trusting the stored PEM, returned by `cert_pem`.
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert,
            key,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate PEM that nodes pin.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>> {
        pem_to_certs(&self.cert_pem)?
            .into_iter()
            .next()
            .ok_or(PkiError::Malformed("CA certificate"))
    }

    /// Signs a node's CSR. Only the CSR's public key is used: subject, SAN
    /// (`outpost://node/<id>`), EKU clientAuth, 30-day validity with `notBefore`
    /// backdated 5 minutes and a random serial are all set here.
    pub fn sign_node_csr(&self, csr_pem: &str, node_id: &str) -> Result<IssuedCert> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|_| PkiError::Malformed("certificate signing request"))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(&format!("outpost node {node_id}"));
        let uri = format!("outpost://node/{node_id}");
        params.subject_alt_names = vec![SanType::URI(
            uri.try_into().map_err(|_| PkiError::Malformed("node id"))?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + NODE_CERT_LIFETIME;
        let (serial, serial_hex) = random_serial();
        params.serial_number = Some(serial);
        csr.params = params;
        let cert = csr.signed_by(&self.cert, &self.key)?;
        Ok(IssuedCert {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            serial: serial_hex,
            not_after: now + NODE_CERT_LIFETIME,
        })
    }

    /// Issues a server certificate for the node gateway, valid for `names` (DNS names or
    /// IP addresses). Returns the certificate chain and the key.
    pub fn issue_server_cert(
        &self,
        names: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let key = generate_key()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = dn("outpost node gateway");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::from_secs(365 * 24 * 3600);
        params.serial_number = Some(random_serial().0);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok((
            vec![cert.der().clone(), self.cert_der()?],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }
}

/// Parses every certificate in a PEM string.
pub fn pem_to_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let certs: std::result::Result<Vec<_>, _> =
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|_| PkiError::Malformed("certificate PEM"))?;
    if certs.is_empty() {
        return Err(PkiError::Malformed("certificate PEM"));
    }
    Ok(certs)
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>> {
    let mut store = RootCertStore::empty();
    for c in pem_to_certs(ca_pem)? {
        store
            .add(c)
            .map_err(|_| PkiError::Malformed("CA certificate"))?;
    }
    Ok(Arc::new(store))
}

/// Server config for the node gateway. Client certificates chained to `ca_pem` are
/// verified when presented but not required at the TLS layer, because `POST /v1/enroll`
/// is reached before a node has one; every `/v1/node/*` route then refuses requests
/// without a verified certificate.
///
/// Sessions resume through stateless tickets (ring's ticketer, keys rotated every 6 h):
/// a node reconnecting for its next report, or after a restart of its own, pays a
/// resumed handshake instead of a full one with certificate signing and verification.
/// rustls's default keeps 256 sessions in memory, which a fleet of thousands evicts in
/// seconds, so almost no node ever resumed (B3: 2 resumptions in 1,507 reconnections).
/// A resumed session carries the client certificate it was opened with; the gateway
/// still checks its serial in the database on the connection's first request.
pub fn gateway_server_config(
    ca_pem: &str,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Verifier(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(cfg)
}

/// Client config for a node: trusts only the CP's CA and, when given, presents the
/// node's certificate.
pub fn node_client_config(
    ca_pem: &str,
    client: Option<(&str, &KeyPair)>,
) -> Result<rustls::ClientConfig> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| PkiError::Verifier(e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_webpki_verifier(verifier);
    let mut cfg = match client {
        Some((cert_pem, key)) => {
            builder.with_client_auth_cert(pem_to_certs(cert_pem)?, key_der(key))?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The identity a verified client certificate carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Node id from the `outpost://node/<id>` URI SAN.
    pub node_id: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// Expiry, unix seconds.
    pub not_after: i64,
}

/// Reads the node identity from a certificate DER. The chain must already have been
/// verified (rustls does it during the handshake).
pub fn peer_identity(der: &[u8]) -> Result<PeerIdentity> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| PkiError::Malformed("certificate"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| PkiError::Malformed("certificate SAN"))?
        .ok_or(PkiError::Malformed("certificate without SAN"))?;
    let node_id = san
        .value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => {
                u.strip_prefix("outpost://node/").map(str::to_owned)
            }
            _ => None,
        })
        .ok_or(PkiError::Malformed("certificate without node SAN"))?;
    Ok(PeerIdentity {
        node_id,
        serial: hex(cert.raw_serial()),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// A certificate request for a public server certificate naming `dns_name` (SAN), DER,
/// as ACME's finalize step takes it. The subject is empty: public CAs read the names from
/// the SAN only.
pub fn make_server_csr(key: &KeyPair, dns_name: &str) -> Result<Vec<u8>> {
    let mut params = CertificateParams::new(vec![dns_name.to_owned()])?;
    params.distinguished_name = DistinguishedName::new();
    Ok(params.serialize_request(key)?.der().to_vec())
}

/// What a server certificate says about itself: its validity and DNS names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCertInfo {
    /// `notBefore`, unix seconds.
    pub not_before: i64,
    /// `notAfter`, unix seconds.
    pub not_after: i64,
    /// The DNS names of its SAN, as written.
    pub dns_names: Vec<String>,
    /// Serial number, lower-case hex.
    pub serial: String,
}

/// Reads [`ServerCertInfo`] from a certificate DER (no chain verification).
pub fn server_cert_info(der: &[u8]) -> Result<ServerCertInfo> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| PkiError::Malformed("certificate"))?;
    let dns_names = cert
        .subject_alternative_name()
        .map_err(|_| PkiError::Malformed("certificate SAN"))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ServerCertInfo {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
        serial: hex(cert.raw_serial()),
    })
}

/// Signs `message` with a node's P-256 key (ECDSA, SHA-256, ASN.1 DER signature).
pub fn sign_with_key(key: &KeyPair, message: &[u8]) -> Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let kp = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &key.serialize_der(),
        &rng,
    )
    .map_err(|_| PkiError::Malformed("signing key"))?;
    Ok(kp
        .sign(&rng, message)
        .map_err(|_| PkiError::BadSignature)?
        .as_ref()
        .to_vec())
}

/// Verifies a signature made by [`sign_with_key`] against the public key in `cert_der`.
pub fn verify_with_cert(cert_der: &[u8], message: &[u8], sig: &[u8]) -> Result<()> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|_| PkiError::Malformed("certificate"))?;
    let point = cert.public_key().subject_public_key.data.as_ref();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(message, sig)
        .map_err(|_| PkiError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a TLS handshake between `client` and `server` in memory; returns how the
    /// client's side went and the client certificate the server saw.
    fn handshake(
        client: &Arc<rustls::ClientConfig>,
        server: &Arc<rustls::ServerConfig>,
    ) -> (Option<rustls::HandshakeKind>, Option<Vec<u8>>) {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut c = rustls::ClientConnection::new(client.clone(), name).expect("client");
        let mut s = rustls::ServerConnection::new(server.clone()).expect("server");
        let mut buf = Vec::new();
        for _ in 0..20 {
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf).expect("client writes");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("server reads");
            }
            s.process_new_packets().expect("server processes");
            buf.clear();
            while s.wants_write() {
                s.write_tls(&mut buf).expect("server writes");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("client reads");
            }
            c.process_new_packets().expect("client processes");
        }
        // The server's tickets follow its handshake: let the client read them.
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server writes");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("client reads");
        }
        c.process_new_packets().expect("client processes");
        let peer = s
            .peer_certificates()
            .and_then(|p| p.first())
            .map(|d| d.as_ref().to_vec());
        (c.handshake_kind(), peer)
    }

    /// A node reconnecting to the gateway resumes its session although hundreds of other
    /// nodes connected in between (rustls's default server cache holds 256 sessions), and
    /// the resumed connection still carries its certificate for the serial check.
    #[test]
    fn a_node_resumes_its_gateway_session_after_hundreds_of_other_nodes_connected() {
        let (ca, _) = CertificateAuthority::generate("test ca").expect("ca");
        let (chain, key) = ca
            .issue_server_cert(&["localhost".to_owned()])
            .expect("server cert");
        let server = Arc::new(gateway_server_config(ca.cert_pem(), chain, key).expect("server"));
        let node_key = generate_key().expect("key");
        let issued = ca
            .sign_node_csr(&make_csr(&node_key, "n1").expect("csr"), "node-1")
            .expect("signed");
        let node = Arc::new(
            node_client_config(ca.cert_pem(), Some((&issued.pem, &node_key))).expect("client"),
        );
        let (first, peer) = handshake(&node, &server);
        assert_eq!(first, Some(rustls::HandshakeKind::Full));
        assert_eq!(peer.as_deref(), Some(&issued.der[..]));
        // Other nodes: each a client of its own, so each a full handshake and new sessions.
        let other_key = generate_key().expect("key");
        let other = ca
            .sign_node_csr(&make_csr(&other_key, "n2").expect("csr"), "node-2")
            .expect("signed");
        for _ in 0..150 {
            let c = Arc::new(
                node_client_config(ca.cert_pem(), Some((&other.pem, &other_key))).expect("client"),
            );
            handshake(&c, &server);
        }
        let (again, peer) = handshake(&node, &server);
        assert_eq!(again, Some(rustls::HandshakeKind::Resumed));
        assert_eq!(
            peer.as_deref(),
            Some(&issued.der[..]),
            "a resumed session keeps the node's certificate"
        );
    }

    #[test]
    fn a_server_csr_names_the_host_and_its_certificate_reads_back() {
        let key = generate_key().expect("key");
        let der = make_server_csr(&key, "acme-dental.nodes.example").expect("csr");
        let parsed = CertificateSigningRequestParams::from_der(&der.into()).expect("parse");
        assert_eq!(
            parsed.params.subject_alt_names,
            vec![SanType::DnsName(
                "acme-dental.nodes.example".try_into().expect("ia5")
            )]
        );
        let mut params = CertificateParams::new(vec!["a.example".to_owned()]).expect("params");
        params.not_before = time::macros::datetime!(2030-01-01 0:00 UTC);
        params.not_after = time::macros::datetime!(2030-04-01 0:00 UTC);
        let cert = params.self_signed(&key).expect("self-signed");
        let info = server_cert_info(cert.der()).expect("info");
        assert_eq!(info.dns_names, vec!["a.example".to_owned()]);
        assert_eq!(info.not_before, 1_893_456_000);
        assert_eq!(info.not_after, 1_893_456_000 + 90 * 86_400);
    }

    #[test]
    fn ca_signs_node_csr_with_fixed_identity() {
        let (ca, key_pem) = CertificateAuthority::generate("test ca").expect("ca");
        let reloaded = CertificateAuthority::load(ca.cert_pem(), &key_pem).expect("reload");
        let node_key = generate_key().expect("key");
        let csr = make_csr(&node_key, "ignored").expect("csr");
        let issued = reloaded.sign_node_csr(&csr, "abc").expect("sign");
        let id = peer_identity(&issued.der).expect("identity");
        assert_eq!(id.node_id, "abc");
        assert_eq!(id.serial, issued.serial);
        assert_eq!(id.serial.len(), 32);
        // the issued cert verifies as a client cert chained to the original CA PEM
        let verifier = WebPkiClientVerifier::builder_with_provider(
            roots(ca.cert_pem()).expect("roots"),
            provider(),
        )
        .build()
        .expect("verifier");
        let der = CertificateDer::from(issued.der.clone());
        verifier
            .verify_client_cert(&der, &[], rustls::pki_types::UnixTime::now())
            .expect("chains to CA");
    }

    #[test]
    fn csr_garbage_is_rejected() {
        let (ca, _) = CertificateAuthority::generate("test ca").expect("ca");
        assert!(matches!(
            ca.sign_node_csr("not a csr", "abc"),
            Err(PkiError::Malformed(_))
        ));
    }

    #[test]
    fn receipt_signature_verifies_only_with_the_right_cert() {
        let (ca, _) = CertificateAuthority::generate("test ca").expect("ca");
        let k1 = generate_key().expect("key");
        let k2 = generate_key().expect("key");
        let c1 = ca
            .sign_node_csr(&make_csr(&k1, "a").expect("csr"), "a")
            .expect("sign");
        let c2 = ca
            .sign_node_csr(&make_csr(&k2, "b").expect("csr"), "b")
            .expect("sign");
        let sig = sign_with_key(&k1, b"receipt").expect("sign");
        verify_with_cert(&c1.der, b"receipt", &sig).expect("valid");
        assert!(verify_with_cert(&c1.der, b"receipt!", &sig).is_err());
        assert!(verify_with_cert(&c2.der, b"receipt", &sig).is_err());
    }

    #[test]
    fn configs_build_with_ring_only() {
        let (ca, _) = CertificateAuthority::generate("test ca").expect("ca");
        let (chain, key) = ca
            .issue_server_cert(&["127.0.0.1".into(), "localhost".into()])
            .expect("server cert");
        gateway_server_config(ca.cert_pem(), chain, key).expect("server config");
        let k = generate_key().expect("key");
        let c = ca
            .sign_node_csr(&make_csr(&k, "a").expect("csr"), "a")
            .expect("sign");
        node_client_config(ca.cert_pem(), Some((&c.pem, &k))).expect("client config");
        node_client_config(ca.cert_pem(), None).expect("anonymous client config");
    }
}
