//! Lowercase hex, as stored (token hashes, fingerprints, serials) and as providers send
//! it (webhook signatures).

use std::fmt::Write as _;

/// Lowercase hex encoding of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Parses hex of either case; `None` when the length is odd or a character is not a hex
/// digit (signs and spaces included, which `u8::from_str_radix` alone would accept).
pub fn decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed_input() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(hex(&[]), "");
        assert_eq!(decode("0001ABff"), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(decode(""), Some(vec![]));
        assert_eq!(decode("abc"), None, "odd length");
        assert_eq!(decode("zz"), None, "not hex");
        assert_eq!(decode("+f"), None, "a sign is not a digit");
        assert_eq!(decode("éé"), None, "non-ASCII");
    }
}
