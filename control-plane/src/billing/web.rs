//! The owners' billing pages and API: `/workspaces/{id}/billing` (plan, status, invoices),
//! checkout, the return from Checkout, the customer portal; `/api/v1/workspaces/{id}/billing`
//! and `/checkout`. Only owners see billing or pay: other members get 403, non-members 404.
//!
//! `POST /stripe/webhook`: public, authenticated by its own signature check.
//! An event is handled in one transaction that first records its id: a redelivery (or two
//! deliveries racing) finds the id and changes nothing, and a failure rolls the id back so
//! Stripe's retry handles it again. Notices (email) and the suspension check run after the
//! commit. Answers: 200 handled or duplicate; 400 bad signature or body; 404 billing off;
//! 409/500 to make Stripe retry.

use super::config::BillingConfig;
use super::model::Summary;
use super::service::{self, events, BillingCtx};
use super::signature::{self, TOLERANCE_SECS};
use super::store::{self, Account, InvoiceRow};
use super::stripe::{Event, Stripe};
use crate::app::openapi::ErrorJson;
use crate::app::State;
use crate::error::{AppError, AppResult, Code};
use crate::http::html;
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::infra::db::{self, DbConn};
use crate::workspaces::Workspace;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

/// Whether billing is on (Stripe keys, webhook secret and a price configured).
pub fn is_on(st: &State) -> bool {
    st.config.billing.is_some()
}

/// The billing configuration, when billing is on.
pub fn config(st: &State) -> Option<&BillingConfig> {
    st.config.billing.as_ref()
}

/// What a paid checkout sets off in other domains (wired in `app/`).
fn reactions(st: &State) -> std::sync::Arc<dyn service::Reactions> {
    crate::app::reactions::of(st)
}

/// What checkout and the portal need, from the state.
fn ctx(st: &State) -> BillingCtx<'_> {
    BillingCtx {
        db: &st.db,
        http: &st.http,
        cfg: config(st),
        public_url: &st.public_url,
    }
}

/// The billing summary of a workspace (`None`: billing is off); see [`service::summary`].
pub fn summary(
    conn: &mut DbConn,
    st: &State,
    ws: &Workspace,
    has_node: bool,
) -> AppResult<Option<Summary>> {
    service::summary(conn, config(st), ws, has_node)
}

/// For `POST /api/v1/workspaces` with billing on: the Checkout URL of the new workspace.
pub async fn checkout_for_api(
    st: &State,
    ws_id: &str,
    user_id: &str,
    plan: Option<&str>,
) -> AppResult<String> {
    service::checkout_for_api(&ctx(st), ws_id, user_id, plan).await
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
        let ws = service::owned(conn, &w, &u)?;
        let account = store::account(conn, &w)?;
        let invoices = store::invoices(conn, &w)?;
        let arrears = store::arrears_since(conn, &w)?;
        let suspended = crate::suspension::active(conn, &w)?
            .iter()
            .any(|s| s.code == crate::suspension::PAYMENT);
        Ok((ws, account, invoices, arrears, suspended))
    })
    .await?;
    let cfg = config(state);
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
    if !is_on(&state) {
        return Err(AppError::NotFound.into());
    }
    match service::start_checkout(
        &ctx(&state),
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
    let cfg = config(&state).ok_or(AppError::NotFound)?;
    let ws_id = path.into_inner();
    service::owned_run(&ctx(&state), &ws_id, &user.id).await?;
    super::stripe::path_id(&q.session_id)
        .map_err(|_| AppError::invalid(Code::InvalidSession, "This checkout link is not valid."))?;
    let session = Stripe::new(&state.http, cfg)
        .checkout_session(&q.session_id)
        .await
        .map_err(|e| {
            if e.is_missing() {
                AppError::invalid(Code::InvalidSession, "This checkout link is not valid.")
            } else {
                service::stripe_failed(e)
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
        let (fx, w, grace) = (reactions(&state), ws_id.clone(), cfg.grace_secs);
        db::run(&state.db, move |conn| {
            events::checkout_completed(conn, &*fx, &w, &session, db::now())?;
            events::reconcile(conn, &*fx, &w, grace)?;
            Ok(())
        })
        .await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/workspaces/{ws_id}")))
        .finish())
}

pub(crate) async fn portal_page(
    state: State,
    f: CsrfForm<Empty>,
    path: web::Path<String>,
) -> PageResult {
    let ws_id = path.into_inner();
    if !is_on(&state) {
        return Err(AppError::NotFound.into());
    }
    match service::portal_url(&ctx(&state), &ws_id, &f.user.id).await {
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

/// `GET /api/v1/workspaces/{id}/billing`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Billing {
    /// Whether this control plane bills through Stripe.
    enabled: bool,
    /// The workspace's subscription, once checkout began.
    account: Option<store::Account>,
    /// Newest first (drafts left out).
    invoices: Vec<store::InvoiceRow>,
    /// While an invoice is unpaid: when the grace period ends (unix seconds).
    grace_until: Option<i64>,
}

/// `POST /api/v1/workspaces/{id}/checkout`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Checkout {
    /// Stripe's checkout page: send the owner there.
    checkout_url: String,
}

/// The workspace's subscription and invoices.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/billing", tag = "billing",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "Billing state.", body = Billing),
        (status = 403, description = "Owners only (`owner_required`).", body = ErrorJson),
    ))]
pub(crate) async fn api_billing(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (ws_id, enabled) = (path.into_inner(), is_on(&state));
    let grace = config(&state).map(|c| c.grace_secs);
    let body = db::run(&state.db, move |conn| {
        service::owned(conn, &ws_id, &user.id)?;
        let arrears = store::arrears_since(conn, &ws_id)?;
        Ok(Billing {
            enabled,
            account: store::account(conn, &ws_id)?,
            invoices: store::invoices(conn, &ws_id)?,
            grace_until: arrears.zip(grace).map(|(t, g)| t + g),
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct CheckoutBody {
    /// The plan (default: the first offered).
    plan: Option<String>,
}

/// Starts a Stripe checkout for the workspace.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/checkout", tag = "billing",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = CheckoutBody,
    responses(
        (status = 201, description = "Checkout started.", body = Checkout),
        (status = 400, description = "No such plan (`unknown_plan`), or the body is malformed.", body = ErrorJson),
        (status = 403, description = "Owners only (`owner_required`).", body = ErrorJson),
        (status = 409, description = "Already subscribed (`already_subscribed`), or the workspace is closed (`workspace_closed`).", body = ErrorJson),
    ))]
pub(crate) async fn api_checkout(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    body: web::Json<CheckoutBody>,
) -> AppResult<HttpResponse> {
    let ws_id = path.into_inner();
    let url = service::start_checkout(
        &ctx(&state),
        &ws_id,
        &user.id,
        body.plan.as_deref(),
        &client_ip(&req),
    )
    .await?;
    Ok(HttpResponse::Created().json(Checkout { checkout_url: url }))
}

// ---------------------------------------------------------------- webhook

/// The webhook endpoint.
pub(crate) async fn receive(
    state: State,
    req: HttpRequest,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let Some(rt) = crate::app::reactions::billing_runtime(&state) else {
        return Err(AppError::NotFound);
    };
    let cfg = &rt.cfg;
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Err(e) = signature::verify(
        header,
        &body,
        cfg.webhook_secret.expose().as_bytes(),
        db::now(),
        TOLERANCE_SECS,
    ) {
        tracing::warn!(reason = e.code().as_str(), "stripe webhook refused");
        return Err(AppError::invalid(
            e.code(),
            "The Stripe-Signature header does not verify for this body.",
        ));
    }
    let ev: Event = serde_json::from_slice(&body)
        .map_err(|_| AppError::invalid(Code::MalformedEvent, "The body is not a Stripe event."))?;
    let duplicate = events::handle(&rt, ev).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"received": true, "duplicate": duplicate})))
}
