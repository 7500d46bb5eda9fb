//! Key material at rest: the master key, files sealed under it, and the node's TLS
//! identity (key + certificate).
//!
//! Every at-rest secret is sealed with AES-256-GCM under the master key, with the file
//! name as associated data (so sealed files cannot be swapped). Deleting `master.key`
//! therefore makes the TLS key and the age identity unreadable: that is the crypto-erase
//! deprovisioning relies on.

use crate::platform::config::{
    Paths, MASTER_KEY_FILE, NODE_CERT_FILE, NODE_CERT_NEXT_FILE, NODE_KEY_FILE,
};
use crate::platform::files;
use anyhow::Context as _;
use outpost_pki::PkiError;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// The node master key (32 bytes). Zeroized when dropped.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

fn aad(path: &Path) -> Vec<u8> {
    path.file_name()
        .map(|n| n.to_string_lossy().as_bytes().to_vec())
        .unwrap_or_default()
}

impl MasterKey {
    /// Loads `master.key`, generating it (32 random bytes, mode 0600) on first start.
    pub fn load_or_create(paths: &Paths) -> anyhow::Result<Self> {
        let path = paths.file(MASTER_KEY_FILE);
        if path.exists() {
            return Self::load(paths);
        }
        let key = Zeroizing::new(outpost_crypto::random_bytes::<32>());
        files::write_private(&path, key.as_ref()).context("writing master.key")?;
        tracing::info!("generated the node master key");
        Ok(Self(key))
    }

    /// Loads an existing `master.key`.
    pub fn load(paths: &Paths) -> anyhow::Result<Self> {
        let bytes = Zeroizing::new(
            std::fs::read(paths.file(MASTER_KEY_FILE)).context("reading master.key")?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("master.key must hold exactly 32 bytes"))?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// A key from raw bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// Seals `plaintext` and writes it to `path` (0600, atomically); the file name is the
    /// associated data.
    pub fn seal_to_file(&self, path: &Path, plaintext: &[u8]) -> std::io::Result<()> {
        let sealed = outpost_crypto::aead_seal(&self.0, plaintext, &aad(path));
        files::write_private(path, &sealed)
    }

    /// A sub-key for one purpose, `HMAC-SHA256(master, "outpost-node/" + label)`: keyed
    /// hashes (contact lookup, knowledge-base index) and key wrapping each get their own
    /// key, and all of them die with the master key.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let tag =
            outpost_crypto::hmac_sign(self.0.as_ref(), format!("outpost-node/{label}").as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&tag[..32]);
        key
    }

    /// Seals a small value (a wrapped data key, a stored secret) under the master key,
    /// bound to `aad` (e.g. the row it belongs to, so sealed values cannot be swapped).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        outpost_crypto::aead_seal(&self.0, plaintext, aad)
    }

    /// Opens a value sealed by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        outpost_crypto::aead_open(&self.0, sealed, aad)
            .map(Zeroizing::new)
            .map_err(|_| anyhow::anyhow!("a sealed value cannot be opened with the master key"))
    }

    /// Reads and opens a file written by [`MasterKey::seal_to_file`].
    pub fn open_file(&self, path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let sealed = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let plain = outpost_crypto::aead_open(&self.0, &sealed, &aad(path)).map_err(|_| {
            anyhow::anyhow!("{} cannot be opened with the master key", path.display())
        })?;
        Ok(Zeroizing::new(plain))
    }
}

/// The node's P-256 TLS key, held as PKCS#8 PEM (zeroized on drop). It signs the mTLS
/// handshake and the destruction receipt.
pub struct NodeKey {
    pem: Zeroizing<String>,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(***)")
    }
}

impl NodeKey {
    /// A fresh key, generated on the node.
    pub fn generate() -> Result<Self, PkiError> {
        Ok(Self {
            pem: Zeroizing::new(outpost_pki::generate_key()?.serialize_pem()),
        })
    }

    /// A key from PKCS#8 PEM; checks that it parses.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        outpost_pki::key_from_pem(pem)?;
        Ok(Self {
            pem: Zeroizing::new(pem.to_owned()),
        })
    }

    /// The PEM, to seal it to disk.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A CSR for this key. The CP ignores all but the public key.
    pub fn csr(&self, node_id: &str) -> Result<String, PkiError> {
        outpost_pki::make_csr(&outpost_pki::key_from_pem(&self.pem)?, node_id)
    }

    /// rustls client configuration pinning `ca_pem` and presenting `cert_pem` with this
    /// key, judging certificate times by the node's `clock`.
    pub fn client_config(
        &self,
        ca_pem: &str,
        cert_pem: &str,
        clock: &crate::platform::clock::Clock,
    ) -> Result<rustls::ClientConfig, PkiError> {
        clock.tls_config(ca_pem, Some((cert_pem, self.pem.as_str())))
    }

    /// ECDSA P-256 SHA-256 signature (ASN.1 DER) over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        outpost_pki::sign_with_key(&outpost_pki::key_from_pem(&self.pem)?, message)
    }

    /// Whether `cert_der` certifies this key (checked by signing a probe and verifying it
    /// against the certificate, which needs no access to the public key encoding).
    pub fn matches_cert(&self, cert_der: &[u8]) -> bool {
        const PROBE: &[u8] = b"outpost key/certificate match probe";
        self.sign(PROBE)
            .is_ok_and(|sig| outpost_pki::verify_with_cert(cert_der, PROBE, &sig).is_ok())
    }
}

/// The node's TLS identity: its client certificate and the matching key.
#[derive(Debug)]
pub struct Identity {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Certificate DER (hashed into the destruction receipt).
    pub cert_der: Vec<u8>,
    /// Expiry of the certificate, unix seconds.
    pub not_after: i64,
    /// Node id from the certificate SAN.
    pub node_id: String,
    /// The key.
    pub key: NodeKey,
}

impl Identity {
    /// Pairs a certificate with its key, refusing a certificate for another key.
    pub fn new(cert_pem: String, key: NodeKey) -> anyhow::Result<Self> {
        let der = outpost_pki::pem_to_certs(&cert_pem)?
            .into_iter()
            .next()
            .context("certificate PEM without a certificate")?
            .to_vec();
        let peer = outpost_pki::peer_identity(&der)?;
        anyhow::ensure!(
            key.matches_cert(&der),
            "the certificate does not certify the node key"
        );
        Ok(Self {
            cert_pem,
            cert_der: der,
            not_after: peer.not_after,
            node_id: peer.node_id,
            key,
        })
    }

    /// Loads the identity from `node.key` (sealed) and `node.crt`, finishing an
    /// interrupted renewal if one left `node.crt.next` behind (see [`Identity::persist`]).
    pub fn load(paths: &Paths, master: &MasterKey) -> anyhow::Result<Self> {
        let key_pem = master.open_file(&paths.file(NODE_KEY_FILE))?;
        let key_pem = std::str::from_utf8(&key_pem).context("node.key is not PEM")?;
        let key = NodeKey::from_pem(key_pem)?;
        let next = paths.file(NODE_CERT_NEXT_FILE);
        if next.exists() {
            let pem = std::fs::read_to_string(&next).context("reading node.crt.next")?;
            match Identity::new(pem, NodeKey::from_pem(key.pem())?) {
                Ok(id) => {
                    // The crash happened after the new key was stored: roll forward.
                    std::fs::rename(&next, paths.file(NODE_CERT_FILE))?;
                    files::sync_parent(&next)?;
                    tracing::info!("completed an interrupted certificate renewal");
                    return Ok(id);
                }
                Err(_) => {
                    // The new key never reached disk: the old pair is still current.
                    std::fs::remove_file(&next)?;
                }
            }
        }
        let cert_pem =
            std::fs::read_to_string(paths.file(NODE_CERT_FILE)).context("reading node.crt")?;
        Identity::new(cert_pem, key)
    }

    /// Stores the identity so that a crash at any point leaves a matching key/certificate
    /// pair on disk: the certificate goes to `node.crt.next` first, then the key replaces
    /// `node.key`, then the certificate is renamed to `node.crt`.
    pub fn persist(&self, paths: &Paths, master: &MasterKey) -> anyhow::Result<()> {
        let next = paths.file(NODE_CERT_NEXT_FILE);
        files::write_private(&next, self.cert_pem.as_bytes()).context("writing node.crt.next")?;
        master
            .seal_to_file(&paths.file(NODE_KEY_FILE), self.key.pem().as_bytes())
            .context("writing node.key")?;
        std::fs::rename(&next, paths.file(NODE_CERT_FILE)).context("installing node.crt")?;
        files::sync_parent(&next)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::config::AGE_IDENTITY_FILE;

    fn issue(ca: &outpost_pki::CertificateAuthority, key: &NodeKey, node: &str) -> String {
        ca.sign_node_csr(&key.csr(node).expect("csr"), node)
            .expect("sign")
            .pem
    }

    #[test]
    fn sealed_files_are_unreadable_after_the_master_key_is_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::new(dir.path());
        let master = MasterKey::load_or_create(&paths).expect("master key");
        let path = paths.file(AGE_IDENTITY_FILE);
        master
            .seal_to_file(&path, b"AGE-SECRET-KEY-1CANARY")
            .expect("seal");
        let on_disk = std::fs::read(&path).expect("read");
        assert!(
            !on_disk.windows(6).any(|w| w == b"CANARY"),
            "sealed, not plain"
        );
        assert_eq!(
            master.open_file(&path).expect("open").as_slice(),
            b"AGE-SECRET-KEY-1CANARY"
        );
        // a sealed file moved under another name does not open
        let moved = paths.file(NODE_KEY_FILE);
        std::fs::copy(&path, &moved).expect("copy");
        assert!(master.open_file(&moved).is_err());

        files::secure_delete(&paths.file(MASTER_KEY_FILE)).expect("erase");
        assert!(MasterKey::load(&paths).is_err());
        // A new master key (what a restart would create) cannot open the old file.
        let fresh = MasterKey::load_or_create(&paths).expect("new master key");
        assert!(fresh.open_file(&path).is_err());
    }

    #[test]
    fn identity_round_trips_and_recovers_an_interrupted_renewal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::new(dir.path());
        let master = MasterKey::from_bytes(outpost_crypto::random_bytes::<32>());
        let (ca, _) = outpost_pki::CertificateAuthority::generate("test").expect("ca");
        let k1 = NodeKey::generate().expect("key");
        let c1 = issue(&ca, &k1, "n1");
        let id1 = Identity::new(c1.clone(), k1).expect("identity");
        assert_eq!(id1.node_id, "n1");
        id1.persist(&paths, &master).expect("persist");
        assert_eq!(Identity::load(&paths, &master).expect("load").cert_pem, c1);

        // a certificate for another key is refused
        let k2 = NodeKey::generate().expect("key");
        let c2 = issue(&ca, &k2, "n1");
        assert!(Identity::new(c2.clone(), NodeKey::generate().expect("key")).is_err());

        // crash after writing node.crt.next, before the key: the old pair stays
        files::write_private(&paths.file(NODE_CERT_NEXT_FILE), c2.as_bytes()).expect("w");
        assert_eq!(Identity::load(&paths, &master).expect("load").cert_pem, c1);
        assert!(!paths.file(NODE_CERT_NEXT_FILE).exists());

        // crash after the key, before the rename: roll forward
        files::write_private(&paths.file(NODE_CERT_NEXT_FILE), c2.as_bytes()).expect("w");
        master
            .seal_to_file(&paths.file(NODE_KEY_FILE), k2.pem().as_bytes())
            .expect("seal");
        assert_eq!(Identity::load(&paths, &master).expect("load").cert_pem, c2);
        assert_eq!(
            std::fs::read_to_string(paths.file(NODE_CERT_FILE)).expect("read"),
            c2
        );
    }
}
