//! Which replica runs the periodic sweeps (the fleet sweeper, the billing sweeper).
//!
//! Jobs and emails are claimed row by row with leases, so every replica runs those
//! workers; a sweep is a pass over the whole fleet, and two replicas sweeping at once
//! would only do the same work twice and race on the same rows. So one replica leads:
//!
//! - On PostgreSQL the leader holds a session-level advisory lock
//!   (`pg_try_advisory_lock`) on a connection of its own, outside the pool. The others
//!   ask for it every [`RETRY`]. A leader that dies (even `kill -9`) closes its
//!   connection, the server drops the lock with it, and the next replica to ask takes
//!   over. A leader checks its connection every [`RETRY`] and stops leading at once when
//!   it is gone: for up to that long two replicas may both sweep, which the sweeps
//!   tolerate (every change they make is a compare-and-set transition).
//! - On SQLite there is one process by design: it always leads.
//!
//! Changes of leadership are logged (docs/LOGGING.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a follower asks for the lock, and a leader checks its connection.
pub const RETRY: Duration = Duration::from_secs(2);

/// The advisory lock's key: "outpost" in ASCII. Advisory locks are per database, so
/// control planes on other databases of the same server do not share it.
pub const LOCK_KEY: i64 = 0x006f_7574_706f_7374;

/// Whether this replica leads. Cheap to read; written by the leadership thread.
#[derive(Debug)]
pub struct Leadership {
    leading: AtomicBool,
}

impl Leadership {
    /// A replica that leads from the start and never stops (SQLite, tests).
    pub fn always() -> Arc<Leadership> {
        Arc::new(Leadership {
            leading: AtomicBool::new(true),
        })
    }

    /// Whether this replica runs the periodic sweeps now.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn set(&self, leading: bool, why: &str) {
        if self.leading.swap(leading, Ordering::SeqCst) != leading {
            if leading {
                tracing::info!(
                    reason = why,
                    "this replica now leads: it runs the periodic sweeps"
                );
            } else {
                tracing::warn!(
                    reason = why,
                    "this replica no longer leads: another replica may take the periodic sweeps"
                );
            }
        }
    }
}

/// Starts leading (SQLite), or starts the thread that competes for the lock
/// (PostgreSQL) and returns at once: the first answer comes within a moment.
pub fn start(database_url: &str) -> Arc<Leadership> {
    #[cfg(feature = "postgres")]
    if super::db::is_postgres(database_url) {
        let l = Arc::new(Leadership {
            leading: AtomicBool::new(false),
        });
        let (me, url) = (l.clone(), database_url.to_owned());
        std::thread::Builder::new()
            .name("leadership".into())
            .spawn(move || pg::compete(&me, &url, || false))
            .expect("a thread for leadership");
        return l;
    }
    let _ = database_url;
    Leadership::always()
}

#[cfg(feature = "postgres")]
mod pg {
    use super::{Leadership, LOCK_KEY, RETRY};
    use diesel::{Connection as _, PgConnection, QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        got: bool,
    }

    /// Asks for the lock on `conn`; `Err` when the connection is unusable.
    fn try_lock(conn: &mut PgConnection) -> diesel::QueryResult<bool> {
        diesel::sql_query("SELECT pg_try_advisory_lock($1) AS got")
            .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
            .get_result::<Got>(conn)
            .map(|g| g.got)
    }

    /// Competes for the lock until `stop` says so (never, in the CP). Blocking.
    pub(super) fn compete(me: &Leadership, url: &str, stop: impl Fn() -> bool) {
        let mut conn: Option<PgConnection> = None;
        while !stop() {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match PgConnection::establish(url) {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        me.set(false, &format!("cannot connect to the database: {e}"));
                        std::thread::sleep(RETRY);
                        continue;
                    }
                },
            };
            let answer = if me.is_leader() {
                // Still holding it: the connection answers, so the session (and the
                // lock with it) is alive.
                diesel::sql_query("SELECT 1").execute(c).map(|_| true)
            } else {
                try_lock(c)
            };
            match answer {
                Ok(true) => me.set(true, "took the advisory lock"),
                Ok(false) => {}
                Err(e) => {
                    me.set(
                        false,
                        &format!("lost the connection that holds the lock: {e}"),
                    );
                    conn = None;
                }
            }
            std::thread::sleep(RETRY);
        }
        me.set(false, "stopped");
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};

        fn wait_until(what: &str, f: impl Fn() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(15);
            while !f() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// Two replicas on one PostgreSQL database: one leads; when it goes away (its
        /// connection closed, as when the process dies) the other takes over.
        #[test]
        fn one_replica_leads_and_another_takes_over_when_it_goes() {
            let dir = tempfile::tempdir().unwrap();
            let scratch =
                crate::infra::db::ScratchDb::new(&dir.path().join("l.sqlite"), "outpost_leader");
            if !crate::infra::db::is_postgres(&scratch.url) {
                eprintln!("skipped: PostgreSQL only (TEST_DATABASE_URL is not set)");
                return;
            }
            let replica = |url: String| {
                let me = Arc::new(Leadership {
                    leading: AtomicBool::new(false),
                });
                let stop = Arc::new(AtomicBool::new(false));
                let (m, s) = (me.clone(), stop.clone());
                let t = std::thread::spawn(move || compete(&m, &url, || s.load(Ordering::SeqCst)));
                (me, stop, t)
            };
            let (a, stop_a, ta) = replica(scratch.url.clone());
            wait_until("a leader", || a.is_leader());
            let (b, stop_b, tb) = replica(scratch.url.clone());
            std::thread::sleep(RETRY * 2);
            assert!(a.is_leader() && !b.is_leader(), "exactly one leads");

            stop_a.store(true, Ordering::SeqCst);
            ta.join().unwrap();
            assert!(!a.is_leader());
            wait_until("the other replica to lead", || b.is_leader());
            stop_b.store(true, Ordering::SeqCst);
            tb.join().unwrap();
        }
    }
}
