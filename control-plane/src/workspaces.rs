//! Workspaces: the UI pages and the `/api/v1` JSON API, over one service layer. Every
//! handler that takes a workspace id goes through [`load_for_member`]; non-members get
//! 404, so the existence of other workspaces does not leak.

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::http::html;
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    memberships, node_events, node_exports, nodes, retention_sweeps, usage_counts, workspaces,
};
use crate::notify::notices::OwnerNotice;
use crate::provisioning::{self, jobs, state};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

/// Roles a member can have.
pub const ROLE_OWNER: &str = "owner";

/// A workspace row.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct Workspace {
    /// Id.
    pub id: String,
    /// Slug.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Plan.
    pub plan: String,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Deleted, unix seconds.
    pub deleted_at: Option<i64>,
    /// Revision of the agent configuration last pushed to the node.
    pub config_revision: i64,
    /// Set when the workspace was cancelled: its node is deprovisioned at this time (unix
    /// seconds), and until then stays up, suspended, for exports.
    pub deprovision_after: Option<i64>,
}

/// Node metadata shown to members (never content).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = nodes)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// State.
    pub state: String,
    /// Step that failed.
    pub failed_step: Option<String>,
    /// Failure code.
    pub error_code: Option<String>,
    /// Region.
    pub region: String,
    /// Console URL.
    pub public_url: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Enrolled, unix seconds.
    pub enrolled_at: Option<i64>,
    /// Last report, unix seconds.
    pub last_report_at: Option<i64>,
    /// Last report seq.
    pub last_seq: Option<i64>,
    /// Uptime, seconds.
    pub uptime_s: Option<i64>,
    /// Disk used.
    pub disk_used_bytes: Option<i64>,
    /// Queue depth.
    pub queue_depth: Option<i64>,
    /// Checks JSON.
    pub checks_json: Option<String>,
    /// Destroyed, unix seconds.
    pub destroyed_at: Option<i64>,
    /// Receipt body (JSON).
    pub receipt_body: Option<String>,
    /// Receipt signature.
    pub receipt_signature: Option<String>,
}

/// Counts per channel per hour, from reports.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct UsageRow {
    /// Channel.
    pub channel: String,
    /// Hour start, unix seconds.
    pub hour: i64,
    /// Inbound messages.
    pub inbound: i64,
    /// Outbound messages.
    pub outbound: i64,
    /// Conversations.
    pub conversations: i64,
}

/// An export as the CP knows it (DESIGN §1): the file and its link are on the node only.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct ExportRow {
    /// Export id (UUID, chosen by the node).
    pub id: String,
    /// `workspace` or `contact`.
    pub scope: String,
    /// `running`, `ready`, `failed` or `expired`; `destroyed` once the node is deprovisioning
    /// or destroyed (a `running` or `ready` export was erased with it).
    pub state: String,
    /// Size of the zip, bytes.
    pub size_bytes: i64,
    /// Requested, unix seconds.
    pub created_at: i64,
    /// Link and file expire, unix seconds.
    pub expires_at: i64,
}

/// What one retention sweep on the node deleted (counts only).
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct SweepRow {
    /// When it ran, unix seconds.
    pub at: i64,
    /// Messages older than the period.
    pub messages_deleted: i64,
    /// Contacts without activity, erased.
    pub contacts_erased: i64,
    /// Expired export files.
    pub exports_deleted: i64,
}

/// A timeline event.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct EventRow {
    /// Unix ms.
    pub at_ms: i64,
    /// Kind.
    pub kind: String,
    /// Detail.
    pub detail: String,
}

/// Everything the workspace page and API show.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceDetail {
    /// Workspace.
    pub workspace: Workspace,
    /// Caller's role.
    pub role: String,
    /// Node, if any.
    pub node: Option<NodeView>,
    /// Failure explained in words, if failed.
    pub node_error: Option<String>,
    /// Whether reports have stopped for 3 intervals (stale).
    pub stale: bool,
    /// Timeline, newest first.
    pub events: Vec<EventRow>,
    /// Usage counts, newest first.
    pub usage: Vec<UsageRow>,
    /// The workspace's agents.
    pub agents: Vec<crate::agents::Agent>,
    /// Exports the node reported, newest first (metadata only; no link).
    pub exports: Vec<ExportRow>,
    /// The node's latest retention sweep.
    pub last_retention_sweep: Option<SweepRow>,
    /// While a cancelled workspace's node is kept for exports: when it will be destroyed.
    pub export_window_until: Option<i64>,
    /// Why the workspace is suspended (empty: it is not).
    pub suspensions: Vec<crate::suspension::Suspension>,
    /// Billing state (`None`: billing is off).
    pub billing: Option<crate::billing::Summary>,
    /// The node is deprovisioning or destroyed: its exports went with it, nothing is left
    /// to download.
    pub exports_destroyed: bool,
    /// Cancelling also cancels a paid subscription at Stripe, so a cancelled workspace
    /// cannot be reactivated ([`reactivate`]).
    pub cancelling_ends_subscription: bool,
}

/// Derives a slug from a name: `Acme Dental` → `acme-dental`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(40).collect();
    out.trim_end_matches('-').to_owned()
}

const RESERVED: &[&str] = &[
    "www",
    "api",
    "admin",
    "app",
    "control",
    "gateway",
    "static",
    "mail",
    "localhost",
];

/// Validates a slug: 3–40 of `a-z 0-9 -`, starting and ending with a letter or digit
/// (it becomes a DNS label).
pub fn validate_slug(slug: &str) -> AppResult<()> {
    let ok_chars = slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = slug
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && slug
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !(3..=40).contains(&slug.len()) || !ok_chars || !ends_ok || slug.contains("--") {
        return Err(AppError::invalid(
            Code::InvalidSlug,
            "The address must be 3 to 40 lowercase letters, digits or single hyphens, starting and ending with a letter or digit.",
        ));
    }
    if RESERVED.contains(&slug) {
        return Err(AppError::Conflict(
            Code::SlugTaken,
            format!("The address “{slug}” is reserved."),
        ));
    }
    Ok(())
}

/// Creates a workspace with its owner, its node (`requested`) and the provisioning job.
/// With billing on, the node waits for payment: [`crate::billing`] requests it once Stripe
/// confirms the checkout.
pub fn create(
    conn: &mut DbConn,
    st: &State,
    user_id: &str,
    name: &str,
    slug: Option<&str>,
    ip: &str,
) -> AppResult<Workspace> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AppError::invalid(
            Code::InvalidName,
            "The name must be 1 to 80 characters.",
        ));
    }
    let slug = match slug.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.to_lowercase(),
        None => slugify(name),
    };
    validate_slug(&slug)?;
    let now = db::now();
    let ws_id = db::new_id();
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        // A cancelled workspace's node still answers at its address until its export
        // window ends, so the address stays taken until then.
        let taken: i64 = workspaces::table
            .filter(workspaces::slug.eq(&slug))
            .filter(
                workspaces::deleted_at
                    .is_null()
                    .or(workspaces::deprovision_after.gt(now)),
            )
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(AppError::Conflict(
                Code::SlugTaken,
                format!("The address “{slug}” is already taken."),
            ));
        }
        diesel::insert_into(workspaces::table)
            .values((
                workspaces::id.eq(&ws_id),
                workspaces::slug.eq(&slug),
                workspaces::name.eq(name),
                workspaces::plan.eq("dev"),
                workspaces::created_at.eq(now),
            ))
            .execute(conn)
            .map_err(|e| {
                if db::is_unique_violation(&e) {
                    AppError::Conflict(
                        Code::SlugTaken,
                        format!("The address “{slug}” is already taken."),
                    )
                } else {
                    e.into()
                }
            })?;
        diesel::insert_into(memberships::table)
            .values((
                memberships::workspace_id.eq(&ws_id),
                memberships::user_id.eq(user_id),
                memberships::role.eq(ROLE_OWNER),
                memberships::created_at.eq(now),
            ))
            .execute(conn)?;
        if !crate::billing::is_on(st) {
            request_node(conn, st, &ws_id)?;
        }
        Ok(())
    })?;
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "workspace.created",
            object_type: "workspace",
            object_id: &ws_id,
            workspace_id: Some(&ws_id),
            ip: Some(ip),
            detail: &slug,
        },
    )?;
    Ok(workspaces::table.find(&ws_id).first(conn)?)
}

/// Creates a workspace's node (`requested`) and queues its provisioning job; returns the
/// node id. Call it inside the transaction that decides the node is due, so it runs once.
pub fn request_node(conn: &mut DbConn, st: &State, ws_id: &str) -> AppResult<String> {
    let now = db::now();
    let node_id = outpost_protocol::NodeId::new_random().0;
    diesel::insert_into(nodes::table)
        .values((
            nodes::id.eq(&node_id),
            nodes::workspace_id.eq(ws_id),
            nodes::state.eq(state::REQUESTED),
            nodes::provider.eq(st.provisioner.name()),
            nodes::region.eq(st.provisioner.region()),
            nodes::state_changed_at.eq(now),
            nodes::created_at.eq(now),
        ))
        .execute(conn)?;
    provisioning::event(conn, &node_id, "state", "requested")?;
    jobs::enqueue(conn, jobs::PROVISION, &node_id, 0)?;
    Ok(node_id)
}

/// Loads a workspace if `user_id` is a member; `NotFound` otherwise.
pub fn load_for_member(
    conn: &mut DbConn,
    ws_id: &str,
    user_id: &str,
) -> AppResult<(Workspace, String)> {
    workspaces::table
        .inner_join(memberships::table)
        .filter(workspaces::id.eq(ws_id))
        .filter(memberships::user_id.eq(user_id))
        .select((workspaces::all_columns, memberships::role))
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// The caller's workspaces (live first, newest first).
pub fn list_for(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<(Workspace, Option<String>)>> {
    let rows: Vec<(Workspace, Option<String>)> = workspaces::table
        .inner_join(memberships::table)
        .left_join(nodes::table)
        .filter(memberships::user_id.eq(user_id))
        .order((
            workspaces::deleted_at.is_not_null(),
            workspaces::created_at.desc(),
        ))
        .select((workspaces::all_columns, nodes::state.nullable()))
        .load(conn)?;
    Ok(rows)
}

/// The detail view of a workspace for a member.
pub fn detail(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
) -> AppResult<WorkspaceDetail> {
    let (workspace, role) = load_for_member(conn, ws_id, user_id)?;
    let node: Option<NodeView> = nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .order(nodes::created_at.desc())
        .select(NodeView::as_select())
        .first(conn)
        .optional()?;
    let (events, usage) = match &node {
        Some(n) => (
            node_events::table
                .filter(node_events::node_id.eq(&n.id))
                .order(node_events::at_ms.desc())
                .select((node_events::at_ms, node_events::kind, node_events::detail))
                .limit(50)
                .load(conn)?,
            usage_counts::table
                .filter(usage_counts::node_id.eq(&n.id))
                .order(usage_counts::hour.desc())
                .select((
                    usage_counts::channel,
                    usage_counts::hour,
                    usage_counts::inbound,
                    usage_counts::outbound,
                    usage_counts::conversations,
                ))
                .limit(48)
                .load(conn)?,
        ),
        None => (vec![], vec![]),
    };
    let node_error = node
        .as_ref()
        .and_then(|n| n.error_code.as_deref().filter(|_| n.state == state::FAILED))
        .map(|c| provisioning::explain_error(c).to_owned());
    let stale = node.as_ref().is_some_and(|n| {
        [state::HEALTHY, state::DEGRADED].contains(&n.state.as_str())
            && n.last_report_at.is_some_and(|t| {
                (db::now() - t) as f64 > 3.0 * st.config.report_interval_secs * 1.2
            })
    });
    let agents = crate::agents::list(conn, ws_id)?;
    let exports_destroyed = node
        .as_ref()
        .is_some_and(|n| [state::DEPROVISIONING, state::DESTROYED].contains(&n.state.as_str()));
    let mut exports: Vec<ExportRow> = node_exports::table
        .filter(node_exports::workspace_id.eq(ws_id))
        .order(node_exports::created_at.desc())
        .select((
            node_exports::export_id,
            node_exports::scope,
            node_exports::state,
            node_exports::size_bytes,
            node_exports::created_at,
            node_exports::expires_at,
        ))
        .limit(100)
        .load(conn)?;
    if exports_destroyed {
        // The node erased its master key and data directory: no export it held survives.
        for e in &mut exports {
            if e.state == "running" || e.state == "ready" {
                e.state = "destroyed".into();
            }
        }
    }
    let last_retention_sweep = retention_sweeps::table
        .filter(retention_sweeps::workspace_id.eq(ws_id))
        .order(retention_sweeps::at.desc())
        .select((
            retention_sweeps::at,
            retention_sweeps::messages_deleted,
            retention_sweeps::contacts_erased,
            retention_sweeps::exports_deleted,
        ))
        .first(conn)
        .optional()?;
    let node_kept = node
        .as_ref()
        .is_some_and(|n| ![state::DEPROVISIONING, state::DESTROYED].contains(&n.state.as_str()));
    let export_window_until = workspace
        .deprovision_after
        .filter(|t| workspace.deleted_at.is_some() && *t > db::now() && node_kept);
    let suspensions = crate::suspension::active(conn, ws_id)?;
    let billing = crate::billing::summary(conn, st, &workspace, node.is_some())?;
    let cancelling_ends_subscription = has_paid_subscription(conn, st, ws_id)?;
    Ok(WorkspaceDetail {
        workspace,
        role,
        node,
        node_error,
        stale,
        events,
        usage,
        agents,
        exports,
        last_retention_sweep,
        export_window_until,
        suspensions,
        billing,
        exports_destroyed,
        cancelling_ends_subscription,
    })
}

/// Whether the workspace pays through a Stripe subscription, which cancelling it cancels
/// too (the billing sweeper cancels the subscriptions of closed workspaces).
fn has_paid_subscription(conn: &mut DbConn, st: &State, ws_id: &str) -> AppResult<bool> {
    if !crate::billing::is_on(st) {
        return Ok(false);
    }
    Ok(crate::billing::ledger::account(conn, ws_id)?
        .is_some_and(|a| a.activated_at.is_some() || a.stripe_subscription_id.is_some()))
}

/// The email address of `user_id`, for the owners' notices (who did it).
fn email_of(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    Ok(crate::infra::schema::users::table
        .find(user_id)
        .select(crate::infra::schema::users::email)
        .first(conn)?)
}

/// Checks that `confirm` is the workspace's address (`slug`), as typed by an owner who
/// means to destroy its node now.
pub fn check_address_confirmation(ws: &Workspace, confirm: &str) -> AppResult<()> {
    if confirm.trim().eq_ignore_ascii_case(&ws.slug) {
        return Ok(());
    }
    Err(AppError::invalid(
        if confirm.trim().is_empty() {
            Code::ConfirmationRequired
        } else {
            Code::ConfirmationMismatch
        },
        format!(
            "Nothing was deleted. To delete the workspace and destroy its node now, type its address “{}” exactly: this erases its data and cannot be undone.",
            ws.slug
        ),
    ))
}

/// What the cancellation form's checkbox sends when ticked.
pub const CANCEL_CONFIRMED: &str = "yes";

fn owned(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<Workspace> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    if role != ROLE_OWNER {
        return Err(AppError::Forbidden(Code::OwnerRequired));
    }
    Ok(ws)
}

fn node_states(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<(String, String)>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .select((nodes::id, nodes::state))
        .load(conn)?)
}

/// Cancels a workspace (owners only) with a post-termination export window: its node is
/// suspended (channels stop; its console and exports keep working) and deprovisioned by
/// the sweeper `export_window_secs` later ([`end_export_windows`]). A node that never
/// enrolled holds no data to export, so it is deprovisioned at once, and with no node to
/// keep there is no window. Returns when the node will be deprovisioned (`None`: now).
/// Cancelling twice changes nothing.
pub fn cancel(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<Option<i64>> {
    let ws = owned(conn, ws_id, user_id)?;
    if ws.deleted_at.is_some() {
        return Ok(ws.deprovision_after);
    }
    let now = db::now();
    let nodes = node_states(conn, ws_id)?;
    let keeps_a_node = nodes
        .iter()
        .any(|(_, s)| state::ENROLLED.contains(&s.as_str()));
    let until = keeps_a_node.then_some(now + st.config.export_window_secs);
    let cancelled = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let n = diesel::update(
            workspaces::table
                .find(ws_id)
                .filter(workspaces::deleted_at.is_null()),
        )
        .set((
            workspaces::deleted_at.eq(now),
            workspaces::deprovision_after.eq(until),
        ))
        .execute(conn)?;
        if n == 0 {
            return Ok(false);
        }
        for (id, s) in &nodes {
            if state::ENROLLED.contains(&s.as_str()) {
                provisioning::queue_command(
                    conn,
                    id,
                    &outpost_protocol::CommandKind::Suspend {
                        reason_code: "cancelled".into(),
                    },
                )?;
            } else {
                provisioning::begin_deprovision(conn, id, st.config.deprovision_timeout_secs)?;
            }
        }
        Ok(true)
    })?;
    if !cancelled {
        // Another request cancelled it first; it recorded and told the owners.
        return Ok(workspaces::table
            .find(ws_id)
            .select(workspaces::deprovision_after)
            .first(conn)?);
    }
    for (id, _) in &nodes {
        st.command_notify.notify(id);
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "workspace.cancelled",
            object_type: "workspace",
            object_id: ws_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: &until.map_or("nothing_to_export".into(), |t| {
                format!("deprovision_after={t}")
            }),
        },
    )?;
    let notice = OwnerNotice::Cancelled {
        by: email_of(conn, user_id)?,
        until,
        can_reactivate: !has_paid_subscription(conn, st, ws_id)?,
    };
    crate::notify::notices::send_to_owners(conn, &st.notifier(), ws_id, &ws.name, &notice)?;
    Ok(until)
}

/// Deletes a workspace now (owners only), live or cancelled, and starts deprovisioning
/// its node without waiting for the export window. `confirm` must be the workspace's
/// address ([`check_address_confirmation`]): nothing is changed otherwise.
pub fn delete(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
    confirm: &str,
    ip: &str,
) -> AppResult<()> {
    let ws = owned(conn, ws_id, user_id)?;
    check_address_confirmation(&ws, confirm)?;
    let now = db::now();
    if ws.deleted_at.is_some() && ws.deprovision_after.is_none_or(|t| t <= now) {
        // Already deleted, or its window is over and the sweeper has taken it.
        return Ok(());
    }
    let nodes = node_states(conn, ws_id)?;
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        diesel::update(workspaces::table.find(ws_id))
            .set((
                workspaces::deleted_at.eq(ws.deleted_at.unwrap_or(now)),
                // Deleted now: no window left to show, and the address is free again.
                workspaces::deprovision_after.eq(None::<i64>),
            ))
            .execute(conn)?;
        for (id, _) in &nodes {
            provisioning::begin_deprovision(conn, id, st.config.deprovision_timeout_secs)?;
        }
        Ok(())
    })?;
    for (id, _) in &nodes {
        st.command_notify.notify(id);
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "workspace.deleted",
            object_type: "workspace",
            object_id: ws_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: "deprovisioning",
        },
    )?;
    let notice = OwnerNotice::Deleted {
        by: email_of(conn, user_id)?,
    };
    crate::notify::notices::send_to_owners(conn, &st.notifier(), ws_id, &ws.name, &notice)?;
    Ok(())
}

/// Undoes a cancellation (owners only) while its export window lasts: the workspace is
/// live again, its node is kept, and the node is sent `resume` unless another cause
/// (`payment`, `operator`: [`crate::suspension`]) still suspends the workspace; those are
/// left in place. Refused once the window is over or the workspace was deleted, and when
/// cancelling also cancelled its paid subscription at Stripe (resuming would run it
/// unpaid: the owners export their data and subscribe again in a new workspace). Returns
/// `false` if the workspace was not cancelled (nothing to do).
pub fn reactivate(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<bool> {
    let ws = owned(conn, ws_id, user_id)?;
    if ws.deleted_at.is_none() {
        return Ok(false);
    }
    let now = db::now();
    let gone = || {
        AppError::Conflict(
            Code::ExportWindowOver,
            "This workspace was deleted, or its export window is over: its node is destroyed or being destroyed, so it can no longer be reactivated.".into(),
        )
    };
    if ws.deprovision_after.is_none_or(|t| t <= now) {
        return Err(gone());
    }
    if has_paid_subscription(conn, st, ws_id)? {
        return Err(AppError::Conflict(
            Code::SubscriptionCancelled,
            "This workspace cannot be reactivated: cancelling it also cancelled its subscription at Stripe, and it would run unpaid. Export your data from the node console before its export window ends; to go on using Outpost, create a new workspace and subscribe from its Billing page.".into(),
        ));
    }
    let outcome = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        // The same conditional update the sweeper's `end_export_windows` waits on: one of
        // the two wins, so a node is never destroyed under a live workspace.
        let n = diesel::update(
            workspaces::table
                .find(ws_id)
                .filter(workspaces::deleted_at.is_not_null())
                .filter(workspaces::deprovision_after.gt(now)),
        )
        .set((
            workspaces::deleted_at.eq(None::<i64>),
            workspaces::deprovision_after.eq(None::<i64>),
        ))
        .execute(conn)?;
        if n == 0 {
            return Err(gone());
        }
        let states = node_states(conn, ws_id)?;
        if states
            .iter()
            .any(|(_, s)| [state::DEPROVISIONING, state::DESTROYED].contains(&s.as_str()))
        {
            // Rolled back: its node is already going.
            return Err(gone());
        }
        // The cancellation was the node's only suspension unless another cause is active;
        // those stay, and their own resume comes when they are lifted.
        let others = crate::suspension::active(conn, ws_id)?;
        let nodes = if others.is_empty() {
            let nodes = crate::suspension::enrolled_nodes(conn, ws_id)?;
            for id in &nodes {
                provisioning::queue_command(conn, id, &outpost_protocol::CommandKind::Resume)?;
            }
            nodes
        } else {
            vec![]
        };
        Ok((nodes, others))
    })?;
    let (resumed, others) = outcome;
    for id in &resumed {
        st.command_notify.notify(id);
    }
    let still: Vec<&str> = others.iter().map(|s| s.code.as_str()).collect();
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "workspace.reactivated",
            object_type: "workspace",
            object_id: ws_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: &if still.is_empty() {
                "resumed".to_owned()
            } else {
                format!("still_suspended={}", still.join(","))
            },
        },
    )?;
    let notice = OwnerNotice::Reactivated {
        by: email_of(conn, user_id)?,
        still_suspended: !still.is_empty(),
    };
    crate::notify::notices::send_to_owners(conn, &st.notifier(), ws_id, &ws.name, &notice)?;
    Ok(true)
}

/// Sweeper step: begins deprovisioning the nodes of cancelled workspaces whose export
/// window has ended. Returns the nodes that were sent `deprovision`, to wake their polls.
pub fn end_export_windows(conn: &mut DbConn, st: &State) -> AppResult<Vec<String>> {
    let due: Vec<(String, String)> = workspaces::table
        .inner_join(nodes::table)
        .filter(workspaces::deprovision_after.le(db::now()))
        .filter(nodes::state.ne_all([state::DEPROVISIONING, state::DESTROYED]))
        .select((workspaces::id, nodes::id))
        .load(conn)?;
    let mut started = vec![];
    for (ws_id, node_id) in due {
        // Another replica may run the same sweep: only the one whose transition wins
        // records it.
        let won = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
            // Still due? An owner may have reactivated the workspace since the query: this
            // write waits for theirs ([`reactivate`]) and then finds nothing to do.
            let due = diesel::update(
                workspaces::table
                    .find(&ws_id)
                    .filter(workspaces::deprovision_after.le(db::now())),
            )
            .set(workspaces::deprovision_after.eq(workspaces::deprovision_after))
            .execute(conn)?;
            if due == 0 {
                return Ok(false);
            }
            provisioning::begin_deprovision(conn, &node_id, st.config.deprovision_timeout_secs)
        })?;
        if won {
            audit::record(
                conn,
                &Entry {
                    actor: Some("system"),
                    action: "workspace.export_window_ended",
                    object_type: "node",
                    object_id: &node_id,
                    workspace_id: Some(&ws_id),
                    detail: "deprovisioning",
                    ..Default::default()
                },
            )?;
            tracing::info!(workspace = %ws_id, node = %node_id, "export window ended; deprovisioning");
            started.push(node_id);
        }
    }
    Ok(started)
}

/// Signs a capability token for the node console and returns the handoff URL.
pub fn console_link(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<String> {
    let d = detail(conn, st, ws_id, user_id)?;
    let node = d.node.ok_or(AppError::NotFound)?;
    let usable = [
        state::HEALTHY,
        state::DEGRADED,
        state::OFFLINE,
        state::SUSPENDED,
        state::ENROLLING,
    ];
    let url = match (&node.public_url, usable.contains(&node.state.as_str())) {
        (Some(u), true) => u.clone(),
        _ => {
            return Err(AppError::Conflict(
                Code::NodeNotReady,
                "The node is not running yet, so its console cannot be opened.".into(),
            ))
        }
    };
    let scopes = match d.role.as_str() {
        ROLE_OWNER => vec![
            "console",
            "inbox",
            "settings",
            "knowledge_base",
            "exports",
            "billing",
        ],
        "admin" => vec!["console", "inbox", "settings", "knowledge_base", "exports"],
        _ => vec!["console", "inbox"],
    };
    let claims = outpost_crypto::CapabilityClaims {
        sub: user_id.to_owned(),
        ws: ws_id.to_owned(),
        node: node.id.clone(),
        scopes: scopes.into_iter().map(str::to_owned).collect(),
        exp: db::now() + 120,
        jti: outpost_crypto::random_token(),
    };
    let token = st.capability.sign(&claims);
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "console.opened",
            object_type: "node",
            object_id: &node.id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: &claims.scopes.join(","),
        },
    )?;
    Ok(format!("{url}/auth/handoff?token={token}"))
}

// ---------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "workspaces.html")]
struct ListPage {
    user: CurrentUser,
    workspaces: Vec<(Workspace, Option<String>)>,
    error: Option<String>,
    name: String,
    slug: String,
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct DetailPage {
    user: CurrentUser,
    d: WorkspaceDetail,
    /// The export window, in words ("30 days").
    window: String,
    /// Why the owner's last action was refused (the page is answered with its status).
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "node_status.html")]
struct StatusPartial {
    d: WorkspaceDetail,
}

/// The steps of a healthy start, for the progress strip.
pub const STEPS: &[&str] = &[
    state::REQUESTED,
    state::PROVISIONING,
    state::BOOTING,
    state::ENROLLING,
    state::HEALTHY,
];

/// CSS class of a progress step: `done` before the node's current step, `current` on it.
pub fn step_class(step: &str, current: &str) -> &'static str {
    let pos = |s: &str| STEPS.iter().position(|x| *x == s);
    match (pos(step), pos(current)) {
        (Some(a), Some(b)) if a < b => "done",
        (Some(a), Some(b)) if a == b => "current",
        (Some(_), None) if ![state::FAILED, state::REQUESTED].contains(&current) => "done",
        _ => "",
    }
}

/// Formats unix seconds for pages.
pub fn fmt_time(t: &i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(*t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn pages_say_times_durations_and_health_in_words() {
        assert_eq!(fmt_time(&1_795_000_000), "18 Nov 2026, 11:06 UTC");
        assert_eq!(fmt_uptime(&5), "5 seconds");
        assert_eq!(fmt_uptime(&3661), "1 hour 1 minute");
        assert_eq!(fmt_uptime(&(3 * 86_400 + 4 * 3600 + 59)), "3 days 4 hours");
        assert_eq!(fmt_uptime(&0), "0 seconds");
        assert_eq!(fmt_bytes(&495_380), "483.8 KiB");
        assert_eq!(
            fmt_checks(r#"[{"name":"storage","ok":true,"detail_code":null}]"#),
            "The check passes"
        );
        assert_eq!(
            fmt_checks(
                r#"[{"name":"storage","ok":false,"detail_code":"disk_full"},{"name":"llm","ok":false,"detail_code":"unavailable"},{"name":"telegram","ok":true,"detail_code":null}]"#
            ),
            "storage fails (the disk is full); the AI model provider fails (the provider is unavailable)"
        );
        assert_eq!(fmt_checks("not json"), "Unknown");
    }
}

/// How long a node has been up, in its two largest units: `3 days 4 hours`, `5 minutes`,
/// `12 seconds`.
pub fn fmt_uptime(secs: &i64) -> String {
    let secs = (*secs).max(0);
    let units = [
        (86_400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let parts: Vec<String> = units
        .iter()
        .scan(secs, |left, &(size, name)| {
            let n = *left / size;
            *left %= size;
            Some((n, name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n} {name}{}", if n == 1 { "" } else { "s" }))
        .collect();
    if parts.is_empty() {
        "0 seconds".to_owned()
    } else {
        parts.join(" ")
    }
}

/// Work waiting on the node (outbound messages, unsent reports), in words.
pub fn fmt_queue(n: &i64) -> String {
    match *n {
        0 => "nothing".to_owned(),
        1 => "1 item".to_owned(),
        n => format!("{n} items"),
    }
}

/// The node's health checks in words: "All checks pass" or what fails and why, from the
/// JSON the report ingest stored (`[{name, ok, detail_code}]`).
pub fn fmt_checks(json: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Check {
        name: String,
        ok: bool,
        detail_code: Option<String>,
    }
    let Ok(checks) = serde_json::from_str::<Vec<Check>>(json) else {
        return "Unknown".to_owned();
    };
    let failing: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            let what = match c.name.as_str() {
                "storage" => "storage",
                "llm" => "the AI model provider",
                "telegram" => "Telegram",
                "whatsapp" => "WhatsApp",
                other => other,
            };
            let why = match c.detail_code.as_deref() {
                Some("disk_full") => " (the disk is full)",
                Some("write_failed") => " (cannot write to the disk)",
                Some("no_key") => " (no API key is set: add one in the node console's Settings)",
                Some("unauthorized") => " (the key or token is refused)",
                Some("rate_limited") => " (the provider is limiting requests)",
                Some("timeout") => " (the provider did not answer in time)",
                Some("unavailable") => " (the provider is unavailable)",
                Some("bad_response") | Some("no_answer") => " (the provider's answer was unusable)",
                Some(code) if !code.is_empty() => return format!("{what} fails ({code})"),
                _ => "",
            };
            format!("{what} fails{why}")
        })
        .collect();
    match (checks.len(), failing.is_empty()) {
        (0, _) => "No checks reported yet".to_owned(),
        (1, true) => "The check passes".to_owned(),
        (n, true) => format!("All {n} checks pass"),
        (_, false) => failing.join("; "),
    }
}

/// A length of time in words, in its largest whole unit: `30 days`, `5 seconds`.
pub fn fmt_duration(secs: i64) -> String {
    let units = [
        (86_400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let (size, name) = units
        .into_iter()
        .find(|(size, _)| secs >= *size && secs % size == 0)
        .unwrap_or((1, "second"));
    let n = secs / size;
    format!("{n} {name}{}", if n == 1 { "" } else { "s" })
}

/// Formats a byte count for pages: `12.3 MiB`.
pub fn fmt_bytes(b: &i64) -> String {
    let mut v = *b as f64;
    for unit in ["bytes", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "bytes" {
                format!("{b} bytes")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{b} bytes")
}

/// Formats unix ms for pages.
pub fn fmt_ms(t: &i64) -> String {
    fmt_time(&(t / 1000))
}

pub(crate) async fn list_page(state: State, user: CurrentUser) -> PageResult {
    let uid = user.id.clone();
    let workspaces = db::run(&state.db, move |conn| list_for(conn, &uid)).await?;
    Ok(html(&ListPage {
        user,
        workspaces,
        error: None,
        name: String::new(),
        slug: String::new(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    #[serde(default)]
    slug: String,
}

pub(crate) async fn create_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<CreateForm>,
) -> PageResult {
    let (uid, ip, st) = (f.user.id.clone(), client_ip(&req), state.clone());
    let (name, slug) = (f.form.name.clone(), f.form.slug.clone());
    let res = db::run(&state.db, move |conn| {
        Ok(create(conn, &st, &uid, &name, Some(&slug), &ip))
    })
    .await?;
    match res {
        Ok(ws) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/workspaces/{}", ws.id)))
            .finish()),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            let uid = f.user.id.clone();
            let workspaces = db::run(&state.db, move |conn| list_for(conn, &uid)).await?;
            Ok(crate::http::html_with(
                HttpResponse::build(e.status()),
                &ListPage {
                    user: f.user,
                    workspaces,
                    error: Some(e.message()),
                    name: f.form.name,
                    slug: f.form.slug,
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn detail_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    let (uid, st, id) = (user.id.clone(), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
    let window = fmt_duration(state.config.export_window_secs);
    Ok(html(&DetailPage {
        user,
        d,
        window,
        error: None,
    }))
}

pub(crate) async fn status_partial(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    let (uid, st, id) = (user.id.clone(), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
    Ok(html(&StatusPartial { d }))
}

pub(crate) async fn console_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let (uid, ip, st, id) = (
        f.user.id.clone(),
        client_ip(&req),
        state.clone(),
        path.into_inner(),
    );
    let url = db::run(&state.db, move |conn| {
        console_link(conn, &st, &id, &uid, &ip)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish())
}

/// The confirmation an owner's button sends: the typed address ("Delete now") or the
/// ticked checkbox ("Cancel workspace").
#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

/// An owner's button on the workspace page (delete, cancel, reactivate): runs `op`, then
/// back to the page. A refusal (a confirmation missing or wrong, too late to reactivate)
/// answers with the workspace page, its status and the reason, and changes nothing.
async fn owner_action(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
    op: fn(&mut DbConn, &State, &str, &str, &str, &str) -> AppResult<()>,
) -> PageResult {
    let (uid, ip, st, id) = (
        f.user.id.clone(),
        client_ip(&req),
        state.clone(),
        path.into_inner(),
    );
    let loc = format!("/workspaces/{id}");
    let confirm = f.form.confirm;
    let ws = id.clone();
    let res = db::run(&state.db, move |conn| {
        Ok(op(conn, &st, &ws, &uid, &confirm, &ip))
    })
    .await?;
    match res {
        Ok(()) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, loc))
            .finish()),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            let (uid, st) = (f.user.id.clone(), state.clone());
            let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
            Ok(crate::http::html_with(
                HttpResponse::build(e.status()),
                &DetailPage {
                    user: f.user,
                    d,
                    window: fmt_duration(state.config.export_window_secs),
                    error: Some(e.message()),
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn delete_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
) -> PageResult {
    owner_action(state, req, f, path, delete).await
}

pub(crate) async fn cancel_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
) -> PageResult {
    owner_action(state, req, f, path, |conn, st, id, uid, confirm, ip| {
        // Who may ask comes first: other members get 403 whatever they sent.
        owned(conn, id, uid)?;
        if confirm != CANCEL_CONFIRMED {
            return Err(AppError::invalid(
                Code::ConfirmationRequired,
                "Nothing was cancelled. Tick “I understand that my channels stop now” to cancel the workspace.",
            ));
        }
        cancel(conn, st, id, uid, ip).map(|_| ())
    })
    .await
}

pub(crate) async fn reactivate_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<ConfirmForm>,
    path: web::Path<String>,
) -> PageResult {
    owner_action(state, req, f, path, |conn, st, id, uid, _, ip| {
        reactivate(conn, st, id, uid, ip).map(|_| ())
    })
    .await
}

pub(crate) async fn receipt_download(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    let (uid, st, id) = (user.id.clone(), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &uid)).await?;
    let node = d.node.ok_or(AppError::NotFound)?;
    let (Some(body), Some(sig)) = (node.receipt_body, node.receipt_signature) else {
        return Err(AppError::NotFound.into());
    };
    let doc = serde_json::json!({"body": body, "signature": sig});
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"destruction-receipt-{}.json\"",
                node.id
            ),
        ))
        .json(doc))
}

// ---------------------------------------------------------------- API

#[derive(Deserialize)]
pub(crate) struct CreateBody {
    name: String,
    slug: Option<String>,
    /// With billing on: the plan to check out (default: the first).
    plan: Option<String>,
}

pub(crate) async fn api_list(state: State, user: ApiUser) -> AppResult<HttpResponse> {
    let list = db::run(&state.db, move |conn| list_for(conn, &user.id)).await?;
    let items: Vec<_> = list
        .into_iter()
        .map(|(w, node_state)| {
            serde_json::json!({"id": w.id, "slug": w.slug, "name": w.name, "plan": w.plan,
            "created_at": w.created_at, "deleted_at": w.deleted_at,
            "deprovision_after": w.deprovision_after, "node_state": node_state})
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "workspaces": items })))
}

pub(crate) async fn api_create(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    body: web::Json<CreateBody>,
) -> AppResult<HttpResponse> {
    let (ip, st, b) = (client_ip(&req), state.clone(), body.into_inner());
    let (uid, plan) = (user.id.clone(), b.plan.clone());
    let (ws, d) = db::run(&state.db, move |conn| {
        let ws = create(conn, &st, &uid, &b.name, b.slug.as_deref(), &ip)?;
        let d = detail(conn, &st, &ws.id, &uid)?;
        Ok((ws, d))
    })
    .await?;
    let mut body = serde_json::to_value(&d).map_err(|e| AppError::internal(e.into()))?;
    if crate::billing::is_on(&state) {
        // Best effort: without it the workspace still exists, waiting for payment, and
        // POST /api/v1/workspaces/{id}/checkout makes another link.
        body["checkout_url"] =
            crate::billing::checkout_for_api(&state, &ws.id, &user.id, plan.as_deref())
                .await
                .ok()
                .into();
    }
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/workspaces/{}", ws.id)))
        .json(body))
}

pub(crate) async fn api_get(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (st, id) = (state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| detail(conn, &st, &id, &user.id)).await?;
    Ok(HttpResponse::Ok().json(d))
}

#[derive(Deserialize)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    immediately: bool,
    /// With `immediately`: the workspace's address, as the page asks an owner to type it.
    #[serde(default)]
    confirm: String,
}

/// `DELETE /api/v1/workspaces/{id}` cancels with the export window and answers with
/// `deprovision_after` (undone with `POST …/reactivate` until then); `?immediately=true`
/// deprovisions now and, as it cannot be undone, needs `&confirm=<address>`.
pub(crate) async fn api_delete(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    q: web::Query<DeleteQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let (ip, st, id) = (client_ip(&req), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| {
        if q.immediately {
            delete(conn, &st, &id, &user.id, &q.confirm, &ip)?;
        } else {
            cancel(conn, &st, &id, &user.id, &ip)?;
        }
        detail(conn, &st, &id, &user.id)
    })
    .await?;
    let mut body = serde_json::to_value(&d).map_err(|e| AppError::internal(e.into()))?;
    body["deprovision_after"] = d.workspace.deprovision_after.into();
    Ok(HttpResponse::Accepted().json(body))
}

/// `POST /api/v1/workspaces/{id}/reactivate`: undoes a cancellation during its export
/// window ([`reactivate`]) and answers with the workspace.
pub(crate) async fn api_reactivate(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (ip, st, id) = (client_ip(&req), state.clone(), path.into_inner());
    let d = db::run(&state.db, move |conn| {
        reactivate(conn, &st, &id, &user.id, &ip)?;
        detail(conn, &st, &id, &user.id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_words() {
        assert_eq!(fmt_duration(30 * 86_400), "30 days");
        assert_eq!(fmt_duration(86_400), "1 day");
        assert_eq!(fmt_duration(7200), "2 hours");
        assert_eq!(fmt_duration(5), "5 seconds");
        assert_eq!(fmt_duration(90), "90 seconds");
        assert_eq!(fmt_bytes(&512), "512 bytes");
        assert_eq!(fmt_bytes(&(3 * 1024 * 1024 / 2)), "1.5 MiB");
    }

    #[test]
    fn slugs_derive_and_validate() {
        assert_eq!(slugify("Acme Dental"), "acme-dental");
        assert_eq!(slugify("  Dr. Müller & Söhne!! "), "dr-m-ller-s-hne");
        assert!(validate_slug("acme-dental").is_ok());
        for bad in ["ab", "-acme", "acme-", "Acme", "ac me", "a--b", "api"] {
            assert!(validate_slug(bad).is_err(), "{bad} should be refused");
        }
    }
}
