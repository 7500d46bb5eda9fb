//! What an operator may do to a workspace: exactly these four actions, each audited with
//! the operator's user id and IP. They take a connection and a [`Context`], never the app
//! state. The staff list itself is changed by the CLI (`cli/operator.rs`).

use super::model;
use super::store::{self, load_workspace};
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::notify;
use crate::provisioning;
use crate::suspension;
use crate::workspaces::ROLE_OWNER;

/// What the operator's actions need besides the connection.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Emails and long-poll wake-ups (as suspension needs them).
    pub suspension: suspension::Context<'a>,
    /// How long a deprovisioned node has to send its receipt.
    pub deprovision_timeout_secs: i64,
    /// What deleting a workspace for good does elsewhere (its text is forgotten).
    pub reactions: &'a dyn crate::workspaces::service::Reactions,
}

/// Suspends a workspace for the operator cause. Suspending twice is a 409.
pub fn suspend(
    conn: &mut DbConn,
    cx: &Context<'_>,
    ws_id: &str,
    operator: &str,
    reason: &str,
    ip: &str,
) -> AppResult<()> {
    let reason = suspension::clean_reason(reason)?;
    load_workspace(conn, ws_id)?;
    if !suspension::service::suspend(
        conn,
        &cx.suspension,
        ws_id,
        suspension::OPERATOR,
        &reason,
        operator,
        Some(ip),
    )? {
        return Err(AppError::Conflict(
            Code::AlreadySuspended,
            "An operator has already suspended this workspace; resume it first to change the reason.".into(),
        ));
    }
    Ok(())
}

/// Lifts the operator cause of a workspace's suspension (a payment cause stays until
/// the invoice is paid).
pub fn resume(
    conn: &mut DbConn,
    cx: &Context<'_>,
    ws_id: &str,
    operator: &str,
    ip: &str,
) -> AppResult<()> {
    load_workspace(conn, ws_id)?;
    if !suspension::service::resume(
        conn,
        &cx.suspension,
        ws_id,
        suspension::OPERATOR,
        operator,
        Some(ip),
    )? {
        return Err(AppError::Conflict(
            Code::NotSuspended,
            "This workspace is not suspended by an operator: there is nothing to resume.".into(),
        ));
    }
    Ok(())
}

/// Retries the failed step of a workspace's newest node ([`provisioning::retry_failed`]).
/// A node that had enrolled missed any suspend or resume sent while it was failed: it is
/// brought in line ([`suspension::sync_node`]) in the retry's transaction.
pub fn retry(
    conn: &mut DbConn,
    cx: &Context<'_>,
    ws_id: &str,
    operator: &str,
    ip: &str,
) -> AppResult<provisioning::Retried> {
    let ws = load_workspace(conn, ws_id)?;
    if ws.deleted_at.is_some() {
        return Err(AppError::Conflict(
            Code::WorkspaceDeleted,
            "This workspace is cancelled or deleted: its node is not provisioned again.".into(),
        ));
    }
    let node_id = store::newest_node(conn, ws_id)?.ok_or_else(|| {
        AppError::Conflict(Code::NoNode, "This workspace has no node to retry.".into())
    })?;
    let retried = provisioning::retry_failed(conn, &node_id, |conn, id| {
        suspension::sync_node(conn, id, true).map(drop)
    })?;
    cx.suspension.command_notify.notify(&node_id);
    audit::record(
        conn,
        &Entry {
            actor: Some(operator),
            action: "operator.retry",
            object_type: "node",
            object_id: &node_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: &format!("{}:{} -> {}", retried.step, retried.code, retried.to),
        },
    )?;
    Ok(retried)
}

/// Deprovisions a workspace's node now, live or not, and marks the workspace deleted as
/// `workspaces::delete` does. `confirm` must be the workspace's address. The reason is
/// emailed to the owners; the audit log keeps who, when, from where and which nodes, and,
/// like every audit event, no free text.
pub fn force_deprovision(
    conn: &mut DbConn,
    cx: &Context<'_>,
    ws_id: &str,
    operator: &str,
    reason: &str,
    confirm: &str,
    ip: &str,
) -> AppResult<Vec<String>> {
    let reason = suspension::clean_reason(reason)?;
    let ws = load_workspace(conn, ws_id)?;
    if !confirm.trim().eq_ignore_ascii_case(&ws.slug) {
        return Err(AppError::invalid(
            Code::ConfirmationMismatch,
            format!(
                "To confirm, type the workspace's address “{}” exactly: this destroys its node and everything on it.",
                ws.slug
            ),
        ));
    }
    let live: Vec<String> = store::nodes_of(conn, ws_id)?
        .into_iter()
        .filter(|(_, s)| model::is_live(s))
        .map(|(id, _)| id)
        .collect();
    if ws.deleted_at.is_some() && live.is_empty() {
        return Err(AppError::Conflict(
            Code::AlreadyDeprovisioned,
            "This workspace is deleted and its node is already deprovisioning or destroyed.".into(),
        ));
    }
    let timeout = cx.deprovision_timeout_secs;
    db::transaction::<_, AppError, _>(conn, |conn| {
        store::mark_deleted(conn, ws_id, ws.deleted_at.unwrap_or_else(db::now))?;
        for id in &live {
            provisioning::begin_deprovision(conn, id, timeout)?;
        }
        // The owners' email with the deletion, before `gone` forgets the text.
        let notifier = &cx.suspension.notifier;
        let owners = notify::addresses_of(conn, ws_id, &[ROLE_OWNER])?;
        notify::emails::queue(
            conn,
            owners,
            &notify::emails::DeletedByStaff {
                workspace: (&ws.name).into(),
                reason: (&reason).into(),
                page: format!("{}/workspaces/{ws_id}", notifier.public_url).into(),
            },
        )?;
        cx.reactions.gone(conn, ws_id)
    })?;
    for id in &live {
        cx.suspension.command_notify.notify(id);
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(operator),
            action: "operator.force_deprovision",
            object_type: "workspace",
            object_id: ws_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: &format!("nodes={}", live.join(",")),
        },
    )?;
    Ok(live)
}
