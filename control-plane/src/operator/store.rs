//! What the operator console reads: `workspaces`, `memberships` (counts per role),
//! `nodes`, `node_events`, `jobs`, `workspace_suspensions`, all metadata; and what it
//! writes: a workspace's deletion, and `users.is_operator` (the CLI's staff list).

use super::model::{self, EVENTS_SHOWN, JOBS_SHOWN, PAGE_SIZE};
use crate::error::{AppError, AppResult};
use crate::infra::db::DbConn;
use crate::infra::schema::{
    jobs, memberships, node_events, nodes, users, workspace_suspensions, workspaces,
};
use crate::workspaces::{EventRow, Workspace};
use diesel::prelude::*;

/// A node as operators see it: state and health metadata (no console URL: operators do not
/// open consoles).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = nodes)]
pub struct OperatorNode {
    /// Node id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// State.
    pub state: String,
    /// Step that failed.
    pub failed_step: Option<String>,
    /// Failure code.
    pub error_code: Option<String>,
    /// Provider (`local`, `manual`…).
    pub provider: String,
    /// Region.
    pub region: String,
    /// Version the node last reported.
    pub version: Option<String>,
    /// Enrolled, unix seconds.
    pub enrolled_at: Option<i64>,
    /// Last report, unix seconds.
    pub last_report_at: Option<i64>,
    /// Last state change, unix seconds.
    pub state_changed_at: i64,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Destroyed, unix seconds.
    pub destroyed_at: Option<i64>,
}

impl OperatorNode {
    /// The failure in words, when failed.
    pub fn failure(&self) -> Option<String> {
        model::failure(
            &self.state,
            self.failed_step.as_deref(),
            self.error_code.as_deref(),
        )
    }
}

/// One line of the list.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workspace.
    pub workspace: Workspace,
    /// Its newest node.
    pub node: Option<OperatorNode>,
    /// Codes of its active suspensions.
    pub suspended: Vec<String>,
}

/// A page of the list of all workspaces, newest first; `slug` filters by part of the
/// address. Returns the rows and whether there is a next page.
pub fn list(conn: &mut DbConn, slug: &str, page: i64) -> AppResult<(Vec<Row>, bool)> {
    let mut q = workspaces::table.into_boxed();
    if !slug.is_empty() {
        // Only address characters reach the pattern, so it holds no LIKE wildcard.
        q = q.filter(workspaces::slug.like(format!("%{slug}%")));
    }
    let mut found: Vec<Workspace> = q
        .order((workspaces::created_at.desc(), workspaces::id.asc()))
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
        .load(conn)?;
    let more = found.len() as i64 > PAGE_SIZE;
    found.truncate(PAGE_SIZE as usize);
    let ids: Vec<&str> = found.iter().map(|w| w.id.as_str()).collect();
    let all_nodes: Vec<OperatorNode> = nodes::table
        .filter(nodes::workspace_id.eq_any(&ids))
        .order(nodes::created_at.desc())
        .select(OperatorNode::as_select())
        .load(conn)?;
    let causes: Vec<(String, String)> = workspace_suspensions::table
        .filter(workspace_suspensions::workspace_id.eq_any(&ids))
        .filter(workspace_suspensions::lifted_at.is_null())
        .order(workspace_suspensions::created_at.asc())
        .select((
            workspace_suspensions::workspace_id,
            workspace_suspensions::code,
        ))
        .load(conn)?;
    let rows = found
        .into_iter()
        .map(|w| Row {
            node: all_nodes.iter().find(|n| n.workspace_id == w.id).cloned(),
            suspended: causes
                .iter()
                .filter(|(ws, _)| *ws == w.id)
                .map(|(_, c)| c.clone())
                .collect(),
            workspace: w,
        })
        .collect();
    Ok((rows, more))
}

/// One cause of a suspension, active or lifted.
#[derive(Debug, Clone, Queryable)]
pub struct SuspensionRow {
    /// `operator` or `payment`.
    pub code: String,
    /// The operator's words.
    pub reason: String,
    /// User id, or `system`.
    pub actor: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, when lifted.
    pub lifted_at: Option<i64>,
    /// Who lifted it.
    pub lifted_by: Option<String>,
}

/// A job of the node's queue.
#[derive(Debug, Clone, Queryable)]
pub struct JobRow {
    /// Kind.
    pub kind: String,
    /// `queued`, `done`, `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Last error code.
    pub last_error: Option<String>,
    /// Updated, unix seconds.
    pub updated_at: i64,
}

/// Everything the operator's page of one workspace shows.
#[derive(Debug, Clone)]
pub struct Detail {
    /// The workspace.
    pub workspace: Workspace,
    /// Members per role: `(role, count)`.
    pub members: Vec<(String, usize)>,
    /// Its nodes, newest first (one, unless it was re-provisioned).
    pub nodes: Vec<OperatorNode>,
    /// Timeline of the newest node, newest first.
    pub events: Vec<EventRow>,
    /// Job queue of the newest node, newest first.
    pub jobs: Vec<JobRow>,
    /// Every suspension, newest first.
    pub suspensions: Vec<SuspensionRow>,
}

impl Detail {
    /// The newest node.
    pub fn node(&self) -> Option<&OperatorNode> {
        self.nodes.first()
    }

    /// Whether an operator's suspension is active.
    pub fn operator_suspended(&self) -> bool {
        self.suspensions
            .iter()
            .any(|s| s.code == crate::suspension::OPERATOR && s.lifted_at.is_none())
    }

    /// Whether the newest node is in `failed`.
    pub fn retryable(&self) -> bool {
        self.node()
            .is_some_and(|n| n.state == crate::provisioning::state::FAILED)
    }

    /// Whether a node is left to deprovision.
    pub fn deprovisionable(&self) -> bool {
        self.nodes.iter().any(|n| model::is_live(&n.state))
    }
}

/// A workspace (404 if there is none).
pub fn load_workspace(conn: &mut DbConn, ws_id: &str) -> AppResult<Workspace> {
    workspaces::table
        .find(ws_id)
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// The operator's view of one workspace.
pub fn detail(conn: &mut DbConn, ws_id: &str) -> AppResult<Detail> {
    let workspace = load_workspace(conn, ws_id)?;
    let roles: Vec<String> = memberships::table
        .filter(memberships::workspace_id.eq(ws_id))
        .select(memberships::role)
        .load(conn)?;
    let members = model::count_roles(roles);
    let nodes: Vec<OperatorNode> = nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .order(nodes::created_at.desc())
        .select(OperatorNode::as_select())
        .load(conn)?;
    let (events, jobs) = match nodes.first() {
        Some(n) => (
            node_events::table
                .filter(node_events::node_id.eq(&n.id))
                .order(node_events::at_ms.desc())
                .select((node_events::at_ms, node_events::kind, node_events::detail))
                .limit(EVENTS_SHOWN)
                .load(conn)?,
            jobs::table
                .filter(jobs::node_id.eq(&n.id))
                .order(jobs::created_at.desc())
                .select((
                    jobs::kind,
                    jobs::state,
                    jobs::attempts,
                    jobs::max_attempts,
                    jobs::last_error,
                    jobs::updated_at,
                ))
                .limit(JOBS_SHOWN)
                .load(conn)?,
        ),
        None => (vec![], vec![]),
    };
    let suspensions = workspace_suspensions::table
        .filter(workspace_suspensions::workspace_id.eq(ws_id))
        .order(workspace_suspensions::created_at.desc())
        .select((
            workspace_suspensions::code,
            workspace_suspensions::reason,
            workspace_suspensions::actor,
            workspace_suspensions::created_at,
            workspace_suspensions::lifted_at,
            workspace_suspensions::lifted_by,
        ))
        .load(conn)?;
    Ok(Detail {
        workspace,
        members,
        nodes,
        events,
        jobs,
        suspensions,
    })
}

/// The id of a workspace's newest node, if it has one.
pub fn newest_node(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<String>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .order(nodes::created_at.desc())
        .select(nodes::id)
        .first(conn)
        .optional()?)
}

/// A workspace's nodes with their states.
pub fn nodes_of(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<(String, String)>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .select((nodes::id, nodes::state))
        .load(conn)?)
}

/// Marks a workspace deleted at `at`, as `workspaces::delete` does: no export window
/// left, the address is free.
pub fn mark_deleted(conn: &mut DbConn, ws_id: &str, at: i64) -> AppResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set((
            workspaces::deleted_at.eq(at),
            workspaces::deprovision_after.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

// Staff (`control-plane operator add|remove|list`).

/// An account's id and whether it is an operator, by email.
pub fn account_by_email(conn: &mut DbConn, email: &str) -> AppResult<Option<(String, bool)>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select((users::id, users::is_operator))
        .first(conn)
        .optional()?)
}

/// Makes an account an operator, or not.
pub fn set_operator(conn: &mut DbConn, user_id: &str, on: bool) -> AppResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::is_operator.eq(on))
        .execute(conn)?;
    Ok(())
}

/// `(email, user id)` of every operator, by email.
pub fn operators(conn: &mut DbConn) -> AppResult<Vec<(String, String)>> {
    Ok(users::table
        .filter(users::is_operator.eq(true))
        .order(users::email.asc())
        .select((users::email, users::id))
        .load(conn)?)
}
