//! `control-plane upgrade start|status|halt|resume` (a fleet upgrade: canary, then
//! batches) and
//! `control-plane release keygen|sign` (the operator's release key, kept off the control
//! plane's machine).

use crate::config::Config;
use crate::infra::db;
use crate::upgrades::service::{self, Release};
use outpost_crypto::release::{sha256_hex, ReleaseSigner};
use std::path::Path;

/// `control-plane upgrade start`: `Ok(Err(why))` when refused, in words.
pub fn start(
    config: &Config,
    release: &Release,
    batch_size: i32,
) -> anyhow::Result<Result<String, String>> {
    let mut conn = db::connect_one(&config.database_url)?;
    let started = service::start(
        &mut conn,
        release,
        batch_size,
        config.release_public_key.as_deref(),
        "cli",
    )
    .map_err(crate::error::AppError::into_anyhow)?;
    Ok(started.map(|s| {
        format!(
            "upgrade {} to {} started: canary {} ({}), then {} more node(s) in batches of {batch_size}. `control-plane upgrade status` follows it.",
            s.id, release.version, s.canary.0, s.canary.1, s.others
        )
    }))
}

/// `control-plane upgrade halt` (`resume == false`) or `resume`: `Ok(Err(why))` when
/// there is nothing to do, in words.
pub fn halt_or_resume(config: &Config, resume: bool) -> anyhow::Result<Result<String, String>> {
    let mut conn = db::connect_one(&config.database_url)?;
    let done = if resume {
        service::resume(&mut conn, "cli", None)
    } else {
        service::halt(&mut conn, "cli", None)
    };
    done.map_err(crate::error::AppError::into_anyhow)
}

/// `control-plane upgrade status`: the newest upgrades, in lines.
pub fn status(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut conn = db::connect_one(&config.database_url)?;
    service::status(&mut conn, 3).map_err(crate::error::AppError::into_anyhow)
}

/// `control-plane release keygen --out FILE`: writes a new private release key (PKCS#8
/// PEM, 0600, refusing to overwrite) and returns its public key.
pub fn keygen(out: &Path) -> anyhow::Result<String> {
    anyhow::ensure!(
        !out.exists(),
        "{} exists: a release key is not overwritten",
        out.display()
    );
    let (signer, pem) = ReleaseSigner::generate()?;
    outpost_common::fs::write_private(out, pem.as_bytes())?;
    Ok(signer.public_key().to_b64())
}

/// `control-plane release sign --key FILE BINARY`: `(sha256, signature)` of the binary.
pub fn sign(key: &Path, binary: &Path) -> anyhow::Result<(String, String)> {
    let pem = std::fs::read_to_string(key)
        .map_err(|e| anyhow::anyhow!("reading the release key {}: {e}", key.display()))?;
    let signer = ReleaseSigner::from_pem(&pem).map_err(|_| {
        anyhow::anyhow!(
            "{} is not an Ed25519 private key in PKCS#8 PEM",
            key.display()
        )
    })?;
    let bytes =
        std::fs::read(binary).map_err(|e| anyhow::anyhow!("reading {}: {e}", binary.display()))?;
    let digest = sha256_hex(&bytes);
    let sig = signer.sign(&digest)?;
    Ok((digest, sig))
}
