//! Who a notice goes to, and the workspace it is about.

use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::infra::schema::{memberships, nodes, users, workspaces};
use diesel::prelude::*;

/// Email addresses of a workspace's members holding one of `roles` (e.g. the owners, for
/// billing and suspension notices).
pub fn addresses_of(conn: &mut DbConn, ws_id: &str, roles: &[&str]) -> AppResult<Vec<String>> {
    Ok(memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(memberships::role.eq_any(roles))
        .select(users::email)
        .order(users::email)
        .load(conn)?)
}

/// The id and name of the workspace node `node_id` serves.
pub fn workspace_of_node(conn: &mut DbConn, node_id: &str) -> AppResult<(String, String)> {
    Ok(nodes::table
        .inner_join(workspaces::table)
        .filter(nodes::id.eq(node_id))
        .select((workspaces::id, workspaces::name))
        .first(conn)?)
}
