//! The provisioning tables: `nodes` (state, provider fields), `node_events` (the
//! timeline), `node_certs` (revocation), `commands` (queued for the node), `jobs` (the
//! durable queue) and `bootstrap_tokens` (written with a bundle). Reads `workspaces` for a
//! node's workspace info.

use super::model::NodeState;
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    bootstrap_tokens, commands, jobs, node_certs, node_events, nodes, workspaces,
};
use diesel::prelude::*;

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

/// A node's state as stored.
pub fn state_of(conn: &mut DbConn, node_id: &str) -> AppResult<String> {
    Ok(nodes::table
        .find(node_id)
        .select(nodes::state)
        .first(conn)?)
}

/// The region a node was created in (`nodes.region`).
pub fn region_of(conn: &mut DbConn, node_id: &str) -> AppResult<String> {
    Ok(nodes::table
        .find(node_id)
        .select(nodes::region)
        .first(conn)?)
}

/// A node's state as stored, `None` if there is no such node.
pub fn state_if_exists(conn: &mut DbConn, node_id: &str) -> AppResult<Option<String>> {
    Ok(nodes::table
        .find(node_id)
        .select(nodes::state)
        .first(conn)
        .optional()?)
}

/// Sets the state to `to` if it is still `current`. Returns the rows changed (0 or 1).
pub fn set_state_if(conn: &mut DbConn, node_id: &str, current: &str, to: &str) -> AppResult<usize> {
    Ok(
        diesel::update(nodes::table.find(node_id).filter(nodes::state.eq(current)))
            .set((nodes::state.eq(to), nodes::state_changed_at.eq(db::now())))
            .execute(conn)?,
    )
}

/// Marks the node failed at `step` with `code` if its state is still `current`.
pub fn set_failed_if(
    conn: &mut DbConn,
    node_id: &str,
    current: &str,
    step: &str,
    code: &str,
) -> AppResult<usize> {
    Ok(
        diesel::update(nodes::table.find(node_id).filter(nodes::state.eq(current)))
            .set((
                nodes::state.eq(NodeState::Failed.as_str()),
                nodes::failed_step.eq(step),
                nodes::error_code.eq(code),
                nodes::state_changed_at.eq(db::now()),
            ))
            .execute(conn)?,
    )
}

/// A node's state, failed step, failure code and when it enrolled.
pub type FailureRow = (String, Option<String>, Option<String>, Option<i64>);

/// What a retry needs to know about a node.
pub fn failure_of(conn: &mut DbConn, node_id: &str) -> AppResult<FailureRow> {
    Ok(nodes::table
        .find(node_id)
        .select((
            nodes::state,
            nodes::failed_step,
            nodes::error_code,
            nodes::enrolled_at,
        ))
        .first(conn)?)
}

/// Moves a failed node to `to` and clears its failure (only if it is still failed).
pub fn clear_failure(conn: &mut DbConn, node_id: &str, to: &str) -> AppResult<usize> {
    Ok(diesel::update(
        nodes::table
            .find(node_id)
            .filter(nodes::state.eq(NodeState::Failed.as_str())),
    )
    .set((
        nodes::state.eq(to),
        nodes::failed_step.eq(None::<String>),
        nodes::error_code.eq(None::<String>),
        nodes::state_changed_at.eq(db::now()),
    ))
    .execute(conn)?)
}

/// Inserts a command for a node.
pub fn insert_command(
    conn: &mut DbConn,
    id: &str,
    node_id: &str,
    kind: &str,
    payload: &str,
) -> AppResult<()> {
    diesel::insert_into(commands::table)
        .values((
            commands::id.eq(id),
            commands::node_id.eq(node_id),
            commands::kind.eq(kind),
            commands::payload.eq(payload),
            commands::created_at_ms.eq(db::now_ms()),
        ))
        .execute(conn)?;
    // Wakes the node's long-poll on whichever replica it is polling, at commit.
    crate::infra::wake::announce(conn, node_id)?;
    Ok(())
}

/// Revokes every certificate of a node and stores when it was destroyed (and the
/// receipt, body and signature, if it sent one).
pub fn revoke_and_mark_destroyed(
    conn: &mut DbConn,
    node_id: &str,
    now: i64,
    receipt: Option<(&str, &str)>,
) -> AppResult<()> {
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
    Ok(())
}

/// Nodes in one of `states` whose last report is older than `before`.
pub fn silent_since(conn: &mut DbConn, states: &[&str], before: i64) -> AppResult<Vec<String>> {
    Ok(nodes::table
        .filter(nodes::state.eq_any(states))
        .filter(nodes::last_report_at.lt(before))
        .select(nodes::id)
        .load(conn)?)
}

/// Nodes in one of `states` that never reported and entered it before `before`, with
/// their state.
pub fn never_reported_since(
    conn: &mut DbConn,
    states: &[&str],
    before: i64,
) -> AppResult<Vec<(String, String)>> {
    Ok(nodes::table
        .filter(nodes::state.eq_any(states))
        .filter(nodes::last_report_at.is_null())
        .filter(nodes::state_changed_at.lt(before))
        .select((nodes::id, nodes::state))
        .load(conn)?)
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

// The local provider.

/// The node's public URL, if one was assigned.
pub fn public_url(conn: &mut DbConn, node_id: &str) -> AppResult<Option<String>> {
    Ok(nodes::table
        .find(node_id)
        .select(nodes::public_url)
        .first(conn)?)
}

/// Sets the node's public URL.
pub fn set_public_url(conn: &mut DbConn, node_id: &str, url: &str) -> AppResult<()> {
    diesel::update(nodes::table.find(node_id))
        .set(nodes::public_url.eq(url))
        .execute(conn)?;
    Ok(())
}

/// Sets the provider's reference to the node's server (e.g. `pid:123`).
pub fn set_provider_ref(conn: &mut DbConn, node_id: &str, r: Option<String>) -> AppResult<()> {
    diesel::update(nodes::table.find(node_id))
        .set(nodes::provider_ref.eq(r))
        .execute(conn)?;
    Ok(())
}

/// Replaces the node's unused bootstrap tokens with one (only the newest is valid).
pub fn replace_bootstrap_token(
    conn: &mut DbConn,
    node_id: &str,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> AppResult<()> {
    diesel::delete(
        bootstrap_tokens::table
            .filter(bootstrap_tokens::node_id.eq(node_id))
            .filter(bootstrap_tokens::used_at.is_null()),
    )
    .execute(conn)?;
    diesel::insert_into(bootstrap_tokens::table)
        .values((
            bootstrap_tokens::token_hash.eq(token_hash),
            bootstrap_tokens::node_id.eq(node_id),
            bootstrap_tokens::created_at.eq(now),
            bootstrap_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Nodes of `provider` in one of `states`, with their state.
pub fn nodes_of_provider(
    conn: &mut DbConn,
    provider: &str,
    states: &[&str],
) -> AppResult<Vec<(String, String)>> {
    Ok(nodes::table
        .filter(nodes::provider.eq(provider))
        .filter(nodes::state.eq_any(states))
        .select((nodes::id, nodes::state))
        .load(conn)?)
}

// The job queue.

/// How long a claimed job is reserved for its worker. A run is cut off before it
/// (`jobs::RUN_LIMIT`), so two replicas never run one job at once.
pub const LEASE_S: i64 = 60;

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

/// Ends a job in state `st` (`done` or `failed`), releasing its lease, if `worker` still
/// holds it. `false` when it does not: its lease ran out and another worker (another
/// replica) took the job, whose outcome is then that worker's to record.
pub fn finish(
    conn: &mut DbConn,
    id: &str,
    worker: &str,
    st: &str,
    err: Option<&str>,
) -> AppResult<bool> {
    let n = diesel::update(jobs::table.find(id).filter(jobs::locked_by.eq(worker)))
        .set((
            jobs::state.eq(st),
            jobs::locked_until.eq(None::<i64>),
            jobs::last_error.eq(err),
            jobs::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Releases a failed job's lease to run again at `next_run_at`, if `worker` still holds
/// it (see [`finish`]).
pub fn reschedule(
    conn: &mut DbConn,
    id: &str,
    worker: &str,
    next_run_at: i64,
    err: &str,
) -> AppResult<bool> {
    let n = diesel::update(jobs::table.find(id).filter(jobs::locked_by.eq(worker)))
        .set((
            jobs::locked_until.eq(None::<i64>),
            jobs::next_run_at.eq(next_run_at),
            jobs::last_error.eq(err),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Expires the unacknowledged commands of a workspace's nodes and erases their payloads
/// (configurations with agents' texts, sealed secrets), when the workspace is deleted for
/// good; a `deprovision` command is kept, since it is what destroys the node. Payloads
/// of acknowledged commands are already gone (`gateway::store::record_ack`).
pub fn forget_payloads(conn: &mut DbConn, ws_id: &str, now: i64) -> AppResult<usize> {
    let node_ids: Vec<String> = nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .select(nodes::id)
        .load(conn)?;
    Ok(diesel::update(
        commands::table
            .filter(commands::node_id.eq_any(node_ids))
            .filter(commands::kind.ne("deprovision"))
            .filter(commands::payload.is_not_null()),
    )
    .set((
        commands::payload.eq(None::<String>),
        commands::expires_at.eq(now),
    ))
    .execute(conn)?)
}

// Real servers (the `ovh` provider).

/// Whether the node holds an unused, unexpired bootstrap token (the one its server's
/// user-data carries). Without one, a server that never enrolled can no longer enroll.
pub fn has_live_bootstrap_token(conn: &mut DbConn, node_id: &str, now: i64) -> AppResult<bool> {
    let n: i64 = bootstrap_tokens::table
        .filter(bootstrap_tokens::node_id.eq(node_id))
        .filter(bootstrap_tokens::used_at.is_null())
        .filter(bootstrap_tokens::expires_at.gt(now))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Records the server's public addresses and DNS name.
pub fn set_addresses(
    conn: &mut DbConn,
    node_id: &str,
    ipv4: Option<String>,
    ipv6: Option<String>,
    dns_name: &str,
) -> AppResult<()> {
    diesel::update(nodes::table.find(node_id))
        .set((
            nodes::ipv4.eq(ipv4),
            nodes::ipv6.eq(ipv6),
            nodes::dns_name.eq(dns_name),
        ))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A worker whose lease ran out (a replica stalled or cut off from the database)
    /// while another took the job over records nothing when it comes back: the job is
    /// the new holder's, who finishes it once.
    #[test]
    fn a_worker_that_lost_its_lease_cannot_finish_the_job_of_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = db::ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
        let pool = db::connect(&scratch.url).unwrap();
        let conn = &mut pool.get().unwrap();
        enqueue(conn, "provision", "node-1", 0).unwrap();
        let first = claim(conn, "replica-a").unwrap().unwrap();
        assert!(claim(conn, "replica-b").unwrap().is_none(), "leased");
        // The lease runs out.
        diesel::update(jobs::table.find(&first.id))
            .set(jobs::locked_until.eq(db::now() - 1))
            .execute(conn)
            .unwrap();
        let second = claim(conn, "replica-b").unwrap().unwrap();
        assert_eq!(second.id, first.id);
        assert_eq!(second.attempts, 2);

        assert!(!finish(conn, &first.id, "replica-a", "failed", Some("late")).unwrap());
        assert!(!reschedule(conn, &first.id, "replica-a", 0, "late").unwrap());
        let (st, locked_by): (String, Option<String>) = jobs::table
            .find(&first.id)
            .select((jobs::state, jobs::locked_by))
            .first(conn)
            .unwrap();
        assert_eq!(
            (st.as_str(), locked_by.as_deref()),
            ("queued", Some("replica-b"))
        );
        assert!(finish(conn, &first.id, "replica-b", "done", None).unwrap());
    }
}
