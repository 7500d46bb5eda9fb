//! Outpost's small cryptographic pieces, all on `ring` (and `age` for sealing):
//!
//! - random tokens and their stored SHA-256 form ([`random_token`], [`token_hash`]);
//! - capability tokens the CP signs with Ed25519 and a node verifies ([`CapabilitySigner`],
//!   [`CapabilityVerifier`]);
//! - AES-256-GCM sealing with a random nonce ([`aead_seal`], [`aead_open`]);
//! - HMAC-SHA256 tags ([`hmac_sign`], [`hmac_verify`]);
//! - a [`Secret`] string whose Debug/Display print `***` and which zeroizes on drop;
//! - age X25519 identities for nodes ([`generate_age_identity`]);
//! - release signatures for node upgrades ([`release`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use ring::{aead, digest, hmac};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

pub mod release;

/// Errors from this crate. Deliberately coarse: a caller learns *that* a token or
/// ciphertext is bad, never which byte.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Token is not of the expected shape.
    #[error("malformed token")]
    Malformed,
    /// Signature or tag did not verify.
    #[error("bad signature")]
    BadSignature,
    /// Token has expired.
    #[error("token expired")]
    Expired,
    /// Key material is invalid.
    #[error("invalid key")]
    InvalidKey,
    /// Decryption failed (wrong key, tampered data).
    #[error("decryption failed")]
    Decrypt,
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CryptoError>;

/// Base64url without padding.
pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

/// Decodes base64url without padding.
pub fn unb64(s: &str) -> Result<Vec<u8>> {
    B64.decode(s).map_err(|_| CryptoError::Malformed)
}

/// `n` bytes from the system RNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .expect("system RNG available");
    b
}

/// A 256-bit random token, base64url.
pub fn random_token() -> String {
    b64(&random_bytes::<32>())
}

/// SHA-256 of a token, hex: the only form in which tokens are stored.
pub fn token_hash(token: &str) -> String {
    outpost_common::hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sign(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

/// Verifies an HMAC-SHA256 tag in constant time.
pub fn hmac_verify(key: &[u8], msg: &[u8], tag: &[u8]) -> Result<()> {
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), msg, tag)
        .map_err(|_| CryptoError::BadSignature)
}

/// Seals `plaintext` with AES-256-GCM under `key`; output is `nonce || ciphertext || tag`.
/// `aad` binds the ciphertext to its context (e.g. a row id) so it cannot be moved.
pub fn aead_seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let k = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("32-byte key"),
    );
    let nonce_bytes = random_bytes::<12>();
    let mut buf = plaintext.to_vec();
    k.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce_bytes),
        aead::Aad::from(aad),
        &mut buf,
    )
    .expect("AES-GCM seal cannot fail for in-range sizes");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Opens a value produced by [`aead_seal`].
pub fn aead_open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return Err(CryptoError::Decrypt);
    }
    let k = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, key).map_err(|_| CryptoError::InvalidKey)?,
    );
    let (nonce, ct) = sealed.split_at(12);
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;
    let mut buf = ct.to_vec();
    let pt = k
        .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(pt.to_vec())
}

/// A secret value (API key, bot token). Debug and Display print `***`; the memory is
/// zeroized on drop. Get the value only where it is used, with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The plaintext. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Generates an age X25519 identity for a node: `(identity, recipient)`. The identity
/// (`AGE-SECRET-KEY-1…`) never leaves the node; the recipient (`age1…`) is sent at
/// enrollment so the CP can seal secrets to it.
pub fn generate_age_identity() -> (Secret, String) {
    use age::secrecy::ExposeSecret as _;
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    (
        Secret::new(id.to_string().expose_secret().to_owned()),
        recipient,
    )
}

/// The keyed fingerprint of a secret, as the CP and the node show it: the first 12 hex
/// characters of `HMAC-SHA256(key, value)`. Identifies a key without revealing it.
pub fn secret_fingerprint(key: &[u8], value: &Secret) -> String {
    outpost_common::hex(&hmac_sign(key, value.expose().as_bytes())[..6])
}

/// Seals `plaintext` to a node's age recipient (`age1…`): only the holder of the matching
/// identity (the node) can open it. Returns the binary age file, base64url-encoded, as
/// carried by `deliver_secret`.
pub fn seal_to_recipient(recipient: &str, plaintext: &[u8]) -> Result<String> {
    use std::io::Write as _;
    let r: age::x25519::Recipient = recipient.parse().map_err(|_| CryptoError::InvalidKey)?;
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        .map_err(|_| CryptoError::InvalidKey)?;
    let mut out = Vec::new();
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|_| CryptoError::InvalidKey)?;
    w.write_all(plaintext)
        .map_err(|_| CryptoError::InvalidKey)?;
    w.finish().map_err(|_| CryptoError::InvalidKey)?;
    Ok(b64(&out))
}

/// Opens what [`seal_to_recipient`] sealed, with the node's age identity
/// (`AGE-SECRET-KEY-1…`). Fails with [`CryptoError::Decrypt`] for any other identity.
pub fn open_with_identity(identity: &Secret, sealed: &str) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read as _;
    let id: age::x25519::Identity = identity
        .expose()
        .parse()
        .map_err(|_| CryptoError::InvalidKey)?;
    let bytes = unb64(sealed)?;
    let dec = age::Decryptor::new(&bytes[..]).map_err(|_| CryptoError::Decrypt)?;
    let mut reader = dec
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .map_err(|_| CryptoError::Decrypt)?;
    let mut out = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut out)
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(out)
}

/// Claims of a capability token: what a CP user may do on one node, for two minutes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityClaims {
    /// User id in the CP.
    pub sub: String,
    /// Workspace id.
    pub ws: String,
    /// Node id the token is valid for.
    pub node: String,
    /// Scopes, from the user's workspace role (e.g. `console`, `inbox`, `settings`).
    pub scopes: Vec<String>,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Unique id; the node burns it on first use.
    pub jti: String,
}

const CAP_PREFIX: &str = "v1.";

/// Signs capability tokens (CP side). Token format:
/// `v1.<base64url(claims JSON)>.<base64url(Ed25519 signature over "v1.<payload>")>`.
pub struct CapabilitySigner {
    key: Ed25519KeyPair,
}

impl CapabilitySigner {
    /// Generates a new signing key; returns the signer and its PKCS#8 bytes to store.
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>)> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| CryptoError::InvalidKey)?;
        let bytes = Zeroizing::new(pkcs8.as_ref().to_vec());
        Ok((Self::from_pkcs8(&bytes)?, bytes))
    }

    /// Loads a signer from PKCS#8 bytes.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        Ok(Self {
            key: Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| CryptoError::InvalidKey)?,
        })
    }

    /// The public key, base64url (raw 32 bytes), as handed to nodes at enrollment.
    pub fn public_key_b64(&self) -> String {
        b64(self.key.public_key().as_ref())
    }

    /// Signs claims into a token.
    pub fn sign(&self, claims: &CapabilityClaims) -> String {
        let payload = b64(&serde_json::to_vec(claims).expect("claims serialize"));
        let signed = format!("{CAP_PREFIX}{payload}");
        let sig = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", b64(sig.as_ref()))
    }
}

/// Verifies capability tokens (node side).
#[derive(Clone)]
pub struct CapabilityVerifier {
    public_key: Vec<u8>,
}

impl CapabilityVerifier {
    /// From the base64url public key received at enrollment.
    pub fn from_b64(public_key: &str) -> Result<Self> {
        let public_key = unb64(public_key)?;
        if public_key.len() != 32 {
            return Err(CryptoError::InvalidKey);
        }
        Ok(Self { public_key })
    }

    /// Verifies signature and expiry (with `skew_s` seconds of tolerance) and returns the
    /// claims. The caller must still check `node`, and burn `jti`.
    pub fn verify(&self, token: &str, now: i64, skew_s: i64) -> Result<CapabilityClaims> {
        let rest = token
            .strip_prefix(CAP_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        let (payload, sig) = rest.split_once('.').ok_or(CryptoError::Malformed)?;
        let sig = unb64(sig)?;
        let signed = &token[..CAP_PREFIX.len() + payload.len()];
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| CryptoError::BadSignature)?;
        let claims: CapabilityClaims =
            serde_json::from_slice(&unb64(payload)?).map_err(|_| CryptoError::Malformed)?;
        if claims.exp + skew_s < now {
            return Err(CryptoError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> CapabilityClaims {
        CapabilityClaims {
            sub: "u1".into(),
            ws: "w1".into(),
            node: "n1".into(),
            scopes: vec!["console".into()],
            exp,
            jti: random_token(),
        }
    }

    #[test]
    fn capability_round_trip_and_failures() {
        let (signer, pkcs8) = CapabilitySigner::generate().expect("key");
        let signer2 = CapabilitySigner::from_pkcs8(&pkcs8).expect("reload");
        assert_eq!(signer.public_key_b64(), signer2.public_key_b64());
        let v = CapabilityVerifier::from_b64(&signer.public_key_b64()).expect("pk");
        let c = claims(1_000);
        let t = signer.sign(&c);
        assert_eq!(v.verify(&t, 900, 0).expect("valid"), c);
        assert_eq!(v.verify(&t, 1_100, 0), Err(CryptoError::Expired));
        assert!(v.verify(&t, 1_100, 300).is_ok(), "within skew");
        // tamper with the payload: signature must fail
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64(&serde_json::to_vec(&claims(9_999)).expect("json"));
        parts[1] = &forged;
        assert_eq!(
            v.verify(&parts.join("."), 900, 0),
            Err(CryptoError::BadSignature)
        );
        // another CP's key
        let (other, _) = CapabilitySigner::generate().expect("key");
        assert_eq!(
            v.verify(&other.sign(&c), 900, 0),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(v.verify("garbage", 900, 0), Err(CryptoError::Malformed));
    }

    #[test]
    fn aead_round_trip_binds_aad() {
        let key = random_bytes::<32>();
        let sealed = aead_seal(&key, b"hello", b"row-1");
        assert_eq!(aead_open(&key, &sealed, b"row-1").expect("open"), b"hello");
        assert_eq!(
            aead_open(&key, &sealed, b"row-2"),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            aead_open(&random_bytes::<32>(), &sealed, b"row-1"),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            aead_open(&key, &sealed[..10], b"row-1"),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-canary-123".into());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "sk-canary-123");
    }

    #[test]
    fn tokens_hash_and_compare() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(token_hash(&t), token_hash(&random_token()));
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"a", b"ab"));
        let tag = hmac_sign(b"k", b"m");
        assert!(hmac_verify(b"k", b"m", &tag).is_ok());
        assert!(hmac_verify(b"k", b"n", &tag).is_err());
    }

    #[test]
    fn age_identity_has_expected_shape() {
        let (id, rcpt) = generate_age_identity();
        assert!(id.expose().starts_with("AGE-SECRET-KEY-1"));
        assert!(rcpt.starts_with("age1"));
    }

    #[test]
    fn a_secret_sealed_to_one_node_opens_there_only() {
        let (id_a, rec_a) = generate_age_identity();
        let (id_b, _) = generate_age_identity();
        let sealed = seal_to_recipient(&rec_a, b"sk-canary-sealed").expect("seal");
        assert!(!sealed.contains("canary"));
        assert_eq!(
            open_with_identity(&id_a, &sealed).expect("open").as_slice(),
            b"sk-canary-sealed"
        );
        assert_eq!(
            open_with_identity(&id_b, &sealed).err(),
            Some(CryptoError::Decrypt)
        );
        assert!(seal_to_recipient("age1notarecipient", b"x").is_err());
        let mut tampered = unb64(&sealed).expect("b64");
        let n = tampered.len();
        tampered[n - 1] ^= 1;
        assert!(open_with_identity(&id_a, &b64(&tampered)).is_err());
    }
}
