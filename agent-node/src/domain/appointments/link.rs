//! Signed appointment links, made like export links ([`crate::domain::exports::link`]):
//! `HMAC-SHA256(link key, "outpost-appointment-link/1" ‖ node id ‖ purpose ‖ subject ‖
//! expiry)`, base64url, with a key derived from the master key for this use alone. The
//! purpose is part of what is signed, so a cancel link cannot be replayed as a
//! reschedule link or as a calendar feed; the expiry cannot be moved.

/// What a link allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Cancel one booking.
    Cancel,
    /// The `.ics` file of one booking.
    Event,
    /// The calendar feed of one staff member (subject: staff id, `""` the business).
    Feed,
    /// Move one booking to another time.
    Reschedule,
}

impl Purpose {
    /// As written in the URL and signed.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Cancel => "cancel",
            Purpose::Event => "event",
            Purpose::Feed => "feed",
            Purpose::Reschedule => "reschedule",
        }
    }

    /// From the URL.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cancel" => Some(Purpose::Cancel),
            "event" => Some(Purpose::Event),
            "feed" => Some(Purpose::Feed),
            "reschedule" => Some(Purpose::Reschedule),
            _ => None,
        }
    }
}

/// Label of the master-key derivation for link keys.
pub const KEY_LABEL: &str = "appointment-links";

fn message(node_id: &str, purpose: Purpose, subject: &str, expires: i64) -> Vec<u8> {
    format!(
        "outpost-appointment-link/1\n{node_id}\n{}\n{subject}\n{expires}",
        purpose.as_str()
    )
    .into_bytes()
}

/// The signature of a link.
pub fn sign(key: &[u8], node_id: &str, purpose: Purpose, subject: &str, expires: i64) -> String {
    outpost_crypto::b64(&outpost_crypto::hmac_sign(
        key,
        &message(node_id, purpose, subject, expires),
    ))
}

/// Whether `sig` signs this link (constant-time comparison). Expiry is the caller's.
pub fn verify(
    key: &[u8],
    node_id: &str,
    purpose: Purpose,
    subject: &str,
    expires: i64,
    sig: &str,
) -> bool {
    if sig.len() > 64 {
        return false;
    }
    outpost_crypto::unb64(sig).is_ok_and(|tag| {
        outpost_crypto::hmac_verify(key, &message(node_id, purpose, subject, expires), &tag).is_ok()
    })
}

/// The query string of a signed link: `purpose=…&expires=…&sig=…`.
pub fn query(key: &[u8], node_id: &str, purpose: Purpose, subject: &str, expires: i64) -> String {
    format!(
        "purpose={}&expires={expires}&sig={}",
        purpose.as_str(),
        sign(key, node_id, purpose, subject, expires)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_serves_one_purpose_for_one_booking_until_it_expires() {
        let key = [3u8; 32];
        let sig = sign(&key, "n1", Purpose::Cancel, "b1", 2_000);
        assert!(verify(&key, "n1", Purpose::Cancel, "b1", 2_000, &sig));
        assert!(!verify(&key, "n1", Purpose::Reschedule, "b1", 2_000, &sig));
        assert!(!verify(&key, "n1", Purpose::Feed, "b1", 2_000, &sig));
        assert!(!verify(&key, "n1", Purpose::Cancel, "b2", 2_000, &sig));
        assert!(!verify(&key, "n1", Purpose::Cancel, "b1", 2_001, &sig));
        assert!(!verify(&key, "n2", Purpose::Cancel, "b1", 2_000, &sig));
        assert!(!verify(
            &[4u8; 32],
            "n1",
            Purpose::Cancel,
            "b1",
            2_000,
            &sig
        ));
        assert!(!verify(
            &key,
            "n1",
            Purpose::Cancel,
            "b1",
            2_000,
            &"A".repeat(200)
        ));
        for p in [
            Purpose::Cancel,
            Purpose::Event,
            Purpose::Feed,
            Purpose::Reschedule,
        ] {
            assert_eq!(Purpose::parse(p.as_str()), Some(p));
        }
    }
}
