//! Durable job queue. Jobs live in the `jobs` table; a worker claims one by setting a
//! lease (`locked_until`) with a compare-and-set update, so several CP replicas can share
//! one database and a crashed worker's job is taken over when its lease expires. Failures
//! back off exponentially (`next_run_at`) up to `max_attempts`.

use super::{state, transition};
use crate::app::State;
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{jobs, nodes};
use diesel::prelude::*;
use std::time::Duration;

/// Create the node's server and boot it.
pub const PROVISION: &str = "provision";
/// Delete the node's server (after the receipt, or with no enrolled node).
pub const DESTROY_SERVER: &str = "destroy_server";
/// Destroy the server anyway if no receipt arrived in time.
pub const DEPROVISION_TIMEOUT: &str = "deprovision_timeout";
/// Start an enrolled node's server again if it stopped (an operator's retry).
pub const RESTART_SERVER: &str = "restart_server";

const LEASE_S: i64 = 60;

/// A claimed job.
#[derive(Debug, Clone, Queryable)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Node the job is for.
    pub node_id: String,
    /// Attempts so far, including this one.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
}

/// Queues a job to run after `delay_s` seconds. Idempotent: a queued job of the same
/// kind for the same node is reused.
pub fn enqueue(conn: &mut DbConn, kind: &str, node_id: &str, delay_s: i64) -> AppResult<()> {
    let existing: i64 = jobs::table
        .filter(jobs::kind.eq(kind))
        .filter(jobs::node_id.eq(node_id))
        .filter(jobs::state.eq("queued"))
        .count()
        .get_result(conn)?;
    if existing > 0 {
        return Ok(());
    }
    let now = db::now();
    diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(db::new_id()),
            jobs::kind.eq(kind),
            jobs::node_id.eq(node_id),
            jobs::state.eq("queued"),
            jobs::attempts.eq(0),
            jobs::max_attempts.eq(5),
            jobs::next_run_at.eq(now + delay_s),
            jobs::created_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Claims the next due job, if any.
pub fn claim(conn: &mut DbConn, worker: &str) -> AppResult<Option<Job>> {
    let now = db::now();
    let candidates: Vec<String> = jobs::table
        .filter(jobs::state.eq("queued"))
        .filter(jobs::next_run_at.le(now))
        .filter(jobs::locked_until.is_null().or(jobs::locked_until.lt(now)))
        .order(jobs::next_run_at.asc())
        .select(jobs::id)
        .limit(5)
        .load(conn)?;
    for id in candidates {
        let n = diesel::update(
            jobs::table
                .find(&id)
                .filter(jobs::state.eq("queued"))
                .filter(jobs::locked_until.is_null().or(jobs::locked_until.lt(now))),
        )
        .set((
            jobs::locked_until.eq(now + LEASE_S),
            jobs::locked_by.eq(worker),
            jobs::attempts.eq(jobs::attempts + 1),
            jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 1 {
            let job = jobs::table
                .find(&id)
                .select((
                    jobs::id,
                    jobs::kind,
                    jobs::node_id,
                    jobs::attempts,
                    jobs::max_attempts,
                ))
                .first(conn)?;
            return Ok(Some(job));
        }
    }
    Ok(None)
}

fn finish(conn: &mut DbConn, id: &str, st: &str, err: Option<&str>) -> AppResult<()> {
    diesel::update(jobs::table.find(id))
        .set((
            jobs::state.eq(st),
            jobs::locked_until.eq(None::<i64>),
            jobs::last_error.eq(err),
            jobs::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Error of a job step: the step name and a stable code, shown to the user in words.
#[derive(Debug)]
pub struct StepError {
    /// Step that failed (`provisioning`, `booting`…).
    pub step: &'static str,
    /// Stable code.
    pub code: &'static str,
    /// Cause, for the log only.
    pub cause: anyhow::Error,
}

impl From<AppError> for StepError {
    fn from(e: AppError) -> Self {
        StepError {
            step: "provisioning",
            code: "internal_error",
            cause: anyhow::anyhow!("{e}: {}", e.message()),
        }
    }
}

async fn run_job(state: &State, job: &Job) -> Result<(), StepError> {
    match job.kind.as_str() {
        PROVISION => provision(state, &job.node_id).await,
        DESTROY_SERVER => destroy_server(state, &job.node_id).await,
        DEPROVISION_TIMEOUT => deprovision_timeout(state, &job.node_id).await,
        RESTART_SERVER => restart_server(state, &job.node_id).await,
        other => Err(StepError {
            step: "jobs",
            code: "unknown_job",
            cause: anyhow::anyhow!("unknown job kind {other}"),
        }),
    }
}

async fn provision(state: &State, node_id: &str) -> Result<(), StepError> {
    let id = node_id.to_owned();
    let proceed = db::run(&state.db, move |conn| {
        let st: String = nodes::table.find(&id).select(nodes::state).first(conn)?;
        if st == state::REQUESTED {
            transition(conn, &id, &[state::REQUESTED], state::PROVISIONING)?;
        }
        Ok(st == state::REQUESTED || st == state::PROVISIONING)
    })
    .await?;
    if !proceed {
        return Ok(());
    }
    let super::Provisioner::Local(local) = &state.provisioner;
    local.create_server(state, node_id).await
}

async fn destroy_server(state: &State, node_id: &str) -> Result<(), StepError> {
    let super::Provisioner::Local(local) = &state.provisioner;
    local
        .destroy_server(node_id)
        .await
        .map_err(|cause| StepError {
            step: "deprovisioning",
            code: "provider_error",
            cause,
        })?;
    let id = node_id.to_owned();
    db::run(&state.db, move |conn| {
        let st: String = nodes::table.find(&id).select(nodes::state).first(conn)?;
        if st != state::DESTROYED {
            // Never enrolled: there were no keys or data to receipt.
            super::mark_destroyed(conn, &id, None)?;
        }
        super::event(conn, &id, "server", "destroyed by provider")?;
        Ok(())
    })
    .await?;
    Ok(())
}

async fn deprovision_timeout(state: &State, node_id: &str) -> Result<(), StepError> {
    let id = node_id.to_owned();
    let pending = db::run(&state.db, move |conn| {
        let st: String = nodes::table.find(&id).select(nodes::state).first(conn)?;
        if st == state::DEPROVISIONING {
            super::event(conn, &id, "receipt", "no_receipt")?;
        }
        Ok(st == state::DEPROVISIONING)
    })
    .await?;
    if pending {
        destroy_server(state, node_id).await?;
    }
    Ok(())
}

async fn restart_server(state: &State, node_id: &str) -> Result<(), StepError> {
    let id = node_id.to_owned();
    let waiting = db::run(&state.db, move |conn| {
        let st: String = nodes::table.find(&id).select(nodes::state).first(conn)?;
        Ok(st == state::ENROLLING)
    })
    .await?;
    if !waiting {
        // Moved on meanwhile (reported, deprovisioned, failed again): nothing to start.
        return Ok(());
    }
    let super::Provisioner::Local(local) = &state.provisioner;
    local.restart_server(state, node_id).await
}

fn backoff(attempts: i32) -> i64 {
    (2_i64.pow(attempts.clamp(0, 10) as u32)).min(300)
}

/// Claims and runs jobs until the process exits.
pub async fn run_worker(state: State) {
    let worker = format!("worker-{}", uuid::Uuid::new_v4());
    loop {
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
        let result = run_job(&state, &job).await;
        let j = job.clone();
        let st = state.clone();
        let r = db::run(&state.db, move |conn| match result {
            Ok(()) => finish(conn, &j.id, "done", None),
            Err(e) => {
                tracing::warn!(job = %j.id, kind = %j.kind, node = %j.node_id, attempt = j.attempts,
                    code = e.code, error = %format!("{:#}", e.cause), "job failed");
                if j.attempts >= j.max_attempts {
                    finish(conn, &j.id, "failed", Some(e.code))?;
                    super::fail(conn, &st, &j.node_id, e.step, e.code)
                } else {
                    super::event(
                        conn,
                        &j.node_id,
                        "retry",
                        &format!("{}: {} (attempt {})", e.step, e.code, j.attempts),
                    )?;
                    diesel::update(jobs::table.find(&j.id))
                        .set((
                            jobs::locked_until.eq(None::<i64>),
                            jobs::next_run_at.eq(db::now() + backoff(j.attempts)),
                            jobs::last_error.eq(e.code),
                        ))
                        .execute(conn)?;
                    Ok(())
                }
            }
        })
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "recording a job result failed");
        }
    }
}
