//! Suspending and resuming a workspace for a cause, bringing late nodes in line, and the
//! node's acknowledgements. They take a connection and a [`Context`] (where emails go out
//! from, and the long-poll wake-ups), never the app state.

use super::model::{Suspension, NOTIFIED_ROLES};
use super::store::{self, active, enrolled_nodes};
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::wake::CommandNotify;
use crate::notify::{self, emails, Notifier};
use crate::provisioning::{self, NodeState};
use outpost_protocol::CommandKind;

/// What suspending and resuming need besides the connection.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The public URL for the links in the owners' emails (queued in the outbox).
    pub notifier: Notifier<'a>,
    /// Wakes the nodes' long-polls once a command is queued.
    pub command_notify: &'a CommandNotify,
}

/// Queues an email to the workspace's owners, in the caller's transaction.
fn email_owners<T: askama::Template>(conn: &mut DbConn, ws_id: &str, email: &T) -> AppResult<()> {
    let owners = notify::addresses_of(conn, ws_id, NOTIFIED_ROLES)?;
    notify::emails::queue(conn, owners, email)
}

fn workspace_page(cx: &Context<'_>, ws_id: &str) -> emails::Line {
    format!("{}/workspaces/{ws_id}", cx.notifier.public_url).into()
}

/// Suspends a workspace for `code` (`reason` is shown to the owners). Starting a cause
/// that is already active changes nothing and returns `false`. The node is sent
/// `suspend` when this is the first active cause; the owners get an email.
pub fn suspend(
    conn: &mut DbConn,
    cx: &Context<'_>,
    ws_id: &str,
    code: &str,
    reason: &str,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<bool> {
    let (name, deleted) = store::name_and_deleted(conn, ws_id)?;
    if deleted.is_some() {
        return Err(AppError::Conflict(
            Code::WorkspaceDeleted,
            "This workspace is cancelled or deleted; there is nothing to suspend.".into(),
        ));
    }
    let nodes = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        store::lock_workspace(conn, ws_id)?;
        let current = active(conn, ws_id)?;
        if current.iter().any(|s| s.code == code) {
            return Ok(None);
        }
        store::insert(conn, ws_id, code, reason, actor)?;
        let nodes = enrolled_nodes(conn, ws_id)?;
        if current.is_empty() {
            for id in &nodes {
                provisioning::queue_command(
                    conn,
                    id,
                    &CommandKind::Suspend {
                        reason_code: code.to_owned(),
                    },
                )?;
            }
        }
        let why = Suspension {
            code: code.into(),
            reason: reason.into(),
            created_at: db::now(),
        }
        .explain();
        // With the suspension, in its transaction.
        email_owners(
            conn,
            ws_id,
            &emails::Suspended {
                workspace: (&name).into(),
                why: why.into(),
                page: workspace_page(cx, ws_id),
            },
        )?;
        Ok(Some(nodes))
    })?;
    let Some(nodes) = nodes else {
        return Ok(false);
    };
    for id in &nodes {
        cx.command_notify.notify(id);
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(actor),
            action: "workspace.suspended",
            object_type: "workspace",
            object_id: ws_id,
            workspace_id: Some(ws_id),
            ip,
            detail: code,
        },
    )?;
    Ok(true)
}

/// Lifts the `code` cause of a workspace's suspension. When no cause remains, the node is
/// sent `resume` and the owners get an email. Returns whether a cause was lifted.
pub fn resume(
    conn: &mut DbConn,
    cx: &Context<'_>,
    ws_id: &str,
    code: &str,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<bool> {
    let (name, deleted) = store::name_and_deleted(conn, ws_id)?;
    let outcome = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        store::lock_workspace(conn, ws_id)?;
        if !store::lift(conn, ws_id, code, actor)? {
            return Ok(None);
        }
        let remaining = active(conn, ws_id)?;
        // A cancelled workspace stays suspended until its export window ends.
        let nodes = if remaining.is_empty() && deleted.is_none() {
            let nodes = enrolled_nodes(conn, ws_id)?;
            for id in &nodes {
                provisioning::queue_command(conn, id, &CommandKind::Resume)?;
            }
            // With the resumption, in its transaction.
            email_owners(
                conn,
                ws_id,
                &emails::Resumed {
                    workspace: (&name).into(),
                    page: workspace_page(cx, ws_id),
                },
            )?;
            Some(nodes)
        } else {
            None
        };
        Ok(Some(nodes))
    })?;
    let Some(resumed) = outcome else {
        return Ok(false);
    };
    audit::record(
        conn,
        &Entry {
            actor: Some(actor),
            action: if resumed.is_some() {
                "workspace.resumed"
            } else {
                "workspace.suspension_lifted"
            },
            object_type: "workspace",
            object_id: ws_id,
            workspace_id: Some(ws_id),
            ip,
            detail: code,
        },
    )?;
    if let Some(nodes) = resumed {
        for id in &nodes {
            cx.command_notify.notify(id);
        }
    }
    Ok(true)
}

/// Brings a node that joins late in line with its workspace's suspension. `suspend` and
/// `resume` go to the nodes enrolled at that moment, so a node that enrolls after a
/// suspension began (it was still booting, or failed and was retried) would otherwise
/// answer on every channel. It is sent `suspend` with the oldest active cause. A node that
/// `rejoins` (it had enrolled, failed, and an operator retried it) may have missed a
/// `resume` while it was failed, so with no cause left it is sent `resume` (a no-op on a
/// node that is not suspended). Cancelled workspaces are left to `workspaces::cancel`.
/// Returns whether a command was queued.
pub fn sync_node(conn: &mut DbConn, node_id: &str, rejoins: bool) -> AppResult<bool> {
    let (ws_id, deleted) = store::workspace_of_node(conn, node_id)?;
    if deleted.is_some() {
        return Ok(false);
    }
    let kind = match active(conn, &ws_id)?.into_iter().next() {
        Some(s) => CommandKind::Suspend {
            reason_code: s.code,
        },
        None if rejoins => CommandKind::Resume,
        None => return Ok(false),
    };
    provisioning::queue_command(conn, node_id, &kind)?;
    Ok(true)
}

/// The node acknowledged `suspend`: it confirmed that its channels stopped, and only now
/// is it shown suspended.
pub fn on_suspend_ack(conn: &mut DbConn, node_id: &str) -> AppResult<()> {
    provisioning::move_node(conn, node_id, &NodeState::REPORTING, NodeState::Suspended)?;
    Ok(())
}

/// The node acknowledged `resume`, so it leaves `suspended`; its next report decides
/// between healthy and degraded.
pub fn on_resume_ack(conn: &mut DbConn, node_id: &str) -> AppResult<()> {
    provisioning::move_node(conn, node_id, &[NodeState::Suspended], NodeState::Healthy)?;
    Ok(())
}
