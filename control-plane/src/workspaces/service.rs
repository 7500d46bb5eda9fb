//! Workspace use cases: create (with its node), the detail a member sees, cancel with an
//! export window, delete now, reactivate, the sweeper's end of export windows, and opening
//! the node console. They take a connection and a [`Ctx`] built by `web.rs` or `app/`.

use super::model;
use super::store::{
    self, load_for_member, AiUsageRow, BookingUsageRow, CallUsageRow, EventRow, ExportRow,
    NodeView, SweepRow, UsageRow, Workspace,
};
use crate::audit::{self, Entry};
use crate::config::Config;
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::wake::CommandNotify;
use crate::members::model::stored_role;
use crate::members::model::Role;
use crate::notify::notices::OwnerNotice;
use crate::notify::Notifier;
use crate::provisioning::{self, jobs, state, Provisioner};
use outpost_crypto::CapabilitySigner;
use serde::Serialize;

/// What deleting a workspace for good does in the domains above this one, wired in
/// `app/reactions.rs`: forget the text its customer wrote (agents, invitations, secret
/// metadata, suspension reasons, undelivered command payloads). Run inside the deleting
/// transaction, so a workspace is never deleted with its text left behind.
pub trait Reactions {
    /// `ws_id` is deleted and its node is being destroyed.
    fn gone(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<()>;
}

/// What the workspace use cases need of the app: built from the state by `web.rs`.
pub struct Ctx<'a> {
    /// Resolved configuration (report interval, export window, deprovision timeout,
    /// billing).
    pub config: &'a Config,
    /// Node provider (name and region of new nodes).
    pub provisioner: &'a Provisioner,
    /// Wakes command long-polls when a command is queued.
    pub command_notify: &'a CommandNotify,
    /// Where the owners' notices go out from.
    pub notifier: Notifier<'a>,
    /// Signs capability tokens for the node consoles.
    pub capability: &'a CapabilitySigner,
    /// What a deletion for good does elsewhere ([`Reactions`]).
    pub reactions: &'a dyn Reactions,
}

impl Ctx<'_> {
    /// Whether billing is on (as the billing domain's `is_on`).
    pub fn billing_on(&self) -> bool {
        self.config.billing.is_some()
    }
}

/// What the service knows of a workspace for a member; `web.rs` adds the agents and the
/// billing summary ([`super::web::WorkspaceDetail`]).
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
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
    /// AI requests and tokens per day and model, newest day first.
    pub ai_usage: Vec<AiUsageRow>,
    /// Appointments booked, moved and cancelled per hour, newest first.
    pub booking_usage: Vec<BookingUsageRow>,
    /// Calls and call minutes per hour, newest first.
    pub call_usage: Vec<CallUsageRow>,
    /// Exports the node reported, newest first (metadata only; no link).
    pub exports: Vec<ExportRow>,
    /// The node's latest retention sweep.
    pub last_retention_sweep: Option<SweepRow>,
    /// While a cancelled workspace's node is kept for exports: when it will be destroyed.
    pub export_window_until: Option<i64>,
    /// Why the workspace is suspended (empty: it is not).
    pub suspensions: Vec<crate::suspension::Suspension>,
    /// The node is deprovisioning or destroyed: its exports went with it, nothing is left
    /// to download.
    pub exports_destroyed: bool,
    /// Cancelling also cancels a paid subscription at Stripe, so a cancelled workspace
    /// cannot be reactivated ([`reactivate`]).
    pub cancelling_ends_subscription: bool,
}

/// Creates a workspace with its owner, its node (`requested`) and the provisioning job.
/// With billing on, the node waits for payment: billing requests it once Stripe
/// confirms the checkout.
pub fn create(
    conn: &mut DbConn,
    cx: &Ctx<'_>,
    user_id: &str,
    name: &str,
    slug: Option<&str>,
    region: Option<&str>,
    ip: &str,
) -> AppResult<Workspace> {
    let name = model::workspace_name(name)?;
    let region = model::choose_region(cx.provisioner.regions(), region)?;
    let name = name.as_str();
    let slug = match slug.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.to_lowercase(),
        None => model::slugify(name),
    };
    model::validate_slug(&slug)?;
    let now = db::now();
    let ws_id = db::new_id();
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        if store::slug_taken(conn, &slug, now)? {
            return Err(AppError::Conflict(
                Code::SlugTaken,
                format!("The address “{slug}” is already taken."),
            ));
        }
        store::insert_with_owner(
            conn,
            &ws_id,
            &slug,
            name,
            user_id,
            Role::Owner.as_str(),
            now,
        )?;
        if let Some(r) = &region {
            store::set_region(conn, &ws_id, r)?;
        }
        if !cx.billing_on() {
            request_node(conn, cx.provisioner, &ws_id)?;
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
    store::find(conn, &ws_id)
}

/// Renames a workspace (owners only, while it is open). Only the name changes: the address
/// (slug) and the node's hostname stay, so links, the widget and channels keep working.
/// The audit event records the rename, not the names (customer-written text), in the
/// rename's own transaction.
pub fn rename(
    conn: &mut DbConn,
    ws_id: &str,
    user_id: &str,
    name: &str,
    ip: &str,
) -> AppResult<Workspace> {
    let ws = owned(conn, ws_id, user_id)?;
    if ws.deleted_at.is_some() {
        return Err(AppError::Conflict(
            Code::WorkspaceDeleted,
            "This workspace is cancelled or deleted; reactivate it to rename it.".into(),
        ));
    }
    let name = model::workspace_name(name)?;
    let name = name.as_str();
    if name == ws.name {
        return Ok(ws);
    }
    db::transaction(conn, |conn| {
        store::set_name(conn, ws_id, name)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(user_id),
                action: "workspace.renamed",
                object_type: "workspace",
                object_id: ws_id,
                workspace_id: Some(ws_id),
                ip: Some(ip),
                detail: "",
            },
        )?;
        store::find(conn, ws_id)
    })
}

/// Creates a workspace's node (`requested`) and queues its provisioning job; returns the
/// node id. Call it inside the transaction that decides the node is due, so it runs once.
pub fn request_node(
    conn: &mut DbConn,
    provisioner: &Provisioner,
    ws_id: &str,
) -> AppResult<String> {
    let now = db::now();
    let node_id = outpost_protocol::NodeId::new_random().0;
    // The owner's choice when the provider offers one (with billing on, made long before
    // the node is requested); else the provider's default.
    let chosen = store::find(conn, ws_id)?
        .region
        .filter(|_| !provisioner.regions().is_empty());
    store::insert_node(
        conn,
        &node_id,
        ws_id,
        provisioner.name(),
        chosen.as_deref().unwrap_or(provisioner.region()),
        now,
    )?;
    provisioning::event(conn, &node_id, "state", "requested")?;
    jobs::enqueue(conn, jobs::PROVISION, &node_id, 0)?;
    Ok(node_id)
}

/// The detail view of a workspace for a member.
pub fn detail(conn: &mut DbConn, cx: &Ctx<'_>, ws_id: &str, user_id: &str) -> AppResult<Detail> {
    let (workspace, role) = load_for_member(conn, ws_id, user_id)?;
    let node = store::latest_node(conn, ws_id)?;
    let (events, usage, ai_usage, booking_usage, call_usage) = match &node {
        Some(n) => (
            store::events(conn, &n.id)?,
            store::usage(conn, &n.id)?,
            store::ai_usage(conn, &n.id)?,
            store::booking_usage(conn, &n.id)?,
            store::call_usage(conn, &n.id)?,
        ),
        None => (vec![], vec![], vec![], vec![], vec![]),
    };
    let node_error = node
        .as_ref()
        .and_then(|n| n.error_code.as_deref().filter(|_| n.state == state::FAILED))
        .map(|c| provisioning::explain_error(c).to_owned());
    let stale = node.as_ref().is_some_and(|n| {
        [state::HEALTHY, state::DEGRADED].contains(&n.state.as_str())
            && n.last_report_at.is_some_and(|t| {
                (db::now() - t) as f64 > 3.0 * cx.config.report_interval_secs * 1.2
            })
    });
    let exports_destroyed = node
        .as_ref()
        .is_some_and(|n| [state::DEPROVISIONING, state::DESTROYED].contains(&n.state.as_str()));
    let mut exports = store::exports(conn, ws_id)?;
    if exports_destroyed {
        // The node erased its master key and data directory: no export it held survives.
        for e in &mut exports {
            if e.state == "running" || e.state == "ready" {
                e.state = "destroyed".into();
            }
        }
    }
    let last_retention_sweep = store::last_retention_sweep(conn, ws_id)?;
    let node_kept = node
        .as_ref()
        .is_some_and(|n| ![state::DEPROVISIONING, state::DESTROYED].contains(&n.state.as_str()));
    let export_window_until = workspace
        .deprovision_after
        .filter(|t| workspace.deleted_at.is_some() && *t > db::now() && node_kept);
    let suspensions = crate::suspension::active(conn, ws_id)?;
    let cancelling_ends_subscription = has_paid_subscription(conn, cx, ws_id)?;
    Ok(Detail {
        workspace,
        role,
        node,
        node_error,
        stale,
        events,
        usage,
        ai_usage,
        booking_usage,
        call_usage,
        exports,
        last_retention_sweep,
        export_window_until,
        suspensions,
        exports_destroyed,
        cancelling_ends_subscription,
    })
}

/// Whether the workspace pays through a Stripe subscription, which cancelling it cancels
/// too (the billing sweeper cancels the subscriptions of closed workspaces).
fn has_paid_subscription(conn: &mut DbConn, cx: &Ctx<'_>, ws_id: &str) -> AppResult<bool> {
    if !cx.billing_on() {
        return Ok(false);
    }
    store::has_subscription(conn, ws_id)
}

/// Loads a workspace for its owner; 403 for other members, 404 for non-members.
pub fn owned(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<Workspace> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    if stored_role(&role) != Role::Owner {
        return Err(AppError::Forbidden(Code::OwnerRequired));
    }
    Ok(ws)
}

/// Cancels a workspace (owners only) with a post-termination export window: its node is
/// suspended (channels stop; its console and exports keep working) and deprovisioned by
/// the sweeper `export_window_secs` later ([`end_export_windows`]). A node that never
/// enrolled holds no data to export, so it is deprovisioned at once, and with no node to
/// keep there is no window. Returns when the node will be deprovisioned (`None`: now).
/// Cancelling twice changes nothing.
pub fn cancel(
    conn: &mut DbConn,
    cx: &Ctx<'_>,
    ws_id: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<Option<i64>> {
    let ws = owned(conn, ws_id, user_id)?;
    if ws.deleted_at.is_some() {
        return Ok(ws.deprovision_after);
    }
    let now = db::now();
    let nodes = store::node_states(conn, ws_id)?;
    let keeps_a_node = nodes
        .iter()
        .any(|(_, s)| state::ENROLLED.contains(&s.as_str()));
    let until = keeps_a_node.then_some(now + cx.config.export_window_secs);
    let cancelled = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        if !store::mark_cancelled(conn, ws_id, now, until)? {
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
                provisioning::begin_deprovision(conn, id, cx.config.deprovision_timeout_secs)?;
            }
        }
        // The owners' email, queued with the cancellation (read before `gone` forgets
        // nothing it needs: addresses and the name in hand).
        let notice = OwnerNotice::Cancelled {
            by: store::email_of(conn, user_id)?,
            until,
            can_reactivate: !has_paid_subscription(conn, cx, ws_id)?,
        };
        crate::notify::notices::send_to_owners(conn, &cx.notifier, ws_id, &ws.name, &notice)?;
        if until.is_none() {
            // Nothing to export and no window: deleted for good now.
            cx.reactions.gone(conn, ws_id)?;
        }
        Ok(true)
    })?;
    if !cancelled {
        // Another request cancelled it first; it recorded and told the owners.
        return Ok(store::find(conn, ws_id)?.deprovision_after);
    }
    for (id, _) in &nodes {
        cx.command_notify.notify(id);
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
    Ok(until)
}

/// Deletes a workspace now (owners only), live or cancelled, and starts deprovisioning
/// its node without waiting for the export window. `confirm` must be the workspace's
/// address ([`check_address_confirmation`](super::model::check_address_confirmation)): nothing is changed otherwise.
pub fn delete(
    conn: &mut DbConn,
    cx: &Ctx<'_>,
    ws_id: &str,
    user_id: &str,
    confirm: &str,
    ip: &str,
) -> AppResult<()> {
    let ws = owned(conn, ws_id, user_id)?;
    model::check_address_confirmation(&ws.slug, confirm)?;
    let now = db::now();
    if ws.deleted_at.is_some() && ws.deprovision_after.is_none_or(|t| t <= now) {
        // Already deleted, or its window is over and the sweeper has taken it.
        return Ok(());
    }
    let nodes = store::node_states(conn, ws_id)?;
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        // Deleted now: no window left to show, and the address is free again.
        store::mark_deleted(conn, ws_id, ws.deleted_at.unwrap_or(now))?;
        for (id, _) in &nodes {
            provisioning::begin_deprovision(conn, id, cx.config.deprovision_timeout_secs)?;
        }
        // The owners' email, queued with the deletion, before `gone` forgets the text.
        let notice = OwnerNotice::Deleted {
            by: store::email_of(conn, user_id)?,
        };
        crate::notify::notices::send_to_owners(conn, &cx.notifier, ws_id, &ws.name, &notice)?;
        cx.reactions.gone(conn, ws_id)
    })?;
    for (id, _) in &nodes {
        cx.command_notify.notify(id);
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
    cx: &Ctx<'_>,
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
    if has_paid_subscription(conn, cx, ws_id)? {
        return Err(AppError::Conflict(
            Code::SubscriptionCancelled,
            "This workspace cannot be reactivated: cancelling it also cancelled its subscription at Stripe, and it would run unpaid. Export your data from the node console before its export window ends; to go on using Outpost, create a new workspace and subscribe from its Billing page.".into(),
        ));
    }
    let outcome = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        // The same conditional update the sweeper's `end_export_windows` waits on: one of
        // the two wins, so a node is never destroyed under a live workspace.
        if !store::unmark_cancelled(conn, ws_id, now)? {
            return Err(gone());
        }
        let states = store::node_states(conn, ws_id)?;
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
        // The owners' email, queued with the reactivation.
        let notice = OwnerNotice::Reactivated {
            by: store::email_of(conn, user_id)?,
            still_suspended: !others.is_empty(),
        };
        crate::notify::notices::send_to_owners(conn, &cx.notifier, ws_id, &ws.name, &notice)?;
        Ok((nodes, others))
    })?;
    let (resumed, others) = outcome;
    for id in &resumed {
        cx.command_notify.notify(id);
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
    Ok(true)
}

/// Sweeper step: begins deprovisioning the nodes of cancelled workspaces whose export
/// window has ended, and forgets their text ([`Reactions::gone`]). Returns the nodes that were sent `deprovision`, to wake their polls.
pub fn end_export_windows(
    conn: &mut DbConn,
    deprovision_timeout_secs: i64,
    reactions: &dyn Reactions,
) -> AppResult<Vec<String>> {
    let due = store::export_windows_due(conn, db::now())?;
    let mut started = vec![];
    for (ws_id, node_id) in due {
        // Another replica may run the same sweep: only the one whose transition wins
        // records it.
        let won = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
            // Still due? An owner may have reactivated the workspace since the query: this
            // write waits for theirs ([`reactivate`]) and then finds nothing to do.
            if !store::touch_if_due(conn, &ws_id, db::now())? {
                return Ok(false);
            }
            let won = provisioning::begin_deprovision(conn, &node_id, deprovision_timeout_secs)?;
            if won {
                reactions.gone(conn, &ws_id)?;
            }
            Ok(won)
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
    cx: &Ctx<'_>,
    ws_id: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<String> {
    let d = detail(conn, cx, ws_id, user_id)?;
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
    let scopes = model::console_scopes(stored_role(&d.role));
    let claims = outpost_crypto::CapabilityClaims {
        sub: user_id.to_owned(),
        ws: ws_id.to_owned(),
        node: node.id.clone(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        exp: db::now() + 120,
        jti: outpost_crypto::random_token(),
    };
    let token = cx.capability.sign(&claims);
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
