//! Durable job queue. Jobs live in the `jobs` table; a worker claims one by setting a
//! lease (`locked_until`) with a compare-and-set update, so several CP replicas can share
//! one database and a crashed worker's job is taken over when its lease expires. Failures
//! back off exponentially (`next_run_at`) up to `max_attempts`.
//!
//! The worker and the provider's process supervisors share one [`Runtime`], built by
//! `app/workers.rs` from the app state.

use super::model::state;
use super::providers::Provisioner;
use super::service::{event, fail, mark_destroyed, transition};
use super::store;
use crate::error::AppError;
use crate::infra::db::{self, DbPool};
use crate::notify::Notifier;
use std::sync::Arc;
use std::time::Duration;

pub use super::model::job::{DEPROVISION_TIMEOUT, DESTROY_SERVER, PROVISION, RESTART_SERVER};
pub use super::store::{claim, enqueue, Job};

/// What the job worker and the provider's supervisors need; shared by every task they
/// start, so they outlive no request.
pub struct Runtime {
    /// Database pool.
    pub db: DbPool,
    /// The provider of servers (the app state holds the same one).
    pub provisioner: Arc<Provisioner>,
    /// URL nodes use to reach the gateway (written into bootstrap bundles).
    pub gateway_url: String,
    /// The internal CA's certificate (written into bootstrap bundles).
    pub ca_pem: String,
    /// Public base URL of the UI, for links in notices.
    pub public_url: String,
    /// The release public key written into bootstrap bundles (upgrades), if configured.
    pub release_public_key: Option<String>,
}

impl Runtime {
    /// Where failure notices go out from.
    pub fn notifier(&self) -> Notifier<'_> {
        Notifier {
            public_url: &self.public_url,
        }
    }
}

/// A shared [`Runtime`].
pub type Shared = Arc<Runtime>;

/// Error of a job step: the step name and a stable code, shown to the user in words.
#[derive(Debug)]
pub struct StepError {
    /// Step that failed (`provisioning`, `booting`…).
    pub step: &'static str,
    /// Stable code.
    pub code: &'static str,
    /// Trying again cannot help (quota, unknown flavor, refused credentials…): the node
    /// fails at once instead of after the job's last attempt.
    pub permanent: bool,
    /// Cause, for the log only.
    pub cause: anyhow::Error,
}

impl From<AppError> for StepError {
    fn from(e: AppError) -> Self {
        StepError {
            step: "provisioning",
            code: "internal_error",
            permanent: false,
            cause: anyhow::anyhow!("{e}: {}", e.message()),
        }
    }
}

async fn run_job(state: &Shared, job: &Job) -> Result<(), StepError> {
    match job.kind.as_str() {
        PROVISION => provision(state, &job.node_id).await,
        DESTROY_SERVER => destroy_server(state, &job.node_id).await,
        DEPROVISION_TIMEOUT => deprovision_timeout(state, &job.node_id).await,
        RESTART_SERVER => restart_server(state, &job.node_id).await,
        other => Err(StepError {
            step: "jobs",
            code: "unknown_job",
            permanent: true,
            cause: anyhow::anyhow!("unknown job kind {other}"),
        }),
    }
}

async fn provision(state: &Shared, node_id: &str) -> Result<(), StepError> {
    let id = node_id.to_owned();
    let proceed = db::run(&state.db, move |conn| {
        let st = store::state_of(conn, &id)?;
        if st == state::REQUESTED {
            transition(conn, &id, &[state::REQUESTED], state::PROVISIONING)?;
        }
        Ok(st == state::REQUESTED || st == state::PROVISIONING)
    })
    .await?;
    if !proceed {
        return Ok(());
    }
    match &*state.provisioner {
        Provisioner::Local(local) => local.create_server(state, node_id).await,
        Provisioner::Ovh(ovh) => ovh.create_server(state, node_id).await,
    }
}

async fn destroy_server(state: &Shared, node_id: &str) -> Result<(), StepError> {
    match &*state.provisioner {
        Provisioner::Local(local) => {
            local
                .destroy_server(node_id)
                .await
                .map_err(|cause| StepError {
                    step: "deprovisioning",
                    code: "provider_error",
                    permanent: false,
                    cause,
                })?
        }
        Provisioner::Ovh(ovh) => ovh.destroy_server(state, node_id).await?,
    }
    let id = node_id.to_owned();
    db::run(&state.db, move |conn| {
        let st = store::state_of(conn, &id)?;
        if st != state::DESTROYED {
            // Never enrolled: there were no keys or data to receipt.
            mark_destroyed(conn, &id, None)?;
        }
        event(conn, &id, "server", "destroyed by provider")?;
        Ok(())
    })
    .await?;
    Ok(())
}

async fn deprovision_timeout(state: &Shared, node_id: &str) -> Result<(), StepError> {
    let id = node_id.to_owned();
    let pending = db::run(&state.db, move |conn| {
        let st = store::state_of(conn, &id)?;
        if st == state::DEPROVISIONING {
            event(conn, &id, "receipt", "no_receipt")?;
        }
        Ok(st == state::DEPROVISIONING)
    })
    .await?;
    if pending {
        destroy_server(state, node_id).await?;
    }
    Ok(())
}

async fn restart_server(state: &Shared, node_id: &str) -> Result<(), StepError> {
    let id = node_id.to_owned();
    let waiting = db::run(&state.db, move |conn| {
        let st = store::state_of(conn, &id)?;
        Ok(st == state::ENROLLING)
    })
    .await?;
    if !waiting {
        // Moved on meanwhile (reported, deprovisioned, failed again): nothing to start.
        return Ok(());
    }
    match &*state.provisioner {
        Provisioner::Local(local) => local.restart_server(state, node_id).await,
        Provisioner::Ovh(ovh) => ovh.restart_server(state, node_id).await,
    }
}

/// The longest one run of a job may take: well inside its lease
/// ([`store::LEASE_S`]), so a job is never taken over while its first worker still runs
/// it (with two replicas, both could otherwise create a server). A step cut off is
/// retried like any failure; every step is idempotent by node id.
pub const RUN_LIMIT: Duration = Duration::from_secs(store::LEASE_S as u64 - 10);

/// Claims and runs jobs until the process exits. The worker's name (the job's
/// `locked_by`) starts with the process id, so an operator can tell which replica holds
/// a job.
pub async fn run_worker(state: Shared) {
    let worker = format!("worker-{}-{}", std::process::id(), uuid::Uuid::new_v4());
    loop {
        // While the database is away a claim can only wait out the pool and fail.
        if db::health(&state.db).is_down() {
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let w = worker.clone();
        let job = match db::run(&state.db, move |conn| claim(conn, &w)).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "claiming a job failed");
                None
            }
        };
        let Some(job) = job else {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let result = match tokio::time::timeout(RUN_LIMIT, run_job(&state, &job)).await {
            Ok(r) => r,
            Err(_) => Err(StepError {
                step: match job.kind.as_str() {
                    DESTROY_SERVER | DEPROVISION_TIMEOUT => "deprovisioning",
                    RESTART_SERVER => "booting",
                    _ => "provisioning",
                },
                code: "job_timeout",
                permanent: false,
                cause: anyhow::anyhow!("the run took longer than {} s", RUN_LIMIT.as_secs()),
            }),
        };
        let j = job.clone();
        let (st, w) = (state.clone(), worker.clone());
        let r = db::run(&state.db, move |conn| match result {
            Ok(()) => store::finish(conn, &j.id, &w, "done", None).map(|_| ()),
            Err(e) => {
                tracing::warn!(job = %j.id, kind = %j.kind, node = %j.node_id, attempt = j.attempts,
                    code = e.code, error = %format!("{:#}", e.cause), "job failed");
                if e.permanent || j.attempts >= j.max_attempts {
                    if store::finish(conn, &j.id, &w, "failed", Some(e.code))? {
                        fail(conn, &st.notifier(), &j.node_id, e.step, e.code)?;
                    }
                    Ok(())
                } else {
                    event(
                        conn,
                        &j.node_id,
                        "retry",
                        &format!("{}: {} (attempt {})", e.step, e.code, j.attempts),
                    )?;
                    let next = db::now() + super::model::backoff(j.attempts);
                    store::reschedule(conn, &j.id, &w, next, e.code).map(|_| ())
                }
            }
        })
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "recording a job result failed");
        }
    }
}
