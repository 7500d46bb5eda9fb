//! A small typed client for the few Stripe API calls billing makes, over the CP's shared
//! reqwest client (rustls + ring): form-encoded requests, bearer secret key, JSON answers.
//! The base URL is configurable so tests talk to a local fake speaking the same wire format.
//!
//! Objects are read defensively: only the fields used here, each optional where Stripe may
//! omit it, and both shapes Stripe has used across API versions (an invoice's subscription
//! at `subscription` or at `parent.subscription_details.subscription`; a subscription's
//! period end on the subscription or on its items). Errors carry Stripe's error type and
//! code only, never its message, which can echo customer data.

use super::config::BillingConfig;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A failed Stripe call, safe to log.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Connecting, sending or reading failed (no answer, timeout).
    #[error("stripe unreachable: {0}")]
    Transport(String),
    /// Stripe answered with an error.
    #[error("stripe error {status}: {kind} {code}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.type`, e.g. `invalid_request_error`.
        kind: String,
        /// `error.code`, e.g. `resource_missing` (may be empty).
        code: String,
    },
    /// The answer was not the JSON expected.
    #[error("stripe answer not understood")]
    Decode,
}

impl StripeError {
    /// Whether Stripe says the object does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, StripeError::Api { status: 404, .. })
            || matches!(self, StripeError::Api { code, .. } if code == "resource_missing")
    }
}

/// Deserializes an expandable field (`"cus_123"` or `{"id": "cus_123", …}`) to its id.
fn id_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(o) => o.get("id").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    })
}

/// String metadata; Stripe sends `{}` when empty, but tolerate `null`.
fn metadata<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HashMap<String, String>, D::Error> {
    Ok(Option::<HashMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// A Checkout Session (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    /// `cs_…`.
    pub id: String,
    /// Where to send the customer (while open).
    #[serde(default)]
    pub url: Option<String>,
    /// `open`, `complete` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    #[serde(default)]
    pub payment_status: Option<String>,
    /// Our workspace id.
    #[serde(default)]
    pub client_reference_id: Option<String>,
    /// Customer id, once created.
    #[serde(default, deserialize_with = "id_of")]
    pub customer: Option<String>,
    /// Subscription id, once created.
    #[serde(default, deserialize_with = "id_of")]
    pub subscription: Option<String>,
    /// `metadata[workspace_id]`.
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
}

impl CheckoutSession {
    /// Whether the customer finished and paid (or owes nothing now, e.g. a trial).
    pub fn is_paid(&self) -> bool {
        self.status.as_deref() == Some("complete")
            && matches!(
                self.payment_status.as_deref(),
                Some("paid" | "no_payment_required")
            )
    }

    /// The workspace this session was created for, if both references agree.
    pub fn workspace_id(&self) -> Option<&str> {
        let a = self.client_reference_id.as_deref();
        let b = self.metadata.get("workspace_id").map(String::as_str);
        match (a, b) {
            (Some(a), Some(b)) if a != b => None,
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PriceRef {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct SubscriptionItem {
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    price: Option<PriceRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

/// A Subscription (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// `incomplete`, `incomplete_expired`, `trialing`, `active`, `past_due`, `canceled`,
    /// `unpaid` or `paused`.
    pub status: String,
    /// Customer id.
    #[serde(default, deserialize_with = "id_of")]
    pub customer: Option<String>,
    /// `metadata[workspace_id]`, set through Checkout's `subscription_data`.
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    items: Option<List<SubscriptionItem>>,
}

impl Subscription {
    /// End of the current period (on the subscription before API 2025-03-31, on its items
    /// since).
    pub fn period_end(&self) -> Option<i64> {
        self.current_period_end.or_else(|| {
            self.items
                .as_ref()?
                .data
                .iter()
                .filter_map(|i| i.current_period_end)
                .max()
        })
    }

    /// Price ids of its items.
    pub fn prices(&self) -> Vec<&str> {
        self.items
            .iter()
            .flat_map(|l| &l.data)
            .filter_map(|i| i.price.as_ref()?.id.as_deref())
            .collect()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct SubscriptionDetails {
    #[serde(default, deserialize_with = "id_of")]
    subscription: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    metadata: HashMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct InvoiceParent {
    #[serde(default)]
    subscription_details: Option<SubscriptionDetails>,
}

/// An Invoice (the fields used; never line items, addresses or names).
#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    /// `in_…`.
    pub id: String,
    /// Customer id.
    #[serde(default, deserialize_with = "id_of")]
    pub customer: Option<String>,
    /// Human invoice number, once finalized.
    #[serde(default)]
    pub number: Option<String>,
    /// Minor units.
    #[serde(default)]
    pub amount_due: i64,
    /// Minor units.
    #[serde(default)]
    pub amount_paid: i64,
    /// ISO code, lower case.
    #[serde(default)]
    pub currency: String,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    #[serde(default)]
    pub status: Option<String>,
    /// Stripe's page for the invoice.
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    #[serde(default, deserialize_with = "id_of")]
    subscription: Option<String>,
    #[serde(default)]
    subscription_details: Option<SubscriptionDetails>,
    #[serde(default)]
    parent: Option<InvoiceParent>,
}

impl Invoice {
    fn details(&self) -> Option<&SubscriptionDetails> {
        self.parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref())
            .or(self.subscription_details.as_ref())
    }

    /// The subscription it bills, in either API shape.
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription
            .as_deref()
            .or_else(|| self.details()?.subscription.as_deref())
    }

    /// `metadata[workspace_id]` of its subscription, when Stripe copied it.
    pub fn workspace_id(&self) -> Option<&str> {
        self.details()?
            .metadata
            .get("workspace_id")
            .map(String::as_str)
    }
}

/// A customer portal session.
#[derive(Debug, Clone, Deserialize)]
pub struct PortalSession {
    /// Where to send the customer.
    pub url: String,
}

/// A webhook event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_…`.
    pub id: String,
    /// E.g. `invoice.paid`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When Stripe created the event, unix seconds.
    pub created: i64,
    /// The object.
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The object as of the event.
    pub object: serde_json::Value,
}

/// What a new Checkout Session is for.
#[derive(Debug, Clone)]
pub struct NewCheckout<'a> {
    /// Recurring price.
    pub price: &'a str,
    /// Our workspace id (client reference and metadata).
    pub workspace_id: &'a str,
    /// Reuse this customer (a workspace subscribing again) …
    pub customer: Option<&'a str>,
    /// … or prefill this email on a new one.
    pub customer_email: Option<&'a str>,
    /// Return URL after payment; Stripe replaces `{CHECKOUT_SESSION_ID}`.
    pub success_url: &'a str,
    /// Return URL when the customer gives up.
    pub cancel_url: &'a str,
}

/// Stripe calls with one configuration.
pub struct Stripe<'a> {
    http: &'a reqwest::Client,
    cfg: &'a BillingConfig,
}

impl<'a> Stripe<'a> {
    /// A client over `http` (the CP's shared client).
    pub fn new(http: &'a reqwest::Client, cfg: &'a BillingConfig) -> Self {
        Self { http, cfg }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<T, StripeError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.cfg.api_base))
            .bearer_auth(self.cfg.secret_key.expose())
            .timeout(TIMEOUT);
        if let Some(f) = form {
            req = req.form(f);
        }
        let resp = req
            .send()
            .await
            // Without the URL: ids in it are harmless, but keep the log to the cause.
            .map_err(|e| StripeError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| StripeError::Transport(e.without_url().to_string()))?;
        if !(200..300).contains(&status) {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let field = |k: &str| v["error"][k].as_str().unwrap_or_default().to_owned();
            return Err(StripeError::Api {
                status,
                kind: field("type"),
                code: field("code"),
            });
        }
        serde_json::from_slice(&body).map_err(|_| StripeError::Decode)
    }

    /// `POST /v1/checkout/sessions` in subscription mode.
    pub async fn create_checkout(
        &self,
        c: &NewCheckout<'_>,
    ) -> Result<CheckoutSession, StripeError> {
        let mut f: Vec<(String, String)> = [
            ("mode", "subscription"),
            ("line_items[0][price]", c.price),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", c.workspace_id),
            ("metadata[workspace_id]", c.workspace_id),
            // Copied onto the subscription and from there onto its invoices, so every
            // later event names the workspace even if it arrives before the checkout's.
            ("subscription_data[metadata][workspace_id]", c.workspace_id),
            ("success_url", c.success_url),
            ("cancel_url", c.cancel_url),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        match (c.customer, c.customer_email) {
            (Some(cus), _) => f.push(("customer".into(), cus.into())),
            (None, Some(email)) => f.push(("customer_email".into(), email.into())),
            (None, None) => {}
        }
        self.send(reqwest::Method::POST, "/v1/checkout/sessions", Some(&f))
            .await
    }

    /// `GET /v1/checkout/sessions/{id}`.
    pub async fn checkout_session(&self, id: &str) -> Result<CheckoutSession, StripeError> {
        self.send(
            reqwest::Method::GET,
            &format!("/v1/checkout/sessions/{}", path_id(id)?),
            None,
        )
        .await
    }

    /// `POST /v1/billing_portal/sessions`.
    pub async fn portal(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<PortalSession, StripeError> {
        let f = vec![
            ("customer".to_owned(), customer.to_owned()),
            ("return_url".to_owned(), return_url.to_owned()),
        ];
        self.send(
            reqwest::Method::POST,
            "/v1/billing_portal/sessions",
            Some(&f),
        )
        .await
    }

    /// `GET /v1/subscriptions/{id}`.
    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.send(
            reqwest::Method::GET,
            &format!("/v1/subscriptions/{}", path_id(id)?),
            None,
        )
        .await
    }

    /// `DELETE /v1/subscriptions/{id}`: cancels now.
    pub async fn cancel_subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("/v1/subscriptions/{}", path_id(id)?),
            None,
        )
        .await
    }
}

/// A Stripe id as a path segment: letters, digits and `_` only (what Stripe ids are made
/// of), so nothing a caller passes can change the path.
pub fn path_id(id: &str) -> Result<&str, StripeError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(id)
    } else {
        Err(StripeError::Api {
            status: 400,
            kind: "invalid_request_error".into(),
            code: "invalid_id".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn both_api_shapes_of_an_invoice_are_read() {
        let old: Invoice = serde_json::from_value(serde_json::json!({
            "id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1",
            "subscription_details": {"metadata": {"workspace_id": "ws-1"}},
            "amount_due": 900, "amount_paid": 0, "currency": "eur", "status": "open",
            "created": 1
        }))
        .unwrap();
        assert_eq!(old.subscription_id(), Some("sub_1"));
        assert_eq!(old.workspace_id(), Some("ws-1"));
        let new: Invoice = serde_json::from_value(serde_json::json!({
            "id": "in_2", "customer": {"id": "cus_1", "object": "customer"},
            "parent": {"type": "subscription_details", "subscription_details": {
                "subscription": "sub_2", "metadata": {"workspace_id": "ws-2"}}},
            "amount_due": 900, "amount_paid": 900, "currency": "eur", "status": "paid",
            "created": 1, "hosted_invoice_url": null, "number": null
        }))
        .unwrap();
        assert_eq!(new.customer.as_deref(), Some("cus_1"));
        assert_eq!(new.subscription_id(), Some("sub_2"));
        assert_eq!(new.workspace_id(), Some("ws-2"));
    }

    #[test]
    fn subscription_period_end_in_either_place() {
        let s: Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "status": "active", "customer": "cus_1", "metadata": null,
            "items": {"object": "list", "data": [{"current_period_end": 50, "price": {"id": "price_a"}}]}
        }))
        .unwrap();
        assert_eq!(s.period_end(), Some(50));
        assert_eq!(s.prices(), ["price_a"]);
        let s: Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "status": "active", "current_period_end": 70
        }))
        .unwrap();
        assert_eq!(s.period_end(), Some(70));
    }

    #[test]
    fn a_session_names_a_workspace_only_if_its_references_agree() {
        let mut s: CheckoutSession = serde_json::from_value(serde_json::json!({
            "id": "cs_1", "status": "complete", "payment_status": "paid",
            "client_reference_id": "ws-1", "metadata": {"workspace_id": "ws-1"},
            "customer": "cus_1", "subscription": {"id": "sub_1"}
        }))
        .unwrap();
        assert!(s.is_paid());
        assert_eq!(s.workspace_id(), Some("ws-1"));
        assert_eq!(s.subscription.as_deref(), Some("sub_1"));
        s.metadata.insert("workspace_id".into(), "ws-2".into());
        assert_eq!(s.workspace_id(), None);
        s.payment_status = Some("unpaid".into());
        assert!(!s.is_paid());
    }

    #[test]
    fn ids_in_paths_are_plain() {
        assert!(path_id("cs_test_a1B2").is_ok());
        for bad in ["", "cs/../x", "cs_1?expand=x", "cs 1", "cs%2F"] {
            assert!(path_id(bad).is_err(), "{bad}");
        }
    }
}
