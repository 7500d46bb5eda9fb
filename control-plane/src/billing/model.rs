//! Billing's states and rules, pure: which subscription and invoice statuses mean what,
//! how a subscription state is ordered, what applying Stripe's news did, plans by price,
//! and how amounts and statuses read. The plans themselves are configuration
//! ([`super::config::Plan`]).

use super::config::BillingConfig;

/// Subscription statuses after which the workspace is no longer paid for.
pub const ENDED: &[&str] = &["canceled", "incomplete_expired"];
/// Subscription statuses under which the workspace is paid for (provisioning may start).
pub const PAYING: &[&str] = &["active", "trialing"];
/// Invoice statuses no later event changes.
pub const FINAL: &[&str] = &["paid", "void"];

/// The actor of billing's audit events and suspensions.
pub const ACTOR: &str = "billing";

/// How a subscription state is ordered against the stored one.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// Carried by an event created at this time: ignored if older than the stored state;
    /// on a tie with a different status, the caller must re-fetch ([`Applied::Refetch`]).
    Event(i64),
    /// Fetched from the API just now (after everything up to this time): applied unless a
    /// strictly newer event already set the status.
    Fetched(i64),
}

/// The time a subscription state is ordered by.
pub fn order_at(o: Order) -> i64 {
    match o {
        Order::Event(t) | Order::Fetched(t) => t,
    }
}

/// What applying a subscription state did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The status changed from the first to the second.
    Changed(Option<String>, String),
    /// Nothing to change (same state, older event, or another subscription).
    Unchanged,
    /// Same second, different status: re-fetch and apply with [`Order::Fetched`].
    Refetch,
    /// No account for this workspace.
    Unknown,
}

/// What applying an invoice did, for the caller's notices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceChange {
    /// Workspace it belongs to, if known.
    pub workspace_id: Option<String>,
    /// A payment attempt failed and the invoice is not settled.
    pub failed: bool,
    /// This is the invoice's first failure (the owners are emailed once per invoice).
    pub first_failure: bool,
    /// It became paid with this event.
    pub paid: bool,
}

/// What [`reconcile`](crate::billing::service::events::reconcile) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// Nothing to do.
    Same,
    /// Suspended for payment.
    Suspended,
    /// The payment cause was lifted.
    Resumed,
}

/// The plan whose price is among `prices` (a subscription changed in the portal).
pub fn plan_of_prices(cfg: &BillingConfig, prices: &[&str]) -> Option<String> {
    cfg.plans
        .iter()
        .find(|p| prices.contains(&p.price.as_str()))
        .map(|p| p.name.clone())
}

/// What the workspace page shows about billing (to every member; no invoice details).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = BillingSummary)]
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
