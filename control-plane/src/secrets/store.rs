//! The `workspace_secrets` table (metadata only: never a value), and the reads of
//! `nodes` and `commands` the delivery needs.

use super::model::SecretStatus;
use crate::infra::db::DbConn;
use crate::infra::schema::{commands, nodes, workspace_secrets};
use crate::provisioning::state;
use diesel::prelude::*;

/// What the CP keeps about one secret.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workspace_secrets)]
pub struct SecretRow {
    /// Workspace.
    pub workspace_id: String,
    /// Kind.
    pub kind: String,
    /// Keyed fingerprint (12 hex).
    pub fingerprint: String,
    /// Last four characters.
    pub last4: String,
    /// When the provider accepted it, if it could be checked.
    pub validated_at: Option<i64>,
    /// When the node stored it.
    pub delivered_at: Option<i64>,
    /// pending, delivered, failed, expired, removing ([`SecretStatus`]).
    pub status: String,
    /// Why delivery failed.
    pub error_code: Option<String>,
    /// The delivering command.
    pub command_id: Option<String>,
    /// Last change.
    pub updated_at: i64,
}

impl SecretRow {
    /// Kind for people.
    pub fn label(&self) -> &'static str {
        super::model::label(&self.kind)
    }

    /// Status in words.
    pub fn status_text(&self) -> String {
        super::model::status_text(&self.status, self.error_code.as_deref())
    }
}

/// A workspace's secrets, by kind.
pub fn rows(conn: &mut DbConn, ws_id: &str) -> QueryResult<Vec<SecretRow>> {
    workspace_secrets::table
        .filter(workspace_secrets::workspace_id.eq(ws_id))
        .order(workspace_secrets::kind.asc())
        .select(SecretRow::as_select())
        .load(conn)
}

/// One secret.
pub fn find(conn: &mut DbConn, ws_id: &str, kind: &str) -> QueryResult<SecretRow> {
    workspace_secrets::table
        .find((ws_id, kind))
        .select(SecretRow::as_select())
        .first(conn)
}

/// The enrolled node of a workspace that is not being destroyed, with its age recipient
/// (`None` when there is none or it has no recipient yet).
pub fn target_node(conn: &mut DbConn, ws_id: &str) -> QueryResult<Option<(String, String)>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .filter(nodes::enrolled_at.is_not_null())
        .filter(nodes::state.ne_all([state::DEPROVISIONING, state::DESTROYED]))
        .select((nodes::id, nodes::age_recipient))
        .first::<(String, Option<String>)>(conn)
        .optional()?
        .and_then(|(id, r)| r.map(|r| (id, r))))
}

/// `Some(command)` when the secret exists (the command that last changed it, if any).
pub fn command_of(
    conn: &mut DbConn,
    ws_id: &str,
    kind: &str,
) -> QueryResult<Option<Option<String>>> {
    workspace_secrets::table
        .find((ws_id, kind))
        .select(workspace_secrets::command_id)
        .first(conn)
        .optional()
}

/// Deletes a command the node has not fetched yet (a sealed value superseded).
pub fn drop_undelivered_command(conn: &mut DbConn, command_id: &str) -> QueryResult<()> {
    diesel::delete(
        commands::table
            .find(command_id)
            .filter(commands::delivered_at.is_null()),
    )
    .execute(conn)?;
    Ok(())
}

/// Sets when a queued command expires.
pub fn set_command_expiry(conn: &mut DbConn, command_id: &str, at: i64) -> QueryResult<()> {
    diesel::update(commands::table.find(command_id))
        .set(commands::expires_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// The metadata of a value just sealed and queued.
pub struct NewSecret<'a> {
    /// Workspace.
    pub workspace_id: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Keyed fingerprint.
    pub fingerprint: &'a str,
    /// Last four characters.
    pub last4: &'a str,
    /// When the provider accepted it.
    pub validated_at: Option<i64>,
    /// The delivering command.
    pub command_id: &'a str,
    /// Now.
    pub now: i64,
}

/// Replaces a secret's row with a pending one.
pub fn put_pending(conn: &mut DbConn, s: &NewSecret<'_>) -> QueryResult<()> {
    diesel::delete(workspace_secrets::table.find((s.workspace_id, s.kind))).execute(conn)?;
    diesel::insert_into(workspace_secrets::table)
        .values((
            workspace_secrets::workspace_id.eq(s.workspace_id),
            workspace_secrets::kind.eq(s.kind),
            workspace_secrets::fingerprint.eq(s.fingerprint),
            workspace_secrets::last4.eq(s.last4),
            workspace_secrets::validated_at.eq(s.validated_at),
            workspace_secrets::status.eq(SecretStatus::Pending.as_str()),
            workspace_secrets::command_id.eq(s.command_id),
            workspace_secrets::updated_at.eq(s.now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks a secret as being removed by `command_id`.
pub fn mark_removing(
    conn: &mut DbConn,
    ws_id: &str,
    kind: &str,
    command_id: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::update(workspace_secrets::table.find((ws_id, kind)))
        .set((
            workspace_secrets::status.eq(SecretStatus::Removing.as_str()),
            workspace_secrets::command_id.eq(command_id),
            workspace_secrets::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The secret a command delivers or removes: (workspace, kind, status).
pub fn by_command(
    conn: &mut DbConn,
    command_id: &str,
) -> QueryResult<Option<(String, String, String)>> {
    workspace_secrets::table
        .filter(workspace_secrets::command_id.eq(command_id))
        .select((
            workspace_secrets::workspace_id,
            workspace_secrets::kind,
            workspace_secrets::status,
        ))
        .first(conn)
        .optional()
}

/// Forgets a secret.
pub fn delete(conn: &mut DbConn, ws_id: &str, kind: &str) -> QueryResult<()> {
    diesel::delete(workspace_secrets::table.find((ws_id, kind))).execute(conn)?;
    Ok(())
}

/// Forgets every secret of a workspace (fingerprints, last 4, times), when the workspace
/// is deleted for good.
pub fn delete_all(conn: &mut DbConn, ws_id: &str) -> QueryResult<usize> {
    diesel::delete(workspace_secrets::table.filter(workspace_secrets::workspace_id.eq(ws_id)))
        .execute(conn)
}

/// Records the node's answer to a delivery.
pub fn mark_delivery(
    conn: &mut DbConn,
    ws_id: &str,
    kind: &str,
    ok: bool,
    error_code: Option<&str>,
    now: i64,
) -> QueryResult<()> {
    let status = if ok {
        SecretStatus::Delivered
    } else {
        SecretStatus::Failed
    };
    diesel::update(workspace_secrets::table.find((ws_id, kind)))
        .set((
            workspace_secrets::status.eq(status.as_str()),
            workspace_secrets::delivered_at.eq(ok.then_some(now)),
            workspace_secrets::error_code.eq(error_code),
            workspace_secrets::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// `deliver_secret` commands not acknowledged and past their expiry.
pub fn expired_deliveries(conn: &mut DbConn, now: i64) -> QueryResult<Vec<String>> {
    commands::table
        .filter(commands::kind.eq("deliver_secret"))
        .filter(commands::acked_at.is_null())
        .filter(commands::expires_at.lt(now))
        .select(commands::id)
        .load(conn)
}

/// Marks the secret of an expired delivery as expired and deletes the sealed command.
pub fn expire_delivery(conn: &mut DbConn, command_id: &str, now: i64) -> QueryResult<()> {
    diesel::update(workspace_secrets::table.filter(workspace_secrets::command_id.eq(command_id)))
        .set((
            workspace_secrets::status.eq(SecretStatus::Expired.as_str()),
            workspace_secrets::updated_at.eq(now),
        ))
        .execute(conn)?;
    diesel::delete(commands::table.find(command_id)).execute(conn)?;
    Ok(())
}
