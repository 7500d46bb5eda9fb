//! Provisioning: the node state machine (DESIGN §4), the durable job queue that drives
//! it, and the providers that create and destroy servers.
//!
//! ```text
//! requested → provisioning → booting → enrolling → healthy ⇄ degraded ⇄ offline
//!                                              suspended, deprovisioning → destroyed
//!                                              failed(step, error_code)
//! ```

pub mod jobs;
pub mod local;

use crate::app::State;
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{commands, node_certs, node_events, nodes, workspaces};
use diesel::prelude::*;
pub use local::LocalProcess;

/// Node states as stored (`nodes.state`).
pub mod state {
    /// Row created, job queued.
    pub const REQUESTED: &str = "requested";
    /// The provider is creating the server.
    pub const PROVISIONING: &str = "provisioning";
    /// The server runs; waiting for the node to enroll.
    pub const BOOTING: &str = "booting";
    /// Certificate issued; waiting for the first report.
    pub const ENROLLING: &str = "enrolling";
    /// Reporting, all checks pass.
    pub const HEALTHY: &str = "healthy";
    /// Reporting, some check fails.
    pub const DEGRADED: &str = "degraded";
    /// No report for `offline_after_secs`.
    pub const OFFLINE: &str = "offline";
    /// Channels stopped by the CP; data kept.
    pub const SUSPENDED: &str = "suspended";
    /// `deprovision` sent; waiting for the receipt.
    pub const DEPROVISIONING: &str = "deprovisioning";
    /// Data and keys destroyed; certificate revoked.
    pub const DESTROYED: &str = "destroyed";
    /// A step failed; see `failed_step` and `error_code`.
    pub const FAILED: &str = "failed";

    /// States in which the node holds a certificate and talks to the gateway.
    pub const ENROLLED: &[&str] = &[ENROLLING, HEALTHY, DEGRADED, OFFLINE, SUSPENDED];
}

/// Plain-words explanation of a failure code, for the UI.
pub fn explain_error(code: &str) -> &'static str {
    match code {
        "enroll_timeout" => "The node started but never enrolled with the control plane. It may not reach the node gateway address, or its clock may be wrong.",
        "enroll_refused" => "The control plane refused the node's enrollment: its bootstrap token was invalid, expired or already used.",
        "process_crashing" => "The node process keeps exiting right after it starts. Its log is in the node directory.",
        "spawn_failed" => "The node process could not be started on this machine.",
        "provider_error" => "The hosting provider returned an error while creating the server.",
        "no_receipt" => "The node did not confirm destruction in time; the server was destroyed by the provider instead.",
        _ => "An unexpected error happened. Operators can see the details in the control-plane log.",
    }
}

/// The configured provider of servers.
pub enum Provisioner {
    /// One `agent-node` process per workspace on 127.0.0.1 (the default).
    Local(LocalProcess),
}

impl Provisioner {
    /// The local-process provider, configured from `config`.
    pub fn local(config: &crate::Config) -> anyhow::Result<Self> {
        Ok(Self::Local(LocalProcess::new(config)?))
    }

    /// Provider name as stored in `nodes.provider`.
    pub fn name(&self) -> &'static str {
        match self {
            Provisioner::Local(l) if l.is_manual() => "manual",
            Provisioner::Local(_) => "local",
        }
    }

    /// Region label as stored in `nodes.region`.
    pub fn region(&self) -> &'static str {
        match self {
            Provisioner::Local(_) => "local",
        }
    }
}

/// Records a timeline event for a node (codes and ids only).
pub fn event(conn: &mut DbConn, node_id: &str, kind: &str, detail: &str) -> AppResult<()> {
    diesel::insert_into(node_events::table)
        .values((
            node_events::id.eq(db::new_id()),
            node_events::node_id.eq(node_id),
            node_events::at_ms.eq(db::now_ms()),
            node_events::kind.eq(kind),
            node_events::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// Moves a node to `to` if it is currently in one of `from` (empty = any state but
/// destroyed). Returns whether it moved. Records the transition on the timeline.
pub fn transition(conn: &mut DbConn, node_id: &str, from: &[&str], to: &str) -> AppResult<bool> {
    let current: String = nodes::table
        .find(node_id)
        .select(nodes::state)
        .first(conn)?;
    if current == to
        || current == state::DESTROYED
        || (!from.is_empty() && !from.contains(&current.as_str()))
    {
        return Ok(false);
    }
    let n = diesel::update(nodes::table.find(node_id).filter(nodes::state.eq(&current)))
        .set((nodes::state.eq(to), nodes::state_changed_at.eq(db::now())))
        .execute(conn)?;
    if n == 1 {
        event(conn, node_id, "state", &format!("{current} → {to}"))?;
        tracing::info!(node = node_id, from = %current, to, "node state");
    }
    Ok(n == 1)
}

/// Marks a node failed at `step` with a stable `code`. The workspace's owners and admins
/// are emailed when the node moves into `failed` (not again for a node already failed).
pub fn fail(conn: &mut DbConn, st: &State, node_id: &str, step: &str, code: &str) -> AppResult<()> {
    let current: String = nodes::table
        .find(node_id)
        .select(nodes::state)
        .first(conn)?;
    if current == state::DESTROYED || current == state::DEPROVISIONING {
        return Ok(());
    }
    // Conditional on the state read above, like `transition`: of two concurrent
    // failures one moves the node, and only that one sends the email.
    let n = diesel::update(nodes::table.find(node_id).filter(nodes::state.eq(&current)))
        .set((
            nodes::state.eq(state::FAILED),
            nodes::failed_step.eq(step),
            nodes::error_code.eq(code),
            nodes::state_changed_at.eq(db::now()),
        ))
        .execute(conn)?;
    if n == 0 {
        return Ok(());
    }
    event(conn, node_id, "failed", &format!("{step}: {code}"))?;
    tracing::warn!(node = node_id, step, code, "node failed");
    if current != state::FAILED {
        crate::notify::notices::send(
            conn,
            &st.notifier(),
            &[crate::notify::notices::Notice::ProvisioningFailed {
                node_id: node_id.to_owned(),
                step: step.to_owned(),
                code: code.to_owned(),
            }],
        );
    }
    Ok(())
}

/// What an operator's retry of a failed node did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The step that had failed.
    pub step: String,
    /// The failure code it had.
    pub code: String,
    /// The state the node went back to.
    pub to: &'static str,
    /// The job queued to carry on from there.
    pub job: &'static str,
}

/// Where a retry of a node that failed at `step` starts again, and the job that carries on.
///
/// A node that never enrolled holds nothing: it goes back to the state before the step
/// that failed and the provisioning job runs again. Creating the server is idempotent and
/// writes a new single-use bootstrap token (unused older ones are deleted), so an expired,
/// refused or lost token is replaced; only a node process that is still running keeps the
/// token it has. A node that had enrolled keeps its certificate (a new token would only
/// let a second key enroll): it goes back to `enrolling`, waiting for its next report
/// under the same timeouts, and its server is started again if it stopped.
pub fn retry_plan(step: &str, enrolled: bool) -> (&'static str, &'static str) {
    match (enrolled, step) {
        (true, _) => (state::ENROLLING, jobs::RESTART_SERVER),
        (false, state::REQUESTED | state::PROVISIONING) => (state::REQUESTED, jobs::PROVISION),
        (false, _) => (state::PROVISIONING, jobs::PROVISION),
    }
}

/// Retries a failed node ([`retry_plan`]). Only a node in `failed` can be retried; any
/// other state is a 409 that says which state it is in.
pub fn retry_failed(conn: &mut DbConn, node_id: &str) -> AppResult<Retried> {
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let (current, step, code, enrolled_at): (
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
        ) = nodes::table
            .find(node_id)
            .select((
                nodes::state,
                nodes::failed_step,
                nodes::error_code,
                nodes::enrolled_at,
            ))
            .first(conn)?;
        if current != state::FAILED {
            return Err(AppError::Conflict(
                Code::NodeNotFailed,
                format!("The node is {current}, not failed: only a failed step can be retried."),
            ));
        }
        let (step, code) = (step.unwrap_or_default(), code.unwrap_or_default());
        let (to, job) = retry_plan(&step, enrolled_at.is_some());
        // Conditional on `failed`: of two concurrent retries, one moves the node.
        let n = diesel::update(
            nodes::table
                .find(node_id)
                .filter(nodes::state.eq(state::FAILED)),
        )
        .set((
            nodes::state.eq(to),
            nodes::failed_step.eq(None::<String>),
            nodes::error_code.eq(None::<String>),
            nodes::state_changed_at.eq(db::now()),
        ))
        .execute(conn)?;
        if n != 1 {
            return Err(AppError::Conflict(
                Code::NodeNotFailed,
                "The node was retried or changed meanwhile: reload the page.".into(),
            ));
        }
        event(conn, node_id, "retry", &format!("{step}: {code} retried"))?;
        event(conn, node_id, "state", &format!("failed → {to}"))?;
        jobs::enqueue(conn, job, node_id, 0)?;
        if enrolled_at.is_some() {
            // It missed any suspend or resume sent while it was failed.
            crate::suspension::sync_node(conn, node_id, true)?;
        }
        tracing::info!(node = node_id, step = %step, to, "failed node retried");
        Ok(Retried {
            step,
            code,
            to,
            job,
        })
    })
}

/// Queues a command for a node.
pub fn queue_command(
    conn: &mut DbConn,
    node_id: &str,
    kind: &outpost_protocol::CommandKind,
) -> AppResult<String> {
    let id = db::new_id();
    diesel::insert_into(commands::table)
        .values((
            commands::id.eq(&id),
            commands::node_id.eq(node_id),
            commands::kind.eq(kind.name()),
            commands::payload
                .eq(serde_json::to_string(kind).map_err(|e| AppError::internal(e.into()))?),
            commands::created_at_ms.eq(db::now_ms()),
        ))
        .execute(conn)?;
    event(conn, node_id, "command", kind.name())?;
    Ok(id)
}

/// Starts deprovisioning a workspace's node: an enrolled node gets a `deprovision`
/// command (and a deadline for its receipt); a node that never enrolled has no data or
/// keys yet, so its server is destroyed directly. Returns whether this call started it
/// (false when the node was already deprovisioning or destroyed, or another caller's
/// transition won), so concurrent sweepers on several replicas queue one command.
pub fn begin_deprovision(conn: &mut DbConn, node_id: &str, timeout_s: i64) -> AppResult<bool> {
    let current: String = nodes::table
        .find(node_id)
        .select(nodes::state)
        .first(conn)?;
    if current == state::DESTROYED || current == state::DEPROVISIONING {
        return Ok(false);
    }
    let enrolled = state::ENROLLED.contains(&current.as_str());
    if !transition(conn, node_id, &[], state::DEPROVISIONING)? {
        return Ok(false);
    }
    if enrolled {
        queue_command(conn, node_id, &outpost_protocol::CommandKind::Deprovision)?;
        jobs::enqueue(conn, jobs::DEPROVISION_TIMEOUT, node_id, timeout_s)?;
    } else {
        jobs::enqueue(conn, jobs::DESTROY_SERVER, node_id, 0)?;
    }
    Ok(true)
}

/// Revokes every certificate of a node and marks it destroyed.
pub fn mark_destroyed(
    conn: &mut DbConn,
    node_id: &str,
    receipt: Option<(&str, &str)>,
) -> AppResult<()> {
    let now = db::now();
    diesel::update(
        node_certs::table
            .filter(node_certs::node_id.eq(node_id))
            .filter(node_certs::revoked_at.is_null()),
    )
    .set(node_certs::revoked_at.eq(now))
    .execute(conn)?;
    diesel::update(nodes::table.find(node_id))
        .set((
            nodes::destroyed_at.eq(now),
            nodes::receipt_body.eq(receipt.map(|r| r.0)),
            nodes::receipt_signature.eq(receipt.map(|r| r.1)),
        ))
        .execute(conn)?;
    transition(conn, node_id, &[], state::DESTROYED)?;
    event(conn, node_id, "certificate", "revoked")?;
    Ok(())
}

/// Periodic checks: nodes that stopped reporting go offline (never within the grace
/// period after this CP's own start), nodes that never enroll fail.
pub fn sweep(conn: &mut DbConn, state: &State) -> AppResult<()> {
    let now = db::now();
    let cfg = &state.config;
    if now - state.started_at >= cfg.offline_after_secs {
        let silent: Vec<String> = nodes::table
            .filter(nodes::state.eq_any([state::HEALTHY, state::DEGRADED, state::ENROLLING]))
            .filter(nodes::last_report_at.lt(now - cfg.offline_after_secs))
            .select(nodes::id)
            .load(conn)?;
        for id in silent {
            transition(
                conn,
                &id,
                &[state::HEALTHY, state::DEGRADED, state::ENROLLING],
                state::OFFLINE,
            )?;
        }
    }
    let stuck: Vec<(String, String)> = nodes::table
        .filter(nodes::state.eq_any([state::BOOTING, state::ENROLLING]))
        .filter(nodes::last_report_at.is_null())
        .filter(nodes::state_changed_at.lt(now - cfg.enroll_timeout_secs))
        .select((nodes::id, nodes::state))
        .load(conn)?;
    for (id, st) in stuck {
        fail(conn, state, &id, &st, "enroll_timeout")?;
    }
    Ok(())
}

/// Workspace id and info for a node (for bootstrap bundles).
pub fn workspace_info(
    conn: &mut DbConn,
    node_id: &str,
) -> AppResult<outpost_protocol::WorkspaceInfo> {
    let (id, slug, name): (String, String, String) = nodes::table
        .inner_join(workspaces::table)
        .filter(nodes::id.eq(node_id))
        .select((workspaces::id, workspaces::slug, workspaces::name))
        .first(conn)?;
    Ok(outpost_protocol::WorkspaceInfo { id, slug, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_starts_again_before_the_step_that_failed() {
        use jobs::{PROVISION, RESTART_SERVER};
        assert_eq!(
            retry_plan(state::PROVISIONING, false),
            (state::REQUESTED, PROVISION)
        );
        // Never enrolled: the server is created again, with a new bootstrap token.
        for step in [state::BOOTING, state::ENROLLING] {
            assert_eq!(retry_plan(step, false), (state::PROVISIONING, PROVISION));
        }
        // Enrolled: it keeps its certificate and is started again.
        for step in [state::ENROLLING, state::HEALTHY, "running"] {
            assert_eq!(retry_plan(step, true), (state::ENROLLING, RESTART_SERVER));
        }
    }
}
