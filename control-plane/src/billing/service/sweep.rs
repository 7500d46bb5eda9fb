//! The billing sweeper: every 30 s, or when a grace period ends or a webhook asks, it
//! reconciles payment suspensions, cancels at Stripe the subscriptions of closed
//! workspaces, and prunes old billing records.
//!
//! Started from `app/workers.rs` with a [`BillingRuntime`] (only with billing on); it
//! sweeps only while its replica leads.

use super::{events, BillingRuntime};
use crate::billing::store;
use crate::billing::stripe::Stripe;
use crate::error::AppResult;
use crate::infra::db;
use crate::infra::leader::Leadership;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep of the sweeper between passes.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
const PRUNE_EVERY_S: i64 = 3600;

/// Starts the billing sweeper (with billing on): every 30 s, or when a grace period ends
/// or a webhook asks, it reconciles payment suspensions, cancels at Stripe the
/// subscriptions of workspaces that were closed, and prunes old billing records. Every
/// step is idempotent and serialised per workspace; still, only the leading replica
/// (`infra::leader`) runs it, so Stripe is not asked the same thing by every replica.
pub fn start_worker(rt: BillingRuntime, leader: Arc<Leadership>) {
    actix_web::rt::spawn(async move {
        let mut last_prune = 0;
        loop {
            if !leader.is_leader() {
                // Another replica sweeps; ask again soon, in case it goes.
                actix_web::rt::time::sleep(crate::infra::leader::RETRY).await;
                continue;
            }
            let sleep = match sweep(&rt, &mut last_prune).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "billing sweep failed");
                    SWEEP_EVERY
                }
            };
            tokio::select! {
                _ = actix_web::rt::time::sleep(sleep) => {}
                _ = super::wake().notified() => {}
            }
        }
    });
}

/// One pass of the sweeper; returns how long to sleep.
async fn sweep(rt: &BillingRuntime, last_prune: &mut i64) -> AppResult<Duration> {
    let cfg = &rt.cfg;
    let grace = cfg.grace_secs;
    let s = rt.clone();
    let prune = db::now() - *last_prune >= PRUNE_EVERY_S;
    let (next, orphans) = db::run(&rt.db, move |conn| {
        let now = db::now();
        let (ids, next) = store::candidates(conn, grace, now)?;
        for ws in ids {
            if let Err(e) = events::reconcile(conn, &*s.reactions, &ws, grace) {
                tracing::warn!(workspace = %ws, error = %e, "billing reconcile failed");
            }
        }
        if prune {
            let n = store::prune(conn, now)?;
            if n > 0 {
                tracing::info!(
                    rows = n,
                    "billing retention: old invoices and event ids deleted"
                );
            }
        }
        Ok((next, store::orphaned_subscriptions(conn)?))
    })
    .await?;
    if prune {
        *last_prune = db::now();
    }
    for (ws, sub) in orphans {
        let stripe = Stripe::new(&rt.http, cfg);
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
        db::run(&rt.db, move |conn| events::cancel_requested(conn, &w, &sub)).await?;
        tracing::info!(workspace = %ws, "workspace closed; its subscription is cancelled at Stripe");
    }
    let now = db::now();
    Ok(next
        .map(|t| Duration::from_secs((t - now).clamp(1, SWEEP_EVERY.as_secs() as i64) as u64))
        .unwrap_or(SWEEP_EVERY))
}
