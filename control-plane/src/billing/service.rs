//! Billing's use cases: starting a Checkout, opening the customer portal, the summary
//! the workspace page shows; [`events`] applies Stripe's news (activation, subscription
//! and invoice changes, reconcile), [`sweep`] is the background pass.

pub mod events;
pub mod sweep;

use super::config::BillingConfig;
use super::model::Summary;
use super::store;
use super::stripe::{NewCheckout, Stripe, StripeError};
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn, DbPool};
use crate::workspaces::{load_for_member, Workspace, ROLE_OWNER};
use std::sync::Arc;
use std::sync::OnceLock;

/// What billing's news sets off in other domains, implemented in `app/` so that billing
/// calls neither `workspaces` nor `suspension`.
pub trait Reactions: Send + Sync {
    /// Payment is confirmed for a live workspace: request its node. Returns the node id.
    fn request_node(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<String>;
    /// The grace period is over or the subscription ended: suspend the workspace for
    /// payment (`false`: it already was).
    fn suspend_for_payment(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<bool>;
    /// Nothing is owed any more: lift the payment cause (`false`: there was none).
    fn resume_for_payment(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<bool>;
}

/// What applying Stripe's news and the sweeper need, with billing on (built in `app/`).
#[derive(Clone)]
pub struct BillingRuntime {
    /// Database pool.
    pub db: DbPool,
    /// Client for Stripe.
    pub http: reqwest::Client,
    /// The billing configuration.
    pub cfg: BillingConfig,
    /// Public base URL (links in emails).
    pub public_url: String,
    /// What billing sets off in other domains.
    pub reactions: Arc<dyn Reactions>,
}

/// What checkout and the portal need from the application (built by `web.rs`).
pub struct BillingCtx<'a> {
    /// Database pool.
    pub db: &'a DbPool,
    /// Client for Stripe.
    pub http: &'a reqwest::Client,
    /// The billing configuration (`None`: billing is off).
    pub cfg: Option<&'a BillingConfig>,
    /// Public base URL (Checkout's return links).
    pub public_url: &'a str,
}

/// The workspace, if `user_id` owns it: non-members get 404, other members 403.
pub fn owned(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<Workspace> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    if role != ROLE_OWNER {
        return Err(AppError::Forbidden(Code::OwnerRequired));
    }
    Ok(ws)
}

pub(crate) fn stripe_failed(e: StripeError) -> AppError {
    AppError::internal(anyhow::anyhow!(e))
}

/// Starts a Checkout for `plan` (default: the first) and returns its URL. Refused for a
/// closed workspace, and while a subscription is live (plan and card changes go through
/// the portal).
pub async fn start_checkout(
    ctx: &BillingCtx<'_>,
    ws_id: &str,
    user_id: &str,
    plan: Option<&str>,
    ip: &str,
) -> AppResult<String> {
    let cfg = ctx.cfg.ok_or(AppError::NotFound)?;
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    let chosen = match plan.filter(|p| !p.is_empty()) {
        Some(p) => cfg.plan(p).cloned(),
        None => cfg.plans.first().cloned(),
    };
    let (plan, customer, email) = db::run(ctx.db, move |conn| {
        // Who may ask comes before what they asked for: strangers learn nothing.
        let ws = owned(conn, &w, &u)?;
        let plan = chosen
            .ok_or_else(|| AppError::invalid(Code::UnknownPlan, "Choose one of the plans offered."))?;
        if ws.deleted_at.is_some() {
            return Err(AppError::Conflict(
                Code::WorkspaceClosed,
                "This workspace is cancelled; there is nothing to subscribe to.".into(),
            ));
        }
        if store::account(conn, &w)?.is_some_and(|a| a.activated_at.is_some() && !a.ended()) {
            return Err(AppError::Conflict(
                Code::AlreadySubscribed,
                "This workspace is already paid for. Change plan or card with “Manage cards and cancellation”.".into(),
            ));
        }
        let customer = store::start_checkout(conn, &w, &plan.name)?;
        let email = store::user_email(conn, &u)?;
        Ok((plan, customer, email))
    })
    .await?;
    let success = format!(
        "{}/workspaces/{ws_id}/billing/return?session_id={{CHECKOUT_SESSION_ID}}",
        ctx.public_url
    );
    let cancel = format!("{}/workspaces/{ws_id}", ctx.public_url);
    let session = Stripe::new(ctx.http, cfg)
        .create_checkout(&NewCheckout {
            price: &plan.price,
            workspace_id: ws_id,
            customer: customer.as_deref(),
            customer_email: customer.is_none().then_some(email.as_str()),
            success_url: &success,
            cancel_url: &cancel,
        })
        .await
        .map_err(stripe_failed)?;
    let url = session
        .url
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("checkout session without a url")))?;
    let (w, u, ip, plan_name) = (
        ws_id.to_owned(),
        user_id.to_owned(),
        ip.to_owned(),
        plan.name.clone(),
    );
    db::run(ctx.db, move |conn| {
        audit::record(
            conn,
            &Entry {
                actor: Some(&u),
                action: "billing.checkout_started",
                object_type: "workspace",
                object_id: &w,
                workspace_id: Some(&w),
                ip: Some(&ip),
                detail: &plan_name,
            },
        )
    })
    .await?;
    Ok(url)
}

pub async fn owned_run(ctx: &BillingCtx<'_>, ws_id: &str, user_id: &str) -> AppResult<Workspace> {
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    db::run(ctx.db, move |conn| owned(conn, &w, &u)).await
}

/// For `POST /api/v1/workspaces` with billing on: the Checkout URL of the new workspace.
pub async fn checkout_for_api(
    ctx: &BillingCtx<'_>,
    ws_id: &str,
    user_id: &str,
    plan: Option<&str>,
) -> AppResult<String> {
    start_checkout(ctx, ws_id, user_id, plan, "api").await.inspect_err(|e| {
        tracing::warn!(workspace = ws_id, error = %e, "checkout for a new workspace failed")
    })
}

/// The customer portal of the workspace's Stripe customer (cards, invoices,
/// cancellation), coming back to the billing page.
pub async fn portal_url(ctx: &BillingCtx<'_>, ws_id: &str, user_id: &str) -> AppResult<String> {
    let cfg = ctx.cfg.ok_or(AppError::NotFound)?;
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    let customer = db::run(ctx.db, move |conn| {
        owned(conn, &w, &u)?;
        Ok(store::account(conn, &w)?.and_then(|a| a.stripe_customer_id))
    })
    .await?
    .ok_or_else(|| {
        AppError::Conflict(
            Code::NotSubscribed,
            "There is no subscription or card to manage yet: choose a plan first.".into(),
        )
    })?;
    let back = format!("{}/workspaces/{ws_id}/billing", ctx.public_url);
    let session = Stripe::new(ctx.http, cfg)
        .portal(&customer, &back)
        .await
        .map_err(stripe_failed)?;
    if !(session.url.starts_with("https://") || session.url.starts_with("http://")) {
        return Err(AppError::internal(anyhow::anyhow!(
            "portal session url is not http(s)"
        )));
    }
    Ok(session.url)
}

/// The billing summary of a workspace (`None`: billing is off). A workspace created while
/// billing was off has a node and no account: it is not waiting for anything.
pub fn summary(
    conn: &mut DbConn,
    cfg: Option<&BillingConfig>,
    ws: &Workspace,
    has_node: bool,
) -> AppResult<Option<Summary>> {
    let Some(cfg) = cfg else {
        return Ok(None);
    };
    let acc = store::account(conn, &ws.id)?;
    let live = ws.deleted_at.is_none();
    let activated = acc.as_ref().is_some_and(|a| a.activated_at.is_some());
    let grace_until = store::arrears_since(conn, &ws.id)?.map(|t| t + cfg.grace_secs);
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
