//! Every background loop of the control plane, in one list. Each is safe to run on
//! several replicas at once (jobs are claimed, sweeps are idempotent transitions).

use super::state::State;
use crate::infra::db;
use crate::provisioning::{self, jobs, Provisioner};
use crate::{billing, retention, secrets, workspaces};
use std::sync::Arc;
use std::time::Duration;

/// How often the fleet sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Starts every loop:
/// - re-adopting local node processes left by a previous run (once, local provider);
/// - the provisioning job worker (`provisioning::jobs`);
/// - the fleet sweeper: silent nodes go offline, nodes that never enroll fail, undelivered
///   secrets expire, export windows end (and their nodes are woken to delete the file),
///   the CP's own retention schedule runs when due;
/// - the billing sweeper (only with billing on).
pub fn start(state: &State) {
    let rt = Arc::new(jobs::Runtime {
        db: state.db.clone(),
        provisioner: state.provisioner.clone(),
        gateway_url: state.gateway_url.clone(),
        ca_pem: state.ca.cert_pem().to_owned(),
        mailer: state.mailer.clone(),
        public_url: state.public_url.clone(),
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
    let s = state.clone();
    actix_web::rt::spawn(async move {
        loop {
            let st = s.clone();
            let r = db::run(&s.db, move |conn| sweep(conn, &st)).await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "sweep failed");
            }
            actix_web::rt::time::sleep(SWEEP_EVERY).await;
        }
    });
    if let Some(rt) = super::reactions::billing_runtime(state) {
        billing::start_worker(rt);
    }
}

/// One pass of the fleet sweeper.
fn sweep(conn: &mut db::DbConn, state: &State) -> crate::error::AppResult<()> {
    let cx = provisioning::SweepContext {
        started_at: state.started_at,
        offline_after_secs: state.config.offline_after_secs,
        enroll_timeout_secs: state.config.enroll_timeout_secs,
        notifier: state.notifier(),
    };
    provisioning::sweep(conn, &cx)?;
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
