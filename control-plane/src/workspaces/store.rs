//! The workspaces' tables: `workspaces`, and what the workspace page reads of its node
//! (`nodes`, `node_events`, `usage_counts`, `ai_counts`, `node_exports`, `retention_sweeps`). Creating a
//! workspace also writes its owner's `memberships` row and its node's `nodes` row; whether
//! it pays through Stripe is read from `billing_accounts`.

use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{
    ai_counts, billing_accounts, booking_counts, call_counts, memberships, node_events,
    node_exports, nodes, retention_sweeps, usage_counts, users, workspaces,
};
use crate::provisioning::state;
use diesel::prelude::*;
use serde::Serialize;

/// A workspace row.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
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
    /// The region the owner chose for its node (one of `OUTPOST_OVH_REGIONS`); `None`
    /// with the local provisioner.
    pub region: Option<String>,
}

/// Node metadata shown to members (never content).
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = nodes)]
#[schema(as = Node)]
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
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = Usage)]
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

/// AI requests and tokens of one model on one day, from reports: counts only.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = AiUsage)]
pub struct AiUsageRow {
    /// Day start (UTC), unix seconds.
    pub day: i64,
    /// Model name as the agent configures it.
    pub model: String,
    /// Requests sent to the model.
    pub requests: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Answer tokens.
    pub output_tokens: i64,
}

/// Calls and call minutes in one hour, from reports: counts only.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = CallUsage)]
pub struct CallUsageRow {
    /// Hour start (UTC), unix seconds.
    pub hour: i64,
    /// Calls that came in.
    pub calls: i64,
    /// Minutes of the calls that ended (each rounded up to a whole minute).
    pub minutes: i64,
}

/// Appointments booked, moved and cancelled in one hour, from reports: counts only.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = BookingUsage)]
pub struct BookingUsageRow {
    /// Hour start (UTC), unix seconds.
    pub hour: i64,
    /// Bookings made.
    pub booked: i64,
    /// Bookings moved to another time.
    pub rescheduled: i64,
    /// Bookings cancelled.
    pub cancelled: i64,
}

/// An export as the CP knows it (DESIGN §1): the file and its link are on the node only.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = Export)]
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
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = RetentionSweep)]
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
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
#[schema(as = NodeEvent)]
pub struct EventRow {
    /// Unix ms.
    pub at_ms: i64,
    /// Kind.
    pub kind: String,
    /// Detail.
    pub detail: String,
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

/// A page of a user's workspaces (each with its node's state) and the cursor of the next.
pub type WorkspacePage = (
    Vec<(Workspace, Option<String>)>,
    Option<super::model::ListCursor>,
);

/// One page of [`list_for`]'s list, in its order (active before deleted, newest first,
/// then by id), after `after` (keyset: no offset to skip, so a page costs the same at any
/// depth); at most `limit` rows, and the cursor of the next page if there is one.
pub fn page_for(
    conn: &mut DbConn,
    user_id: &str,
    after: Option<&super::model::ListCursor>,
    limit: i64,
) -> AppResult<WorkspacePage> {
    let mut q = workspaces::table
        .inner_join(memberships::table)
        .left_join(nodes::table)
        .filter(memberships::user_id.eq(user_id))
        .into_boxed();
    if let Some(c) = after {
        let later = workspaces::created_at
            .lt(c.created_at)
            .or(workspaces::created_at
                .eq(c.created_at)
                .and(workspaces::id.lt(c.id.clone())));
        q = if c.deleted {
            q.filter(workspaces::deleted_at.is_not_null().and(later))
        } else {
            q.filter(
                workspaces::deleted_at
                    .is_not_null()
                    .or(workspaces::deleted_at.is_null().and(later)),
            )
        };
    }
    let mut rows: Vec<(Workspace, Option<String>)> = q
        .order((
            workspaces::deleted_at.is_not_null(),
            workspaces::created_at.desc(),
            workspaces::id.desc(),
        ))
        .select((workspaces::all_columns, nodes::state.nullable()))
        .limit(limit + 1)
        .load(conn)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        rows.last().map(|(w, _)| super::model::ListCursor::of(w))
    } else {
        None
    };
    Ok((rows, next))
}

/// A workspace by id (deleted or not).
pub fn find(conn: &mut DbConn, ws_id: &str) -> AppResult<Workspace> {
    Ok(workspaces::table.find(ws_id).first(conn)?)
}

/// Whether `slug` is taken at `now`. A cancelled workspace's node still answers at its
/// address until its export window ends, so the address stays taken until then.
pub fn slug_taken(conn: &mut DbConn, slug: &str, now: i64) -> AppResult<bool> {
    let taken: i64 = workspaces::table
        .filter(workspaces::slug.eq(slug))
        .filter(
            workspaces::deleted_at
                .is_null()
                .or(workspaces::deprovision_after.gt(now)),
        )
        .count()
        .get_result(conn)?;
    Ok(taken > 0)
}

/// Inserts a workspace (plan `dev`) and its owner's membership.
pub fn insert_with_owner(
    conn: &mut DbConn,
    ws_id: &str,
    slug: &str,
    name: &str,
    owner: &str,
    owner_role: &str,
    now: i64,
) -> AppResult<()> {
    diesel::insert_into(workspaces::table)
        .values((
            workspaces::id.eq(ws_id),
            workspaces::slug.eq(slug),
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
            memberships::workspace_id.eq(ws_id),
            memberships::user_id.eq(owner),
            memberships::role.eq(owner_role),
            memberships::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Inserts a workspace's node row in state `requested`.
pub fn insert_node(
    conn: &mut DbConn,
    node_id: &str,
    ws_id: &str,
    provider: &str,
    region: &str,
    now: i64,
) -> AppResult<()> {
    diesel::insert_into(nodes::table)
        .values((
            nodes::id.eq(node_id),
            nodes::workspace_id.eq(ws_id),
            nodes::state.eq(state::REQUESTED),
            nodes::provider.eq(provider),
            nodes::region.eq(region),
            nodes::state_changed_at.eq(now),
            nodes::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records the region the owner chose for the workspace's node.
pub fn set_region(conn: &mut DbConn, ws_id: &str, region: &str) -> AppResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set(workspaces::region.eq(region))
        .execute(conn)?;
    Ok(())
}

/// The workspace's newest node.
pub fn latest_node(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<NodeView>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .order(nodes::created_at.desc())
        .select(NodeView::as_select())
        .first(conn)
        .optional()?)
}

/// A node's timeline, newest first (50).
pub fn events(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<EventRow>> {
    Ok(node_events::table
        .filter(node_events::node_id.eq(node_id))
        .order(node_events::at_ms.desc())
        .select((node_events::at_ms, node_events::kind, node_events::detail))
        .limit(50)
        .load(conn)?)
}

/// A node's usage counts, newest first (48 hours).
pub fn usage(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<UsageRow>> {
    Ok(usage_counts::table
        .filter(usage_counts::node_id.eq(node_id))
        .order(usage_counts::hour.desc())
        .select((
            usage_counts::channel,
            usage_counts::hour,
            usage_counts::inbound,
            usage_counts::outbound,
            usage_counts::conversations,
        ))
        .limit(48)
        .load(conn)?)
}

/// A node's AI counts, newest day first (the last 60 rows).
pub fn ai_usage(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<AiUsageRow>> {
    Ok(ai_counts::table
        .filter(ai_counts::node_id.eq(node_id))
        .order((ai_counts::day.desc(), ai_counts::model.asc()))
        .select((
            ai_counts::day,
            ai_counts::model,
            ai_counts::requests,
            ai_counts::input_tokens,
            ai_counts::output_tokens,
        ))
        .limit(60)
        .load(conn)?)
}

/// A node's call counts, newest hour first (the last 48 rows).
pub fn call_usage(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<CallUsageRow>> {
    Ok(call_counts::table
        .filter(call_counts::node_id.eq(node_id))
        .order(call_counts::hour.desc())
        .select((call_counts::hour, call_counts::calls, call_counts::minutes))
        .limit(48)
        .load(conn)?)
}

/// A node's booking counts, newest hour first (the last 48 rows).
pub fn booking_usage(conn: &mut DbConn, node_id: &str) -> AppResult<Vec<BookingUsageRow>> {
    Ok(booking_counts::table
        .filter(booking_counts::node_id.eq(node_id))
        .order(booking_counts::hour.desc())
        .select((
            booking_counts::hour,
            booking_counts::booked,
            booking_counts::rescheduled,
            booking_counts::cancelled,
        ))
        .limit(48)
        .load(conn)?)
}

/// The exports the workspace's node reported, newest first (100).
pub fn exports(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<ExportRow>> {
    Ok(node_exports::table
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
        .load(conn)?)
}

/// The node's latest retention sweep.
pub fn last_retention_sweep(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<SweepRow>> {
    Ok(retention_sweeps::table
        .filter(retention_sweeps::workspace_id.eq(ws_id))
        .order(retention_sweeps::at.desc())
        .select((
            retention_sweeps::at,
            retention_sweeps::messages_deleted,
            retention_sweeps::contacts_erased,
            retention_sweeps::exports_deleted,
        ))
        .first(conn)
        .optional()?)
}

/// Whether the workspace has a Stripe subscription (activated, or one is on file).
pub fn has_subscription(conn: &mut DbConn, ws_id: &str) -> AppResult<bool> {
    let row: Option<(Option<i64>, Option<String>)> = billing_accounts::table
        .find(ws_id)
        .select((
            billing_accounts::activated_at,
            billing_accounts::stripe_subscription_id,
        ))
        .first(conn)
        .optional()?;
    Ok(row.is_some_and(|(activated, sub)| activated.is_some() || sub.is_some()))
}

/// The email address of `user_id`.
pub fn email_of(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    Ok(users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?)
}

/// The workspace's nodes: `(id, state)`.
pub fn node_states(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<(String, String)>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .select((nodes::id, nodes::state))
        .load(conn)?)
}

/// Marks a live workspace cancelled at `now`, its node kept until `until`; `false` if it
/// was not live (another request cancelled it first).
pub fn mark_cancelled(
    conn: &mut DbConn,
    ws_id: &str,
    now: i64,
    until: Option<i64>,
) -> AppResult<bool> {
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
    Ok(n > 0)
}

/// Sets a workspace's name.
pub fn set_name(conn: &mut DbConn, ws_id: &str, name: &str) -> AppResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set(workspaces::name.eq(name))
        .execute(conn)?;
    Ok(())
}

/// Marks a workspace deleted at `at` with no export window left.
pub fn mark_deleted(conn: &mut DbConn, ws_id: &str, at: i64) -> AppResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set((
            workspaces::deleted_at.eq(at),
            workspaces::deprovision_after.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Makes a cancelled workspace live again if its export window is still open at `now`;
/// `false` if it is not. The same conditional update the sweeper's `end_export_windows`
/// waits on ([`touch_if_due`]): one of the two wins.
pub fn unmark_cancelled(conn: &mut DbConn, ws_id: &str, now: i64) -> AppResult<bool> {
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
    Ok(n > 0)
}

/// Cancelled workspaces whose export window ended by `now` and whose node is not yet
/// going: `(workspace id, node id)`.
pub fn export_windows_due(conn: &mut DbConn, now: i64) -> AppResult<Vec<(String, String)>> {
    Ok(workspaces::table
        .inner_join(nodes::table)
        .filter(workspaces::deprovision_after.le(now))
        .filter(nodes::state.ne_all([state::DEPROVISIONING, state::DESTROYED]))
        .select((workspaces::id, nodes::id))
        .load(conn)?)
}

/// Whether the workspace's export window is still over at `now`, locking its row (a
/// no-op update) so a concurrent reactivation waits for this transaction or wins first.
pub fn touch_if_due(conn: &mut DbConn, ws_id: &str, now: i64) -> AppResult<bool> {
    let due = diesel::update(
        workspaces::table
            .find(ws_id)
            .filter(workspaces::deprovision_after.le(now)),
    )
    .set(workspaces::deprovision_after.eq(workspaces::deprovision_after))
    .execute(conn)?;
    Ok(due > 0)
}

/// Workspaces deleted for good by `now`: deleted, with no export window left open.
pub fn deleted_for_good(conn: &mut DbConn, now: i64) -> AppResult<Vec<String>> {
    Ok(workspaces::table
        .filter(workspaces::deleted_at.is_not_null())
        .filter(
            workspaces::deprovision_after
                .is_null()
                .or(workspaces::deprovision_after.le(now)),
        )
        .select(workspaces::id)
        .load(conn)?)
}
