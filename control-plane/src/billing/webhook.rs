//! `POST /stripe/webhook`: public, authenticated by its own signature check.
//!
//! An event is handled in one transaction that first records its id: a redelivery (or two
//! deliveries racing) finds the id and changes nothing, and a failure rolls the id back so
//! Stripe's retry handles it again. Notices (email) and the suspension check run after the
//! commit. Answers: 200 handled or duplicate; 400 bad signature or body; 404 billing off;
//! 409/500 to make Stripe retry.

use super::config::BillingConfig;
use super::ledger::{self, Applied, Order, ACTOR};
use super::signature::{self, TOLERANCE_SECS};
use super::stripe::{CheckoutSession, Event, Invoice, Stripe, Subscription};
use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::workspaces;
use crate::notify;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;

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
    st: &State,
    ev: &Event,
    fetched: Option<&Subscription>,
) -> AppResult<Outcome> {
    let mut out = Outcome::default();
    if !ledger::first_delivery(conn, &ev.id, &ev.kind, ev.created)? {
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
                ledger::checkout_completed(conn, st, ws, &session, ev.created)?;
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
            if let Some(ws) = ledger::workspace_of_subscription(conn, &sub)? {
                if ledger::apply_subscription(conn, st, &ws, &sub, order)? == Applied::Refetch {
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
            let change = ledger::apply_invoice(conn, k, &invoice, ev.created)?;
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
    st: &State,
    (ws_id, number, amount, currency): &(String, Option<String>, i64, String),
    grace_secs: i64,
) -> AppResult<()> {
    let name: String = workspaces::table
        .find(ws_id)
        .select(workspaces::name)
        .first(conn)?;
    let until = ledger::arrears_since(conn, ws_id)?
        .map(|t| crate::workspaces::fmt_time(&(t + grace_secs)))
        .unwrap_or_default();
    notify::emails::send_later(
        &st.mailer,
        notify::addresses_of(conn, ws_id, &[crate::workspaces::ROLE_OWNER])?,
        &notify::emails::PaymentFailed {
            workspace: name.into(),
            amount: super::fmt_amount(amount, currency).into(),
            invoice: number.as_ref().map(Into::into),
            until: until.into(),
            billing_page: format!("{}/workspaces/{ws_id}/billing", st.public_url).into(),
        },
    )
}

async fn handle(st: &State, cfg: &BillingConfig, ev: Event) -> AppResult<bool> {
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
            &st.db,
            move |conn| match ledger::workspace_of_subscription(conn, &s)? {
                Some(ws) => ledger::needs_refetch(conn, &ws, &s, at),
                None => Ok(false),
            },
        )
        .await?;
        if tie {
            let now = Stripe::new(&st.http, cfg)
                .subscription(&sub.id)
                .await
                .map_err(|e| AppError::internal(e.into()))?;
            fetched = Some(now);
        }
    }
    let (s, grace) = (st.clone(), cfg.grace_secs);
    let span_event = ev.id.clone();
    let duplicate = db::run(&st.db, move |conn| {
        let out = db::transaction(conn, |conn| apply(conn, &s, &ev, fetched.as_ref()))?;
        if let Some(f) = &out.failed_invoice {
            notify_failure(conn, &s, f, grace)?;
        }
        if let Some(ws) = &out.workspace {
            // The sweeper would get there too; doing it now makes a payment resume the
            // workspace at once.
            if let Err(e) = ledger::reconcile(conn, &s, ws, grace) {
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

/// The webhook endpoint.
pub(crate) async fn receive(
    state: State,
    req: HttpRequest,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let Some(cfg) = super::config(&state) else {
        return Err(AppError::NotFound);
    };
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
    let duplicate = handle(&state, cfg, ev).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"received": true, "duplicate": duplicate})))
}
