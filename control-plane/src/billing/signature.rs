//! Stripe webhook signatures, checked by hand (the scheme is small; the `async-stripe`
//! crate is not worth its weight for it).
//!
//! Stripe sends `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`. Each `v1`
//! is `HMAC-SHA256(webhook secret, "<t>.<raw body>")` in hex; there are several while a
//! secret is being rolled, and any one matching is enough. `v0` (test-mode legacy scheme)
//! is ignored. The timestamp must be within the tolerance of our clock either way, so a
//! captured request cannot be replayed later, nor one minted for the future.

use crate::error::Code;

/// Stripe's own default tolerance, seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused. The variants carry no header or body content, so they
/// can be logged as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `t=` element, or it is not a number.
    MissingTimestamp,
    /// No `v1=` element.
    MissingSignature,
    /// No `v1` value matches (wrong secret, altered body, or not hex).
    Mismatch,
    /// The timestamp is further from now than the tolerance (old or in the future).
    OutsideTolerance,
}

impl SignatureError {
    /// Stable code for logs and the 400 answer.
    pub fn code(self) -> Code {
        match self {
            SignatureError::MissingTimestamp => Code::SignatureMissingTimestamp,
            SignatureError::MissingSignature => Code::SignatureMissingV1,
            SignatureError::Mismatch => Code::SignatureMismatch,
            SignatureError::OutsideTolerance => Code::SignatureOutsideTolerance,
        }
    }
}

/// The `v1` value Stripe would send for `payload` at time `t` (tests and fakes sign with it).
pub fn sign(secret: &[u8], t: i64, payload: &[u8]) -> String {
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(payload);
    outpost_common::hex(&outpost_crypto::hmac_sign(secret, &msg))
}

/// Checks a `Stripe-Signature` header against the raw request body. Returns the signed
/// timestamp. The comparison is constant-time; the clock check comes after the MAC, so an
/// unsigned caller learns nothing about our clock.
pub fn verify(
    header: &str,
    payload: &[u8],
    secret: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<i64, SignatureError> {
    let mut t: Option<&str> = None;
    let mut v1 = vec![];
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" if t.is_none() => t = Some(v),
            "v1" => v1.push(v),
            _ => {}
        }
    }
    let t: i64 = t
        .and_then(|t| t.parse().ok())
        .ok_or(SignatureError::MissingTimestamp)?;
    if v1.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(payload);
    let expected = outpost_crypto::hmac_sign(secret, &msg);
    // Every candidate is compared (no early exit), so timing does not tell which matched.
    let matched = v1
        .iter()
        .filter_map(|v| outpost_common::hex::decode(v))
        .fold(false, |ok, got| outpost_crypto::ct_eq(&got, &expected) | ok);
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    if (now - t).abs() > tolerance {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    const NOW: i64 = 1_800_000_000;

    fn header(t: i64, sigs: &[&str]) -> String {
        let mut h = format!("t={t}");
        for s in sigs {
            h.push_str(&format!(",v1={s}"));
        }
        h
    }

    #[test]
    fn a_valid_signature_passes() {
        let s = sign(SECRET, NOW, BODY);
        assert_eq!(verify(&header(NOW, &[&s]), BODY, SECRET, NOW, 300), Ok(NOW));
        // Spaces and a v0 element (Stripe test mode) are tolerated.
        let h = format!("t={NOW}, v1={s}, v0=deadbeef");
        assert_eq!(verify(&h, BODY, SECRET, NOW, 300), Ok(NOW));
    }

    #[test]
    fn known_vector_matches_stripes_scheme() {
        // HMAC-SHA256("whsec_test_secret", "1800000000.<BODY>"), computed independently
        // with `printf '%s' '1800000000.<BODY>' | openssl dgst -sha256 -hmac whsec_test_secret`.
        assert_eq!(
            sign(SECRET, NOW, BODY),
            "f19b688b6c808f2a3c035f501cb82562fd2eb237fd8c2e2df4503a54f42345fb"
        );
    }

    #[test]
    fn any_of_several_v1_values_may_match() {
        let good = sign(SECRET, NOW, BODY);
        let other = sign(b"whsec_old_secret", NOW, BODY);
        for sigs in [[&*other, &*good], [&*good, &*other]] {
            assert_eq!(verify(&header(NOW, &sigs), BODY, SECRET, NOW, 300), Ok(NOW));
        }
        // Non-hex junk beside the good value does not spoil it.
        let h = header(NOW, &["zz-not-hex", &good]);
        assert_eq!(verify(&h, BODY, SECRET, NOW, 300), Ok(NOW));
    }

    #[test]
    fn missing_pieces_are_refused() {
        let s = sign(SECRET, NOW, BODY);
        assert_eq!(
            verify(&format!("v1={s}"), BODY, SECRET, NOW, 300),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(&format!("t=abc,v1={s}"), BODY, SECRET, NOW, 300),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(&format!("t={NOW},v0={s}"), BODY, SECRET, NOW, 300),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verify("", BODY, SECRET, NOW, 300),
            Err(SignatureError::MissingTimestamp)
        );
    }

    #[test]
    fn non_hex_wrong_secret_and_altered_body_are_refused() {
        let s = sign(SECRET, NOW, BODY);
        assert_eq!(
            verify(&header(NOW, &["xyz"]), BODY, SECRET, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header(NOW, &[&s[..63]]), BODY, SECRET, NOW, 300),
            Err(SignatureError::Mismatch),
            "odd length"
        );
        assert_eq!(
            verify(&header(NOW, &[&s]), BODY, b"whsec_other", NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header(NOW, &[&s]), b"{\"id\":\"evt_2\"}", SECRET, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        // The signature covers the timestamp: moving `t` breaks it.
        assert_eq!(
            verify(&header(NOW + 1, &[&s]), BODY, SECRET, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        // Upper-case hex is still hex.
        let upper = s.to_uppercase();
        assert_eq!(
            verify(&header(NOW, &[&upper]), BODY, SECRET, NOW, 300),
            Ok(NOW)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_at_the_edges() {
        for (t, ok) in [
            (NOW - 300, true),
            (NOW - 301, false),
            (NOW + 300, true),
            (NOW + 301, false),
            (NOW - 86_400, false),
        ] {
            let h = header(t, &[&sign(SECRET, t, BODY)]);
            let r = verify(&h, BODY, SECRET, NOW, 300);
            if ok {
                assert_eq!(r, Ok(t), "t = now{:+}", t - NOW);
            } else {
                assert_eq!(
                    r,
                    Err(SignatureError::OutsideTolerance),
                    "t = now{:+}",
                    t - NOW
                );
            }
        }
    }
}
