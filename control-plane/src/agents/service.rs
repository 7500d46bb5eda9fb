//! Creating, changing and deleting agents, and pushing the workspace's configuration to
//! its node as one `apply_config` document (after every change, and on enrollment from
//! `fleet`). Every entry point goes through [`load_for_member`], so non-members get 404.

use super::model::{validate, Agent, AgentInput, MAX_AGENTS};
use super::store;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::wake::CommandNotify;
use crate::provisioning;
use crate::workspaces::{load_for_member, Workspace, ROLE_OWNER};
use outpost_common::outbound::Policy;
use outpost_protocol::{CommandKind, WorkspaceConfig};

/// What creating or changing an agent needs from the application.
pub struct AgentsCtx<'a> {
    /// Wakes the node's long-poll after a configuration change.
    pub command_notify: &'a CommandNotify,
    /// What a model endpoint must pass (`--allow-local-providers`).
    pub endpoints: Policy,
}

/// Owners (and admins, once roles land) may change agents; other members may look.
pub fn require_editor(role: &str) -> AppResult<()> {
    if role == ROLE_OWNER || role == "admin" {
        Ok(())
    } else {
        Err(AppError::Forbidden(Code::AdminRequired))
    }
}

/// A workspace's agents, oldest first.
pub fn list(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<Agent>> {
    Ok(store::list(conn, ws_id)?)
}

/// One agent of a workspace; 404 if there is none.
pub fn find(conn: &mut DbConn, ws_id: &str, agent_id: &str) -> AppResult<Agent> {
    store::find(conn, ws_id, agent_id)?.ok_or(AppError::NotFound)
}

/// The public URL of the workspace's node (for embed snippets).
pub fn node_url(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<String>> {
    Ok(store::node_url(conn, ws_id)?)
}

/// The workspace and the caller's role, if the workspace is not deleted.
pub fn live_workspace(
    conn: &mut DbConn,
    ws_id: &str,
    user_id: &str,
) -> AppResult<(Workspace, String)> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    if ws.deleted_at.is_some() {
        return Err(AppError::Conflict(
            Code::WorkspaceDeleted,
            "This workspace was deleted.".into(),
        ));
    }
    Ok((ws, role))
}

/// Creates an agent and pushes the configuration.
pub fn create(
    conn: &mut DbConn,
    ctx: &AgentsCtx<'_>,
    ws_id: &str,
    user_id: &str,
    input: &AgentInput,
    ip: &str,
) -> AppResult<Agent> {
    let (_, role) = live_workspace(conn, ws_id, user_id)?;
    require_editor(&role)?;
    let now = db::now();
    let v = validate(input, now, ctx.endpoints)?;
    let id = db::new_id();
    let (agent, node) = db::transaction::<_, AppError, _>(conn, |conn| {
        if store::count(conn, ws_id)? >= MAX_AGENTS {
            return Err(AppError::Conflict(
                Code::TooManyAgents,
                format!("A workspace can have at most {MAX_AGENTS} agents."),
            ));
        }
        store::insert(conn, &id, ws_id, &v, now)?;
        let node = push_config(conn, ws_id)?;
        Ok((find(conn, ws_id, &id)?, node))
    })?;
    notify(ctx.command_notify, node.as_deref());
    audit_change(conn, user_id, "agent.created", &agent.id, ws_id, ip)?;
    Ok(agent)
}

/// Changes an agent and pushes the configuration.
pub fn update(
    conn: &mut DbConn,
    ctx: &AgentsCtx<'_>,
    ws_id: &str,
    agent_id: &str,
    user_id: &str,
    input: &AgentInput,
    ip: &str,
) -> AppResult<Agent> {
    let (_, role) = live_workspace(conn, ws_id, user_id)?;
    require_editor(&role)?;
    let v = validate(input, db::now(), ctx.endpoints)?;
    let (agent, node) = db::transaction::<_, AppError, _>(conn, |conn| {
        find(conn, ws_id, agent_id)?;
        store::update(conn, agent_id, &v, db::now())?;
        let node = push_config(conn, ws_id)?;
        Ok((find(conn, ws_id, agent_id)?, node))
    })?;
    notify(ctx.command_notify, node.as_deref());
    audit_change(conn, user_id, "agent.updated", agent_id, ws_id, ip)?;
    Ok(agent)
}

/// Removes an agent (its widget stops answering) and pushes the configuration.
pub fn delete(
    conn: &mut DbConn,
    command_notify: &CommandNotify,
    ws_id: &str,
    agent_id: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<()> {
    let (_, role) = live_workspace(conn, ws_id, user_id)?;
    require_editor(&role)?;
    let node = db::transaction::<_, AppError, _>(conn, |conn| {
        find(conn, ws_id, agent_id)?;
        store::delete(conn, agent_id)?;
        push_config(conn, ws_id)
    })?;
    notify(command_notify, node.as_deref());
    audit_change(conn, user_id, "agent.deleted", agent_id, ws_id, ip)
}

fn notify(command_notify: &CommandNotify, node: Option<&str>) {
    if let Some(n) = node {
        command_notify.notify(n);
    }
}

fn audit_change(
    conn: &mut DbConn,
    user_id: &str,
    action: &'static str,
    agent_id: &str,
    ws_id: &str,
    ip: &str,
) -> AppResult<()> {
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action,
            object_type: "agent",
            object_id: agent_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: "",
        },
    )
}

/// The configuration document of a workspace at its current revision.
pub fn config_document(conn: &mut DbConn, ws_id: &str) -> AppResult<WorkspaceConfig> {
    let revision = store::config_revision(conn, ws_id)?;
    Ok(WorkspaceConfig {
        revision,
        agents: list(conn, ws_id)?.iter().map(Agent::to_config).collect(),
    })
}

/// Bumps the workspace's configuration revision and queues `apply_config` for its node
/// if it has enrolled (a node that has not yet gets it on enrollment). Undelivered older
/// `apply_config` commands are dropped: the new document supersedes them. Returns the
/// node to wake.
pub fn push_config(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<String>> {
    store::bump_config_revision(conn, ws_id)?;
    let Some(node) = store::enrolled_node(conn, ws_id)? else {
        return Ok(None);
    };
    queue_config(conn, &node, ws_id)?;
    Ok(Some(node))
}

/// Queues the workspace's current configuration for `node_id` (on enrollment and after
/// every change).
pub fn queue_config(conn: &mut DbConn, node_id: &str, ws_id: &str) -> AppResult<()> {
    let doc = config_document(conn, ws_id)?;
    store::drop_undelivered_configs(conn, node_id)?;
    let config = serde_json::to_value(&doc).map_err(|e| AppError::internal(e.into()))?;
    provisioning::queue_command(conn, node_id, &CommandKind::ApplyConfig { config })?;
    Ok(())
}
