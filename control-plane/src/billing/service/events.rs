//! What Stripe's news does: a paid checkout activates the workspace (and requests its
//! node), subscription and invoice events are applied with the ordering rules of
//! [`crate::billing::store`], the owners are emailed about a first failed payment, and
//! [`reconcile`] suspends or resumes the workspace for payment. Used by the webhook, the
//! return page and the sweeper.
//!
//! What this sets off in other domains (the node request, the payment suspension) goes
//! through [`Reactions`], which `app/` implements: billing calls neither.

use super::{BillingRuntime, Reactions};
use crate::audit::{self, Entry};
use crate::billing::config::BillingConfig;
use crate::billing::model::{
    fmt_amount, order_at, plan_of_prices, Applied, Order, Reconciled, ACTOR, PAYING,
};
use crate::billing::store;
use crate::billing::stripe::{CheckoutSession, Event, Invoice, Stripe, Subscription};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::notify;
use crate::suspension;

/// Marks the workspace paid for and, the first time, requests its node. Idempotent: the
/// conditional update on `activated_at` lets one caller through.
fn activate(conn: &mut DbConn, fx: &dyn Reactions, ws_id: &str) -> AppResult<bool> {
    if !store::set_activated(conn, ws_id, db::now())? {
        return Ok(false);
    }
    let (deleted, plan) = store::deleted_and_plan(conn, ws_id)?;
    store::set_workspace_plan(conn, ws_id, &plan)?;
    // A workspace cancelled while its checkout was open gets no node.
    let node = if deleted.is_none() {
        Some(fx.request_node(conn, ws_id)?)
    } else {
        None
    };
    audit::record(
        conn,
        &Entry {
            actor: Some(ACTOR),
            action: "billing.activated",
            object_type: "workspace",
            object_id: ws_id,
            workspace_id: Some(ws_id),
            detail: if node.is_some() {
                "node_requested"
            } else {
                "workspace_closed"
            },
            ..Default::default()
        },
    )?;
    tracing::info!(workspace = ws_id, "payment confirmed; node requested");
    Ok(node.is_some())
}

/// Applies a subscription's state to its workspace's account (see the module docs for
/// the ordering). Starts provisioning when it is the first sign of payment.
pub fn apply_subscription(
    conn: &mut DbConn,
    cfg: &BillingConfig,
    fx: &dyn Reactions,
    ws_id: &str,
    sub: &Subscription,
    order: Order,
) -> AppResult<Applied> {
    if !store::lock(conn, ws_id)? {
        return Ok(Applied::Unknown);
    }
    let Some(acc) = store::account(conn, ws_id)? else {
        return Ok(Applied::Unknown);
    };
    let paying = PAYING.contains(&sub.status.as_str());
    if !store::adopt(conn, &acc, sub.customer.as_deref(), &sub.id, paying)? {
        return Ok(Applied::Unchanged);
    }
    let acc = store::account(conn, ws_id)?.ok_or(AppError::NotFound)?;
    let (at, newer) = match (order, acc.status_event_created) {
        (_, None) => (order_at(order), true),
        (Order::Event(at), Some(prev)) if at == prev => {
            if acc.subscription_status.as_deref() != Some(&sub.status) {
                return Ok(Applied::Refetch);
            }
            (at, true)
        }
        (Order::Event(at), Some(prev)) => (at, at > prev),
        (Order::Fetched(at), Some(prev)) => (at.max(prev), at >= prev),
    };
    if !newer {
        return Ok(Applied::Unchanged);
    }
    let plan = plan_of_prices(cfg, &sub.prices());
    store::set_subscription_state(conn, ws_id, &sub.status, at, sub.period_end())?;
    if let Some(plan) = &plan {
        store::set_plan(conn, ws_id, plan)?;
        if acc.activated_at.is_some() {
            store::set_workspace_plan(conn, ws_id, plan)?;
        }
    }
    if PAYING.contains(&sub.status.as_str()) {
        activate(conn, fx, ws_id)?;
    }
    if acc.subscription_status.as_deref() == Some(&sub.status) {
        return Ok(Applied::Unchanged);
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(ACTOR),
            action: "billing.subscription_changed",
            object_type: "subscription",
            object_id: &sub.id,
            workspace_id: Some(ws_id),
            detail: &sub.status,
            ..Default::default()
        },
    )?;
    Ok(Applied::Changed(
        acc.subscription_status,
        sub.status.clone(),
    ))
}

/// A completed checkout (return page or webhook): records its customer and subscription
/// and activates the workspace. `at`: the event's `created`, or now for the return page
/// (which read the session from the API). Returns whether this call requested the node.
pub fn checkout_completed(
    conn: &mut DbConn,
    fx: &dyn Reactions,
    ws_id: &str,
    session: &CheckoutSession,
    at: i64,
) -> AppResult<bool> {
    if !session.is_paid() {
        return Ok(false);
    }
    db::transaction(conn, |conn| {
        if !store::lock(conn, ws_id)? {
            tracing::warn!(
                workspace = ws_id,
                "paid checkout for a workspace without a billing account"
            );
            return Ok(false);
        }
        let acc = store::account(conn, ws_id)?.ok_or(AppError::NotFound)?;
        let Some(sub) = &session.subscription else {
            return Ok(false);
        };
        if !store::adopt(conn, &acc, session.customer.as_deref(), sub, true)? {
            // Two checkouts paid in two tabs: the workspace keeps the first; the second is
            // left for staff to cancel and refund (it is in the audit log).
            tracing::warn!(
                workspace = ws_id,
                "a second subscription was paid while one is live"
            );
            audit::record(
                conn,
                &Entry {
                    actor: Some(ACTOR),
                    action: "billing.second_subscription_ignored",
                    object_type: "subscription",
                    object_id: sub,
                    workspace_id: Some(ws_id),
                    detail: "",
                    ..Default::default()
                },
            )?;
            return Ok(false);
        }
        let acc = store::account(conn, ws_id)?.ok_or(AppError::NotFound)?;
        // A paid checkout means the subscription is active as of `at`, unless an event
        // at least as new already said otherwise.
        if acc.status_event_created.is_none_or(|prev| at > prev) {
            store::set_status(conn, ws_id, "active", at)?;
            if acc.subscription_status.as_deref() != Some("active") {
                audit::record(
                    conn,
                    &Entry {
                        actor: Some(ACTOR),
                        action: "billing.subscription_changed",
                        object_type: "subscription",
                        object_id: sub,
                        workspace_id: Some(ws_id),
                        detail: "active",
                        ..Default::default()
                    },
                )?;
            }
        }
        activate(conn, fx, ws_id)
    })
}

/// Brings a workspace's payment suspension in line with what it owes: suspended once the
/// grace period of an unpaid failed invoice is over, or once an activated subscription has
/// ended; resumed when neither holds. Serialised per workspace across replicas (the
/// account row is written first), and a no-op when already in line.
pub fn reconcile(
    conn: &mut DbConn,
    fx: &dyn Reactions,
    ws_id: &str,
    grace_secs: i64,
) -> AppResult<Reconciled> {
    db::transaction(conn, |conn| {
        if !store::lock(conn, ws_id)? {
            return Ok(Reconciled::Same);
        }
        let Some(acc) = store::account(conn, ws_id)? else {
            return Ok(Reconciled::Same);
        };
        let deleted = store::workspace_deleted_at(conn, ws_id)?;
        if deleted.is_some() || acc.activated_at.is_none() {
            return Ok(Reconciled::Same);
        }
        let now = db::now();
        let grace_over = store::arrears_since(conn, ws_id)?.is_some_and(|t| now >= t + grace_secs);
        let owes = grace_over || acc.ended();
        let suspended = suspension::active(conn, ws_id)?
            .iter()
            .any(|s| s.code == suspension::PAYMENT);
        match (owes, suspended) {
            (true, false) => {
                fx.suspend_for_payment(conn, ws_id)?;
                tracing::info!(workspace = ws_id, "suspended for payment");
                Ok(Reconciled::Suspended)
            }
            (false, true) => {
                fx.resume_for_payment(conn, ws_id)?;
                tracing::info!(workspace = ws_id, "payment settled; suspension lifted");
                Ok(Reconciled::Resumed)
            }
            _ => Ok(Reconciled::Same),
        }
    })
}

/// Records that the subscription was cancelled at Stripe because its workspace was.
pub fn cancel_requested(conn: &mut DbConn, ws_id: &str, sub_id: &str) -> AppResult<()> {
    store::set_cancel_requested(conn, ws_id)?;
    audit::record(
        conn,
        &Entry {
            actor: Some(ACTOR),
            action: "billing.subscription_cancelled",
            object_type: "subscription",
            object_id: sub_id,
            workspace_id: Some(ws_id),
            detail: "workspace_closed",
            ..Default::default()
        },
    )
}

/// Result of handling one event.
#[derive(Debug, Default)]
struct Outcome {
    duplicate: bool,
    /// The workspace whose suspension may need to change.
    workspace: Option<String>,
    /// Email the owners: this invoice's first failed payment.
    failed_invoice: Option<(String, Option<String>, i64, String)>,
}

/// The event's object, or `None` (logged) if it is not what its type says: a retry would
/// carry the same object, so such an event is recorded and skipped rather than refused.
fn object<T: serde::de::DeserializeOwned>(ev: &Event) -> Option<T> {
    serde_json::from_value(ev.data.object.clone())
        .inspect_err(|e| {
            tracing::warn!(event = %ev.id, kind = %ev.kind, error = %e, "stripe event object not understood; skipped")
        })
        .ok()
}

fn audit_invoice(conn: &mut DbConn, action: &str, ws: &str, invoice: &str) -> AppResult<()> {
    audit::record(
        conn,
        &Entry {
            actor: Some(ACTOR),
            action,
            object_type: "invoice",
            object_id: invoice,
            workspace_id: Some(ws),
            detail: "",
            ..Default::default()
        },
    )
}

/// Applies one event inside the caller's transaction. `fetched`: the subscription as the
/// API returned it, when the event tied with the stored state.
fn apply(
    conn: &mut DbConn,
    rt: &BillingRuntime,
    ev: &Event,
    fetched: Option<&Subscription>,
) -> AppResult<Outcome> {
    let mut out = Outcome::default();
    if !store::first_delivery(conn, &ev.id, &ev.kind, ev.created)? {
        out.duplicate = true;
        return Ok(out);
    }
    let kind = ev.kind.as_str();
    match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let Some(session) = object::<CheckoutSession>(ev) else {
                return Ok(out);
            };
            if let Some(ws) = session.workspace_id() {
                checkout_completed(conn, &*rt.reactions, ws, &session, ev.created)?;
                out.workspace = Some(ws.to_owned());
            }
        }
        k if k.starts_with("customer.subscription.") => {
            let Some(sub) = fetched.cloned().or_else(|| object::<Subscription>(ev)) else {
                return Ok(out);
            };
            let order = match fetched {
                Some(_) => Order::Fetched(ev.created),
                None => Order::Event(ev.created),
            };
            if let Some(ws) = store::workspace_of_subscription(conn, &sub)? {
                if apply_subscription(conn, &rt.cfg, &*rt.reactions, &ws, &sub, order)?
                    == Applied::Refetch
                {
                    // Another delivery set the same second's status meanwhile: roll back
                    // and let Stripe retry, which re-fetches first.
                    return Err(AppError::Conflict(
                        Code::RetryLater,
                        "The subscription changed twice in one second; retry.".into(),
                    ));
                }
                out.workspace = Some(ws);
            }
        }
        // An upcoming invoice is a preview without an id; nothing to record.
        "invoice.upcoming" => {}
        k if k.starts_with("invoice.") => {
            let Some(invoice) = object::<Invoice>(ev) else {
                return Ok(out);
            };
            let change = store::apply_invoice(conn, k, &invoice, ev.created)?;
            if let Some(ws) = &change.workspace_id {
                if change.failed {
                    audit_invoice(conn, "billing.payment_failed", ws, &invoice.id)?;
                }
                if change.paid {
                    audit_invoice(conn, "billing.invoice_paid", ws, &invoice.id)?;
                }
                if change.first_failure {
                    out.failed_invoice = Some((
                        ws.clone(),
                        invoice.number.clone(),
                        invoice.amount_due,
                        invoice.currency.clone(),
                    ));
                }
                out.workspace = Some(ws.clone());
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Emails the owners about a first failed payment: the amount, the invoice number, when
/// the workspace will be suspended, and the link to Billing (no card or customer data).
fn notify_failure(
    conn: &mut DbConn,
    rt: &BillingRuntime,
    (ws_id, number, amount, currency): &(String, Option<String>, i64, String),
    grace_secs: i64,
) -> AppResult<()> {
    let name = store::workspace_name(conn, ws_id)?;
    let until = store::arrears_since(conn, ws_id)?
        .map(|t| crate::workspaces::fmt_time(&(t + grace_secs)))
        .unwrap_or_default();
    let owners = notify::addresses_of(conn, ws_id, &[crate::workspaces::ROLE_OWNER])?;
    notify::emails::queue(
        conn,
        owners,
        &notify::emails::PaymentFailed {
            workspace: name.into(),
            amount: fmt_amount(amount, currency).into(),
            invoice: number.as_ref().map(Into::into),
            until: until.into(),
            billing_page: format!("{}/workspaces/{ws_id}/billing", rt.public_url).into(),
        },
    )
}

/// Handles one verified event: re-fetches a tied subscription, applies the event in one
/// transaction, then emails and reconciles. Returns whether it was a duplicate.
pub async fn handle(rt: &BillingRuntime, ev: Event) -> AppResult<bool> {
    // A subscription event stamped the same second as the stored status, saying something
    // else, is settled by asking Stripe for the subscription as it is now.
    let mut fetched = None;
    if let Some(sub) = ev
        .kind
        .starts_with("customer.subscription.")
        .then(|| object::<Subscription>(&ev))
        .flatten()
    {
        let (s, at) = (sub.clone(), ev.created);
        let tie = db::run(
            &rt.db,
            move |conn| match store::workspace_of_subscription(conn, &s)? {
                Some(ws) => store::needs_refetch(conn, &ws, &s, at),
                None => Ok(false),
            },
        )
        .await?;
        if tie {
            let now = Stripe::new(&rt.http, &rt.cfg)
                .subscription(&sub.id)
                .await
                .map_err(|e| AppError::internal(e.into()))?;
            fetched = Some(now);
        }
    }
    let (s, grace) = (rt.clone(), rt.cfg.grace_secs);
    let span_event = ev.id.clone();
    let duplicate = db::run(&rt.db, move |conn| {
        // The event and the owners' email about a failed payment in one transaction: a
        // crash loses both (Stripe sends the event again) or neither.
        let out = db::transaction(conn, |conn| {
            let out = apply(conn, &s, &ev, fetched.as_ref())?;
            if let Some(f) = &out.failed_invoice {
                notify_failure(conn, &s, f, grace)?;
            }
            Ok::<_, AppError>(out)
        })?;
        if let Some(ws) = &out.workspace {
            // The sweeper would get there too; doing it now makes a payment resume the
            // workspace at once.
            if let Err(e) = reconcile(conn, &*s.reactions, ws, grace) {
                tracing::warn!(workspace = %ws, error = %e, "billing reconcile after a webhook failed");
            }
        }
        Ok(out.duplicate)
    })
    .await?;
    tracing::info!(event = %span_event, duplicate, "stripe event handled");
    super::wake().notify_one();
    Ok(duplicate)
}
