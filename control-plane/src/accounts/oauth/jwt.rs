//! id_token verification (OIDC Core §3.1.3.7) with `jsonwebtoken` 9 over ring: the key is
//! picked from the provider's JWKS by `kid`, the algorithm must be one the provider uses
//! and match the key's type, then signature, `iss`, `aud`, `exp` (±5 min, DESIGN §6) and
//! our `nonce` are checked. Each failure maps to a [`Refusal`] the user reads in words.
//!
//! Also mints Apple's client secret: an ES256 JWT signed with the team's key.

use super::Refusal;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp`/`nbf`, seconds (DESIGN §6).
pub const LEEWAY_SECS: u64 = 300;

/// What an id_token must say.
#[derive(Debug)]
pub struct Expected<'a> {
    /// Accepted `iss` values.
    pub issuers: &'a [&'a str],
    /// Our client id (`aud`).
    pub audience: &'a str,
    /// The nonce sent in the authorization request.
    pub nonce: &'a str,
    /// Signature algorithms this provider uses.
    pub algorithms: &'a [Algorithm],
}

/// The claims we use from a verified id_token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// Stable subject id at the provider.
    pub sub: String,
    /// Email, if the token carries one.
    pub email: Option<String>,
    /// Whether the provider verified that email.
    pub email_verified: bool,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    // Google sends a boolean, Apple a boolean or the string "true".
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

fn truthy(v: &Option<serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    }
}

fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    // A JWK that names its algorithm must name this one.
    let named = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(_) => return false,
    };
    if named.is_some_and(|n| n != alg) {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        _ => false,
    }
}

/// Verifies `token` against `keys` and `want`.
pub fn verify_id_token(
    token: &str,
    keys: &JwkSet,
    want: &Expected<'_>,
) -> Result<IdClaims, Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::BadSignature)?;
    if !want.algorithms.contains(&header.alg) {
        return Err(Refusal::BadSignature);
    }
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .filter(|k| key_fits(k, header.alg))
        .collect();
    // Without a kid, only an unambiguous key set is acceptable.
    let [jwk] = candidates.as_slice() else {
        return Err(Refusal::BadSignature);
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal::BadSignature)?;
    let mut v = Validation::new(header.alg);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_issuer(want.issuers);
    v.set_audience(&[want.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<RawClaims>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => Refusal::IdTokenExpired,
            K::InvalidIssuer
            | K::InvalidAudience
            | K::InvalidSubject
            | K::MissingRequiredClaim(_)
            | K::ImmatureSignature => Refusal::IdTokenInvalid,
            _ => Refusal::BadSignature,
        }
    })?;
    let c = data.claims;
    let nonce_ok = c
        .nonce
        .as_deref()
        .is_some_and(|n| outpost_crypto::ct_eq(n.as_bytes(), want.nonce.as_bytes()));
    if !nonce_ok {
        return Err(Refusal::NonceMismatch);
    }
    if c.sub.is_empty() || c.sub.len() > 255 {
        return Err(Refusal::IdTokenInvalid);
    }
    Ok(IdClaims {
        email_verified: truthy(&c.email_verified),
        sub: c.sub,
        email: c.email,
    })
}

/// Parses a JWKS document, skipping keys of kinds we cannot read rather than refusing the
/// whole set (providers may publish other key types beside theirs).
pub fn parse_jwks(doc: &serde_json::Value) -> JwkSet {
    let keys = doc["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    JwkSet { keys }
}

#[derive(serde::Serialize)]
struct AppleSecretClaims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
}

/// Apple's client secret: `{iss: team, sub: client id, aud: issuer}` signed ES256 with the
/// team's key, valid 5 minutes (Apple allows up to 6 months; we mint one per request so
/// none needs storing).
pub fn apple_client_secret(
    pkcs8: &[u8],
    key_id: &str,
    team_id: &str,
    client_id: &str,
    audience: &str,
    now: i64,
) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id.to_owned());
    let claims = AppleSecretClaims {
        iss: team_id,
        iat: now,
        exp: now + 300,
        aud: audience,
        sub: client_id,
    };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8))
        .map_err(|e| anyhow::anyhow!("signing the apple client secret: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    /// A fresh P-256 key: (pkcs8 der, JWK public part with `kid`).
    pub fn ec_key(kid: &str) -> (Vec<u8>, serde_json::Value) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let pt = kp.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": outpost_crypto::b64(&pt[1..33]), "y": outpost_crypto::b64(&pt[33..65])});
        (pkcs8, jwk)
    }

    fn sign(pkcs8: &[u8], kid: &str, claims: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_ec_der(pkcs8)).unwrap()
    }

    fn now() -> i64 {
        crate::infra::db::now()
    }

    fn claims(exp: i64, nonce: &str) -> serde_json::Value {
        json!({"iss": "https://issuer.test", "aud": "client-1", "sub": "user-42", "exp": exp,
               "iat": now(), "nonce": nonce, "email": "a@b.test", "email_verified": "true"})
    }

    const WANT: Expected<'static> = Expected {
        issuers: &["https://issuer.test"],
        audience: "client-1",
        nonce: "n-1",
        algorithms: &[Algorithm::ES256, Algorithm::RS256],
    };

    fn set(jwks: &[serde_json::Value]) -> JwkSet {
        parse_jwks(&json!({ "keys": jwks }))
    }

    #[test]
    fn a_good_token_verifies_and_each_check_refuses_in_its_own_words() {
        let (k, jwk) = ec_key("k1");
        let keys = set(&[jwk, json!({"kty": "weird"})]);
        let ok =
            verify_id_token(&sign(&k, "k1", &claims(now() + 600, "n-1")), &keys, &WANT).unwrap();
        assert_eq!(ok.sub, "user-42");
        assert!(ok.email_verified, "Apple's string \"true\" counts");

        let expired = sign(&k, "k1", &claims(now() - 400, "n-1"));
        assert_eq!(
            verify_id_token(&expired, &keys, &WANT),
            Err(Refusal::IdTokenExpired)
        );
        let skewed = sign(&k, "k1", &claims(now() - 200, "n-1"));
        assert!(
            verify_id_token(&skewed, &keys, &WANT).is_ok(),
            "within 5 min skew"
        );
        let other_nonce = sign(&k, "k1", &claims(now() + 600, "n-2"));
        assert_eq!(
            verify_id_token(&other_nonce, &keys, &WANT),
            Err(Refusal::NonceMismatch)
        );
        let mut c = claims(now() + 600, "n-1");
        c["aud"] = json!("someone-else");
        assert_eq!(
            verify_id_token(&sign(&k, "k1", &c), &keys, &WANT),
            Err(Refusal::IdTokenInvalid)
        );
        let mut c = claims(now() + 600, "n-1");
        c["iss"] = json!("https://evil.test");
        assert_eq!(
            verify_id_token(&sign(&k, "k1", &c), &keys, &WANT),
            Err(Refusal::IdTokenInvalid)
        );

        // Signed by another key under the same kid: bad signature.
        let (other, _) = ec_key("k1");
        let forged = sign(&other, "k1", &claims(now() + 600, "n-1"));
        assert_eq!(
            verify_id_token(&forged, &keys, &WANT),
            Err(Refusal::BadSignature)
        );
        // A kid the JWKS does not have, a tampered payload, alg=none, garbage.
        let unknown = sign(&k, "k9", &claims(now() + 600, "n-1"));
        assert_eq!(
            verify_id_token(&unknown, &keys, &WANT),
            Err(Refusal::BadSignature)
        );
        let good = sign(&k, "k1", &claims(now() + 600, "n-1"));
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = claims(now() + 600, "n-1");
        c["sub"] = json!("admin");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            outpost_crypto::b64(c.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            verify_id_token(&tampered, &keys, &WANT),
            Err(Refusal::BadSignature)
        );
        let none = format!(
            "{}.{}.",
            outpost_crypto::b64(br#"{"alg":"none","kid":"k1"}"#),
            parts[1]
        );
        assert_eq!(
            verify_id_token(&none, &keys, &WANT),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify_id_token("not.a.jwt", &keys, &WANT),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn an_algorithm_the_provider_does_not_use_is_refused() {
        let (k, jwk) = ec_key("k1");
        let keys = set(&[jwk]);
        let rs_only = Expected {
            algorithms: &[Algorithm::RS256],
            ..WANT
        };
        let t = sign(&k, "k1", &claims(now() + 600, "n-1"));
        assert_eq!(
            verify_id_token(&t, &keys, &rs_only),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn missing_email_verified_is_false_and_missing_nonce_is_a_mismatch() {
        let (k, jwk) = ec_key("k1");
        let keys = set(&[jwk]);
        let mut c = claims(now() + 600, "n-1");
        c["email_verified"] = json!(false);
        let v = verify_id_token(&sign(&k, "k1", &c), &keys, &WANT).unwrap();
        assert!(!v.email_verified);
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(
            verify_id_token(&sign(&k, "k1", &c), &keys, &WANT),
            Err(Refusal::NonceMismatch)
        );
    }

    #[test]
    fn rs256_tokens_verify_against_rsa_jwks() {
        // RSA keys cannot be generated with ring: a fixed test key, used only in tests.
        let pem = include_str!("../../../../tests/e2e/fixtures/oauth-test-rsa.pem");
        use rustls::pki_types::pem::PemObject;
        let der = match rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap() {
            rustls::pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            _ => panic!("pkcs8"),
        };
        let kp = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let pk: ring::rsa::PublicKeyComponents<Vec<u8>> = kp.public().into();
        let jwk = json!({"kty": "RSA", "kid": "r1", "alg": "RS256",
            "n": outpost_crypto::b64(&pk.n), "e": outpost_crypto::b64(&pk.e)});
        let keys = set(&[jwk]);
        let header = outpost_crypto::b64(br#"{"alg":"RS256","kid":"r1","typ":"JWT"}"#);
        let body = outpost_crypto::b64(claims(now() + 600, "n-1").to_string().as_bytes());
        let msg = format!("{header}.{body}");
        let mut sig = vec![0; kp.public().modulus_len()];
        kp.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            msg.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let token = format!("{msg}.{}", outpost_crypto::b64(&sig));
        assert_eq!(
            verify_id_token(&token, &keys, &WANT).unwrap().sub,
            "user-42"
        );
        sig[10] ^= 1;
        let bad = format!("{msg}.{}", outpost_crypto::b64(&sig));
        assert_eq!(
            verify_id_token(&bad, &keys, &WANT),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn apple_client_secret_is_an_es256_jwt_naming_team_key_and_client() {
        let (k, jwk) = ec_key("KEY123");
        let t = apple_client_secret(
            &k,
            "KEY123",
            "TEAM9",
            "com.example.web",
            "https://appleid.apple.com",
            now(),
        )
        .unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.alg, Algorithm::ES256);
        assert_eq!(h.kid.as_deref(), Some("KEY123"));
        let key = DecodingKey::from_jwk(&serde_json::from_value(jwk).unwrap()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["https://appleid.apple.com"]);
        v.set_issuer(&["TEAM9"]);
        let c = jsonwebtoken::decode::<serde_json::Value>(&t, &key, &v)
            .unwrap()
            .claims;
        assert_eq!(c["sub"], "com.example.web");
        assert!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() <= 300);
    }
}
