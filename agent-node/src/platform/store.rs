//! The node database, `node.db` (SQLite, WAL, `synchronous=FULL`): the node's state
//! record, the report outbox, executed commands, burned capability-token ids and console
//! sessions. Later: content, encrypted under per-contact keys (DESIGN §2).
//!
//! One connection behind a mutex: the node is small, statements are short, and a single
//! writer keeps SQLite simple. Migrations are an append-only list keyed by
//! `PRAGMA user_version`; the list itself is `MIGRATIONS` in `src/migrations.rs`, since most
//! tables belong to the layers above this one.
//!
//! Long because the full-disk handling (reserve, probe, unsaved report seqs) lives beside
//! the one connection it guards, with its tests.

use outpost_protocol::{CommandAck, NodeId, Report, WorkspaceInfo};
use rusqlite::{params, Connection, OptionalExtension as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

/// Errors from the node database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database was closed (the node is being deprovisioned).
    #[error("the node database is closed")]
    Closed,
    /// SQLite failed.
    #[error("node database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON value could not be read back.
    #[error("unreadable stored value: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The database file could not be prepared.
    #[error("node database file: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Whether the write failed for want of space: SQLITE_FULL (a full disk, or a capped
    /// database) or ENOSPC.
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Io(e) => e.raw_os_error() == Some(28),
            _ => false,
        }
    }
}

/// Bytes the space probe writes (and rolls back): a little more than a visitor's message
/// with its conversation rows, so "full" is said before a write the node acknowledges
/// would fail.
const PROBE_BYTES: i64 = 64 * 1024;
/// Bytes of the reserve row (`meta` key [`RESERVE_KEY`]) the node keeps in `node.db`
/// while there is room and deletes when a write fails for want of space: the freed pages
/// let the owner delete documents (deleting writes too), reports go out and commands be
/// acknowledged on a full disk. It comes back only once there is room for it and the
/// probe besides, so "full" does not flicker.
const RESERVE_BYTES: i64 = 256 * 1024;
const RESERVE_KEY: &str = "space_reserve";

/// The first migration: the node's own tables (state, meta, outbox, executed commands,
/// burned token ids, console sessions). The full list is `MIGRATIONS` in `src/migrations.rs`.
pub const BASE_SCHEMA: &str = r#"
CREATE TABLE node_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    node_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    workspace_slug TEXT NOT NULL,
    workspace_name TEXT NOT NULL,
    gateway_url TEXT NOT NULL,
    ca_pem TEXT NOT NULL,
    public_url TEXT NOT NULL,
    listen_addr TEXT NOT NULL,
    report_interval_secs REAL NOT NULL,
    capability_public_key TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    renew_at INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE executed_commands (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error_code TEXT,
    executed_at INTEGER NOT NULL
);
CREATE TABLE burned_jti (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
"#;

/// `meta` key of the last report sequence number handed out.
const REPORT_SEQ: &str = "report_seq";
/// `meta` key of the configuration document from the last `apply_config`.
pub const CONFIG_KEY: &str = "config";
/// `meta` key present while the node is suspended; its value is the reason code.
pub const SUSPENDED_KEY: &str = "suspended";
/// `meta` key of the public host the bootstrap bundle named (the bundle is deleted once
/// the node has enrolled, and the host is needed at every start).
pub const PUBLIC_HOST_KEY: &str = "public_host";
/// `meta` key of the release public key the bootstrap bundle carried (upgrades).
pub const RELEASE_KEY_KEY: &str = "release_public_key";

/// What the node knows about itself after enrollment.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeState {
    /// The node id.
    pub node_id: NodeId,
    /// The workspace the node serves.
    pub workspace: WorkspaceInfo,
    /// `https://host:port` of the CP node gateway.
    pub gateway_url: String,
    /// The CP CA the node pins.
    pub ca_pem: String,
    /// The node's public base URL.
    pub public_url: String,
    /// Address the console binds to.
    pub listen_addr: String,
    /// Seconds between reports.
    pub report_interval_secs: f64,
    /// CP Ed25519 public key (base64url) verifying capability tokens.
    pub capability_public_key: String,
    /// When the node enrolled (unix seconds).
    pub enrolled_at: i64,
    /// When to renew the certificate next (unix seconds).
    pub renew_at: i64,
}

/// A console session, found by the hash of its cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// CP user id.
    pub user_id: String,
    /// Scopes from the capability token.
    pub scopes: Vec<String>,
    /// Expiry, unix seconds.
    pub expires_at: i64,
}

/// The node database.
pub struct Store {
    conn: Mutex<Option<Connection>>,
    dir: std::path::PathBuf,
    /// Set when a write failed for want of space; cleared by [`Store::probe_space`].
    full: AtomicBool,
    /// The highest report seq handed out without an outbox row ([`Store::unsaved_seq`]):
    /// later outbox reports of this process come after it.
    seq_floor: AtomicI64,
}

/// Current time, unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Opens (creating, mode 0600) the database and applies the `migrations` it has not
    /// applied yet. The node's list, and `Store::open` which uses it, are in
    /// `src/migrations.rs`: this layer knows no table but its own.
    pub fn open_with(path: &Path, migrations: &[&str]) -> Result<Self> {
        // SQLite gives the -wal and -shm files the mode of the database file.
        crate::platform::files::touch_private(path)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "SQLite refused WAL mode");
        }
        // Nothing the node acknowledges may be lost on power failure.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted rows (an erased contact's wrapped key, a deleted document) are
        // overwritten in the file rather than left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // 32 MiB of page cache: knowledge-base ranking reads many index pages, and the
        // 2 MiB default made retrieval latency swing with whatever else ran (B5).
        conn.pragma_update(None, "cache_size", -32 * 1024)?;
        migrate(&mut conn, migrations)?;
        Ok(Self {
            conn: Mutex::new(Some(conn)),
            dir: path
                .parent()
                .map_or_else(|| std::path::PathBuf::from("."), Path::to_path_buf),
            full: AtomicBool::new(false),
            seq_floor: AtomicI64::new(0),
        })
    }

    /// Caps the database at its current size plus `pages` pages (`PRAGMA
    /// max_page_count`), for tests of a full disk: SQLite then fails writes with
    /// SQLITE_FULL exactly as when the disk is full. Returns the cap.
    pub fn cap_pages_above_current(&self, pages: i64) -> Result<i64> {
        self.with(|c| {
            let count: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let cap = count.saturating_add(pages.max(0));
            Ok(c.query_row(&format!("PRAGMA max_page_count = {cap}"), [], |r| r.get(0))?)
        })
    }

    /// Whether the last write that failed did so for want of space, and no probe found
    /// room since.
    pub fn seems_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Checks there is room: for the probe's [`PROBE_BYTES`] while the reserve is in
    /// place, or for the reserve and the probe when it was released (then the reserve is
    /// put back). The probe is written in a transaction that is rolled back. `Ok(false)`
    /// when the database or disk is full. Updates [`Store::seems_full`] either way.
    ///
    /// A probe that finds no room does not release the reserve: only a write that fails
    /// does. Released on a probe, the reserve's pages went to whatever wrote next (a note,
    /// an upload) while there was still room for small writes, and none were left for
    /// the deletions that free space.
    pub fn probe_space(&self) -> Result<bool> {
        let roomy = self.with(|c| {
            // The reserve is a blob: ask whether it is there, not for its value as text.
            let reserved: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?1)",
                [RESERVE_KEY],
                |r| r.get(0),
            )?;
            let need = if reserved {
                PROBE_BYTES
            } else {
                PROBE_BYTES + RESERVE_BYTES
            };
            let tx = c.transaction()?;
            let probed = tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('space_probe', zeroblob(?1))",
                [need],
            );
            // Dropping the transaction rolls it back: nothing of the probe stays.
            drop(tx);
            match probed.map_err(StoreError::from) {
                Ok(_) => {}
                Err(e) if e.is_full() => return Ok(false),
                Err(e) => return Err(e),
            }
            if !reserved {
                c.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, zeroblob(?2))",
                    params![RESERVE_KEY, RESERVE_BYTES],
                )?;
            }
            Ok(true)
        });
        match roomy {
            Ok(true) => {
                if self.full.swap(false, Ordering::Relaxed) {
                    tracing::info!("the node's storage has room again");
                }
                Ok(true)
            }
            Ok(false) => {
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::error!("the node's storage is almost full: new content is refused until space is freed");
                }
                Ok(false)
            }
            // Putting the reserve back failed (a write): `with` released nothing, as
            // there was nothing to release.
            Err(e) if e.is_full() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remembers that a write failed for want of space, if `e` says so, and releases the
    /// reserve ([`Store::with`] does it for every error it sees; callers that carry
    /// errors out of it in their own type call this themselves).
    pub fn note_if_full(&self, e: &StoreError) {
        if e.is_full() {
            let _ = self.with(|c| {
                self.on_full(c);
                Ok(())
            });
        }
    }

    fn on_full(&self, conn: &Connection) {
        // Deleting a row needs no new page; its pages go to the free list.
        let released = conn
            .execute("DELETE FROM meta WHERE key = ?1", [RESERVE_KEY])
            .unwrap_or(0);
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::error!(
                reserve_released = released == 1,
                "the node's storage is full: writes fail until space is freed"
            );
        }
    }

    /// The directory holding `node.db` (the node's data directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes the connection (checkpointing the WAL); every later call fails with
    /// [`StoreError::Closed`].
    pub fn close(&self) {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(conn) = conn {
            if let Err((_, e)) = conn.close() {
                tracing::warn!(error = %e, "closing the node database failed");
            }
        }
    }

    /// Runs `f` on the connection (callers keep statements short: one mutex guards it).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A panic while holding the lock cannot leave SQLite half-written (statements
        // are atomic), so a poisoned lock is still usable.
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        let result = f(conn);
        if let Err(e) = &result {
            if e.is_full() {
                self.on_full(conn);
            }
        }
        result
    }

    // ------------------------------------------------------------------ node state

    /// The state record, if the node has enrolled.
    pub fn node_state(&self) -> Result<Option<NodeState>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT node_id, workspace_id, workspace_slug, workspace_name, gateway_url,
                        ca_pem, public_url, listen_addr, report_interval_secs,
                        capability_public_key, enrolled_at, renew_at
                 FROM node_state WHERE id = 1",
                [],
                |r| {
                    Ok(NodeState {
                        node_id: NodeId(r.get(0)?),
                        workspace: WorkspaceInfo {
                            id: r.get(1)?,
                            slug: r.get(2)?,
                            name: r.get(3)?,
                        },
                        gateway_url: r.get(4)?,
                        ca_pem: r.get(5)?,
                        public_url: r.get(6)?,
                        listen_addr: r.get(7)?,
                        report_interval_secs: r.get(8)?,
                        capability_public_key: r.get(9)?,
                        enrolled_at: r.get(10)?,
                        renew_at: r.get(11)?,
                    })
                },
            )
            .optional()?)
        })
    }

    /// Writes the state record.
    pub fn save_node_state(&self, s: &NodeState) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO node_state (id, node_id, workspace_id, workspace_slug,
                    workspace_name, gateway_url, ca_pem, public_url, listen_addr,
                    report_interval_secs, capability_public_key, enrolled_at, renew_at)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    s.node_id.as_str(),
                    s.workspace.id,
                    s.workspace.slug,
                    s.workspace.name,
                    s.gateway_url,
                    s.ca_pem,
                    s.public_url,
                    s.listen_addr,
                    s.report_interval_secs,
                    s.capability_public_key,
                    s.enrolled_at,
                    s.renew_at,
                ],
            )?;
            Ok(())
        })
    }

    /// Schedules the next certificate renewal.
    pub fn set_renew_at(&self, at: i64) -> Result<()> {
        self.with(|c| {
            c.execute("UPDATE node_state SET renew_at = ?1 WHERE id = 1", [at])?;
            Ok(())
        })
    }

    // ------------------------------------------------------------------ outbox

    /// Appends a report to the outbox. `make` receives the next sequence number and the
    /// number of reports still waiting; both the counter and the row are committed in one
    /// transaction, so a sequence number is never reused, even after a crash.
    pub fn append_report(&self, make: impl FnOnce(i64, i64) -> Report) -> Result<Report> {
        self.with(|c| {
            let tx = c.transaction()?;
            let last: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = ?1", [REPORT_SEQ], |r| {
                    r.get(0)
                })
                .optional()?;
            let stored = last.and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
            let seq = stored.max(self.seq_floor.load(Ordering::Relaxed)) + 1;
            let waiting: i64 = tx.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
            let report = make(seq, waiting);
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![REPORT_SEQ, seq.to_string()],
            )?;
            tx.execute(
                "INSERT INTO outbox (seq, body, created_at) VALUES (?1, ?2, ?3)",
                params![seq, serde_json::to_string(&report)?, now()],
            )?;
            tx.commit()?;
            Ok(report)
        })
    }

    /// A report seq for a report sent without an outbox row (the outbox could not be
    /// written: the disk is full). It comes after every stored report, and every later
    /// one of this process comes after it, so the CP orders them right. Only reads.
    pub fn unsaved_seq(&self) -> Result<i64> {
        let stored = self
            .meta(REPORT_SEQ)?
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        let seq = stored.max(self.seq_floor.load(Ordering::Relaxed)) + 1;
        self.seq_floor.fetch_max(seq, Ordering::Relaxed);
        Ok(seq)
    }

    /// Up to `limit` unsent reports, oldest first.
    pub fn pending_reports(&self, limit: usize) -> Result<Vec<Report>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT body FROM outbox ORDER BY seq ASC LIMIT ?1")?;
            let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                r.get::<_, String>(0)
            })?;
            let mut out = Vec::new();
            for body in rows {
                out.push(serde_json::from_str(&body?)?);
            }
            Ok(out)
        })
    }

    /// Removes a report the CP acknowledged.
    pub fn mark_report_sent(&self, seq: i64) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
            Ok(())
        })
    }

    /// Number of unsent reports.
    pub fn queue_depth(&self) -> Result<i64> {
        self.with(|c| Ok(c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?))
    }

    // ------------------------------------------------------------------ commands

    /// The recorded outcome of an executed command.
    pub fn executed_command(&self, id: &str) -> Result<Option<CommandAck>> {
        self.with(|c| executed(c, id))
    }

    /// Runs a command at most once: if `id` was executed before, returns its recorded
    /// acknowledgement and `true`; otherwise runs `apply` and records the outcome in the
    /// same transaction as its effects, and returns it with `false`.
    pub fn run_command_once(
        &self,
        id: &str,
        kind: &str,
        apply: impl FnOnce(&Connection) -> Result<CommandAck>,
    ) -> Result<(CommandAck, bool)> {
        self.with(|c| {
            let tx = c.transaction()?;
            if let Some(ack) = executed(&tx, id)? {
                return Ok((ack, true));
            }
            let ack = apply(&tx)?;
            tx.execute(
                "INSERT INTO executed_commands (id, kind, ok, error_code, executed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, kind, ack.ok, ack.error_code, now()],
            )?;
            tx.commit()?;
            Ok((ack, false))
        })
    }

    /// Sets a `meta` value (inside a command's transaction).
    pub fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// Removes a `meta` value (inside a command's transaction).
    pub fn delete_meta(conn: &Connection, key: &str) -> Result<()> {
        conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Sets a `meta` value on its own.
    pub fn put_meta(&self, key: &str, value: &str) -> Result<()> {
        self.with(|c| Self::set_meta(c, key, value))
    }

    /// Reads a `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| Self::meta_in(c, key))
    }

    /// A `meta` value, inside a transaction.
    pub fn meta_in(conn: &Connection, key: &str) -> Result<Option<String>> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    // ------------------------------------------------------------------ console

    /// Burns a capability token's `jti` and opens a session, atomically. Returns `false`
    /// (and opens nothing) when the `jti` was already burned: a replay.
    pub fn sign_in(
        &self,
        jti: &str,
        jti_expires_at: i64,
        token_hash: &str,
        session: &Session,
    ) -> Result<bool> {
        let now = now();
        self.with(|c| {
            let tx = c.transaction()?;
            // Burned ids are kept until the token could no longer verify anyway.
            tx.execute("DELETE FROM burned_jti WHERE expires_at < ?1", [now])?;
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
            let fresh = tx.execute(
                "INSERT INTO burned_jti (jti, expires_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![jti, jti_expires_at],
            )?;
            if fresh == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, scopes, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token_hash,
                    session.user_id,
                    serde_json::to_string(&session.scopes)?,
                    now,
                    session.expires_at
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// The unexpired session whose cookie hashes to `token_hash`.
    pub fn session(&self, token_hash: &str) -> Result<Option<Session>> {
        let now = now();
        self.with(|c| {
            let row: Option<(String, String, i64)> = c
                .query_row(
                    "SELECT user_id, scopes, expires_at FROM sessions
                     WHERE token_hash = ?1 AND expires_at > ?2",
                    params![token_hash, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            row.map(|(user_id, scopes, expires_at)| {
                Ok(Session {
                    user_id,
                    scopes: serde_json::from_str(&scopes)?,
                    expires_at,
                })
            })
            .transpose()
        })
    }

    /// Ends a session.
    pub fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
            Ok(())
        })
    }
}

fn executed(c: &Connection, id: &str) -> Result<Option<CommandAck>> {
    Ok(c.query_row(
        "SELECT ok, error_code FROM executed_commands WHERE id = ?1",
        [id],
        |r| {
            Ok(CommandAck {
                ok: r.get(0)?,
                error_code: r.get(1)?,
                receipt: None,
            })
        },
    )
    .optional()?)
}

fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let from = usize::try_from(version).unwrap_or(0);
    for (i, sql) in migrations.iter().enumerate().skip(from) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: i64, queue_depth: i64) -> Report {
        Report {
            seq,
            epoch: None,
            produced_at: 1,
            version: "t".into(),
            uptime_s: 0,
            checks: vec![],
            counts: vec![],
            disk_used_bytes: 0,
            queue_depth,
            exports: vec![],
            retention_sweeps: vec![],
            waiting_conversations: 0,
            ai_counts: vec![],
            booking_counts: vec![],
            call_counts: vec![],
        }
    }

    #[test]
    fn outbox_is_oldest_first_and_seq_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let store = Store::open(&path).expect("open");
        for expected in 1..=3 {
            let r = store.append_report(report).expect("append");
            assert_eq!(r.seq, expected);
            assert_eq!(r.queue_depth, expected - 1, "depth counts waiting reports");
        }
        let seqs: Vec<i64> = store
            .pending_reports(10)
            .expect("pending")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        store.mark_report_sent(1).expect("sent");
        store.mark_report_sent(2).expect("sent");
        store.mark_report_sent(3).expect("sent");
        store.close();
        assert!(matches!(store.queue_depth(), Err(StoreError::Closed)));

        // Reopen: an empty outbox must not restart the sequence.
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.append_report(report).expect("append").seq, 4);
        assert_eq!(store.append_report(report).expect("append").seq, 5);
        assert_eq!(store.pending_reports(1).expect("pending")[0].seq, 4);
        assert_eq!(store.queue_depth().expect("depth"), 2);
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_full_database_is_said_probed_and_reports_keep_their_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("open");
        assert_eq!(store.append_report(report).expect("append").seq, 1);
        assert!(store.probe_space().expect("probe"));
        // Again, with the reserve in place (every report probes).
        assert!(store.probe_space().expect("second probe"));
        store.cap_pages_above_current(40).expect("cap");
        let mut filled = 0;
        let err = loop {
            let r = store.with(|c| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, randomblob(3000))",
                    [format!("filler-{filled}")],
                )?;
                Ok(())
            });
            match r {
                Ok(()) => filled += 1,
                Err(e) => break e,
            }
            assert!(filled < 1000, "never filled");
        };
        assert!(err.is_full(), "{err}");
        // Then small rows, until not even those fit.
        while store
            .with(|c| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, randomblob(50))",
                    [format!("filler-{filled}")],
                )?;
                Ok(())
            })
            .is_ok()
        {
            filled += 1;
            assert!(filled < 10_000, "never filled");
        }
        assert!(store.seems_full());
        assert!(!store.probe_space().expect("probe"), "no room");
        // The outbox cannot take a report either: it goes out unsaved, after the stored
        // one, and the next stored report comes after it.
        let e = store.append_report(report).expect_err("full");
        assert!(e.is_full(), "{e}");
        assert_eq!(store.unsaved_seq().expect("seq"), 2);
        assert_eq!(store.unsaved_seq().expect("seq"), 3);
        // Space frees: the probe says so, and reports are stored again, in order.
        store
            .with(|c| Ok(c.execute("DELETE FROM meta WHERE key LIKE 'filler-%'", [])?))
            .expect("free");
        assert!(store.probe_space().expect("probe"));
        assert!(!store.seems_full());
        assert_eq!(store.append_report(report).expect("append").seq, 4);
        // Nothing stored before the disk filled was lost.
        let seqs: Vec<i64> = store
            .pending_reports(10)
            .expect("pending")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 4]);
    }

    /// Issue 18's full disk, seen again in CI: a report's probe found less than its
    /// 64 KiB and released the reserve, notes took the freed pages, and the owner could
    /// then delete nothing. A probe that finds no room says "full" and keeps the reserve;
    /// a write that fails releases it.
    #[test]
    fn a_probe_that_finds_no_room_keeps_the_reserve_for_a_failed_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("open");
        assert!(store.probe_space().expect("probe"), "the reserve is laid");
        let reserved = |s: &Store| -> bool {
            s.with(|c| {
                Ok(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?1)",
                    [RESERVE_KEY],
                    |r| r.get(0),
                )?)
            })
            .expect("read")
        };
        // Room for small writes, not for the probe.
        store.cap_pages_above_current(4).expect("cap");
        assert!(
            !store.probe_space().expect("probe"),
            "no room for the probe"
        );
        assert!(store.seems_full());
        assert!(reserved(&store), "a probe is not a failed write");
        let mut n = 0;
        while store
            .with(|c| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, randomblob(2000))",
                    [format!("filler-{n}")],
                )?;
                Ok(())
            })
            .is_ok()
        {
            n += 1;
            assert!(n < 100, "never filled");
        }
        assert!(!reserved(&store), "the failed write released the reserve");
    }

    #[test]
    fn commands_run_once_and_replay_their_recorded_ack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("open");
        let mut runs = 0;
        let mut apply = |c: &Connection| {
            runs += 1;
            Store::set_meta(c, SUSPENDED_KEY, "payment_failed")?;
            Ok(CommandAck {
                ok: false,
                error_code: Some("unsupported".into()),
                receipt: None,
            })
        };
        let (first, replay) = store
            .run_command_once("c1", "suspend", &mut apply)
            .expect("run");
        assert!(!replay);
        let (second, replay) = store
            .run_command_once("c1", "suspend", &mut apply)
            .expect("rerun");
        assert!(replay);
        assert_eq!(runs, 1, "executed once");
        assert_eq!(
            (second.ok, second.error_code),
            (first.ok, first.error_code.clone())
        );
        assert!(store.executed_command("c1").expect("q").is_some());
        assert!(store.executed_command("c2").expect("q").is_none());
        assert_eq!(
            store.meta(SUSPENDED_KEY).expect("meta").as_deref(),
            Some("payment_failed")
        );

        // A failing command leaves no record, so it is retried on redelivery.
        let err = store.run_command_once("c3", "apply_config", |_| {
            Err(StoreError::Sqlite(rusqlite::Error::InvalidQuery))
        });
        assert!(err.is_err());
        assert!(store.executed_command("c3").expect("q").is_none());
    }

    #[test]
    fn a_jti_signs_in_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("open");
        let session = Session {
            user_id: "u1".into(),
            scopes: vec!["console".into()],
            expires_at: now() + 60,
        };
        assert!(store
            .sign_in("jti-1", now() + 400, "hash-a", &session)
            .expect("sign in"));
        assert!(
            !store
                .sign_in("jti-1", now() + 400, "hash-b", &session)
                .expect("replay"),
            "replayed jti refused"
        );
        assert_eq!(store.session("hash-a").expect("q"), Some(session.clone()));
        assert_eq!(
            store.session("hash-b").expect("q"),
            None,
            "no session on replay"
        );
        store.delete_session("hash-a").expect("logout");
        assert_eq!(store.session("hash-a").expect("q"), None);
        let expired = Session {
            expires_at: now() - 1,
            ..session
        };
        assert!(store
            .sign_in("jti-2", now() + 400, "hash-c", &expired)
            .expect("sign in"));
        assert_eq!(store.session("hash-c").expect("q"), None, "expired");
    }

    #[test]
    fn node_state_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("open");
        assert_eq!(store.node_state().expect("q"), None);
        let s = NodeState {
            node_id: NodeId::new_random(),
            workspace: WorkspaceInfo {
                id: "w".into(),
                slug: "acme".into(),
                name: "Acme".into(),
            },
            gateway_url: "https://127.0.0.1:1".into(),
            ca_pem: "pem".into(),
            public_url: "http://acme.localhost:2".into(),
            listen_addr: "127.0.0.1:2".into(),
            report_interval_secs: 1.5,
            capability_public_key: "pk".into(),
            enrolled_at: 10,
            renew_at: 20,
        };
        store.save_node_state(&s).expect("save");
        store.set_renew_at(30).expect("renew");
        assert_eq!(
            store.node_state().expect("q"),
            Some(NodeState { renew_at: 30, ..s })
        );
    }
}
