//! The operator console: Outpost staff (`users.is_operator`, set with
//! `control-plane operator add`) see every workspace and its node, and can suspend and
//! resume a workspace with a reason, retry a failed provisioning step and force a
//! deprovisioning.
//!
//! An operator is not a member of any workspace. These pages show what the control plane
//! holds and nothing more: workspace and node metadata, node timelines, suspensions, jobs.
//! They sign no capability token, so an operator cannot open a node console, and they read
//! no secret fingerprint, agent configuration or usage count. What an operator may do to a
//! workspace is exactly the four actions below, each audited with the operator's user id
//! and IP.

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::http::html;
use crate::http::PageResult;
use crate::http::{client_ip, CurrentUser, Empty, OperatorForm, OperatorUser};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    jobs, memberships, node_events, nodes, workspace_suspensions, workspaces,
};
use crate::notify;
use crate::provisioning::{self, state};
use crate::suspension;
use crate::workspaces::{Workspace, ROLE_OWNER};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use serde::Deserialize;

/// Workspaces per page of the list.
pub const PAGE_SIZE: i64 = 50;
/// Timeline events shown on a workspace's page.
const EVENTS_SHOWN: i64 = 100;

// ---------------------------------------------------------------- queries

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
        (self.state == state::FAILED).then(|| {
            format!(
                "{}: {}",
                self.failed_step.as_deref().unwrap_or("unknown step"),
                provisioning::explain_error(self.error_code.as_deref().unwrap_or(""))
            )
        })
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
    pub events: Vec<crate::workspaces::EventRow>,
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
            .any(|s| s.code == suspension::OPERATOR && s.lifted_at.is_none())
    }

    /// Whether the newest node is in `failed`.
    pub fn retryable(&self) -> bool {
        self.node().is_some_and(|n| n.state == state::FAILED)
    }

    /// Whether a node is left to deprovision.
    pub fn deprovisionable(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| ![state::DEPROVISIONING, state::DESTROYED].contains(&n.state.as_str()))
    }
}

fn load_workspace(conn: &mut DbConn, ws_id: &str) -> AppResult<Workspace> {
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
    let mut members: Vec<(String, usize)> = vec![];
    for r in roles {
        match members.iter_mut().find(|(role, _)| *role == r) {
            Some((_, n)) => *n += 1,
            None => members.push((r, 1)),
        }
    }
    members.sort();
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
                .limit(20)
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

// ---------------------------------------------------------------- actions

/// Suspends a workspace for the operator cause. Suspending twice is a 409.
pub fn suspend(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    operator: &str,
    reason: &str,
    ip: &str,
) -> AppResult<()> {
    let reason = suspension::clean_reason(reason)?;
    load_workspace(conn, ws_id)?;
    if !suspension::suspend(
        conn,
        st,
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
    st: &State,
    ws_id: &str,
    operator: &str,
    ip: &str,
) -> AppResult<()> {
    load_workspace(conn, ws_id)?;
    if !suspension::resume(conn, st, ws_id, suspension::OPERATOR, operator, Some(ip))? {
        return Err(AppError::Conflict(
            Code::NotSuspended,
            "This workspace is not suspended by an operator: there is nothing to resume.".into(),
        ));
    }
    Ok(())
}

/// Retries the failed step of a workspace's newest node ([`provisioning::retry_failed`]).
pub fn retry(
    conn: &mut DbConn,
    st: &State,
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
    let node_id: String = nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .order(nodes::created_at.desc())
        .select(nodes::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            AppError::Conflict(Code::NoNode, "This workspace has no node to retry.".into())
        })?;
    let retried = provisioning::retry_failed(conn, &node_id)?;
    st.command_notify.notify(&node_id);
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
    st: &State,
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
    let nodes: Vec<(String, String)> = nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .select((nodes::id, nodes::state))
        .load(conn)?;
    let live: Vec<String> = nodes
        .into_iter()
        .filter(|(_, s)| ![state::DEPROVISIONING, state::DESTROYED].contains(&s.as_str()))
        .map(|(id, _)| id)
        .collect();
    if ws.deleted_at.is_some() && live.is_empty() {
        return Err(AppError::Conflict(
            Code::AlreadyDeprovisioned,
            "This workspace is deleted and its node is already deprovisioning or destroyed.".into(),
        ));
    }
    let timeout = st.config.deprovision_timeout_secs;
    db::transaction::<_, AppError, _>(conn, |conn| {
        diesel::update(workspaces::table.find(ws_id))
            .set((
                workspaces::deleted_at.eq(ws.deleted_at.unwrap_or_else(db::now)),
                // As `workspaces::delete`: no export window left, the address is free.
                workspaces::deprovision_after.eq(None::<i64>),
            ))
            .execute(conn)?;
        for id in &live {
            provisioning::begin_deprovision(conn, id, timeout)?;
        }
        Ok(())
    })?;
    for id in &live {
        st.command_notify.notify(id);
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
    notify::emails::send_later(
        &st.mailer,
        notify::addresses_of(conn, ws_id, &[ROLE_OWNER])?,
        &notify::emails::DeletedByStaff {
            workspace: (&ws.name).into(),
            reason: reason.into(),
            page: format!("{}/workspaces/{ws_id}", st.public_url).into(),
        },
    )?;
    Ok(live)
}

// ---------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "operator.html")]
struct ListPage {
    user: CurrentUser,
    rows: Vec<Row>,
    q: String,
    page: i64,
    more: bool,
}

#[derive(Template)]
#[template(path = "operator_workspace.html")]
struct DetailPage {
    user: CurrentUser,
    d: Detail,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<i64>,
}

/// Keeps the address characters of a search (lowercased): the rest cannot match a slug.
fn slug_filter(q: &str) -> String {
    q.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(40)
        .collect()
}

pub(crate) async fn list_page(
    state: State,
    op: OperatorUser,
    q: web::Query<ListQuery>,
) -> PageResult {
    let slug = slug_filter(&q.q);
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let s = slug.clone();
    let (rows, more) = db::run(&state.db, move |conn| list(conn, &s, page)).await?;
    Ok(html(&ListPage {
        user: op.0,
        rows,
        q: slug,
        page,
        more,
    }))
}

pub(crate) async fn detail_page(
    state: State,
    op: OperatorUser,
    path: web::Path<String>,
) -> PageResult {
    let id = path.into_inner();
    let d = db::run(&state.db, move |conn| detail(conn, &id)).await?;
    Ok(html(&DetailPage { user: op.0, d }))
}

fn back_to(ws_id: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/operator/workspaces/{ws_id}")))
        .finish()
}

#[derive(Deserialize)]
pub(crate) struct ReasonForm {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub(crate) struct DeprovisionForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn suspend_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<ReasonForm>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, reason, ws) = (f.user.id, f.form.reason, id.clone());
    db::run(&state.db, move |conn| {
        suspend(conn, &st, &ws, &uid, &reason, &ip)
    })
    .await?;
    Ok(back_to(&id))
}

pub(crate) async fn resume_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, ws) = (f.user.id, id.clone());
    db::run(&state.db, move |conn| resume(conn, &st, &ws, &uid, &ip)).await?;
    Ok(back_to(&id))
}

pub(crate) async fn retry_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, ws) = (f.user.id, id.clone());
    db::run(&state.db, move |conn| retry(conn, &st, &ws, &uid, &ip)).await?;
    Ok(back_to(&id))
}

pub(crate) async fn deprovision_action(
    state: State,
    req: HttpRequest,
    f: OperatorForm<DeprovisionForm>,
    path: web::Path<String>,
) -> PageResult {
    let (st, ip, id) = (state.clone(), client_ip(&req), path.into_inner());
    let (uid, form, ws) = (f.user.id, f.form, id.clone());
    db::run(&state.db, move |conn| {
        force_deprovision(conn, &st, &ws, &uid, &form.reason, &form.confirm, &ip)
    })
    .await?;
    Ok(back_to(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_keep_only_address_characters() {
        assert_eq!(slug_filter("  Acme-Dental "), "acme-dental");
        assert_eq!(slug_filter("%_'; drop"), "drop");
        assert_eq!(slug_filter(&"a".repeat(100)).len(), 40);
    }
}
