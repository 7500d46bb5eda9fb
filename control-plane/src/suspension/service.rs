//! Suspension of a workspace: its node stops answering on every channel but keeps its
//! data, and its console still opens so the owners can read, export and fix what is wrong.
//!
//! A workspace can be suspended for several causes at once (an operator's decision, an
//! unpaid invoice). Each cause is a row in `workspace_suspensions`; the node gets
//! `suspend` when the first cause starts and `resume` when the last one is lifted, so
//! paying an invoice does not undo an operator's suspension. Cancelled workspaces are
//! suspended by `workspaces::cancel` and never resumed from here.

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{nodes, workspace_suspensions as ws_s, workspaces};
use crate::notify::{self, emails};
use crate::provisioning::{self, state};
use diesel::prelude::*;
use outpost_protocol::CommandKind;

/// Suspended by an operator, with a reason the owners can read.
pub const OPERATOR: &str = "operator";
/// Suspended because an invoice stayed unpaid past the grace period.
pub const PAYMENT: &str = "payment";

/// Longest operator reason kept (it is shown to the owners and stored in the CP).
pub const MAX_REASON: usize = 500;

/// One active cause of a suspension, as the workspace page shows it.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct Suspension {
    /// `operator` or `payment`.
    pub code: String,
    /// The operator's words (empty for `payment`).
    pub reason: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl Suspension {
    /// What the owners read on the workspace page.
    pub fn explain(&self) -> String {
        match self.code.as_str() {
            PAYMENT => "Payment is needed: an invoice is unpaid past its grace period, or the subscription has ended. Pay or subscribe again from Billing and the workspace resumes within a minute.".into(),
            OPERATOR if !self.reason.is_empty() => format!("Suspended by Outpost staff: {}", self.reason),
            _ => "Suspended by Outpost staff. Contact support to find out why.".into(),
        }
    }
}

/// The active causes of a workspace's suspension, oldest first (empty: not suspended).
pub fn active(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<Suspension>> {
    Ok(ws_s::table
        .filter(ws_s::workspace_id.eq(ws_id))
        .filter(ws_s::lifted_at.is_null())
        .order(ws_s::created_at.asc())
        .select((ws_s::code, ws_s::reason, ws_s::created_at))
        .load(conn)?)
}

/// Serialises suspend/resume of one workspace: each reads the active causes and then
/// writes, so two running at once (a resume and a new cause) could otherwise leave the node
/// resumed with a cause still active. A no-op update takes the row lock on PostgreSQL (on
/// SQLite the transaction already holds the write lock).
fn lock_workspace(conn: &mut DbConn, ws_id: &str) -> AppResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set(workspaces::config_revision.eq(workspaces::config_revision))
        .execute(conn)?;
    Ok(())
}

fn name_and_deleted(conn: &mut DbConn, ws_id: &str) -> AppResult<(String, Option<i64>)> {
    workspaces::table
        .find(ws_id)
        .select((workspaces::name, workspaces::deleted_at))
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// Emails the workspace's owners in the background.
fn email_owners<T: askama::Template>(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    email: &T,
) -> AppResult<()> {
    let owners = notify::addresses_of(conn, ws_id, &[crate::workspaces::ROLE_OWNER])?;
    notify::emails::send_later(&st.mailer, owners, email)
}

fn workspace_page(st: &State, ws_id: &str) -> emails::Line {
    format!("{}/workspaces/{ws_id}", st.public_url).into()
}

/// A workspace's nodes that hold a certificate and take commands.
pub fn enrolled_nodes(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<String>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .filter(nodes::state.eq_any(state::ENROLLED))
        .select(nodes::id)
        .load(conn)?)
}

/// Validates an operator's reason: required, one paragraph, bounded.
pub fn clean_reason(raw: &str) -> AppResult<String> {
    let r = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if r.is_empty() {
        return Err(AppError::invalid(
            Code::ReasonRequired,
            "Give the reason: the workspace's owners will read it.",
        ));
    }
    if r.chars().count() > MAX_REASON {
        return Err(AppError::invalid(
            Code::ReasonTooLong,
            "Keep the reason under 500 characters.",
        ));
    }
    Ok(r)
}

/// Suspends a workspace for `code` (`reason` is shown to the owners). Starting a cause
/// that is already active changes nothing and returns `false`. The node is sent
/// `suspend` when this is the first active cause; the owners get an email.
pub fn suspend(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    code: &str,
    reason: &str,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<bool> {
    let (name, deleted) = name_and_deleted(conn, ws_id)?;
    if deleted.is_some() {
        return Err(AppError::Conflict(
            Code::WorkspaceDeleted,
            "This workspace is cancelled or deleted; there is nothing to suspend.".into(),
        ));
    }
    let nodes = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        lock_workspace(conn, ws_id)?;
        let current = active(conn, ws_id)?;
        if current.iter().any(|s| s.code == code) {
            return Ok(None);
        }
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
        Ok(Some(nodes))
    })?;
    let Some(nodes) = nodes else {
        return Ok(false);
    };
    for id in &nodes {
        st.command_notify.notify(id);
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
    let why = Suspension {
        code: code.into(),
        reason: reason.into(),
        created_at: db::now(),
    }
    .explain();
    email_owners(
        conn,
        st,
        ws_id,
        &emails::Suspended {
            workspace: name.into(),
            why: why.into(),
            page: workspace_page(st, ws_id),
        },
    )?;
    Ok(true)
}

/// Lifts the `code` cause of a workspace's suspension. When no cause remains, the node is
/// sent `resume` and the owners get an email. Returns whether a cause was lifted.
pub fn resume(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    code: &str,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<bool> {
    let (name, deleted) = name_and_deleted(conn, ws_id)?;
    let outcome = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        lock_workspace(conn, ws_id)?;
        let n = diesel::update(
            ws_s::table
                .filter(ws_s::workspace_id.eq(ws_id))
                .filter(ws_s::code.eq(code))
                .filter(ws_s::lifted_at.is_null()),
        )
        .set((ws_s::lifted_at.eq(db::now()), ws_s::lifted_by.eq(actor)))
        .execute(conn)?;
        if n == 0 {
            return Ok(None);
        }
        let remaining = active(conn, ws_id)?;
        // A cancelled workspace stays suspended until its export window ends.
        let nodes = if remaining.is_empty() && deleted.is_none() {
            let nodes = enrolled_nodes(conn, ws_id)?;
            for id in &nodes {
                provisioning::queue_command(conn, id, &CommandKind::Resume)?;
            }
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
            st.command_notify.notify(id);
        }
        email_owners(
            conn,
            st,
            ws_id,
            &emails::Resumed {
                workspace: name.into(),
                page: workspace_page(st, ws_id),
            },
        )?;
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
    let (ws_id, deleted): (String, Option<i64>) = nodes::table
        .inner_join(workspaces::table)
        .filter(nodes::id.eq(node_id))
        .select((workspaces::id, workspaces::deleted_at))
        .first(conn)?;
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

/// Gateway side: the node acknowledged `resume`, so it leaves `suspended`; its next
/// report decides between healthy and degraded.
pub fn on_resume_ack(conn: &mut DbConn, node_id: &str) -> AppResult<()> {
    provisioning::transition(conn, node_id, &[state::SUSPENDED], state::HEALTHY)?;
    Ok(())
}
