//! Exports: everything the node holds for the workspace, or everything about one contact
//! (a data-subject access request), as a zip of JSON and CSV files with a manifest of
//! SHA-256 digests (DESIGN §3 "Exports").
//!
//! - The zip is written streaming (one page of rows in memory) and encrypted on its way
//!   to disk with [age] under a key made for that export alone; the key is stored in
//!   `node.db` sealed under the master key. Deleting the key row (expiry, "delete now",
//!   erasure of a contact it contains) makes the file unreadable even before the file
//!   itself is unlinked.
//! - The download link is `/exports/{id}/download?expires=…&sig=…`, signed with an HMAC
//!   key derived from the master key over the node id, the export id and the expiry
//!   ([`link`]). It needs no session, so a business can hand a contact's export to that
//!   contact. A link signed by another node, or altered, is refused (403); after its
//!   expiry it answers 410 Gone and the file is deleted.
//! - The CP learns id, scope, state, size and times through reports ([`Exports::metas`]).

pub mod archive;
pub mod link;
mod write;

use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store};
use anyhow::Context as _;
use outpost_protocol::{ExportMeta, NodeId, WorkspaceInfo};
use rusqlite::{params, Connection, OptionalExtension as _};
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Migration adding the exports table (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE exports (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('workspace', 'contact')),
    contact_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('running', 'ready', 'failed', 'expired')),
    requested_by TEXT NOT NULL,
    ttl_secs INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    expires_at INTEGER NOT NULL,
    rows_done INTEGER NOT NULL DEFAULT 0,
    rows_total INTEGER NOT NULL DEFAULT 0,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    file_key BLOB,
    error_code TEXT
);
CREATE INDEX exports_created ON exports (created_at DESC);
"#;

/// Link lifetime when the user does not choose one.
pub const DEFAULT_TTL_SECS: i64 = 24 * 3600;
/// Longest link lifetime a user may choose.
pub const MAX_TTL_SECS: i64 = 7 * 24 * 3600;
/// How long an export's record (not its file) is kept and reported.
pub const RECORD_DAYS: i64 = 30;

/// What an export covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: conversations, contacts/CRM, knowledge base, settings, erasures.
    Workspace,
    /// One contact (a data-subject access request): their record and conversations.
    Contact(String),
}

impl Scope {
    fn name(&self) -> &'static str {
        match self {
            Scope::Workspace => "workspace",
            Scope::Contact(_) => "contact",
        }
    }

    fn contact(&self) -> Option<&str> {
        match self {
            Scope::Workspace => None,
            Scope::Contact(id) => Some(id),
        }
    }
}

/// An export's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Export id (UUID).
    pub id: String,
    /// `workspace` or `contact`.
    pub scope: String,
    /// The contact of a data-subject export.
    pub contact_id: Option<String>,
    /// `running`, `ready`, `failed` or `expired`.
    pub state: String,
    /// CP user id of who asked for it.
    pub requested_by: String,
    /// Link lifetime chosen, seconds.
    pub ttl_secs: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// When the file was complete (or the export failed).
    pub finished_at: Option<i64>,
    /// When the link stops working; for a running export, a provisional value.
    pub expires_at: i64,
    /// Rows written so far.
    pub rows_done: i64,
    /// Rows to write.
    pub rows_total: i64,
    /// Size of the zip, bytes.
    pub size_bytes: i64,
    /// SHA-256 of the zip (lowercase hex), once ready.
    pub sha256: Option<String>,
    /// Why it failed.
    pub error_code: Option<String>,
}

impl Export {
    /// Percent done, 0–100.
    pub fn percent(&self) -> i64 {
        match self.state.as_str() {
            "running" if self.rows_total > 0 => (self.rows_done * 100 / self.rows_total).min(99),
            "running" => 0,
            _ => 100,
        }
    }
}

const COLUMNS: &str =
    "id, scope, contact_id, state, requested_by, ttl_secs, created_at, finished_at,
     expires_at, rows_done, rows_total, size_bytes, sha256, error_code";

fn export_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Export> {
    Ok(Export {
        id: r.get(0)?,
        scope: r.get(1)?,
        contact_id: r.get(2)?,
        state: r.get(3)?,
        requested_by: r.get(4)?,
        ttl_secs: r.get(5)?,
        created_at: r.get(6)?,
        finished_at: r.get(7)?,
        expires_at: r.get(8)?,
        rows_done: r.get(9)?,
        rows_total: r.get(10)?,
        size_bytes: r.get(11)?,
        sha256: r.get(12)?,
        error_code: r.get(13)?,
    })
}

fn key_aad(id: &str) -> Vec<u8> {
    format!("export-key:{id}").into_bytes()
}

/// Inside an erasure's transaction: exports holding the contact (the workspace's and
/// the contact's own) lose their key now and are marked expired; their files are
/// unlinked by the next sweep.
pub(crate) fn forget_exports_of(
    tx: &Connection,
    contact_id: &str,
    now: i64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE exports SET state = 'expired', file_key = NULL, expires_at = ?2,
                finished_at = COALESCE(finished_at, ?2), error_code = 'contact_erased'
         WHERE state IN ('running', 'ready') AND (scope = 'workspace' OR contact_id = ?1)",
        params![contact_id, now],
    )
}

/// What a download link check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Download {
    /// Signature wrong, or made by another node: 403.
    Forged,
    /// Past its expiry, or the export was deleted: 410.
    Gone,
    /// Not finished yet: 409.
    NotReady,
    /// Valid: the export and the size of its zip ([`Exports::open`] reads it).
    Ready(Box<Export>, u64),
}

/// The node's exports.
pub struct Exports {
    store: Arc<Store>,
    master: Arc<MasterKey>,
    node_id: NodeId,
    workspace: WorkspaceInfo,
    link_key: Zeroizing<[u8; 32]>,
    dir: PathBuf,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exports(***)")
    }
}

impl Exports {
    /// The exports of the node `node_id`, files under `<data dir>/exports`.
    pub fn new(
        store: Arc<Store>,
        master: Arc<MasterKey>,
        node_id: NodeId,
        workspace: WorkspaceInfo,
    ) -> Self {
        let dir = store.dir().join("exports");
        Self {
            link_key: master.derive("export-links"),
            store,
            master,
            node_id,
            workspace,
            dir,
        }
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.zip.age"))
    }

    fn partial(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.zip.age.part"))
    }

    /// Records a new export (state `running`) and returns its id; [`Self::run`] writes
    /// it. `ttl_secs` must be between one hour and [`MAX_TTL_SECS`].
    pub fn create(&self, scope: &Scope, ttl_secs: i64, actor: &str) -> anyhow::Result<String> {
        anyhow::ensure!(
            (3600..=MAX_TTL_SECS).contains(&ttl_secs),
            "link lifetime out of range"
        );
        let id = uuid::Uuid::new_v4().to_string();
        let now = store::now();
        self.store.with(|c| {
            c.execute(
                "INSERT INTO exports (id, scope, contact_id, state, requested_by, ttl_secs,
                                      created_at, expires_at)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7)",
                params![
                    id,
                    scope.name(),
                    scope.contact(),
                    actor,
                    ttl_secs,
                    now,
                    now + ttl_secs
                ],
            )?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Creates an export and writes it on a blocking thread; returns its id at once.
    pub fn start(
        self: &Arc<Self>,
        scope: Scope,
        ttl_secs: i64,
        actor: &str,
    ) -> anyhow::Result<String> {
        let id = self.create(&scope, ttl_secs, actor)?;
        let this = self.clone();
        let run_id = id.clone();
        tokio::task::spawn_blocking(move || this.run(&run_id, &scope));
        Ok(id)
    }

    /// Writes the export `id` (blocking). On failure the record says `failed` with a
    /// code and no partial file stays behind; the error is also returned.
    pub fn run(&self, id: &str, scope: &Scope) -> anyhow::Result<()> {
        let result = self.write(id, scope);
        if let Err(e) = &result {
            tracing::error!(export = %id, error = %format!("{e:#}"), "export failed");
            let _ = std::fs::remove_file(self.partial(id));
            let now = store::now();
            let _ = self.store.with(|c| {
                c.execute(
                    "UPDATE exports SET state = 'failed', finished_at = ?2, file_key = NULL,
                            error_code = 'write_failed'
                     WHERE id = ?1 AND state = 'running'",
                    params![id, now],
                )?;
                Ok(())
            });
        }
        result
    }

    fn write(&self, id: &str, scope: &Scope) -> anyhow::Result<()> {
        crate::platform::files::prepare_dir(&self.dir).context("creating the exports directory")?;
        let (identity, recipient) = outpost_crypto::generate_age_identity();
        let sealed_key = self.master.seal(identity.expose().as_bytes(), &key_aad(id));
        let created = self.store.with(|c| {
            Ok(c.execute(
                "UPDATE exports SET file_key = ?2 WHERE id = ?1 AND state = 'running'",
                params![id, sealed_key],
            )?)
        })?;
        anyhow::ensure!(created == 1, "the export was cancelled before it started");

        let part = self.partial(id);
        let (size, sha256) = write::write_zip(self, id, scope, &part, &recipient)?;
        let final_path = self.file(id);
        std::fs::rename(&part, &final_path).context("moving the finished export in place")?;
        crate::platform::files::sync_parent(&final_path)?;
        let now = store::now();
        let marked = self.store.with(|c| {
            Ok(c.execute(
                "UPDATE exports SET state = 'ready', finished_at = ?2, expires_at = ?2 + ttl_secs,
                        size_bytes = ?3, sha256 = ?4, rows_done = rows_total
                 WHERE id = ?1 AND state = 'running'",
                params![id, now, i64::try_from(size).unwrap_or(i64::MAX), sha256],
            )?)
        })?;
        if marked == 0 {
            // Deleted or erased while it ran: its key is gone, so is the file.
            let _ = std::fs::remove_file(&final_path);
        } else {
            tracing::info!(export = %id, scope = scope.name(), bytes = size, "export ready");
        }
        Ok(())
    }

    fn progress(&self, id: &str, done: i64, total: i64) -> anyhow::Result<bool> {
        let n = self.store.with(|c| {
            Ok(c.execute(
                "UPDATE exports SET rows_done = ?2, rows_total = ?3 WHERE id = ?1 AND state = 'running'",
                params![id, done, total],
            )?)
        })?;
        Ok(n == 1)
    }

    /// The export `id`.
    pub fn get(&self, id: &str) -> anyhow::Result<Option<Export>> {
        Ok(self.store.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM exports WHERE id = ?1"),
                [id],
                export_row,
            )
            .optional()?)
        })?)
    }

    /// Exports of the last [`RECORD_DAYS`] days, newest first.
    pub fn list(&self, limit: usize) -> anyhow::Result<Vec<Export>> {
        let since = store::now() - RECORD_DAYS * 86_400;
        Ok(self.store.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM exports WHERE created_at >= ?1
                 ORDER BY created_at DESC, id LIMIT ?2"
            ))?;
            let rows = st.query_map(
                params![since, i64::try_from(limit).unwrap_or(i64::MAX)],
                export_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?)
    }

    /// What the CP may know of the exports (reports).
    pub fn metas(&self) -> anyhow::Result<Vec<ExportMeta>> {
        Ok(self
            .list(200)?
            .into_iter()
            .map(|e| ExportMeta {
                id: e.id,
                scope: e.scope,
                state: e.state,
                size_bytes: e.size_bytes,
                created_at: e.created_at,
                expires_at: e.expires_at,
            })
            .collect())
    }

    /// The download link of a ready export: path and query, to append to the node URL.
    pub fn link(&self, e: &Export) -> Option<String> {
        (e.state == "ready").then(|| {
            format!(
                "/exports/{}/download?expires={}&sig={}",
                e.id,
                e.expires_at,
                link::sign(&self.link_key[..], &self.node_id.0, &e.id, e.expires_at)
            )
        })
    }

    /// Checks a download link at time `now`. An expired link deletes the export's key
    /// and file on the spot.
    pub fn check_link(
        &self,
        id: &str,
        expires: i64,
        sig: &str,
        now: i64,
    ) -> anyhow::Result<Download> {
        if !link::verify(&self.link_key[..], &self.node_id.0, id, expires, sig) {
            return Ok(Download::Forged);
        }
        let Some(e) = self.get(id)? else {
            return Ok(Download::Gone);
        };
        if expires <= now || e.expires_at <= now {
            self.expire(id, now, None)?;
            return Ok(Download::Gone);
        }
        match e.state.as_str() {
            "running" => Ok(Download::NotReady),
            "ready" if e.expires_at == expires => {
                let size = u64::try_from(e.size_bytes).unwrap_or(0);
                Ok(Download::Ready(Box::new(e), size))
            }
            _ => Ok(Download::Gone),
        }
    }

    /// A reader of the decrypted zip of a ready export.
    pub fn open(&self, id: &str) -> anyhow::Result<impl std::io::Read + Send + 'static> {
        let sealed: Option<Vec<u8>> = self.store.with(|c| {
            Ok(c.query_row(
                "SELECT file_key FROM exports WHERE id = ?1 AND state = 'ready'",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
        })?;
        let sealed = sealed.context("the export has no key")?;
        let identity = self.master.open(&sealed, &key_aad(id))?;
        let identity: age::x25519::Identity = std::str::from_utf8(&identity)
            .ok()
            .and_then(|s| s.parse().ok())
            .context("the export key is malformed")?;
        let file = std::fs::File::open(self.file(id)).context("opening the export file")?;
        let dec = age::Decryptor::new_buffered(std::io::BufReader::with_capacity(64 * 1024, file))
            .context("reading the export header")?;
        dec.decrypt(std::iter::once(&identity as &dyn age::Identity))
            .context("opening the export")
    }

    /// Deletes an export's key, then its file; `expired` from then on. `reason` is
    /// `None` when its link ran out, `Some("deleted")` when a user deleted it early.
    pub fn expire(&self, id: &str, now: i64, reason: Option<&str>) -> anyhow::Result<bool> {
        let n = self.store.with(|c| {
            Ok(c.execute(
                "UPDATE exports SET state = 'expired', file_key = NULL, error_code = ?3,
                        expires_at = MIN(expires_at, ?2), finished_at = COALESCE(finished_at, ?2)
                 WHERE id = ?1 AND state IN ('running', 'ready')",
                params![id, now, reason],
            )?)
        })?;
        self.remove_files(id);
        Ok(n == 1)
    }

    fn remove_files(&self, id: &str) {
        for path in [self.file(id), self.partial(id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(export = %id, error = %e, "deleting an export file failed")
                }
            }
        }
    }

    /// Marks exports left `running` by a previous process as failed (call at startup,
    /// before any new export starts).
    pub fn recover(&self) -> anyhow::Result<()> {
        let now = store::now();
        let ids: Vec<String> = self.store.with(|c| {
            let mut st = c.prepare("SELECT id FROM exports WHERE state = 'running'")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        for id in ids {
            self.store.with(|c| {
                c.execute(
                    "UPDATE exports SET state = 'failed', file_key = NULL, finished_at = ?2,
                            error_code = 'interrupted'
                     WHERE id = ?1 AND state = 'running'",
                    params![id, now],
                )?;
                Ok(())
            })?;
            self.remove_files(&id);
        }
        Ok(())
    }

    /// Expires exports whose link has run out, unlinks files without a live export
    /// (erased, failed, leftovers) and forgets records older than [`RECORD_DAYS`].
    /// Returns how many exports it expired.
    pub fn sweep(&self, now: i64) -> anyhow::Result<i64> {
        let due: Vec<String> = self.store.with(|c| {
            let mut st =
                c.prepare("SELECT id FROM exports WHERE state = 'ready' AND expires_at <= ?1")?;
            let rows = st.query_map([now], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        let mut expired = 0;
        for id in &due {
            if self.expire(id, now, None)? {
                expired += 1;
                tracing::info!(export = %id, "export link expired; file deleted");
            }
        }
        // A file exists only after its row (create, then write): a file whose row is not
        // running or ready, checked now, is a leftover even if an export starts meanwhile.
        let live = |id: &str| -> anyhow::Result<bool> {
            Ok(self
                .get(id)?
                .is_some_and(|e| matches!(e.state.as_str(), "running" | "ready")))
        };
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = name.split('.').next().unwrap_or_default();
                if !live(id)? {
                    self.remove_files(id);
                    if entry.path().exists() {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        self.store.with(|c| {
            c.execute(
                "DELETE FROM exports WHERE created_at < ?1 AND state NOT IN ('running', 'ready')",
                [now - RECORD_DAYS * 86_400],
            )?;
            Ok(())
        })?;
        Ok(expired)
    }
}

#[cfg(test)]
pub(crate) mod tests;
