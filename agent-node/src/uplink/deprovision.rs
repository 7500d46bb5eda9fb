//! Deprovisioning (DESIGN §3): crypto-erase and the destruction receipt.
//!
//! Order matters. The console is stopped and the database closed first (by the caller),
//! so nothing writes behind the erasure. The master key is overwritten and deleted
//! before anything else: from that moment every sealed file (TLS key, age identity) is
//! unreadable even if the directory removal that follows were interrupted. The node key
//! and certificate survive in memory only, to sign the receipt and present it when acking.

use crate::platform::config::{Paths, MASTER_KEY_FILE};
use crate::platform::files;
use crate::platform::keys::Identity;
use crate::uplink::phone_home::{self, Gateway};
use anyhow::Context as _;
use outpost_protocol::{CommandAck, DestructionReceipt, NodeId, ReceiptBody, RECEIPT_FORMAT};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What the receipt says was destroyed.
pub const DESTROYED: [&str; 5] = [
    "master_key",
    "age_identity",
    "tls_key",
    "database",
    "data_dir",
];

/// Crypto-erases the node: overwrites and deletes `master.key`, then removes the whole
/// data directory.
pub fn erase(paths: &Paths) -> anyhow::Result<()> {
    let master = paths.file(MASTER_KEY_FILE);
    match files::secure_delete(&master) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("erasing master.key"),
    }
    match std::fs::remove_dir_all(paths.dir()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("removing the data directory"),
    }
    files::sync_parent(paths.dir()).context("syncing the parent directory")?;
    Ok(())
}

/// Builds the destruction receipt, signed with the node key over the exact JSON body.
pub fn receipt(
    identity: &Identity,
    node_id: &NodeId,
    workspace_id: &str,
    destroyed_at: OffsetDateTime,
) -> anyhow::Result<DestructionReceipt> {
    let body = ReceiptBody {
        format: RECEIPT_FORMAT.to_owned(),
        node_id: node_id.clone(),
        workspace_id: workspace_id.to_owned(),
        destroyed_at: destroyed_at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)?,
        destroyed: DESTROYED.iter().map(|s| (*s).to_owned()).collect(),
        cert_sha256: outpost_pki::sha256_hex(&identity.cert_der),
    };
    let body = serde_json::to_string(&body)?;
    let signature = identity.key.sign(body.as_bytes())?;
    Ok(DestructionReceipt {
        body,
        signature: outpost_crypto::b64(&signature),
    })
}

/// Erases the node, then acks `command_id` with the signed receipt until the CP takes it.
/// The caller has already stopped the console and closed the database.
pub async fn run(
    paths: &Paths,
    gateway: &Gateway,
    node_id: &NodeId,
    workspace_id: &str,
    command_id: &str,
    max_backoff: Duration,
) -> anyhow::Result<()> {
    erase(paths)?;
    tracing::info!(command = %command_id, "node data crypto-erased");
    let identity = gateway.identity();
    let receipt = receipt(&identity, node_id, workspace_id, OffsetDateTime::now_utc())?;
    let ack = CommandAck {
        ok: true,
        error_code: None,
        receipt: Some(receipt),
    };
    match phone_home::ack_until_accepted(gateway, command_id, &ack, max_backoff).await {
        Ok(()) => {
            tracing::info!(command = %command_id, "destruction receipt delivered");
            Ok(())
        }
        Err(e) => {
            tracing::error!(command = %command_id, error = %e, "destruction receipt refused");
            Err(anyhow::Error::new(e).context("the control plane refused the destruction receipt"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::config::{AGE_IDENTITY_FILE, DB_FILE};
    use crate::platform::keys::{MasterKey, NodeKey};

    #[test]
    fn erase_destroys_everything_and_the_receipt_verifies_against_the_cert() {
        let parent = tempfile::tempdir().expect("tempdir");
        let paths = Paths::new(parent.path().join("data"));
        files::prepare_dir(paths.dir()).expect("dir");
        let master = MasterKey::load_or_create(&paths).expect("master");
        master
            .seal_to_file(&paths.file(AGE_IDENTITY_FILE), b"AGE-SECRET-KEY-1X")
            .expect("seal");
        let store = crate::platform::store::Store::open(&paths.file(DB_FILE)).expect("db");
        store.close();

        let (ca, _) = outpost_pki::CertificateAuthority::generate("test").expect("ca");
        let key = NodeKey::generate().expect("key");
        let node = NodeId::new_random();
        let cert = ca
            .sign_node_csr(&key.csr(node.as_str()).expect("csr"), node.as_str())
            .expect("sign");
        let identity = Identity::new(cert.pem.clone(), key).expect("identity");

        erase(&paths).expect("erase");
        assert!(!paths.dir().exists());
        erase(&paths).expect("erasing twice is fine");

        let r = receipt(&identity, &node, "ws-1", OffsetDateTime::now_utc()).expect("receipt");
        let sig = outpost_crypto::unb64(&r.signature).expect("b64");
        outpost_pki::verify_with_cert(&cert.der, r.body.as_bytes(), &sig).expect("verifies");
        let body = r.parsed_body().expect("body");
        assert_eq!(body.format, RECEIPT_FORMAT);
        assert_eq!(body.node_id, node);
        assert_eq!(body.cert_sha256, outpost_pki::sha256_hex(&cert.der));
        assert!(body.destroyed.iter().any(|d| d == "master_key"));
        assert!(body.destroyed_at.ends_with('Z'), "{}", body.destroyed_at);
    }
}
