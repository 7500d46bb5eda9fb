//! Database access: one diesel code base over SQLite (default) and PostgreSQL, the backend
//! picked from the URL scheme (as vaultwarden does). Migrations are embedded, one folder
//! per backend, and run at start.
//!
//! PostgreSQL is compiled in only with the `postgres` feature (it links the system libpq),
//! so the default build needs nothing but Rust; a `postgres://` URL given to a build
//! without it is refused at start with a message saying how to get one that has it.

use crate::error::AppError;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; queries are written once against it.
#[cfg(feature = "postgres")]
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// PostgreSQL, when `DATABASE_URL` starts with `postgres://` or `postgresql://`.
    Pg(diesel::PgConnection),
    /// SQLite (WAL), the embedded default.
    Sqlite(SqliteConnection),
}

/// A connection to the one backend of this build (see the module docs); the same queries
/// compile against it as against the two-backend enum of a `postgres` build.
#[cfg(not(feature = "postgres"))]
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// SQLite (WAL), the embedded default.
    Sqlite(SqliteConnection),
}

/// Whether this build can talk to PostgreSQL (the `postgres` feature).
pub const POSTGRES_BUILT_IN: bool = cfg!(feature = "postgres");

impl DbConn {
    /// The SQLite connection, when that is the backend.
    fn as_sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match self {
            DbConn::Sqlite(c) => Some(c),
            #[cfg(feature = "postgres")]
            DbConn::Pg(_) => None,
        }
    }
}

/// Connection pool.
pub type DbPool = Pool<ConnectionManager<DbConn>>;

/// Which backend a URL selects.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        if let Some(c) = conn.as_sqlite() {
            sqlite_pragmas(c).map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// WAL lets readers run beside the writer; busy_timeout turns lock contention between
/// pool connections into waiting instead of SQLITE_BUSY errors, and comes first: the pool
/// opens several connections at once, and switching a new file to WAL without it failed
/// at once with "database is locked" (logged by r2d2, then retried); secure_delete overwrites
/// what a delete frees, so a deleted row (a sign-in request's address, an erased
/// workspace's text) cannot be read back from the file's free pages.
fn sqlite_pragmas(c: &mut SqliteConnection) -> diesel::QueryResult<()> {
    c.batch_execute(
        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
    )
}

/// Opens the SQLite file once, as each pooled connection will. The pool retries a
/// failing open for 30 s and then reports only "timed out waiting for connection" (with
/// diesel's two-backend connection's "Invalid connection url" as its cause, whatever
/// SQLite said); a missing directory or a file that is not a database is better reported
/// at once, in SQLite's words.
fn open_sqlite(path: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use diesel::Connection as _;
    let mut c = SqliteConnection::establish(path)
        .with_context(|| format!("cannot open the SQLite database {path}"))?;
    sqlite_pragmas(&mut c).with_context(|| format!("cannot use the SQLite database {path}"))
}

/// Opens the pool and runs pending migrations.
pub fn connect(url: &str) -> anyhow::Result<DbPool> {
    let url = url.strip_prefix("sqlite://").unwrap_or(url).to_owned();
    if is_postgres(&url) && !POSTGRES_BUILT_IN {
        anyhow::bail!(
            "the database URL is a PostgreSQL one, but this control plane was built without \
             PostgreSQL support: build it with `cargo build --release -p control-plane \
             --features postgres` (needs libpq-dev), or leave DATABASE_URL unset for SQLite"
        );
    }
    if !is_postgres(&url) {
        open_sqlite(&url)?;
    }
    let size = if is_postgres(&url) { 16 } else { 8 };
    let pool = Pool::builder()
        .max_size(size)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(ConnectionManager::<DbConn>::new(url))?;
    let mut conn = pool.get()?;
    run_migrations(&mut conn)?;
    Ok(pool)
}

/// Reverts migrations, newest first, until `version` (`20261204000013`) is no longer
/// applied: a test of a migration then inserts rows as the schema before it had them and
/// runs [`run_migrations`] to see what the migration does to them.
#[cfg(test)]
pub(crate) fn revert_to_before(conn: &mut DbConn, version: &str) -> anyhow::Result<()> {
    fn go<C: MigrationHarness<B>, B: diesel::backend::Backend>(
        c: &mut C,
        m: fn() -> EmbeddedMigrations,
        version: &str,
    ) -> anyhow::Result<()> {
        let applied = |c: &mut C| -> anyhow::Result<bool> {
            Ok(c.applied_migrations()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .iter()
                .any(|v| v.to_string() == version))
        };
        while applied(c)? {
            c.revert_last_migration(m())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    }
    match conn {
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => go(c, || PG_MIGRATIONS, version),
        DbConn::Sqlite(c) => go(c, || SQLITE_MIGRATIONS, version),
    }
}

/// Runs the embedded migrations of the connection's backend.
pub fn run_migrations(conn: &mut DbConn) -> anyhow::Result<()> {
    let applied = match conn {
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    for m in applied {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(())
}

/// Runs `f` with a pooled connection on the blocking thread pool.
pub async fn run<T, F>(pool: &DbPool, f: F) -> Result<T, AppError>
where
    F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| AppError::internal(e.into()))?;
        f(&mut conn)
    })
    .await
    .map_err(|e| AppError::internal(e.into()))?
}

/// Runs `f` in a transaction that takes the write lock up front on SQLite (`BEGIN
/// IMMEDIATE`). A deferred transaction that reads and then writes cannot upgrade its lock
/// while another connection writes: SQLite answers "database is locked" at once, without
/// waiting out `busy_timeout`. Taking the lock first makes concurrent writers queue
/// instead. PostgreSQL (and a nested call, which becomes a savepoint) use the ordinary
/// transaction.
pub fn transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
    let outermost_sqlite = match conn.as_sqlite() {
        Some(c) => {
            let depth =
                AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?;
            if depth.is_none() {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
                true
            } else {
                false
            }
        }
        None => false,
    };
    if !outermost_sqlite {
        return conn.transaction(f);
    }
    match f(conn) {
        Ok(v) => match <DbConn as Connection>::TransactionManager::commit_transaction(conn) {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// Whether a diesel error is a unique-constraint violation (used for idempotent inserts
/// that must behave the same on both backends).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Whether a write may succeed if simply tried again: another writer took the same
/// unique key, or (SQLite) a deferred transaction could not upgrade to a write lock, which
/// SQLite reports at once as "database is locked" instead of waiting out busy_timeout.
pub fn is_retryable(e: &diesel::result::Error) -> bool {
    is_unique_violation(e)
        || matches!(e, diesel::result::Error::DatabaseError(_, info)
            if info.message().contains("database is locked"))
}

/// Current time, unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Current time, unix milliseconds.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A fresh UUID v4 string.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A database for one test: SQLite at a path the test chooses, or, when
/// `TEST_DATABASE_URL` names a PostgreSQL server, a fresh database on it that is dropped
/// with this value. Used by the unit tests and the end-to-end harness alike.
#[doc(hidden)]
pub struct ScratchDb {
    /// The URL to connect to.
    pub url: String,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pg: Option<(String, String)>,
}

impl ScratchDb {
    /// `sqlite_path` is used unless `TEST_DATABASE_URL` is set; `prefix` names the
    /// PostgreSQL database (`<prefix>_<uuid>`).
    ///
    /// # Panics
    /// When `TEST_DATABASE_URL` is set but the server cannot be reached, or this build has
    /// no PostgreSQL (a run meant for PostgreSQL must not pass quietly on SQLite).
    pub fn new(sqlite_path: &std::path::Path, prefix: &str) -> ScratchDb {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => Self::postgres(base, prefix),
            _ => ScratchDb {
                url: sqlite_path.display().to_string(),
                pg: None,
            },
        }
    }

    #[cfg(feature = "postgres")]
    #[allow(clippy::unwrap_used)]
    fn postgres(base: String, prefix: &str) -> ScratchDb {
        use diesel::{Connection, RunQueryDsl};
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = diesel::PgConnection::establish(&base).expect("TEST_DATABASE_URL reachable");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create database");
        let (url_prefix, _) = base.rsplit_once('/').expect("database URL with a path");
        ScratchDb {
            url: format!("{url_prefix}/{name}"),
            pg: Some((base, name)),
        }
    }

    #[cfg(not(feature = "postgres"))]
    fn postgres(_: String, _: &str) -> ScratchDb {
        panic!(
            "TEST_DATABASE_URL is set, but this build has no PostgreSQL: \
             run the tests with `--features control-plane/postgres`"
        )
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        if let Some((base, name)) = self.pg.take() {
            use diesel::{Connection, RunQueryDsl};
            if let Ok(mut c) = diesel::PgConnection::establish(&base) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c);
            }
        }
    }
}

#[cfg(test)]
mod schema_tests;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;

    /// A deleted row cannot be read back from the SQLite file: `secure_delete` overwrites
    /// the space it leaves (a sign-in request's address, a destroyed workspace's text).
    #[test]
    fn a_deleted_row_leaves_no_readable_bytes_in_the_sqlite_file() {
        use crate::infra::schema::users;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.sqlite");
        let pool = connect(path.to_str().unwrap()).unwrap();
        let mut conn = pool.get().unwrap();
        let canary = "canary-7f3a9c@deleted.test";
        for (i, email) in [canary, "kept@example.test"].into_iter().enumerate() {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(format!("u{i}")),
                    users::email.eq(email),
                    users::created_at.eq(now()),
                ))
                .execute(&mut conn)
                .unwrap();
        }
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .unwrap();
        diesel::delete(users::table.filter(users::email.eq(canary)))
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(dir.path().join("cp.sqlite-wal")).unwrap_or_default());
        let found = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(found("kept@example.test"), "the file is the database");
        assert!(!found(canary), "the deleted address is still in the file");
    }

    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn count(conn: &mut DbConn) -> i64 {
        diesel::sql_query("SELECT COUNT(*) AS n FROM t")
            .get_result::<N>(conn)
            .unwrap()
            .n
    }

    /// Two writers that each read before writing: with deferred transactions the second
    /// fails at once with "database is locked"; with `transaction` it waits its turn.
    #[test]
    fn sqlite_writers_that_read_first_queue_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(dir.path().join("t.sqlite").to_str().unwrap()).unwrap();
        diesel::sql_query("CREATE TABLE t (v BIGINT NOT NULL)")
            .execute(&mut pool.get().unwrap())
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let mut conn = pool.get().unwrap();
                    for _ in 0..25 {
                        transaction::<_, diesel::result::Error, _>(&mut conn, |c| {
                            let before = count(c);
                            std::thread::yield_now();
                            diesel::sql_query(format!("INSERT INTO t (v) VALUES ({before})"))
                                .execute(c)?;
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut conn = pool.get().unwrap();
        assert_eq!(count(&mut conn), 100);

        // An error rolls back; a nested call is a savepoint inside the outer one.
        let r = transaction::<(), diesel::result::Error, _>(&mut conn, |c| {
            diesel::sql_query("INSERT INTO t (v) VALUES (1)").execute(c)?;
            transaction::<_, diesel::result::Error, _>(c, |c| {
                diesel::sql_query("INSERT INTO t (v) VALUES (2)").execute(c)
            })?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(r.is_err());
        assert_eq!(count(&mut conn), 100);
        transaction::<_, diesel::result::Error, _>(&mut conn, |c| {
            diesel::sql_query("INSERT INTO t (v) VALUES (3)").execute(c)
        })
        .unwrap();
        assert_eq!(count(&mut conn), 101);
    }

    #[test]
    fn a_postgres_url_needs_a_build_with_postgres() {
        let Err(e) = connect("postgres://nobody@127.0.0.1:1/none") else {
            panic!("nothing listens on port 1");
        };
        let e = e.to_string();
        if POSTGRES_BUILT_IN {
            // Built in: it tries to connect, and fails for want of a server.
            assert!(!e.contains("built without PostgreSQL"), "{e}");
        } else {
            assert!(e.contains("built without PostgreSQL support"), "{e}");
            assert!(e.contains("--features postgres"), "{e}");
        }
    }
}
