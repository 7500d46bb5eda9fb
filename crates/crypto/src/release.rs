//! Release signatures for node upgrades: an Ed25519 signature over the SHA-256 of the
//! `agent-node` binary, by a release key whose private half never reaches the control
//! plane. A node trusts one release public key (from its bootstrap bundle or its own
//! configuration) and installs only a binary whose digest that key signed, so whoever
//! holds the CP can point nodes at a URL but cannot make them run a binary of its own.
//!
//! The signed message is the ASCII string `outpost-node-release/v1:<sha256 hex, lowercase>`:
//! the prefix keeps the signature from meaning anything in another protocol signed with
//! the same key. Keys: the private key is a PKCS#8 PEM file (`control-plane release
//! keygen` writes one; `openssl genpkey -algorithm ed25519` too), the public key is the
//! raw 32 bytes in base64url (`OUTPOST_RELEASE_PUBLIC_KEY`).

use crate::{b64, unb64, CryptoError, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use zeroize::Zeroizing;

/// Prefix of the signed message.
pub const RELEASE_CONTEXT: &str = "outpost-node-release/v1:";

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// The exact bytes signed for a binary whose SHA-256 is `sha256_hex`.
pub fn release_message(sha256_hex: &str) -> Vec<u8> {
    format!("{RELEASE_CONTEXT}{}", sha256_hex.to_ascii_lowercase()).into_bytes()
}

/// Whether `s` is a SHA-256 in hex (64 hex digits).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A release public key (raw 32 bytes, given in base64url).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseKey(Vec<u8>);

impl ReleaseKey {
    /// Parses the base64url form; [`CryptoError::InvalidKey`] unless it is 32 bytes.
    pub fn from_b64(s: &str) -> Result<Self> {
        let raw = unb64(s.trim()).map_err(|_| CryptoError::InvalidKey)?;
        if raw.len() != 32 {
            return Err(CryptoError::InvalidKey);
        }
        Ok(Self(raw))
    }

    /// The base64url form.
    pub fn to_b64(&self) -> String {
        b64(&self.0)
    }

    /// Checks `signature_b64` (base64url, 64 bytes) over the release message of
    /// `sha256_hex`. [`CryptoError::Malformed`] when the digest or signature is not of
    /// the right shape, [`CryptoError::BadSignature`] when it does not verify.
    pub fn verify(&self, sha256_hex: &str, signature_b64: &str) -> Result<()> {
        if !is_sha256_hex(sha256_hex) {
            return Err(CryptoError::Malformed);
        }
        let sig = unb64(signature_b64.trim()).map_err(|_| CryptoError::Malformed)?;
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&release_message(sha256_hex), &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// The private release key, on the operator's machine (never on the CP or a node).
pub struct ReleaseSigner {
    key: Ed25519KeyPair,
}

impl ReleaseSigner {
    /// A new key; returns the signer and its PKCS#8 PEM to write to a private file.
    pub fn generate() -> Result<(Self, Zeroizing<String>)> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| CryptoError::InvalidKey)?;
        let pem = Zeroizing::new(format!(
            "{PEM_BEGIN}\n{}\n{PEM_END}\n",
            STANDARD.encode(pkcs8.as_ref())
        ));
        Ok((Self::from_pem(&pem)?, pem))
    }

    /// From a PKCS#8 PEM (`BEGIN PRIVATE KEY`, as written by [`Self::generate`] or
    /// `openssl genpkey -algorithm ed25519`).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let body = pem
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|r| r.trim_end().strip_suffix(PEM_END))
            .ok_or(CryptoError::InvalidKey)?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = Zeroizing::new(STANDARD.decode(b64).map_err(|_| CryptoError::InvalidKey)?);
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self { key })
    }

    /// The public key to configure as `OUTPOST_RELEASE_PUBLIC_KEY`.
    pub fn public_key(&self) -> ReleaseKey {
        ReleaseKey(self.key.public_key().as_ref().to_vec())
    }

    /// The signature (base64url) of the binary whose SHA-256 is `sha256_hex`.
    pub fn sign(&self, sha256_hex: &str) -> Result<String> {
        if !is_sha256_hex(sha256_hex) {
            return Err(CryptoError::Malformed);
        }
        Ok(b64(self.key.sign(&release_message(sha256_hex)).as_ref()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_release_verifies_with_its_public_key_only() {
        let (signer, pem) = ReleaseSigner::generate().unwrap();
        let key = ReleaseKey::from_b64(&signer.public_key().to_b64()).unwrap();
        let digest = sha256_hex(b"agent-node 0.2.0");
        let sig = signer.sign(&digest).unwrap();
        assert_eq!(key.verify(&digest, &sig), Ok(()));
        // Uppercase hex names the same digest.
        assert_eq!(key.verify(&digest.to_uppercase(), &sig), Ok(()));
        // The PEM written by `generate` loads back to the same key.
        assert_eq!(ReleaseSigner::from_pem(&pem).unwrap().public_key(), key);

        let other = sha256_hex(b"agent-node 0.2.0 with a backdoor");
        assert_eq!(key.verify(&other, &sig), Err(CryptoError::BadSignature));
        let (stranger, _) = ReleaseSigner::generate().unwrap();
        let forged = stranger.sign(&digest).unwrap();
        assert_eq!(key.verify(&digest, &forged), Err(CryptoError::BadSignature));
    }

    #[test]
    fn malformed_inputs_are_refused_not_trusted() {
        let (signer, _) = ReleaseSigner::generate().unwrap();
        let key = signer.public_key();
        let digest = sha256_hex(b"x");
        let sig = signer.sign(&digest).unwrap();
        assert_eq!(key.verify("abc", &sig), Err(CryptoError::Malformed));
        assert_eq!(key.verify(&digest, "%%%"), Err(CryptoError::Malformed));
        assert_eq!(key.verify(&digest, ""), Err(CryptoError::BadSignature));
        assert_eq!(
            ReleaseKey::from_b64("c2hvcnQ"),
            Err(CryptoError::InvalidKey)
        );
        assert!(ReleaseSigner::from_pem("not a key").is_err());
        assert!(signer.sign("zz").is_err());
    }

    #[test]
    fn the_signed_message_is_the_documented_string() {
        // Operators may sign with other tools (OPERATIONS.md): the message must not drift.
        assert_eq!(
            release_message(&"AB".repeat(32)),
            format!("outpost-node-release/v1:{}", "ab".repeat(32)).into_bytes()
        );
    }
}
