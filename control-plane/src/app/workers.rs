//! Every background loop of the control plane, in one list. Jobs and emails are claimed
//! row by row with leases, so every replica runs those workers; the periodic sweeps (the
//! fleet sweeper, the billing sweeper) run on the replica that leads (`infra::leader`:
//! a PostgreSQL advisory lock; on SQLite the one process).

use super::state::State;
use crate::infra::db;
use crate::provisioning::{self, jobs, Provisioner};
use crate::{billing, retention, secrets, workspaces};
use std::sync::Arc;
use std::time::Duration;

/// How often the fleet sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How often the database probe asks the database whether it answers.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long the probe waits for a pooled connection...
const PROBE_POOL_WAIT: Duration = Duration::from_secs(1);
/// ...and for its whole answer, connection and `SELECT 1` included (a server that stops
/// answering without closing the connection would otherwise hold it for minutes). So
/// `/healthz` says the database is down at most about two seconds after it went away.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Starts every loop:
/// - re-adopting local node processes left by a previous run (once, local provider);
/// - the provisioning job worker (`provisioning::jobs`);
/// - the database probe: whether the database answers, for `/healthz` and for the
///   sweeper's offline grace (`infra::db::health`);
/// - the fleet sweeper: silent nodes go offline, a fleet upgrade moves on (`upgrades`),
///   nodes that never enroll fail, undelivered
///   secrets expire, export windows end (and their nodes are woken to delete the file),
///   the CP's own retention schedule runs when due; it waits while the database is down;
///   only on the leading replica;
/// - the billing sweeper (only with billing on, only on the leading replica);
/// - the mail outbox worker (`notify::outbox`): sends queued emails, retries, prunes.
pub fn start(state: &State) {
    actix_web::rt::spawn(crate::notify::outbox::run_worker(
        state.db.clone(),
        state.mailer.clone(),
        state.config.mail.retry,
    ));
    let rt = Arc::new(jobs::Runtime {
        db: state.db.clone(),
        provisioner: state.provisioner.clone(),
        gateway_url: state.gateway_url.clone(),
        ca_pem: state.ca.cert_pem().to_owned(),
        public_url: state.public_url.clone(),
        release_public_key: state.config.release_public_key.clone(),
    });
    let r = rt.clone();
    actix_web::rt::spawn(async move {
        let Provisioner::Local(local) = &*r.provisioner else {
            return;
        };
        if let Err(e) = local.readopt(&r).await {
            tracing::error!(error = %format!("{e:#}"), "re-adopting local nodes failed");
        }
    });
    actix_web::rt::spawn(async move { jobs::run_worker(rt).await });
    actix_web::rt::spawn(probe(state.db.clone()));
    let s = state.clone();
    actix_web::rt::spawn(async move {
        loop {
            // While the database is down a pass can only fail; the probe says when it is
            // back, and the grace starts again from then.
            if s.leader.is_leader() && !db::health(&s.db).is_down() {
                let st = s.clone();
                let r = db::run(&s.db, move |conn| sweep(conn, &st)).await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
            actix_web::rt::time::sleep(SWEEP_EVERY).await;
        }
    });
    if let Some(rt) = super::reactions::billing_runtime(state) {
        billing::start_worker(rt, state.leader.clone());
    }
}

/// Asks the database whether it answers, every [`PROBE_EVERY`], within
/// [`PROBE_TIMEOUT`]: the one place that marks it reachable again. A probe stuck on a
/// server that does not answer is not started twice; the database counts as down until
/// one succeeds.
async fn probe(pool: db::DbPool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let busy = Arc::new(AtomicBool::new(false));
    loop {
        if !busy.swap(true, Ordering::SeqCst) {
            let (p, b) = (pool.clone(), busy.clone());
            let asked = actix_web::rt::task::spawn_blocking(move || {
                db::probe(&p, PROBE_POOL_WAIT);
                b.store(false, Ordering::SeqCst);
            });
            let health = db::health(&pool);
            match actix_web::rt::time::timeout(PROBE_TIMEOUT, asked).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => health.mark_down(&format!("the database probe failed: {e}")),
                Err(_) => health.mark_down(&format!(
                    "the database did not answer within {} ms",
                    PROBE_TIMEOUT.as_millis()
                )),
            }
        } else {
            db::health(&pool).mark_down("the database has not answered the last probe yet");
        }
        actix_web::rt::time::sleep(PROBE_EVERY).await;
    }
}

/// One pass of the fleet sweeper. The offline grace runs from the later of this
/// process's start and the end of its last database outage: reports that could not be
/// ingested while the database was away are not silence.
fn sweep(conn: &mut db::DbConn, state: &State) -> crate::error::AppResult<()> {
    let cx = provisioning::SweepContext {
        grace_from: state
            .started_at
            .max(db::health(&state.db).reachable_since()),
        offline_after_secs: state.config.offline_after_secs,
        enroll_timeout_secs: state.config.enroll_timeout_secs,
        notifier: state.notifier(),
    };
    provisioning::sweep(conn, &cx)?;
    // A fleet upgrade in progress moves on; its failure must not stop the rest of the pass.
    match crate::upgrades::service::advance(conn, state.config.upgrade_timeout_secs) {
        Ok(nodes) => nodes.iter().for_each(|n| state.command_notify.notify(n)),
        Err(e) => tracing::warn!(error = %e, "advancing the fleet upgrade failed"),
    }
    secrets::expire_undelivered(conn)?;
    for node in workspaces::service::end_export_windows(
        conn,
        state.config.deprovision_timeout_secs,
        &super::reactions::WorkspaceReactions,
    )? {
        state.command_notify.notify(&node);
    }
    if retention::run_if_due(conn, db::now())?.is_some() {
        // Workspaces deleted before their text was deleted with them (older versions).
        super::reactions::forget_deleted_workspaces(conn)?;
    }
    Ok(())
}
