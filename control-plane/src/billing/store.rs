//! The billing tables (`billing_accounts`, `invoices`, `stripe_events`) and the rules that keep it right whatever order
//! Stripe's events arrive in, however many times, and on however many replicas.
//!
//! - **Activation** (payment confirmed → node requested) is one conditional update of
//!   `billing_accounts.activated_at`; the caller that wins it requests the node in the same
//!   transaction, so the return page and the `checkout.session.completed` webhook racing
//!   each other make one node and one provisioning job.
//! - **Subscription status** is ordered by the Stripe `created` time of the event that set
//!   it (`status_event_created`): an older event arriving late is ignored. Stripe's clock is
//!   in whole seconds, and at checkout `customer.subscription.created` (incomplete) and
//!   `.updated` (active) are often stamped the same second, so on a tie with a different
//!   status the webhook handler re-fetches the subscription from the API and stores that
//!   ([`Order::Fetched`](super::model::Order::Fetched)). Re-fetching on every event would make each webhook depend on a
//!   second call, and still race between two concurrent deliveries; ordering by `created`
//!   alone cannot settle ties. Both together can.
//! - **Invoices**: `paid` and `void` are final (a late `payment_failed` for an invoice
//!   stored as paid changes nothing); `uncollectible` can still become `paid`; otherwise the
//!   newer event wins. A failed attempt sets `first_failed_at` once.
//! - **Arrears**: a workspace is in arrears while one of its invoices has a failed payment
//!   and is neither paid nor void. Its grace period ends `grace_secs` after the first such
//!   failure; then [`reconcile`](super::service::events::reconcile) suspends it for [`suspension::PAYMENT`], and lifts that
//!   cause once nothing is owed. A subscription that has ended (`canceled`,
//!   `incomplete_expired`) also suspends a workspace that had been activated, until the
//!   owner subscribes again.

use super::model::{InvoiceChange, ENDED, FINAL};
use super::stripe::{Invoice, Subscription};
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{billing_accounts as ba, invoices as inv, stripe_events, workspaces};
use crate::suspension;
use diesel::prelude::*;

/// A workspace's billing account.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = ba)]
#[schema(as = BillingAccount)]
pub struct Account {
    /// Workspace id.
    pub workspace_id: String,
    /// Plan chosen (or the plan of the subscription's price).
    pub plan: String,
    /// `cus_…`.
    pub stripe_customer_id: Option<String>,
    /// `sub_…`.
    pub stripe_subscription_id: Option<String>,
    /// Stripe's subscription status.
    pub subscription_status: Option<String>,
    /// Stripe `created` of what last set the status.
    pub status_event_created: Option<i64>,
    /// End of the current period, unix seconds.
    pub current_period_end: Option<i64>,
    /// When payment was first confirmed (and the node requested).
    pub activated_at: Option<i64>,
    /// When the subscription was cancelled at Stripe because the workspace was.
    pub cancel_requested_at: Option<i64>,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Updated, unix seconds.
    pub updated_at: i64,
}

impl Account {
    /// Whether its subscription has ended.
    pub fn ended(&self) -> bool {
        self.subscription_status
            .as_deref()
            .is_some_and(|s| ENDED.contains(&s))
    }
}

/// An invoice as listed to the owners.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = inv)]
#[schema(as = Invoice)]
pub struct InvoiceRow {
    /// `in_…`.
    pub id: String,
    /// Invoice number.
    pub number: Option<String>,
    /// Minor units.
    pub amount_due: i64,
    /// Minor units.
    pub amount_paid: i64,
    /// ISO code, lower case.
    pub currency: String,
    /// Stripe status.
    pub status: String,
    /// Stripe's page for it.
    pub hosted_invoice_url: Option<String>,
    /// First failed payment attempt.
    pub first_failed_at: Option<i64>,
    /// Created at Stripe.
    pub created: i64,
}

/// The account of a workspace.
pub fn account(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<Account>> {
    Ok(ba::table
        .find(ws_id)
        .select(Account::as_select())
        .first(conn)
        .optional()?)
}

/// A workspace's invoices, newest first (drafts are Stripe's business until finalized).
pub fn invoices(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<InvoiceRow>> {
    Ok(inv::table
        .filter(inv::workspace_id.eq(ws_id))
        .filter(inv::status.ne("draft"))
        .order(inv::created.desc())
        .select(InvoiceRow::as_select())
        .limit(100)
        .load(conn)?)
}

/// Every stored invoice of a workspace, drafts included, oldest first ("Your data").
pub fn all_invoices(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<InvoiceRow>> {
    Ok(inv::table
        .filter(inv::workspace_id.eq(ws_id))
        .order(inv::created.asc())
        .select(InvoiceRow::as_select())
        .load(conn)?)
}

/// When the oldest unpaid failed invoice of a workspace first failed (`None`: nothing is
/// owed).
pub fn arrears_since(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<i64>> {
    Ok(inv::table
        .filter(inv::workspace_id.eq(ws_id))
        .filter(inv::first_failed_at.is_not_null())
        .filter(inv::status.ne_all(FINAL))
        .select(diesel::dsl::min(inv::first_failed_at))
        .first::<Option<i64>>(conn)?)
}

/// Takes this workspace's billing lock for the rest of the transaction: a write to its
/// row, which PostgreSQL holds as a row lock and SQLite as its write lock, so replicas
/// deciding the same workspace's fate take turns.
pub fn lock(conn: &mut DbConn, ws_id: &str) -> AppResult<bool> {
    Ok(diesel::update(ba::table.find(ws_id))
        .set(ba::updated_at.eq(ba::updated_at))
        .execute(conn)?
        == 1)
}

/// Records the plan a checkout starts for, creating the account on the first one.
pub fn start_checkout(conn: &mut DbConn, ws_id: &str, plan: &str) -> AppResult<Option<String>> {
    let now = db::now();
    for _ in 0..3 {
        let r = db::transaction::<_, diesel::result::Error, _>(conn, |conn| {
            let n = diesel::update(ba::table.find(ws_id))
                .set((ba::plan.eq(plan), ba::updated_at.eq(now)))
                .execute(conn)?;
            if n == 0 {
                diesel::insert_into(ba::table)
                    .values((
                        ba::workspace_id.eq(ws_id),
                        ba::plan.eq(plan),
                        ba::created_at.eq(now),
                        ba::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            ba::table
                .find(ws_id)
                .select(ba::stripe_customer_id)
                .first::<Option<String>>(conn)
        });
        match r {
            Ok(customer) => return Ok(customer),
            // Two first checkouts at once: the other inserted; update instead.
            Err(e) if db::is_retryable(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::internal(anyhow::anyhow!(
        "billing account contention"
    )))
}

/// Links invoices that arrived before their customer was known.
fn link_invoices(conn: &mut DbConn, ws_id: &str, customer: &str) -> AppResult<()> {
    diesel::update(
        inv::table
            .filter(inv::stripe_customer_id.eq(customer))
            .filter(inv::workspace_id.is_null()),
    )
    .set(inv::workspace_id.eq(ws_id))
    .execute(conn)?;
    Ok(())
}

/// Records a subscription id (and its customer) on an account that has none, whose
/// subscription has ended (the workspace subscribed again), or whose subscription never got
/// paid while this one is (`paying`). Returns whether `sub` is now the account's
/// subscription; another live one is never replaced.
pub fn adopt(
    conn: &mut DbConn,
    acc: &Account,
    customer: Option<&str>,
    sub: &str,
    paying: bool,
) -> AppResult<bool> {
    let unpaid = matches!(
        acc.subscription_status.as_deref(),
        None | Some("incomplete")
    );
    match acc.stripe_subscription_id.as_deref() {
        Some(s) if s == sub => {}
        Some(_) if !(acc.ended() || (paying && unpaid)) => return Ok(false),
        _ => {
            diesel::update(ba::table.find(&acc.workspace_id))
                .set((
                    ba::stripe_subscription_id.eq(sub),
                    ba::subscription_status.eq(None::<String>),
                    ba::status_event_created.eq(None::<i64>),
                    ba::updated_at.eq(db::now()),
                ))
                .execute(conn)?;
        }
    }
    if let (None, Some(c)) = (&acc.stripe_customer_id, customer) {
        diesel::update(ba::table.find(&acc.workspace_id))
            .set(ba::stripe_customer_id.eq(c))
            .execute(conn)?;
        link_invoices(conn, &acc.workspace_id, c)?;
    }
    Ok(true)
}

/// The workspace a subscription belongs to: its metadata, else the account holding it.
pub fn workspace_of_subscription(
    conn: &mut DbConn,
    sub: &Subscription,
) -> AppResult<Option<String>> {
    if let Some(ws) = sub.metadata.get("workspace_id") {
        return Ok(Some(ws.clone()));
    }
    Ok(ba::table
        .filter(ba::stripe_subscription_id.eq(&sub.id))
        .select(ba::workspace_id)
        .first(conn)
        .optional()?)
}

/// Whether a subscription event would tie with the stored state (checked before the
/// transaction, so the handler can re-fetch first).
pub fn needs_refetch(
    conn: &mut DbConn,
    ws_id: &str,
    sub: &Subscription,
    at: i64,
) -> AppResult<bool> {
    Ok(account(conn, ws_id)?.is_some_and(|a| {
        a.stripe_subscription_id.as_deref() == Some(&sub.id)
            && a.status_event_created == Some(at)
            && a.subscription_status.as_deref() != Some(&sub.status)
    }))
}

pub fn workspace_of_invoice(conn: &mut DbConn, invoice: &Invoice) -> AppResult<Option<String>> {
    if let Some(ws) = invoice.workspace_id() {
        let known: i64 = ba::table.find(ws).count().get_result(conn)?;
        if known > 0 {
            return Ok(Some(ws.to_owned()));
        }
    }
    if let Some(c) = &invoice.customer {
        if let Some(ws) = ba::table
            .filter(ba::stripe_customer_id.eq(c))
            .select(ba::workspace_id)
            .first(conn)
            .optional()?
        {
            return Ok(Some(ws));
        }
    }
    if let Some(s) = invoice.subscription_id() {
        return Ok(ba::table
            .filter(ba::stripe_subscription_id.eq(s))
            .select(ba::workspace_id)
            .first(conn)
            .optional()?);
    }
    Ok(None)
}

/// Applies an invoice event (`kind`, created at `at`) with the rules in the module docs.
pub fn apply_invoice(
    conn: &mut DbConn,
    kind: &str,
    invoice: &Invoice,
    at: i64,
) -> AppResult<InvoiceChange> {
    let ws = workspace_of_invoice(conn, invoice)?;
    let failed_attempt = kind == "invoice.payment_failed";
    // The event names the outcome even if the object's status lags (it does not, today).
    let status = match kind {
        "invoice.paid" | "invoice.payment_succeeded" => "paid".to_owned(),
        "invoice.voided" => "void".to_owned(),
        "invoice.marked_uncollectible" => "uncollectible".to_owned(),
        _ => invoice.status.clone().unwrap_or_else(|| "open".into()),
    };
    let now = db::now();
    let existing: Option<(String, i64, Option<i64>, Option<String>)> = inv::table
        .find(&invoice.id)
        .select((
            inv::status,
            inv::updated_from_event_created,
            inv::first_failed_at,
            inv::workspace_id,
        ))
        .first(conn)
        .optional()?;
    let Some((old_status, old_at, old_failed, old_ws)) = existing else {
        let first_failed = (failed_attempt && !FINAL.contains(&status.as_str())).then_some(at);
        diesel::insert_into(inv::table)
            .values((
                inv::id.eq(&invoice.id),
                inv::workspace_id.eq(&ws),
                inv::stripe_customer_id.eq(invoice.customer.as_deref().unwrap_or_default()),
                inv::number.eq(&invoice.number),
                inv::amount_due.eq(invoice.amount_due),
                inv::amount_paid.eq(invoice.amount_paid),
                inv::currency.eq(&invoice.currency),
                inv::status.eq(&status),
                inv::hosted_invoice_url.eq(&invoice.hosted_invoice_url),
                inv::first_failed_at.eq(first_failed),
                inv::created.eq(invoice.created),
                inv::updated_from_event_created.eq(at),
                inv::updated_at.eq(now),
            ))
            .execute(conn)?;
        return Ok(InvoiceChange {
            workspace_id: ws,
            failed: first_failed.is_some(),
            first_failure: first_failed.is_some(),
            paid: status == "paid",
        });
    };
    let ws = ws.or(old_ws);
    let apply = if FINAL.contains(&old_status.as_str()) {
        false
    } else if FINAL.contains(&status.as_str())
        || (status == "uncollectible" && old_status != "uncollectible")
    {
        // Settling outcomes win whatever the order; `uncollectible` may still be paid.
        true
    } else {
        at >= old_at
    };
    let settled_after = if apply { &status } else { &old_status };
    let first_failed = if failed_attempt && !FINAL.contains(&settled_after.as_str()) {
        Some(old_failed.map_or(at, |t| t.min(at)))
    } else {
        old_failed
    };
    if apply {
        diesel::update(inv::table.find(&invoice.id))
            .set((
                inv::workspace_id.eq(&ws),
                inv::number.eq(&invoice.number),
                inv::amount_due.eq(invoice.amount_due),
                inv::amount_paid.eq(invoice.amount_paid),
                inv::currency.eq(&invoice.currency),
                inv::status.eq(&status),
                inv::hosted_invoice_url.eq(&invoice.hosted_invoice_url),
                inv::first_failed_at.eq(first_failed),
                inv::updated_from_event_created.eq(at.max(old_at)),
                inv::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        diesel::update(inv::table.find(&invoice.id))
            .set((
                inv::workspace_id.eq(&ws),
                inv::first_failed_at.eq(first_failed),
                inv::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(InvoiceChange {
        workspace_id: ws,
        failed: failed_attempt
            && first_failed.is_some()
            && !FINAL.contains(&settled_after.as_str()),
        first_failure: old_failed.is_none() && first_failed.is_some(),
        paid: apply && status == "paid" && old_status != "paid",
    })
}

/// Records a webhook event id; `false` if it was already handled (then the caller's
/// transaction must change nothing else).
pub fn first_delivery(conn: &mut DbConn, id: &str, kind: &str, created: i64) -> AppResult<bool> {
    let seen: i64 = stripe_events::table.find(id).count().get_result(conn)?;
    if seen > 0 {
        return Ok(false);
    }
    // Two deliveries at once (PostgreSQL; SQLite runs them one after the other): the
    // second insert waits for the first to commit, then fails on the primary key. The
    // savepoint keeps that failure from aborting the caller's transaction.
    let r = db::transaction::<_, diesel::result::Error, _>(conn, |conn| {
        diesel::insert_into(stripe_events::table)
            .values((
                stripe_events::id.eq(id),
                stripe_events::type_.eq(kind),
                stripe_events::created.eq(created),
                stripe_events::received_at.eq(db::now()),
            ))
            .execute(conn)
    });
    match r {
        Ok(_) => Ok(true),
        Err(e) if db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Workspaces [`reconcile`](crate::billing::service::events::reconcile) may have something to do for: some invoice unpaid after a
/// failure, a payment suspension to lift, or an ended subscription. Also returns the
/// earliest grace period end still to come, for the sweeper to wake up then.
pub fn candidates(
    conn: &mut DbConn,
    grace_secs: i64,
    now: i64,
) -> AppResult<(Vec<String>, Option<i64>)> {
    use crate::infra::schema::workspace_suspensions as wss;
    // Closed workspaces are never suspended or resumed for payment again.
    let live = || {
        workspaces::table
            .filter(workspaces::deleted_at.is_null())
            .select(workspaces::id)
    };
    let mut ids: Vec<String> = inv::table
        .filter(inv::workspace_id.assume_not_null().eq_any(live()))
        .filter(inv::first_failed_at.is_not_null())
        .filter(inv::status.ne_all(FINAL))
        .select(inv::workspace_id.assume_not_null())
        .distinct()
        .load(conn)?;
    let next_grace_end: Option<i64> = inv::table
        .filter(inv::workspace_id.assume_not_null().eq_any(live()))
        .filter(inv::first_failed_at.is_not_null())
        .filter(inv::status.ne_all(FINAL))
        .filter(inv::first_failed_at.gt(now - grace_secs))
        .select(diesel::dsl::min(inv::first_failed_at))
        .first::<Option<i64>>(conn)?
        .map(|t| t + grace_secs);
    ids.extend(
        wss::table
            .filter(wss::code.eq(suspension::PAYMENT))
            .filter(wss::lifted_at.is_null())
            .select(wss::workspace_id)
            .load::<String>(conn)?,
    );
    ids.extend(
        ba::table
            .filter(ba::subscription_status.eq_any(ENDED))
            .filter(ba::activated_at.is_not_null())
            .filter(ba::workspace_id.eq_any(live()))
            .select(ba::workspace_id)
            .load::<String>(conn)?,
    );
    ids.sort();
    ids.dedup();
    Ok((ids, next_grace_end))
}

/// Subscriptions still live at Stripe for workspaces that were cancelled or deleted:
/// `(workspace, subscription)`.
pub fn orphaned_subscriptions(conn: &mut DbConn) -> AppResult<Vec<(String, String)>> {
    Ok(ba::table
        .inner_join(workspaces::table)
        .filter(workspaces::deleted_at.is_not_null())
        .filter(ba::stripe_subscription_id.is_not_null())
        .filter(ba::cancel_requested_at.is_null())
        .filter(
            ba::subscription_status
                .is_null()
                .or(ba::subscription_status.ne_all(ENDED)),
        )
        .select((
            ba::workspace_id,
            ba::stripe_subscription_id.assume_not_null(),
        ))
        .load(conn)?)
}

/// Billing's part of the retention schedule: invoices after 7 years
/// ([`crate::retention::BILLING_YEARS`]), handled event ids after 30 days. Returns the rows
/// deleted.
pub fn prune(conn: &mut DbConn, now: i64) -> AppResult<usize> {
    let year = 365 * 24 * 3600;
    let invoices = diesel::delete(
        inv::table.filter(inv::created.lt(now - crate::retention::BILLING_YEARS * year)),
    )
    .execute(conn)?;
    let events = diesel::delete(
        stripe_events::table.filter(stripe_events::received_at.lt(now - 30 * 24 * 3600)),
    )
    .execute(conn)?;
    Ok(invoices + events)
}

/// Marks the account activated, if it was not: `true` for the one caller that did it.
pub fn set_activated(conn: &mut DbConn, ws_id: &str, now: i64) -> AppResult<bool> {
    let n = diesel::update(ba::table.find(ws_id).filter(ba::activated_at.is_null()))
        .set((ba::activated_at.eq(now), ba::updated_at.eq(now)))
        .execute(conn)?;
    Ok(n > 0)
}

/// When the workspace was closed (if it was) and the account's plan.
pub fn deleted_and_plan(conn: &mut DbConn, ws_id: &str) -> AppResult<(Option<i64>, String)> {
    Ok(workspaces::table
        .inner_join(ba::table)
        .filter(workspaces::id.eq(ws_id))
        .select((workspaces::deleted_at, ba::plan))
        .first(conn)?)
}

/// When the workspace was closed, if it was.
pub fn workspace_deleted_at(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<i64>> {
    Ok(workspaces::table
        .find(ws_id)
        .select(workspaces::deleted_at)
        .first(conn)?)
}

/// The workspace's name (for the owners' emails).
pub fn workspace_name(conn: &mut DbConn, ws_id: &str) -> AppResult<String> {
    Ok(workspaces::table
        .find(ws_id)
        .select(workspaces::name)
        .first(conn)?)
}

/// Sets the plan the workspace is on.
pub fn set_workspace_plan(conn: &mut DbConn, ws_id: &str, plan: &str) -> AppResult<()> {
    diesel::update(workspaces::table.find(ws_id))
        .set(workspaces::plan.eq(plan))
        .execute(conn)?;
    Ok(())
}

/// Sets the account's plan.
pub fn set_plan(conn: &mut DbConn, ws_id: &str, plan: &str) -> AppResult<()> {
    diesel::update(ba::table.find(ws_id))
        .set(ba::plan.eq(plan))
        .execute(conn)?;
    Ok(())
}

/// Stores a subscription's state as of `at`.
pub fn set_subscription_state(
    conn: &mut DbConn,
    ws_id: &str,
    status: &str,
    at: i64,
    period_end: Option<i64>,
) -> AppResult<()> {
    diesel::update(ba::table.find(ws_id))
        .set((
            ba::subscription_status.eq(status),
            ba::status_event_created.eq(at),
            ba::current_period_end.eq(period_end),
            ba::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores a subscription status as of `at` (a paid checkout).
pub fn set_status(conn: &mut DbConn, ws_id: &str, status: &str, at: i64) -> AppResult<()> {
    diesel::update(ba::table.find(ws_id))
        .set((
            ba::subscription_status.eq(status),
            ba::status_event_created.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records when the subscription was cancelled at Stripe.
pub fn set_cancel_requested(conn: &mut DbConn, ws_id: &str) -> AppResult<()> {
    diesel::update(ba::table.find(ws_id))
        .set((
            ba::cancel_requested_at.eq(db::now()),
            ba::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The email address of a user (the Checkout's customer email).
pub fn user_email(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    use crate::infra::schema::users;
    Ok(users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Invoices go 7 years after their date (`retention::BILLING_YEARS`), handled Stripe
    /// event ids after 30 days; younger ones stay.
    #[test]
    fn invoices_older_than_seven_years_and_event_ids_older_than_thirty_days_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = db::ScratchDb::new(&dir.path().join("cp.sqlite"), "outpost_unit");
        let pool = db::connect(&scratch.url).unwrap();
        let mut conn = pool.get().unwrap();
        let conn = &mut conn;
        let now = db::now();
        let (day, year) = (24 * 3600, 365 * 24 * 3600);
        let seven_years = crate::retention::BILLING_YEARS * year;
        for (id, created) in [
            ("in_old", now - seven_years - day),
            ("in_kept", now - seven_years + day),
        ] {
            diesel::insert_into(inv::table)
                .values((
                    inv::id.eq(id),
                    inv::stripe_customer_id.eq("cus_1"),
                    inv::amount_due.eq(1900),
                    inv::amount_paid.eq(1900),
                    inv::currency.eq("eur"),
                    inv::status.eq("paid"),
                    inv::created.eq(created),
                    inv::updated_from_event_created.eq(created),
                    inv::updated_at.eq(created),
                ))
                .execute(conn)
                .unwrap();
        }
        for (id, received) in [("evt_old", now - 31 * day), ("evt_kept", now - 29 * day)] {
            diesel::insert_into(stripe_events::table)
                .values((
                    stripe_events::id.eq(id),
                    stripe_events::type_.eq("invoice.paid"),
                    stripe_events::created.eq(received),
                    stripe_events::received_at.eq(received),
                ))
                .execute(conn)
                .unwrap();
        }
        assert_eq!(prune(conn, now).unwrap(), 2);
        let invoices: Vec<String> = inv::table.select(inv::id).load(conn).unwrap();
        assert_eq!(invoices, ["in_kept"]);
        let events: Vec<String> = stripe_events::table
            .select(stripe_events::id)
            .load(conn)
            .unwrap();
        assert_eq!(events, ["evt_kept"]);
        assert_eq!(prune(conn, now).unwrap(), 0, "a second run deletes nothing");
    }
}
