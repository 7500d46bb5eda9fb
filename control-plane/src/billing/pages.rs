//! The owners' billing pages and API: `/workspaces/{id}/billing` (plan, status, invoices),
//! checkout, the return from Checkout, the customer portal; `/api/v1/workspaces/{id}/billing`
//! and `/checkout`. Only owners see billing or pay: other members get 403, non-members 404.

use super::ledger::{self, Account, InvoiceRow};
use super::stripe::{NewCheckout, Stripe, StripeError};
use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::http::html;
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::users;
use crate::workspaces::{load_for_member, Workspace, ROLE_OWNER};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use serde::Deserialize;

/// The workspace, if `user_id` owns it: non-members get 404, other members 403.
pub fn owned(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<Workspace> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    if role != ROLE_OWNER {
        return Err(AppError::Forbidden(Code::OwnerRequired));
    }
    Ok(ws)
}

fn stripe_failed(e: StripeError) -> AppError {
    AppError::internal(anyhow::anyhow!(e))
}

/// Starts a Checkout for `plan` (default: the first) and returns its URL. Refused for a
/// closed workspace, and while a subscription is live (plan and card changes go through
/// the portal).
pub async fn start_checkout(
    st: &State,
    ws_id: &str,
    user_id: &str,
    plan: Option<&str>,
    ip: &str,
) -> AppResult<String> {
    let cfg = super::config(st).ok_or(AppError::NotFound)?;
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    let chosen = match plan.filter(|p| !p.is_empty()) {
        Some(p) => cfg.plan(p).cloned(),
        None => cfg.plans.first().cloned(),
    };
    let (plan, customer, email) = db::run(&st.db, move |conn| {
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
        if ledger::account(conn, &w)?.is_some_and(|a| a.activated_at.is_some() && !a.ended()) {
            return Err(AppError::Conflict(
                Code::AlreadySubscribed,
                "This workspace is already paid for. Change plan or card with “Manage cards and cancellation”.".into(),
            ));
        }
        let customer = ledger::start_checkout(conn, &w, &plan.name)?;
        let email: String = users::table.find(&u).select(users::email).first(conn)?;
        Ok((plan, customer, email))
    })
    .await?;
    let success = format!(
        "{}/workspaces/{ws_id}/billing/return?session_id={{CHECKOUT_SESSION_ID}}",
        st.public_url
    );
    let cancel = format!("{}/workspaces/{ws_id}", st.public_url);
    let session = Stripe::new(&st.http, cfg)
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
    db::run(&st.db, move |conn| {
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

async fn owned_run(st: &State, ws_id: &str, user_id: &str) -> AppResult<Workspace> {
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    db::run(&st.db, move |conn| owned(conn, &w, &u)).await
}

/// For `POST /api/v1/workspaces` with billing on: the Checkout URL of the new workspace.
pub async fn checkout_for_api(
    st: &State,
    ws_id: &str,
    user_id: &str,
    plan: Option<&str>,
) -> AppResult<String> {
    start_checkout(st, ws_id, user_id, plan, "api").await.inspect_err(|e| {
        tracing::warn!(workspace = ws_id, error = %e, "checkout for a new workspace failed")
    })
}

/// How a subscription status reads on the page.
pub fn status_text(status: &Option<String>) -> &'static str {
    match status.as_deref() {
        None => "not subscribed yet",
        Some("active") => "active",
        Some("trialing") => "in its trial period",
        Some("past_due") => "payment overdue",
        Some("unpaid") => "unpaid",
        Some("canceled") => "cancelled",
        Some("incomplete") => "waiting for the first payment",
        Some("incomplete_expired") => "the first payment never completed",
        Some("paused") => "paused",
        Some(_) => "unknown",
    }
}

/// An invoice link only if it is a web address (it comes from Stripe, but is rendered as
/// a link).
pub fn web_link(u: &Option<String>) -> Option<&str> {
    u.as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
}

#[derive(Template)]
#[template(path = "billing.html")]
struct BillingPage {
    user: CurrentUser,
    ws: Workspace,
    enabled: bool,
    account: Option<Account>,
    invoices: Vec<InvoiceRow>,
    plans: Vec<String>,
    /// The owners may start a checkout (nothing paid yet, or the subscription ended).
    can_subscribe: bool,
    grace_until: Option<i64>,
    suspended_for_payment: bool,
    error: Option<String>,
}

pub(crate) async fn billing_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    render_page(&state, user, &path.into_inner(), None).await
}

async fn render_page(
    state: &State,
    user: CurrentUser,
    ws_id: &str,
    error: Option<String>,
) -> PageResult {
    let (w, u) = (ws_id.to_owned(), user.id.clone());
    let (ws, account, invoices, arrears, suspended) = db::run(&state.db, move |conn| {
        let ws = owned(conn, &w, &u)?;
        let account = ledger::account(conn, &w)?;
        let invoices = ledger::invoices(conn, &w)?;
        let arrears = ledger::arrears_since(conn, &w)?;
        let suspended = crate::suspension::active(conn, &w)?
            .iter()
            .any(|s| s.code == crate::suspension::PAYMENT);
        Ok((ws, account, invoices, arrears, suspended))
    })
    .await?;
    let cfg = super::config(state);
    let can_subscribe = cfg.is_some()
        && ws.deleted_at.is_none()
        && account
            .as_ref()
            .is_none_or(|a| a.activated_at.is_none() || a.ended());
    Ok(html(&BillingPage {
        user,
        enabled: cfg.is_some(),
        plans: cfg
            .map(|c| c.plans.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default(),
        grace_until: arrears.zip(cfg).map(|(t, c)| t + c.grace_secs),
        ws,
        account,
        invoices,
        can_subscribe,
        suspended_for_payment: suspended,
        error,
    }))
}

#[derive(Deserialize)]
pub(crate) struct PlanForm {
    #[serde(default)]
    plan: String,
}

pub(crate) async fn checkout_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<PlanForm>,
    path: web::Path<String>,
) -> PageResult {
    let ws_id = path.into_inner();
    if !super::is_on(&state) {
        return Err(AppError::NotFound.into());
    }
    match start_checkout(
        &state,
        &ws_id,
        &f.user.id,
        Some(&f.form.plan),
        &client_ip(&req),
    )
    .await
    {
        Ok(url) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url))
            .finish()),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            let status = e.status();
            let mut r = render_page(&state, f.user, &ws_id, Some(e.message())).await?;
            *r.status_mut() = status;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct ReturnQuery {
    /// Optional here so that a caller who may not see the workspace gets its 404 first.
    #[serde(default)]
    session_id: String,
}

/// Back from Checkout: asks Stripe for the session and, if it is paid and for this
/// workspace, activates it now rather than waiting for the webhook (whichever comes first
/// wins; the other changes nothing).
pub(crate) async fn return_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
    q: web::Query<ReturnQuery>,
) -> PageResult {
    let cfg = super::config(&state).ok_or(AppError::NotFound)?;
    let ws_id = path.into_inner();
    owned_run(&state, &ws_id, &user.id).await?;
    super::stripe::path_id(&q.session_id)
        .map_err(|_| AppError::invalid(Code::InvalidSession, "This checkout link is not valid."))?;
    let session = Stripe::new(&state.http, cfg)
        .checkout_session(&q.session_id)
        .await
        .map_err(|e| {
            if e.is_missing() {
                AppError::invalid(Code::InvalidSession, "This checkout link is not valid.")
            } else {
                stripe_failed(e)
            }
        })?;
    if session.workspace_id() != Some(ws_id.as_str()) {
        return Err(AppError::invalid(
            Code::SessionForAnotherWorkspace,
            "This checkout was for another workspace.",
        )
        .into());
    }
    if session.is_paid() {
        let (st, w, grace) = (state.clone(), ws_id.clone(), cfg.grace_secs);
        db::run(&state.db, move |conn| {
            ledger::checkout_completed(conn, &st, &w, &session, db::now())?;
            ledger::reconcile(conn, &st, &w, grace)?;
            Ok(())
        })
        .await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/workspaces/{ws_id}")))
        .finish())
}

async fn portal_url(st: &State, ws_id: &str, user_id: &str) -> AppResult<String> {
    let cfg = super::config(st).ok_or(AppError::NotFound)?;
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    let customer = db::run(&st.db, move |conn| {
        owned(conn, &w, &u)?;
        Ok(ledger::account(conn, &w)?.and_then(|a| a.stripe_customer_id))
    })
    .await?
    .ok_or_else(|| {
        AppError::Conflict(
            Code::NotSubscribed,
            "There is no subscription or card to manage yet: choose a plan first.".into(),
        )
    })?;
    let back = format!("{}/workspaces/{ws_id}/billing", st.public_url);
    let session = Stripe::new(&st.http, cfg)
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

pub(crate) async fn portal_page(
    state: State,
    f: CsrfForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let ws_id = path.into_inner();
    if !super::is_on(&state) {
        return Err(AppError::NotFound.into());
    }
    match portal_url(&state, &ws_id, &f.user.id).await {
        Ok(url) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url))
            .finish()),
        Err(e @ AppError::Conflict(..)) => {
            let status = e.status();
            let mut r = render_page(&state, f.user, &ws_id, Some(e.message())).await?;
            *r.status_mut() = status;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- API

pub(crate) async fn api_billing(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (ws_id, enabled) = (path.into_inner(), super::is_on(&state));
    let grace = super::config(&state).map(|c| c.grace_secs);
    let body = db::run(&state.db, move |conn| {
        owned(conn, &ws_id, &user.id)?;
        let arrears = ledger::arrears_since(conn, &ws_id)?;
        Ok(serde_json::json!({
            "enabled": enabled,
            "account": ledger::account(conn, &ws_id)?,
            "invoices": ledger::invoices(conn, &ws_id)?,
            "grace_until": arrears.zip(grace).map(|(t, g)| t + g),
        }))
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
pub(crate) struct CheckoutBody {
    plan: Option<String>,
}

pub(crate) async fn api_checkout(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    body: web::Json<CheckoutBody>,
) -> AppResult<HttpResponse> {
    let ws_id = path.into_inner();
    let url = start_checkout(
        &state,
        &ws_id,
        &user.id,
        body.plan.as_deref(),
        &client_ip(&req),
    )
    .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "checkout_url": url })))
}
