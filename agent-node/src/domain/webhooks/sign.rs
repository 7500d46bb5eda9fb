//! Standard Webhooks signatures (<https://www.standardwebhooks.com>, "Signature scheme"):
//! the secret is `whsec_` + base64 of random bytes; the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`; the `webhook-signature` header is `v1,` +
//! base64 of its HMAC-SHA256 under the secret's bytes (several space-separated during a
//! secret rotation; this node has one secret per endpoint).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Prefix of a secret as the customer copies it.
pub const SECRET_PREFIX: &str = "whsec_";

/// The secret's bytes as shown to the customer, once.
pub fn format_secret(secret: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(secret))
}

/// The `webhook-signature` header for one message.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut content = Vec::with_capacity(id.len() + 24 + body.len());
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    format!(
        "v1,{}",
        STANDARD.encode(outpost_crypto::hmac_sign(secret, &content))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example the specification publishes (and every official library tests):
    /// secret `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`, id `msg_p5jXN8AQM9LWM0D4loKWxJek`,
    /// timestamp 1614265330, body `{"test": 2432232314}`.
    #[test]
    fn signs_the_specifications_example() {
        let secret = STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("b64");
        assert_eq!(
            signature(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            format_secret(&secret),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
    }
}
