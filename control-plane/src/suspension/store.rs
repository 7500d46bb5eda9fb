//! The suspension table, `workspace_suspensions` (one row per cause), and what it reads
//! of `workspaces` (name, deletion, the row lock) and `nodes` (the enrolled ones).

use super::model::Suspension;
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{nodes, workspace_suspensions as ws_s, workspaces};
use crate::provisioning::state;
use diesel::prelude::*;

/// The active causes of a workspace's suspension, oldest first (empty: not suspended).
pub fn active(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<Suspension>> {
    let rows: Vec<(String, String, i64)> = ws_s::table
        .filter(ws_s::workspace_id.eq(ws_id))
        .filter(ws_s::lifted_at.is_null())
        .order(ws_s::created_at.asc())
        .select((ws_s::code, ws_s::reason, ws_s::created_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(code, reason, created_at)| Suspension {
            code,
            reason,
            created_at,
        })
        .collect())
}

/// Serialises suspend/resume of one workspace: each reads the active causes and then
/// writes, so two running at once (a resume and a new cause) could otherwise leave the node
/// resumed with a cause still active. A no-op update takes the row lock on PostgreSQL (on
/// SQLite the transaction already holds the write lock).
pub fn lock_workspace(conn: &mut DbConn, ws_id: &str) -> AppResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set(workspaces::config_revision.eq(workspaces::config_revision))
        .execute(conn)?;
    Ok(())
}

/// A workspace's name and when it was cancelled or deleted (404 if there is none).
pub fn name_and_deleted(conn: &mut DbConn, ws_id: &str) -> AppResult<(String, Option<i64>)> {
    workspaces::table
        .find(ws_id)
        .select((workspaces::name, workspaces::deleted_at))
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// A node's workspace and when that was cancelled or deleted.
pub fn workspace_of_node(conn: &mut DbConn, node_id: &str) -> AppResult<(String, Option<i64>)> {
    Ok(nodes::table
        .inner_join(workspaces::table)
        .filter(nodes::id.eq(node_id))
        .select((workspaces::id, workspaces::deleted_at))
        .first(conn)?)
}

/// A workspace's nodes that hold a certificate and take commands.
pub fn enrolled_nodes(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<String>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .filter(nodes::state.eq_any(state::ENROLLED))
        .select(nodes::id)
        .load(conn)?)
}

/// Starts a cause.
pub fn insert(
    conn: &mut DbConn,
    ws_id: &str,
    code: &str,
    reason: &str,
    actor: &str,
) -> AppResult<()> {
    diesel::insert_into(ws_s::table)
        .values((
            ws_s::id.eq(db::new_id()),
            ws_s::workspace_id.eq(ws_id),
            ws_s::code.eq(code),
            ws_s::reason.eq(reason),
            ws_s::actor.eq(actor),
            ws_s::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Lifts the active `code` cause. Returns whether one was active.
pub fn lift(conn: &mut DbConn, ws_id: &str, code: &str, actor: &str) -> AppResult<bool> {
    let n = diesel::update(
        ws_s::table
            .filter(ws_s::workspace_id.eq(ws_id))
            .filter(ws_s::code.eq(code))
            .filter(ws_s::lifted_at.is_null()),
    )
    .set((ws_s::lifted_at.eq(db::now()), ws_s::lifted_by.eq(actor)))
    .execute(conn)?;
    Ok(n > 0)
}

/// Blanks the reasons written for a workspace's suspensions (free text from operators),
/// when the workspace is deleted for good; the causes' codes, actors and times stay.
pub fn forget_reasons(conn: &mut DbConn, ws_id: &str) -> AppResult<usize> {
    Ok(diesel::update(
        ws_s::table
            .filter(ws_s::workspace_id.eq(ws_id))
            .filter(ws_s::reason.ne("")),
    )
    .set(ws_s::reason.eq(""))
    .execute(conn)?)
}
