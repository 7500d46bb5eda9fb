//! Database access: one diesel code base over SQLite (default) and PostgreSQL, the backend
//! picked from the URL scheme (as vaultwarden does). Migrations are embedded, one folder
//! per backend, and run at start.
//!
//! PostgreSQL is compiled in only with the `postgres` feature (it links the system libpq),
//! so the default build needs nothing but Rust; a `postgres://` URL given to a build
//! without it is refused at start with a message saying how to get one that has it.

use crate::error::AppError;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{CustomizeConnection, HandleError, ManageConnection, Pool, R2D2Connection};
use diesel::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::Arc;
use std::time::Duration;

pub mod health;
pub mod stmt;
pub use health::DbHealth;

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
    /// Whether this connection is to PostgreSQL (for the few statements written per
    /// backend).
    pub fn is_postgres(&self) -> bool {
        match self {
            DbConn::Sqlite(_) => false,
            #[cfg(feature = "postgres")]
            DbConn::Pg(_) => true,
        }
    }

    /// The SQLite connection, when that is the backend.
    fn as_sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match self {
            DbConn::Sqlite(c) => Some(c),
            #[cfg(feature = "postgres")]
            DbConn::Pg(_) => None,
        }
    }
}

/// Connection pool, with what it has seen of the database's reachability (which the
/// pool's own type has no room for). Derefs to the r2d2 pool: `pool.get()` as usual.
#[derive(Debug, Clone)]
pub struct DbPool {
    pool: Pool<Manager>,
    health: Arc<DbHealth>,
}

impl std::ops::Deref for DbPool {
    type Target = Pool<Manager>;

    fn deref(&self) -> &Pool<Manager> {
        &self.pool
    }
}

/// How long a request waits for a pooled connection before it is answered 503
/// `database_unavailable`. r2d2's default, 30 s, held every request (and `/healthz`) that
/// long while the database was away, and then answered 500.
pub const POOL_WAIT: Duration = Duration::from_secs(5);

/// Opens the pool's connections: one backend, picked from the URL like [`connect`] does.
/// diesel's own manager establishes a two-backend connection by trying each backend in
/// turn and, when all fail, reports only "Invalid connection url for multiconnection",
/// which hid libpq's reason ("Connection refused", "password authentication failed") from
/// the log; this one returns the backend's own error.
#[derive(Debug)]
pub struct Manager {
    url: String,
}

/// Establishes one connection to the backend the URL names, with that backend's error.
fn establish(url: &str) -> diesel::ConnectionResult<DbConn> {
    use diesel::Connection as _;
    #[cfg(feature = "postgres")]
    if is_postgres(url) {
        return diesel::PgConnection::establish(url).map(DbConn::Pg);
    }
    SqliteConnection::establish(url).map(DbConn::Sqlite)
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        establish(&self.url).map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// The pool's failures to open a connection (r2d2 retries them in the background) go to
/// the database's health, which logs them once per outage and cause instead of r2d2
/// logging each attempt.
#[derive(Debug)]
struct ToHealth(Arc<DbHealth>);

impl HandleError<diesel::r2d2::Error> for ToHealth {
    fn handle_error(&self, e: diesel::r2d2::Error) {
        self.0.mark_down(&e.to_string());
    }
}

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

/// Opens one connection directly, as each pooled connection will. The pool retries a
/// failing open until [`POOL_WAIT`] is over and then reports "timed out waiting for
/// connection"; a missing directory, a file that is not a database or a PostgreSQL
/// server that refuses us is better reported at once, in the backend's words. (A
/// PostgreSQL URL can hold a password, so it is not repeated in the message.)
fn open_directly(url: &str) -> anyhow::Result<DbConn> {
    use anyhow::Context as _;
    if is_postgres(url) {
        return establish(url).context("cannot connect to the PostgreSQL database");
    }
    let mut c = establish(url).with_context(|| format!("cannot open the SQLite database {url}"))?;
    if let Some(s) = c.as_sqlite() {
        sqlite_pragmas(s).with_context(|| format!("cannot use the SQLite database {url}"))?;
    }
    Ok(c)
}

/// The pool's settings, its manager, and a fresh [`DbHealth`] that the pool's failures
/// to connect are reported to.
fn pool_parts(url: String) -> (diesel::r2d2::Builder<Manager>, Manager, Arc<DbHealth>) {
    let health = Arc::new(DbHealth::new());
    let builder = Pool::builder()
        .connection_timeout(POOL_WAIT)
        .connection_customizer(Box::new(SqlitePragmas))
        .error_handler(Box::new(ToHealth(health.clone())));
    (builder, Manager { url }, health)
}

/// Opens the pool and runs pending migrations.
pub fn connect(url: &str) -> anyhow::Result<DbPool> {
    let url = usable_url(url)?;
    open_directly(&url)?;
    let size = if is_postgres(&url) { 16 } else { 8 };
    let (builder, manager, health) = pool_parts(url);
    let pool = DbPool {
        pool: builder.max_size(size).build(manager)?,
        health,
    };
    let mut conn = pool.get()?;
    run_migrations(&mut conn)?;
    Ok(pool)
}

/// One connection, opened as the pool's are, with pending migrations run: for a one-shot
/// command (`control-plane upgrade start`, `operator add`, …) that runs a statement or two
/// beside a running control plane. A pool would open eight connections (sixteen on
/// PostgreSQL, out of the server's `max_connections`) and wait for all of them.
pub fn connect_one(url: &str) -> anyhow::Result<DbConn> {
    let mut conn = open_directly(&usable_url(url)?)?;
    run_migrations(&mut conn)?;
    Ok(conn)
}

/// `url` without a `sqlite://` prefix, refused in words when it needs a backend this build
/// does not have.
fn usable_url(url: &str) -> anyhow::Result<String> {
    let url = url.strip_prefix("sqlite://").unwrap_or(url).to_owned();
    if is_postgres(&url) && !POSTGRES_BUILT_IN {
        anyhow::bail!(
            "the database URL is a PostgreSQL one, but this control plane was built without \
             PostgreSQL support: build it with `cargo build --release -p control-plane \
             --features postgres` (needs libpq-dev), or leave DATABASE_URL unset for SQLite"
        );
    }
    Ok(url)
}

/// Asks the pool's database whether it answers (a connection within `wait`, then
/// `SELECT 1`) and records the answer in its [`health`]: the one place that marks the
/// database reachable again. Run by the probe in `app::workers`, which also bounds the
/// whole call. Blocking.
pub fn probe(pool: &DbPool, wait: Duration) -> bool {
    use diesel::RunQueryDsl;
    let answered = pool
        .get_timeout(wait)
        .map_err(|e| e.to_string())
        .and_then(|mut c| {
            diesel::sql_query("SELECT 1")
                .execute(&mut c)
                .map_err(|e| e.to_string())
        });
    match answered {
        Ok(_) => {
            health(pool).mark_up();
            true
        }
        Err(cause) => {
            health(pool).mark_down(&cause);
            false
        }
    }
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
        let health = health(&pool);
        let r = pool
            .get()
            .map_err(AppError::from)
            .and_then(|mut c| f(&mut c));
        if let Err(AppError::DatabaseUnavailable(e)) = &r {
            health.mark_down(&format!("{e:#}"));
        }
        r
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

/// Whether the pool's database was reachable, as this process last saw it.
pub fn health(pool: &DbPool) -> &DbHealth {
    &pool.health
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

    /// A pool that cannot open its database says why in the backend's own words (diesel's
    /// two-backend manager said "Invalid connection url for multiconnection" whatever
    /// happened), the database counts as down until a probe gets an answer, and the period
    /// it has been reachable starts again then (what the offline grace follows). SQLite
    /// here: its file cannot be opened while its directory is missing.
    #[test]
    fn an_unreachable_database_is_named_in_its_own_words_and_its_return_dated() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("later");
        let (builder, manager, seen) = pool_parts(sub.join("cp.sqlite").display().to_string());
        let pool = DbPool {
            pool: builder.min_idle(Some(0)).build_unchecked(manager),
            health: seen,
        };
        let opened = health(&pool).reachable_since();

        assert!(!probe(&pool, Duration::from_millis(300)));
        assert!(health(&pool).is_down());
        let e = pool.get_timeout(Duration::from_millis(300)).err().unwrap();
        let said = e.to_string();
        assert!(said.contains("Unable to open the database file"), "{said}");
        assert!(!said.contains("Invalid connection url"), "{said}");
        // A request meanwhile is answered 503 `database_unavailable`, not 500.
        let r = AppError::from(e);
        assert_eq!(r.status(), actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.code(), "database_unavailable");

        // At least a second later (times are in seconds), the database is back.
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::create_dir(&sub).unwrap();
        assert!(probe(&pool, POOL_WAIT));
        assert!(!health(&pool).is_down());
        assert!(health(&pool).reachable_since() > opened);
    }

    #[test]
    fn a_postgres_url_needs_a_build_with_postgres() {
        for e in [
            connect("postgres://nobody@127.0.0.1:1/none").err(),
            connect_one("postgres://nobody@127.0.0.1:1/none").err(),
        ] {
            let e = e.expect("nothing listens on port 1").to_string();
            if POSTGRES_BUILT_IN {
                // Built in: it tries to connect, and fails for want of a server.
                assert!(!e.contains("built without PostgreSQL"), "{e}");
            } else {
                assert!(e.contains("built without PostgreSQL support"), "{e}");
                assert!(e.contains("--features postgres"), "{e}");
            }
        }
    }

    /// A one-shot command's connection on a new file: migrated, and in WAL with the pool's
    /// pragmas.
    #[test]
    fn a_one_shot_connection_is_migrated_and_opened_like_the_pools() {
        use diesel::RunQueryDsl as _;
        #[derive(diesel::QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cli.sqlite").display());
        let mut one = connect_one(&url).unwrap();
        let c = one.as_sqlite().expect("a SQLite URL opens SQLite");
        let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
            .get_result(c)
            .unwrap();
        assert_eq!(mode.journal_mode, "wal");
        diesel::sql_query("SELECT count(*) FROM users")
            .execute(&mut one)
            .expect("the schema is there");
    }
}
