//! Use cases of the node state machine: transitions, failures and retries, queued
//! commands, deprovisioning and the periodic sweep. They take a connection and the pieces
//! they need (a [`Notifier`], a [`SweepContext`]), never the app state.

use super::model::{job, state, NodeState, Retried};
use super::store;
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::notify::notices::{self, Notice};
use crate::notify::Notifier;

pub use store::{event, workspace_info};

/// Moves a node to `to` if it is currently in one of `from` (empty = any state but
/// destroyed). Returns whether it moved. Records the transition on the timeline.
pub fn transition(conn: &mut DbConn, node_id: &str, from: &[&str], to: &str) -> AppResult<bool> {
    let current = store::state_of(conn, node_id)?;
    if current == to
        || current == state::DESTROYED
        || (!from.is_empty() && !from.contains(&current.as_str()))
    {
        return Ok(false);
    }
    let n = store::set_state_if(conn, node_id, &current, to)?;
    if n == 1 {
        event(conn, node_id, "state", &format!("{current} → {to}"))?;
        tracing::info!(node = node_id, from = %current, to, "node state");
    }
    Ok(n == 1)
}

/// [`transition`] with typed states.
pub fn move_node(
    conn: &mut DbConn,
    node_id: &str,
    from: &[NodeState],
    to: NodeState,
) -> AppResult<bool> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    transition(conn, node_id, &from, to.as_str())
}

/// Marks a node failed at `step` with a stable `code`. The workspace's owners and admins
/// are emailed when the node moves into `failed` (not again for a node already failed).
pub fn fail(
    conn: &mut DbConn,
    notifier: &Notifier<'_>,
    node_id: &str,
    step: &str,
    code: &str,
) -> AppResult<()> {
    // The failure, its event and its email in one transaction (a savepoint inside the
    // caller's): a crash loses all three or none.
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let current = store::state_of(conn, node_id)?;
        if current == state::DESTROYED || current == state::DEPROVISIONING {
            return Ok(());
        }
        // Conditional on the state read above, like `transition`: of two concurrent
        // failures one moves the node, and only that one sends the email.
        if store::set_failed_if(conn, node_id, &current, step, code)? == 0 {
            return Ok(());
        }
        event(conn, node_id, "failed", &format!("{step}: {code}"))?;
        tracing::warn!(node = node_id, step, code, "node failed");
        if current != state::FAILED {
            notices::send(
                conn,
                notifier,
                &[Notice::ProvisioningFailed {
                    node_id: node_id.to_owned(),
                    step: step.to_owned(),
                    code: code.to_owned(),
                }],
            )?;
        }
        Ok(())
    })
}

/// Retries a failed node ([`super::retry_plan`]). Only a node in `failed` can be retried;
/// any other state is a 409 that says which state it is in. A node that had enrolled
/// `rejoins`: that hook runs in the same transaction (the suspension domain sends it
/// what it missed while it was failed).
pub fn retry_failed(
    conn: &mut DbConn,
    node_id: &str,
    rejoins: impl FnOnce(&mut DbConn, &str) -> AppResult<()>,
) -> AppResult<Retried> {
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let (current, step, code, enrolled_at) = store::failure_of(conn, node_id)?;
        if current != state::FAILED {
            return Err(AppError::Conflict(
                Code::NodeNotFailed,
                format!("The node is {current}, not failed: only a failed step can be retried."),
            ));
        }
        let (step, code) = (step.unwrap_or_default(), code.unwrap_or_default());
        let (to, job) = super::retry_plan(&step, enrolled_at.is_some());
        // Conditional on `failed`: of two concurrent retries, one moves the node.
        if store::clear_failure(conn, node_id, to)? != 1 {
            return Err(AppError::Conflict(
                Code::NodeNotFailed,
                "The node was retried or changed meanwhile: reload the page.".into(),
            ));
        }
        event(conn, node_id, "retry", &format!("{step}: {code} retried"))?;
        event(conn, node_id, "state", &format!("failed → {to}"))?;
        store::enqueue(conn, job, node_id, 0)?;
        if enrolled_at.is_some() {
            rejoins(conn, node_id)?;
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
    queue_command_with_id(conn, &id, node_id, kind)?;
    Ok(id)
}

/// Queues a command under an id the caller chose (and recorded beforehand).
pub fn queue_command_with_id(
    conn: &mut DbConn,
    id: &str,
    node_id: &str,
    kind: &outpost_protocol::CommandKind,
) -> AppResult<()> {
    let payload = serde_json::to_string(kind).map_err(|e| AppError::internal(e.into()))?;
    store::insert_command(conn, id, node_id, kind.name(), &payload)?;
    event(conn, node_id, "command", kind.name())
}

/// Starts deprovisioning a workspace's node: an enrolled node gets a `deprovision`
/// command (and a deadline for its receipt); a node that never enrolled has no data or
/// keys yet, so its server is destroyed directly. Returns whether this call started it
/// (false when the node was already deprovisioning or destroyed, or another caller's
/// transition won), so concurrent sweepers on several replicas queue one command.
pub fn begin_deprovision(conn: &mut DbConn, node_id: &str, timeout_s: i64) -> AppResult<bool> {
    let current = store::state_of(conn, node_id)?;
    if current == state::DESTROYED || current == state::DEPROVISIONING {
        return Ok(false);
    }
    let enrolled = state::ENROLLED.contains(&current.as_str());
    if !transition(conn, node_id, &[], state::DEPROVISIONING)? {
        return Ok(false);
    }
    if enrolled {
        queue_command(conn, node_id, &outpost_protocol::CommandKind::Deprovision)?;
        store::enqueue(conn, job::DEPROVISION_TIMEOUT, node_id, timeout_s)?;
    } else {
        store::enqueue(conn, job::DESTROY_SERVER, node_id, 0)?;
    }
    Ok(true)
}

/// Revokes every certificate of a node and marks it destroyed. Bumps the revocation
/// generation so the gateway's cached verdicts on its certificates go stale; a caller
/// inside a transaction must bump it again once that has committed.
pub fn mark_destroyed(
    conn: &mut DbConn,
    node_id: &str,
    receipt: Option<(&str, &str)>,
) -> AppResult<()> {
    store::revoke_and_mark_destroyed(conn, node_id, db::now(), receipt)?;
    crate::infra::revocations::bump();
    transition(conn, node_id, &[], state::DESTROYED)?;
    crate::infra::revocations::bump();
    event(conn, node_id, "certificate", "revoked")?;
    Ok(())
}

/// What the fleet sweep needs, built by `app/` from the configuration.
pub struct SweepContext<'a> {
    /// Unix seconds from which reports could be ingested without interruption: this
    /// process's start, or the end of its last database outage.
    pub grace_from: i64,
    /// Silence after which a reporting node goes offline.
    pub offline_after_secs: i64,
    /// Time a booting or enrolling node has to report before it fails.
    pub enroll_timeout_secs: i64,
    /// Where the failure emails go out from.
    pub notifier: Notifier<'a>,
}

/// Periodic checks: nodes that stopped reporting go offline, nodes that never enroll
/// fail; neither within that long after `grace_from` (the CP's own start or the end of
/// a database outage), before which reports and enrollments could not be taken however
/// well the nodes were.
pub fn sweep(conn: &mut DbConn, cx: &SweepContext<'_>) -> AppResult<()> {
    let now = db::now();
    let watched = [state::HEALTHY, state::DEGRADED, state::ENROLLING];
    if now - cx.grace_from >= cx.offline_after_secs {
        for id in store::silent_since(conn, &watched, now - cx.offline_after_secs)? {
            transition(conn, &id, &watched, state::OFFLINE)?;
        }
    }
    // Enrolling needs the database too: a node that booted before an outage gets its
    // whole enrollment time again once the database is back.
    let waiting = [state::BOOTING, state::ENROLLING];
    if now - cx.grace_from >= cx.enroll_timeout_secs {
        for (id, st) in store::never_reported_since(conn, &waiting, now - cx.enroll_timeout_secs)? {
            fail(conn, &cx.notifier, &id, &st, "enroll_timeout")?;
        }
    }
    Ok(())
}
