//! The node's configuration: the run arguments, the data directory with its file names,
//! and the bootstrap bundle the provisioner leaves there before first start.

use crate::cli::RunArgs;
use anyhow::Context as _;
use outpost_protocol::BootstrapBundle;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The provisioner's bundle (node id, gateway, CA, single-use token). Deleted once the
/// node has enrolled, so the token does not outlive its use.
pub const BOOTSTRAP_FILE: &str = "bootstrap.json";
/// 32 random bytes sealing every other secret at rest; deleting it is the crypto-erase.
pub const MASTER_KEY_FILE: &str = "master.key";
/// The node's P-256 TLS key (PKCS#8 PEM), sealed under the master key.
pub const NODE_KEY_FILE: &str = "node.key";
/// The node's client certificate (PEM). Its presence means "enrolled".
pub const NODE_CERT_FILE: &str = "node.crt";
/// A renewed certificate written before its key replaces `node.key`; see
/// [`crate::platform::keys::Identity::persist`].
pub const NODE_CERT_NEXT_FILE: &str = "node.crt.next";
/// The node's age X25519 identity, sealed under the master key.
pub const AGE_IDENTITY_FILE: &str = "age.identity";
/// The node database (SQLite, WAL).
pub const DB_FILE: &str = "node.db";
/// The node's ACME account at its CA (key and account URL), sealed under the master key.
pub const ACME_ACCOUNT_FILE: &str = "acme-account";
/// The node's public HTTPS certificate chain and its key, sealed under the master key.
pub const HTTPS_CERT_FILE: &str = "https-certificate";

/// Paths inside the node's data directory.
#[derive(Clone, Debug)]
pub struct Paths {
    dir: PathBuf,
}

impl Paths {
    /// Paths under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The data directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file directly inside the data directory (use the `*_FILE` constants).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Everything the node needs from its command line.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The data directory.
    pub paths: Paths,
    /// Fixed delay before each certificate renewal instead of 50–70 % of its life.
    pub renew_after: Option<Duration>,
    /// Cap of every reconnect backoff.
    pub max_backoff: Duration,
    /// Local time and its offset to the CP's.
    pub clock: std::sync::Arc<super::clock::Clock>,
}

impl NodeConfig {
    /// From the parsed `run` arguments.
    pub fn from_args(args: &RunArgs) -> Self {
        Self {
            paths: Paths::new(&args.data_dir),
            renew_after: args.renew_after_secs.map(Duration::from_secs),
            max_backoff: Duration::from_secs(args.max_backoff_secs.max(1)),
            clock: std::sync::Arc::new(super::clock::Clock::new(args.clock_skew_secs)),
        }
    }
}

/// Reads `bootstrap.json`, if present.
pub fn read_bootstrap(paths: &Paths) -> anyhow::Result<Option<BootstrapBundle>> {
    let path = paths.file(BOOTSTRAP_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    // The error from serde would quote the offending input, which may be the token.
    let bundle = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{BOOTSTRAP_FILE} is malformed (line {})", e.line()))?;
    Ok(Some(bundle))
}

/// Interval between reports: the bundle's value, made safe to sleep on.
pub fn report_interval(secs: f64) -> Duration {
    if secs.is_finite() && secs >= 0.1 {
        Duration::from_secs_f64(secs.min(24.0 * 3600.0))
    } else {
        Duration::from_millis(100)
    }
}
