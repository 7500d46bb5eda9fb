//! Upgrades of the node's own binary (the `upgrade` command), and their rollback.
//!
//! Installing: the release key's Ed25519 signature over the announced SHA-256 is checked
//! first (no download for a release the key did not sign), then the binary is downloaded
//! through the node's HTTP client, at most `--upgrade-max-bytes`, into `<binary>.next`
//! (0755, fsynced) while its SHA-256 is computed; a different digest deletes it. Then
//! the probation marker is written, the current binary is hard-linked to
//! `<binary>.previous`, and `<binary>.next` is renamed over `<binary>` (atomic: the
//! supervisor starts either the old or the new file, never half of one). The node acks
//! and exits with [`RESTART_EXIT_CODE`]; its supervisor (systemd `Restart=always`, or the
//! local provisioner) starts the new binary.
//!
//! Probation: `upgrade-probation.json` in the data directory says a new binary is on
//! trial. Two things end the trial badly, and both restore the previous binary:
//! - it does not start: before each start the supervisor runs the *previous* binary's
//!   `upgrade-guard` (systemd `ExecStartPre`; the local provisioner runs the control
//!   plane's embedded node), which counts starts and rolls back at the start after
//!   [`MAX_STARTS`] — so even a binary that cannot execute at all is replaced;
//! - it starts but does not phone home: a node on probation whose report is not accepted
//!   by the CP within `--probation-secs` rolls back and exits to be restarted.
//!
//! The first report of the new process the CP accepts ends the trial: the marker is
//! deleted, `<binary>.previous` stays for the next upgrade's rollback.

use outpost_crypto::release::ReleaseKey;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The marker of a binary on probation, in the data directory.
pub const PROBATION_FILE: &str = "upgrade-probation.json";
/// Exit status that asks the supervisor for a restart (EX_TEMPFAIL): after an installed
/// upgrade, or a rollback.
pub const RESTART_EXIT_CODE: u8 = 75;
/// Starts a binary on probation gets before the guard restores the previous one.
pub const MAX_STARTS: u32 = 3;

/// What `upgrade-probation.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probation {
    /// The version that ran before (what a rollback returns to).
    pub from_version: String,
    /// The version on trial.
    pub to_version: String,
    /// When it was installed (unix seconds).
    pub installed_at: i64,
    /// Starts counted by the guard so far.
    pub starts: u32,
    /// Whether a binary existed at the path before (if not, a rollback removes the new
    /// one: the local provisioner then starts its embedded node again).
    pub had_previous: bool,
}

/// What the node needs to install upgrades.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The data directory (the probation marker).
    pub data_dir: PathBuf,
    /// The file the supervisor starts.
    pub binary: PathBuf,
    /// The trusted release key; `None` refuses every upgrade.
    pub release_key: Option<ReleaseKey>,
    /// Largest binary accepted.
    pub max_bytes: u64,
    /// How long a new binary has to get a report accepted.
    pub probation: Duration,
}

/// `<binary>.next`, `<binary>.previous`.
fn sibling(binary: &Path, suffix: &str) -> PathBuf {
    let mut s = binary.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The binary kept for a rollback.
pub fn previous_path(binary: &Path) -> PathBuf {
    sibling(binary, ".previous")
}

fn marker(data_dir: &Path) -> PathBuf {
    data_dir.join(PROBATION_FILE)
}

/// Reads the probation marker, if any.
pub fn read_probation(data_dir: &Path) -> anyhow::Result<Option<Probation>> {
    match std::fs::read(marker(data_dir)) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write_probation(data_dir: &Path, p: &Probation) -> anyhow::Result<()> {
    let json = serde_json::to_vec(p)?;
    crate::platform::files::write_private(&marker(data_dir), &json)?;
    Ok(())
}

fn remove_probation(data_dir: &Path) -> anyhow::Result<()> {
    let path = marker(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(crate::platform::files::sync_parent(&path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Why an upgrade was refused: the `error_code` of the command's ack.
pub mod refusal {
    /// The node trusts no release key.
    pub const NO_RELEASE_KEY: &str = "no_release_key";
    /// The release key did not sign this digest.
    pub const BAD_SIGNATURE: &str = "bad_signature";
    /// The download's SHA-256 is not the announced one.
    pub const CHECKSUM_MISMATCH: &str = "checksum_mismatch";
    /// The download failed (address, TLS, HTTP status, interrupted).
    pub const DOWNLOAD_FAILED: &str = "download_failed";
    /// The binary is larger than `--upgrade-max-bytes`.
    pub const TOO_LARGE: &str = "release_too_large";
    /// Writing or renaming the binary failed.
    pub const INSTALL_FAILED: &str = "install_failed";
}

/// A release as the `upgrade` command names it.
pub struct Release<'a> {
    /// Download address.
    pub url: &'a str,
    /// Announced SHA-256 (hex).
    pub sha256: &'a str,
    /// The release key's signature (base64url).
    pub signature: &'a str,
    /// The version it reports.
    pub version: &'a str,
}

/// Installs upgrades and keeps the trial of a new binary.
pub struct Upgrader {
    settings: Settings,
    http: reqwest::Client,
    /// The trial of this process's binary, until a report of it is accepted.
    on_trial: Mutex<Option<Probation>>,
}

impl Upgrader {
    /// With the node's settings; reads the probation marker left for this start.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let http = outpost_common::http::client(
            &format!("outpost-node/{}", crate::version()),
            Duration::from_secs(10),
        )?;
        let mut on_trial = read_probation(&settings.data_dir)?;
        if let Some(p) = &on_trial {
            if p.to_version != crate::version() {
                // Not the binary on trial: the swap never happened (a crash between the
                // marker and the rename). Nothing to judge.
                tracing::warn!(
                    on_trial = %p.to_version,
                    running = %crate::version(),
                    "an upgrade marker for another version; the upgrade did not take place"
                );
                remove_probation(&settings.data_dir)?;
                on_trial = None;
            }
        }
        Ok(Self {
            settings,
            http,
            on_trial: Mutex::new(on_trial),
        })
    }

    /// The trial of this binary, if it is on one.
    pub fn probation(&self) -> Option<Probation> {
        self.on_trial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A report of this process was accepted by the CP: the new binary phoned home, so
    /// it stays.
    pub fn report_accepted(&self) {
        let mut trial = self.on_trial.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = trial.take() {
            match remove_probation(&self.settings.data_dir) {
                Ok(()) => tracing::info!(
                    from = %p.from_version,
                    to = %p.to_version,
                    "upgrade confirmed: the new version phoned home"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "ending the upgrade's probation failed");
                    *trial = Some(p);
                }
            }
        }
    }

    /// Waits out the probation; if no report was accepted by then, restores the
    /// previous binary and returns `true` (the caller exits for a restart).
    pub async fn watch_probation(&self) -> bool {
        if self.probation().is_none() {
            return false;
        }
        tokio::time::sleep(self.settings.probation).await;
        let Some(p) = self.probation() else {
            return false;
        };
        let why = format!(
            "version {} did not phone home within {} s",
            p.to_version,
            self.settings.probation.as_secs()
        );
        match rollback(&self.settings.data_dir, &self.settings.binary, &p, &why) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "rolling back failed");
                false
            }
        }
    }

    /// Runs an `upgrade` command. `Ok(())` once the new binary is in place (the caller
    /// acks and exits for a restart); `Err(code)` with a [`refusal`] code otherwise, the
    /// running binary untouched.
    pub async fn install(&self, release: &Release<'_>) -> Result<(), &'static str> {
        let Some(key) = &self.settings.release_key else {
            tracing::error!(
                "upgrade refused: this node trusts no release key (OUTPOST_RELEASE_PUBLIC_KEY was not set when it was provisioned, nor --release-public-key)"
            );
            return Err(refusal::NO_RELEASE_KEY);
        };
        if key.verify(release.sha256, release.signature).is_err() {
            tracing::error!(
                version = release.version,
                "upgrade refused: the release key did not sign this binary's SHA-256"
            );
            return Err(refusal::BAD_SIGNATURE);
        }
        let next = sibling(&self.settings.binary, ".next");
        let got = match self.download(release.url, &next).await {
            Ok(digest) => digest,
            Err(code) => {
                let _ = std::fs::remove_file(&next);
                return Err(code);
            }
        };
        if !got.eq_ignore_ascii_case(release.sha256) {
            let _ = std::fs::remove_file(&next);
            tracing::error!(
                version = release.version,
                "upgrade refused: the downloaded binary's SHA-256 is not the release's"
            );
            return Err(refusal::CHECKSUM_MISMATCH);
        }
        let p = Probation {
            from_version: crate::version().to_owned(),
            to_version: release.version.to_owned(),
            installed_at: crate::platform::store::now(),
            starts: 0,
            had_previous: self.settings.binary.exists(),
        };
        swap(&self.settings.data_dir, &self.settings.binary, &next, &p).map_err(|e| {
            let _ = std::fs::remove_file(&next);
            tracing::error!(error = %format!("{e:#}"), "upgrade: installing the binary failed");
            refusal::INSTALL_FAILED
        })?;
        tracing::info!(
            from = %p.from_version,
            to = %p.to_version,
            "upgrade installed; restarting into it on probation"
        );
        Ok(())
    }

    /// Streams `url` into `to` (0755), at most `max_bytes`; returns its SHA-256 (hex).
    async fn download(&self, url: &str, to: &Path) -> Result<String, &'static str> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "upgrade: {what}");
            refusal::DOWNLOAD_FAILED
        };
        let mut resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| failed("downloading the release failed", &e))?;
        if !resp.status().is_success() {
            return Err(failed(
                "the release server refused the download",
                &resp.status(),
            ));
        }
        let max = self.settings.max_bytes;
        if resp.content_length().is_some_and(|n| n > max) {
            tracing::error!(max, "upgrade refused: the release is larger than allowed");
            return Err(refusal::TOO_LARGE);
        }
        let _ = std::fs::remove_file(to);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(to)
            .map_err(|e| {
                tracing::error!(error = %e, path = %to.display(), "upgrade: cannot write next to the binary");
                refusal::INSTALL_FAILED
            })?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut total: u64 = 0;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| failed("the download was interrupted", &e))?
        {
            total += chunk.len() as u64;
            if total > max {
                tracing::error!(max, "upgrade refused: the release is larger than allowed");
                return Err(refusal::TOO_LARGE);
            }
            digest.update(&chunk);
            file.write_all(&chunk).map_err(|e| {
                tracing::error!(error = %e, "upgrade: writing the binary failed");
                refusal::INSTALL_FAILED
            })?;
        }
        file.sync_all().map_err(|e| {
            tracing::error!(error = %e, "upgrade: writing the binary failed");
            refusal::INSTALL_FAILED
        })?;
        Ok(outpost_common::hex::hex(digest.finish().as_ref()))
    }
}

/// Marker first (a crash after it and before the rename leaves a marker for a version
/// that is not running, which the next start discards), then the previous binary kept
/// as a hard link, then the atomic rename.
fn swap(data_dir: &Path, binary: &Path, next: &Path, p: &Probation) -> anyhow::Result<()> {
    write_probation(data_dir, p)?;
    let previous = previous_path(binary);
    if p.had_previous {
        match std::fs::remove_file(&previous) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        std::fs::hard_link(binary, &previous)?;
    }
    std::fs::rename(next, binary)?;
    crate::platform::files::sync_parent(binary)?;
    Ok(())
}

/// Puts the previous binary back (or removes the new one when there was none) and ends
/// the probation. Logged as an error with `why`.
pub fn rollback(data_dir: &Path, binary: &Path, p: &Probation, why: &str) -> anyhow::Result<()> {
    let previous = previous_path(binary);
    if p.had_previous {
        std::fs::rename(&previous, binary)?;
        // Keep a copy for the next upgrade's rollback, as after a confirmed upgrade.
        std::fs::hard_link(binary, &previous)?;
    } else {
        match std::fs::remove_file(binary) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    crate::platform::files::sync_parent(binary)?;
    remove_probation(data_dir)?;
    tracing::error!(
        from = %p.to_version,
        to = %p.from_version,
        why,
        "upgrade rolled back: the previous binary is restored"
    );
    Ok(())
}

/// What the guard did before a start.
#[derive(Debug, PartialEq, Eq)]
pub enum Guarded {
    /// No binary on probation.
    Nothing,
    /// On probation: this is its start number `n`.
    Trial(u32),
    /// The binary on probation had its [`MAX_STARTS`] starts: the previous is back.
    RolledBack,
}

/// `upgrade-guard`, run by the supervisor before each start (from the previous binary,
/// so that a new one that cannot run at all is still replaced).
pub fn guard(data_dir: &Path, binary: &Path) -> anyhow::Result<Guarded> {
    let Some(mut p) = read_probation(data_dir)? else {
        return Ok(Guarded::Nothing);
    };
    if p.starts >= MAX_STARTS {
        let why = format!(
            "version {} was started {} times without phoning home",
            p.to_version, p.starts
        );
        rollback(data_dir, binary, &p, &why)?;
        return Ok(Guarded::RolledBack);
    }
    p.starts += 1;
    write_probation(data_dir, &p)?;
    Ok(Guarded::Trial(p.starts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn probation(had_previous: bool) -> Probation {
        Probation {
            from_version: "0.1.0".into(),
            to_version: "0.2.0".into(),
            installed_at: 1,
            starts: 0,
            had_previous,
        }
    }

    #[test]
    fn a_binary_that_never_phones_home_is_replaced_by_the_previous_after_its_starts() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let bin = dir.path().join("agent-node");
        std::fs::write(&bin, b"old").unwrap();
        let next = dir.path().join("agent-node.next");
        std::fs::write(&next, b"new").unwrap();
        swap(&data, &bin, &next, &probation(true)).unwrap();
        assert_eq!(std::fs::read(&bin).unwrap(), b"new");
        assert_eq!(std::fs::read(previous_path(&bin)).unwrap(), b"old");
        assert!(!next.exists());

        for n in 1..=MAX_STARTS {
            assert_eq!(guard(&data, &bin).unwrap(), Guarded::Trial(n));
            assert_eq!(std::fs::read(&bin).unwrap(), b"new");
        }
        assert_eq!(guard(&data, &bin).unwrap(), Guarded::RolledBack);
        assert_eq!(std::fs::read(&bin).unwrap(), b"old");
        assert_eq!(read_probation(&data).unwrap(), None);
        // Once rolled back, starts are not counted any more.
        assert_eq!(guard(&data, &bin).unwrap(), Guarded::Nothing);
        assert_eq!(std::fs::read(&bin).unwrap(), b"old");
    }

    fn upgrader(dir: &Path, key: Option<ReleaseKey>, max_bytes: u64) -> Upgrader {
        Upgrader::new(Settings {
            data_dir: dir.to_path_buf(),
            binary: dir.join("agent-node"),
            release_key: key,
            max_bytes,
            probation: Duration::from_secs(300),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn only_the_signed_bytes_are_installed_and_refusals_leave_the_binary_alone() {
        use outpost_crypto::release::{sha256_hex, ReleaseSigner};
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("agent-node");
        std::fs::write(&bin, b"old").unwrap();
        let new = b"#!/bin/sh\nexit 0\n".to_vec();
        let (signer, _) = ReleaseSigner::generate().unwrap();
        let sha = sha256_hex(&new);
        let sig = signer.sign(&sha).unwrap();
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/release"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(new.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/other"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"other".to_vec()))
            .mount(&server)
            .await;
        let url = format!("{}/release", server.uri());
        let r = |url: String, signature: String| (url, signature);
        let install = |u: Upgrader, (url, signature): (String, String)| {
            let sha = sha.clone();
            async move {
                u.install(&Release {
                    url: &url,
                    sha256: &sha,
                    signature: &signature,
                    version: "9.9.0",
                })
                .await
            }
        };
        let untouched = |bin: &Path| {
            assert_eq!(std::fs::read(bin).unwrap(), b"old");
            assert!(!sibling(bin, ".next").exists());
            assert_eq!(read_probation(dir.path()).unwrap(), None);
        };

        // No key: refused in words, nothing fetched.
        let u = upgrader(dir.path(), None, 1024);
        assert_eq!(
            install(u, r(url.clone(), sig.clone())).await,
            Err(refusal::NO_RELEASE_KEY)
        );
        untouched(&bin);
        // Another key's signature: refused before downloading.
        let (stranger, _) = ReleaseSigner::generate().unwrap();
        let u = upgrader(dir.path(), Some(stranger.public_key()), 1024);
        assert_eq!(
            install(u, r(url.clone(), sig.clone())).await,
            Err(refusal::BAD_SIGNATURE)
        );
        untouched(&bin);
        // Other bytes than the signed digest.
        let u = upgrader(dir.path(), Some(signer.public_key()), 1024);
        let other = format!("{}/other", server.uri());
        assert_eq!(
            install(u, r(other, sig.clone())).await,
            Err(refusal::CHECKSUM_MISMATCH)
        );
        untouched(&bin);
        // Larger than allowed.
        let u = upgrader(dir.path(), Some(signer.public_key()), 4);
        assert_eq!(
            install(u, r(url.clone(), sig.clone())).await,
            Err(refusal::TOO_LARGE)
        );
        untouched(&bin);
        // The signed bytes: installed, the old binary kept, on probation.
        let u = upgrader(dir.path(), Some(signer.public_key()), 1024);
        assert_eq!(install(u, r(url, sig)).await, Ok(()));
        assert_eq!(std::fs::read(&bin).unwrap(), new);
        assert_eq!(std::fs::read(previous_path(&bin)).unwrap(), b"old");
        let p = read_probation(dir.path()).unwrap().unwrap();
        assert_eq!((p.to_version.as_str(), p.starts), ("9.9.0", 0));
    }

    #[tokio::test]
    async fn a_new_binary_without_an_accepted_report_within_its_probation_restores_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("agent-node");
        std::fs::write(&bin, b"old").unwrap();
        let next = sibling(&bin, ".next");
        std::fs::write(&next, b"new").unwrap();
        let mut p = probation(true);
        p.to_version = crate::version().to_owned();
        swap(dir.path(), &bin, &next, &p).unwrap();
        let settings = |secs| Settings {
            data_dir: dir.path().to_path_buf(),
            binary: bin.clone(),
            release_key: None,
            max_bytes: 1,
            probation: Duration::from_millis(secs),
        };
        // Accepted in time: it stays.
        let u = Upgrader::new(settings(300)).unwrap();
        assert!(u.probation().is_some());
        u.report_accepted();
        assert!(!u.watch_probation().await);
        assert_eq!(std::fs::read(&bin).unwrap(), b"new");
        assert_eq!(read_probation(dir.path()).unwrap(), None);
        // On trial again, and silent: the previous binary comes back.
        write_probation(dir.path(), &p).unwrap();
        let u = Upgrader::new(settings(50)).unwrap();
        assert!(u.watch_probation().await, "the caller exits for a restart");
        assert_eq!(std::fs::read(&bin).unwrap(), b"old");
        assert_eq!(read_probation(dir.path()).unwrap(), None);
    }

    #[test]
    fn without_a_previous_binary_a_rollback_removes_the_new_one() {
        // The local provisioner's first upgrade: the node ran embedded in the control
        // plane, so no file was there before; removing it starts the embedded node.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("agent-node");
        let next = dir.path().join("agent-node.next");
        std::fs::write(&next, b"new").unwrap();
        swap(dir.path(), &bin, &next, &probation(false)).unwrap();
        assert!(bin.exists() && !previous_path(&bin).exists());
        rollback(dir.path(), &bin, &probation(false), "test").unwrap();
        assert!(!bin.exists());
        assert_eq!(read_probation(dir.path()).unwrap(), None);
    }
}
