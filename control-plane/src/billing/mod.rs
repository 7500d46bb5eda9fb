//! Billing with Stripe: plan → Checkout → the workspace's node is requested once Stripe
//! confirms payment; the customer portal for cards and cancellation; invoices; webhooks
//! that move the subscription and invoices, start a grace period on a failed payment and
//! suspend (then resume) the workspace for [`crate::suspension::PAYMENT`].
//!
//! Without Stripe keys billing is off ([`is_on`]): workspaces are on the free `dev` plan and
//! get their node at once, the billing page says so, and the routes that need Stripe
//! answer 404.
//!
//! Map: [`config`] the options; [`stripe`] the typed API client; [`signature`] the webhook
//! signature check; [`webhook`] event dispatch; [`ledger`] what is stored and the ordering
//! and idempotency rules; [`pages`] the owners' pages and the JSON API.
//!
//! **Privacy:** the CP keeps Stripe ids, plan, statuses, amounts, invoice numbers and links,
//! and times; it sends Stripe the owner's account email, the workspace id and the price.
//! Card data, names and addresses are entered on Stripe's pages and never reach the CP.

pub mod config;
pub mod ledger;
pub mod pages;
pub mod signature;
pub mod stripe;
pub mod webhook;

use crate::app::State;
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::workspaces::Workspace;
use config::BillingConfig;
use std::sync::OnceLock;
use std::time::Duration;

pub use pages::checkout_for_api;

/// Whether billing is on (Stripe keys, webhook secret and a price configured).
pub fn is_on(st: &State) -> bool {
    st.config.billing.is_some()
}

/// The billing configuration, when billing is on.
pub fn config(st: &State) -> Option<&BillingConfig> {
    st.config.billing.as_ref()
}

/// The plan whose price is among `prices` (a subscription changed in the portal).
pub fn plan_of_prices(st: &State, prices: &[&str]) -> Option<String> {
    config(st)?
        .plans
        .iter()
        .find(|p| prices.contains(&p.price.as_str()))
        .map(|p| p.name.clone())
}

/// What the workspace page shows about billing (to every member; no invoice details).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// No node yet because the owners have not paid.
    pub waiting_for_payment: bool,
    /// The subscription has ended; the owners may subscribe again.
    pub ended: bool,
    /// Stripe's subscription status, once known.
    pub status: Option<String>,
    /// While an invoice is unpaid after a failed attempt: when the grace period ends.
    pub grace_until: Option<i64>,
    /// Plans offered at checkout, in order.
    pub plans: Vec<String>,
}

/// The billing summary of a workspace (`None`: billing is off). A workspace created while
/// billing was off has a node and no account: it is not waiting for anything.
pub fn summary(
    conn: &mut DbConn,
    st: &State,
    ws: &Workspace,
    has_node: bool,
) -> AppResult<Option<Summary>> {
    let Some(cfg) = config(st) else {
        return Ok(None);
    };
    let acc = ledger::account(conn, &ws.id)?;
    let live = ws.deleted_at.is_none();
    let activated = acc.as_ref().is_some_and(|a| a.activated_at.is_some());
    let grace_until = ledger::arrears_since(conn, &ws.id)?.map(|t| t + cfg.grace_secs);
    Ok(Some(Summary {
        waiting_for_payment: live && !has_node && !activated,
        ended: live && activated && acc.as_ref().is_some_and(|a| a.ended()),
        status: acc.and_then(|a| a.subscription_status),
        grace_until,
        plans: cfg.plans.iter().map(|p| p.name.clone()).collect(),
    }))
}

/// Wakes the billing sweeper (a payment just failed: its grace period may end before the
/// next regular pass).
pub(crate) fn wake() -> &'static tokio::sync::Notify {
    static WAKE: OnceLock<tokio::sync::Notify> = OnceLock::new();
    WAKE.get_or_init(tokio::sync::Notify::new)
}

/// Longest sleep of the sweeper between passes.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
const PRUNE_EVERY_S: i64 = 3600;

/// Starts the billing sweeper (with billing on): every 30 s, or when a grace period ends
/// or a webhook asks, it reconciles payment suspensions, cancels at Stripe the
/// subscriptions of workspaces that were closed, and prunes old billing records. Every
/// step is idempotent and serialised per workspace, so replicas may all run it.
pub fn start_worker(state: State) {
    if !is_on(&state) {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut last_prune = 0;
        loop {
            let sleep = match sweep(&state, &mut last_prune).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "billing sweep failed");
                    SWEEP_EVERY
                }
            };
            tokio::select! {
                _ = actix_web::rt::time::sleep(sleep) => {}
                _ = wake().notified() => {}
            }
        }
    });
}

/// One pass of the sweeper; returns how long to sleep.
async fn sweep(st: &State, last_prune: &mut i64) -> AppResult<Duration> {
    let Some(cfg) = config(st) else {
        return Ok(SWEEP_EVERY);
    };
    let grace = cfg.grace_secs;
    let s = st.clone();
    let prune = db::now() - *last_prune >= PRUNE_EVERY_S;
    let (next, orphans) = db::run(&st.db, move |conn| {
        let now = db::now();
        let (ids, next) = ledger::candidates(conn, grace, now)?;
        for ws in ids {
            if let Err(e) = ledger::reconcile(conn, &s, &ws, grace) {
                tracing::warn!(workspace = %ws, error = %e, "billing reconcile failed");
            }
        }
        if prune {
            let n = ledger::prune(conn, now)?;
            if n > 0 {
                tracing::info!(
                    rows = n,
                    "billing retention: old invoices and event ids deleted"
                );
            }
        }
        Ok((next, ledger::orphaned_subscriptions(conn)?))
    })
    .await?;
    if prune {
        *last_prune = db::now();
    }
    for (ws, sub) in orphans {
        let stripe = stripe::Stripe::new(&st.http, cfg);
        match stripe.cancel_subscription(&sub).await {
            Ok(_) => {}
            // Already gone at Stripe: nothing left to cancel.
            Err(e) if e.is_missing() => {}
            Err(e) => {
                tracing::warn!(workspace = %ws, error = %e, "cancelling the subscription of a closed workspace failed; will retry");
                continue;
            }
        }
        let w = ws.clone();
        db::run(&st.db, move |conn| ledger::cancel_requested(conn, &w, &sub)).await?;
        tracing::info!(workspace = %ws, "workspace closed; its subscription is cancelled at Stripe");
    }
    let now = db::now();
    Ok(next
        .map(|t| Duration::from_secs((t - now).clamp(1, SWEEP_EVERY.as_secs() as i64) as u64))
        .unwrap_or(SWEEP_EVERY))
}

/// Formats an amount in minor units: `12.50 EUR` (`1200 JPY` for zero-decimal currencies).
pub fn fmt_amount(minor: &i64, currency: &str) -> String {
    const ZERO_DECIMAL: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    let code = currency.to_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_lowercase().as_str()) {
        return format!("{minor} {code}");
    }
    let sign = if *minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_in_major_units() {
        assert_eq!(fmt_amount(&1250, "eur"), "12.50 EUR");
        assert_eq!(fmt_amount(&5, "usd"), "0.05 USD");
        assert_eq!(fmt_amount(&-300, "usd"), "-3.00 USD");
        assert_eq!(fmt_amount(&1200, "jpy"), "1200 JPY");
    }
}
