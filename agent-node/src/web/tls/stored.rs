//! What ACME leaves in the data directory, each a private file (0600, written atomically)
//! sealed under the master key like every other secret of the node, so the crypto-erase
//! takes them too: the account (its key and URL at the CA) and the certificate chain with
//! its key. Both are reused across restarts: a restart neither creates an account nor
//! orders a certificate.

use crate::platform::config::{Paths, ACME_ACCOUNT_FILE, HTTPS_CERT_FILE};
use crate::platform::keys::MasterKey;
use anyhow::Context as _;
use instant_acme::AccountCredentials;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

/// The account, for the directory it was created at (another directory needs another).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredAccount {
    pub directory: String,
    pub credentials: AccountCredentials,
}

/// A certificate obtained for `host`.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredCert {
    pub host: String,
    /// Leaf first, as the CA sent it.
    pub chain_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

impl Drop for StoredCert {
    fn drop(&mut self) {
        self.key_pem.zeroize();
    }
}

fn read<T: for<'de> Deserialize<'de>>(
    paths: &Paths,
    master: &MasterKey,
    name: &str,
) -> anyhow::Result<Option<T>> {
    let path = paths.file(name);
    if !path.exists() {
        return Ok(None);
    }
    let plain = master.open_file(&path)?;
    // serde's message could quote the key: say only where.
    let value = serde_json::from_slice(&plain)
        .map_err(|e| anyhow::anyhow!("{name} is malformed (line {})", e.line()))?;
    Ok(Some(value))
}

fn write(
    paths: &Paths,
    master: &MasterKey,
    name: &str,
    value: &impl Serialize,
) -> anyhow::Result<()> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(value)?);
    master
        .seal_to_file(&paths.file(name), &plain)
        .with_context(|| format!("writing {name}"))
}

pub(super) fn account(paths: &Paths, master: &MasterKey) -> anyhow::Result<Option<StoredAccount>> {
    read(paths, master, ACME_ACCOUNT_FILE)
}

pub(super) fn save_account(
    paths: &Paths,
    master: &MasterKey,
    account: &StoredAccount,
) -> anyhow::Result<()> {
    write(paths, master, ACME_ACCOUNT_FILE, account)
}

/// Forgets the account (the CA no longer knows it); the next attempt creates one.
pub(super) fn forget_account(paths: &Paths) -> anyhow::Result<()> {
    match std::fs::remove_file(paths.file(ACME_ACCOUNT_FILE)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("removing the ACME account"),
    }
}

pub(super) fn cert(paths: &Paths, master: &MasterKey) -> anyhow::Result<Option<StoredCert>> {
    read(paths, master, HTTPS_CERT_FILE)
}

/// Replaces the stored certificate in one atomic write: chain and key never disagree.
pub(super) fn save_cert(
    paths: &Paths,
    master: &MasterKey,
    cert: &StoredCert,
) -> anyhow::Result<()> {
    write(paths, master, HTTPS_CERT_FILE, cert)
}
