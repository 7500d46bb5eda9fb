//! Signed download links: `HMAC-SHA256(link key, "outpost-export-link/1" ‖ node id ‖
//! export id ‖ expiry)`, base64url. The link key is derived from the node's master key,
//! so another node (another workspace) cannot make or accept this node's links, and the
//! expiry cannot be moved without breaking the signature.

fn message(node_id: &str, export_id: &str, expires: i64) -> Vec<u8> {
    format!("outpost-export-link/1\n{node_id}\n{export_id}\n{expires}").into_bytes()
}

/// The signature of a link.
pub fn sign(key: &[u8], node_id: &str, export_id: &str, expires: i64) -> String {
    outpost_crypto::b64(&outpost_crypto::hmac_sign(
        key,
        &message(node_id, export_id, expires),
    ))
}

/// Whether `sig` signs this link (constant-time comparison).
pub fn verify(key: &[u8], node_id: &str, export_id: &str, expires: i64, sig: &str) -> bool {
    // A SHA-256 tag is 43 characters in base64url; anything else is not ours.
    if sig.len() > 64 {
        return false;
    }
    outpost_crypto::unb64(sig).is_ok_and(|tag| {
        outpost_crypto::hmac_verify(key, &message(node_id, export_id, expires), &tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_only_unchanged_and_on_its_own_node() {
        let key = [7u8; 32];
        let sig = sign(&key, "node-a", "e1", 1_000);
        assert!(verify(&key, "node-a", "e1", 1_000, &sig));
        assert!(!verify(&key, "node-a", "e1", 1_001, &sig), "expiry moved");
        assert!(!verify(&key, "node-a", "e2", 1_000, &sig), "other export");
        assert!(!verify(&key, "node-b", "e1", 1_000, &sig), "other node id");
        assert!(
            !verify(&[8u8; 32], "node-a", "e1", 1_000, &sig),
            "other node key"
        );
        let mut tampered = sig.clone().into_bytes();
        tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
        assert!(!verify(
            &key,
            "node-a",
            "e1",
            1_000,
            &String::from_utf8(tampered).expect("ascii")
        ));
        assert!(!verify(&key, "node-a", "e1", 1_000, "not base64!"));
        assert!(!verify(&key, "node-a", "e1", 1_000, &"A".repeat(500)));
    }
}
