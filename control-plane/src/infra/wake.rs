//! Waking a node's command long-poll when a command is queued for it, on whichever
//! replica the node is polling.
//!
//! In the process that queued the command, the service calls [`CommandNotify::notify`]
//! after its transaction. Across replicas (PostgreSQL), inserting a command also runs
//! `pg_notify('outpost_commands', <node id>)` in the same transaction ([`announce`]), so
//! the notification goes out at commit and never for a rolled-back command; every
//! replica listens on a connection of its own ([`listen`]) and wakes its local poll.
//! The node id is the only thing sent, and it is metadata. A waiting long-poll reads the
//! database only when woken: a lost notification is covered by waking every poll when
//! the listener (re)connects, and by a read every [`FALLBACK_RECHECK`] while it is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The PostgreSQL channel commands are announced on.
pub const CHANNEL: &str = "outpost_commands";

/// How often the listener looks for notifications that have arrived.
#[cfg(feature = "postgres")]
const LISTEN_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// How often a waiting long-poll reads its commands while notifications from other
/// replicas may be lost (the PostgreSQL listener is down).
pub const FALLBACK_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Wakes long-polls when commands are queued. Clones share the handles.
#[derive(Default, Clone)]
pub struct CommandNotify {
    polls: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    /// Set while notifications from other replicas may be lost.
    degraded: Arc<std::sync::atomic::AtomicBool>,
}

impl CommandNotify {
    /// How often a waiting long-poll must read the database on its own: never while
    /// every queued command wakes it (one SQLite process, or a working listener).
    pub fn recheck_every(&self) -> Option<std::time::Duration> {
        self.degraded
            .load(std::sync::atomic::Ordering::Relaxed)
            .then_some(FALLBACK_RECHECK)
    }

    /// Marks notifications from other replicas as possibly lost (or no longer), and wakes
    /// every poll so it reads what it may have missed and picks up the new period.
    pub fn set_degraded(&self, degraded: bool) {
        self.degraded
            .store(degraded, std::sync::atomic::Ordering::Relaxed);
        let polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        polls.values().for_each(|n| n.notify_one());
    }

    /// The wake-up handle of a node's long-poll.
    pub(crate) fn handle(&self, node_id: &str) -> Arc<Notify> {
        let mut m = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(node_id.to_owned()).or_default().clone()
    }

    /// Wakes the node's long-poll, if any.
    pub fn notify(&self, node_id: &str) {
        self.handle(node_id).notify_one();
    }
}

/// Tells the other replicas, at commit, that `node_id` has a new command (PostgreSQL; a
/// no-op on SQLite, which has one process). Call it on the connection that inserts the
/// command.
pub fn announce(conn: &mut super::db::DbConn, node_id: &str) -> diesel::QueryResult<()> {
    #[cfg(feature = "postgres")]
    if let super::db::DbConn::Pg(c) = conn {
        use diesel::RunQueryDsl as _;
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(CHANNEL)
            .bind::<diesel::sql_types::Text, _>(node_id)
            .execute(c)?;
    }
    let _ = (conn, node_id);
    Ok(())
}

/// Listens for commands queued by other replicas and wakes the long-polls of this one
/// (PostgreSQL; nothing to do on SQLite). Starts a thread and returns.
pub fn listen(database_url: &str, notify: CommandNotify) {
    #[cfg(feature = "postgres")]
    if super::db::is_postgres(database_url) {
        let url = database_url.to_owned();
        std::thread::Builder::new()
            .name("command-listener".into())
            .spawn(move || pg_listen(&url, &notify, || false))
            .expect("a thread for the command listener");
        return;
    }
    let _ = (database_url, notify);
}

/// The listener's loop, until `stop` says so (never, in the CP). Blocking.
#[cfg(feature = "postgres")]
fn pg_listen(url: &str, notify: &CommandNotify, stop: impl Fn() -> bool) {
    use diesel::{Connection as _, PgConnection, RunQueryDsl as _};
    let mut conn: Option<PgConnection> = None;
    let mut failing = false;
    while !stop() {
        if conn.is_none() {
            let opened = PgConnection::establish(url).and_then(|mut c| {
                diesel::sql_query(format!("LISTEN {CHANNEL}"))
                    .execute(&mut c)
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(c)
            });
            match opened {
                Ok(c) => {
                    if failing {
                        tracing::info!("listening for commands queued by other replicas again");
                    }
                    failing = false;
                    conn = Some(c);
                    // Whatever was announced while nobody listened: every poll reads once.
                    notify.set_degraded(false);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot listen for commands queued by other replicas: their nodes are woken by a read every 2 s");
                        notify.set_degraded(true);
                    }
                    failing = true;
                    std::thread::sleep(std::time::Duration::from_secs(2));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut lost = false;
        for n in c.notifications_iter() {
            match n {
                Ok(n) => notify.notify(&n.payload),
                Err(e) => {
                    tracing::warn!(error = %e, "the command listener lost its connection");
                    lost = true;
                    break;
                }
            }
        }
        if lost {
            conn = None;
            failing = true;
            notify.set_degraded(true);
        }
        std::thread::sleep(LISTEN_EVERY);
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A command queued through one replica's connection wakes the long-poll of a node
    /// polling another replica, at commit, and a rolled-back one wakes nobody.
    #[tokio::test]
    async fn a_command_announced_on_one_connection_wakes_the_poll_of_another_replica() {
        let dir = tempfile::tempdir().unwrap();
        let scratch =
            crate::infra::db::ScratchDb::new(&dir.path().join("w.sqlite"), "outpost_wake");
        if !crate::infra::db::is_postgres(&scratch.url) {
            eprintln!("skipped: PostgreSQL only (TEST_DATABASE_URL is not set)");
            return;
        }
        let pool = crate::infra::db::connect(&scratch.url).unwrap();
        let other_replica = CommandNotify::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s, url) = (other_replica.clone(), stop.clone(), scratch.url.clone());
        let t = std::thread::spawn(move || pg_listen(&url, &n, || s.load(Ordering::SeqCst)));
        let woken = other_replica.handle("node-1");
        let idle = other_replica.handle("node-2");
        // The listener is up once a notification gets through.
        let mut got = false;
        for _ in 0..50 {
            announce(&mut pool.get().unwrap(), "node-1").unwrap();
            if tokio::time::timeout(Duration::from_millis(200), woken.notified())
                .await
                .is_ok()
            {
                got = true;
                break;
            }
        }
        assert!(got, "the other replica's poll was never woken");
        // The listener coming up woke every poll once (whatever was announced while nobody
        // listened): that stored wake-up is not what this test is about.
        let _ = tokio::time::timeout(Duration::from_millis(100), idle.notified()).await;

        // Rolled back: no wake-up.
        let mut c = pool.get().unwrap();
        let _ = crate::infra::db::transaction::<(), diesel::result::Error, _>(&mut c, |c| {
            announce(c, "node-2")?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(800), idle.notified())
                .await
                .is_err(),
            "a rolled-back command woke a poll"
        );
        // Committed: woken well within the 2 s the poll would otherwise take.
        let start = std::time::Instant::now();
        crate::infra::db::transaction::<(), diesel::result::Error, _>(&mut c, |c| {
            announce(c, "node-2")
        })
        .unwrap();
        tokio::time::timeout(Duration::from_secs(1), idle.notified())
            .await
            .expect("woken at commit");
        assert!(start.elapsed() < Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }
}
