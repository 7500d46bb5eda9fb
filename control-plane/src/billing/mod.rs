//! Billing with Stripe: plan → Checkout → the workspace's node is requested once Stripe
//! confirms payment; the customer portal for cards and cancellation; invoices; webhooks
//! that move the subscription and invoices, start a grace period on a failed payment and
//! suspend (then resume) the workspace for [`crate::suspension::PAYMENT`].
//!
//! Without Stripe keys billing is off ([`is_on`]): workspaces are on the free `dev` plan and
//! get their node at once, the billing page says so, and the routes that need Stripe
//! answer 404.
//!
//! Map: [`config`] the options and plans; [`model`] statuses, ordering, amounts (pure);
//! [`store`] the tables (`billing_accounts`, `invoices`, `stripe_events`) and the ordering
//! and idempotency rules of what is stored; [`service`] checkout, portal, summary,
//! [`service::events`] what Stripe's news does (activation, reconcile; the node request and
//! the payment suspension go through [`service::Reactions`], wired in `app/reactions.rs`),
//! [`service::sweep`] the background pass (started from `app/workers.rs`); [`stripe`] the
//! typed API client; [`signature`] the webhook signature check; [`web`] the owners' pages,
//! the JSON API and the webhook endpoint.
//!
//! Called by `workspaces` ([`is_on`], [`summary`], [`checkout_for_api`], [`ledger::account`])
//! and `mydata` (the account and invoices).
//!
//! **Privacy:** the CP keeps Stripe ids, plan, statuses, amounts, invoice numbers and links,
//! and times; it sends Stripe the owner's account email, the workspace id and the price.
//! Card data, names and addresses are entered on Stripe's pages and never reach the CP.

pub mod config;
pub mod model;
pub mod service;
pub mod signature;
pub mod store;
pub mod stripe;
pub mod web;

/// The old name of [`store`] (other domains read accounts and invoices through it).
pub use self::store as ledger;
pub use model::{fmt_amount, plan_of_prices, Summary};
pub use service::sweep::{start_worker, SWEEP_EVERY};
pub use web::{checkout_for_api, config, is_on, summary};
