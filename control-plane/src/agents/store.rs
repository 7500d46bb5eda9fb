//! The `agents` table, the workspace's configuration revision, and the `nodes` and
//! `commands` rows the configuration push reads and replaces.

use super::model::{Agent, Valid};
use crate::infra::db::DbConn;
use crate::infra::schema::{agents, commands, nodes, workspaces};
use crate::provisioning::state;
use diesel::prelude::*;

/// A row of `agents`, as [`Agent`].
#[derive(Queryable, Selectable)]
#[diesel(table_name = agents)]
struct AgentRow {
    id: String,
    workspace_id: String,
    name: String,
    greeting: String,
    instructions: String,
    language: String,
    fallback_message: String,
    hours_days: String,
    open_minute: i32,
    close_minute: i32,
    utc_offset_minutes: i32,
    provider: String,
    model: String,
    base_url: String,
    allowed_origins: String,
    created_at: i64,
    updated_at: i64,
    channels: String,
    time_zone: String,
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Self {
        Agent {
            id: r.id,
            workspace_id: r.workspace_id,
            name: r.name,
            greeting: r.greeting,
            instructions: r.instructions,
            language: r.language,
            fallback_message: r.fallback_message,
            hours_days: r.hours_days,
            open_minute: r.open_minute,
            close_minute: r.close_minute,
            utc_offset_minutes: r.utc_offset_minutes,
            provider: r.provider,
            model: r.model,
            base_url: r.base_url,
            allowed_origins: r.allowed_origins,
            created_at: r.created_at,
            updated_at: r.updated_at,
            channels: r.channels,
            time_zone: r.time_zone,
        }
    }
}

/// A workspace's agents, oldest first.
pub fn list(conn: &mut DbConn, ws_id: &str) -> QueryResult<Vec<Agent>> {
    Ok(agents::table
        .filter(agents::workspace_id.eq(ws_id))
        .order((agents::created_at.asc(), agents::id.asc()))
        .select(AgentRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Agent::from)
        .collect())
}

/// One agent of a workspace.
pub fn find(conn: &mut DbConn, ws_id: &str, agent_id: &str) -> QueryResult<Option<Agent>> {
    Ok(agents::table
        .filter(agents::workspace_id.eq(ws_id))
        .filter(agents::id.eq(agent_id))
        .select(AgentRow::as_select())
        .first(conn)
        .optional()?
        .map(Agent::from))
}

/// How many agents a workspace has.
pub fn count(conn: &mut DbConn, ws_id: &str) -> QueryResult<i64> {
    agents::table
        .filter(agents::workspace_id.eq(ws_id))
        .count()
        .get_result(conn)
}

/// The columns an agent's settings fill, one list for inserting and updating.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = agents)]
struct Settings<'a> {
    name: &'a str,
    greeting: &'a str,
    instructions: &'a str,
    language: &'a str,
    fallback_message: &'a str,
    hours_days: &'a str,
    open_minute: i32,
    close_minute: i32,
    utc_offset_minutes: i32,
    time_zone: &'a str,
    provider: &'a str,
    model: &'a str,
    base_url: &'a str,
    allowed_origins: &'a str,
    channels: &'a str,
}

impl<'a> From<&'a Valid> for Settings<'a> {
    fn from(v: &'a Valid) -> Self {
        Settings {
            name: &v.name,
            greeting: &v.greeting,
            instructions: &v.instructions,
            language: &v.language,
            fallback_message: &v.fallback_message,
            hours_days: &v.hours_days,
            open_minute: v.open_minute,
            close_minute: v.close_minute,
            utc_offset_minutes: v.utc_offset_minutes,
            time_zone: &v.time_zone,
            provider: &v.provider,
            model: &v.model,
            base_url: &v.base_url,
            allowed_origins: &v.allowed_origins,
            channels: &v.channels,
        }
    }
}

/// Inserts a new agent.
pub fn insert(conn: &mut DbConn, id: &str, ws_id: &str, v: &Valid, now: i64) -> QueryResult<()> {
    diesel::insert_into(agents::table)
        .values((
            agents::id.eq(id),
            agents::workspace_id.eq(ws_id),
            Settings::from(v),
            agents::created_at.eq(now),
            agents::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Writes a changed agent.
pub fn update(conn: &mut DbConn, agent_id: &str, v: &Valid, now: i64) -> QueryResult<()> {
    diesel::update(agents::table.find(agent_id))
        .set((Settings::from(v), agents::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Deletes an agent.
pub fn delete(conn: &mut DbConn, agent_id: &str) -> QueryResult<()> {
    diesel::delete(agents::table.find(agent_id)).execute(conn)?;
    Ok(())
}

/// Deletes every agent of a workspace (its names, greetings, instructions and fallback
/// messages), when the workspace is deleted for good.
pub fn delete_all(conn: &mut DbConn, ws_id: &str) -> QueryResult<usize> {
    diesel::delete(agents::table.filter(agents::workspace_id.eq(ws_id))).execute(conn)
}

/// The workspace's configuration revision.
pub fn config_revision(conn: &mut DbConn, ws_id: &str) -> QueryResult<i64> {
    workspaces::table
        .find(ws_id)
        .select(workspaces::config_revision)
        .first(conn)
}

/// Bumps the workspace's configuration revision.
pub fn bump_config_revision(conn: &mut DbConn, ws_id: &str) -> QueryResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set(workspaces::config_revision.eq(workspaces::config_revision + 1))
        .execute(conn)?;
    Ok(())
}

/// The workspace's enrolled node that is not being destroyed, if any.
pub fn enrolled_node(conn: &mut DbConn, ws_id: &str) -> QueryResult<Option<String>> {
    nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .filter(nodes::enrolled_at.is_not_null())
        .filter(nodes::state.ne_all([state::DEPROVISIONING, state::DESTROYED]))
        .select(nodes::id)
        .first(conn)
        .optional()
}

/// Drops the node's `apply_config` commands it has not fetched (a newer one follows).
pub fn drop_undelivered_configs(conn: &mut DbConn, node_id: &str) -> QueryResult<()> {
    diesel::delete(
        commands::table
            .filter(commands::node_id.eq(node_id))
            .filter(commands::kind.eq("apply_config"))
            .filter(commands::delivered_at.is_null()),
    )
    .execute(conn)?;
    Ok(())
}

/// The public URL of the workspace's newest node (for embed snippets).
pub fn node_url(conn: &mut DbConn, ws_id: &str) -> QueryResult<Option<String>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .order(nodes::created_at.desc())
        .select(nodes::public_url)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}
