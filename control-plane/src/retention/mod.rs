//! The control plane's own retention schedule (issue 6; docs/PRIVACY.md, OPERATIONS.md):
//!
//! | records | kept | rule here |
//! |---|---|---|
//! | usage logs: hourly message counts, report receipts, node timeline | 90 days | deleted |
//! | export metadata and retention-sweep counts reported by nodes | 90 days | deleted |
//! | audit events | 2 years | pruned from the front of the chain, anchor kept |
//! | billing records (invoices) | 7 years | pruned by the billing sweeper (`billing::ledger::prune`), which reads [`BILLING_YEARS`] |
//! | sign-in links and sessions | a day after they expire | deleted (`accounts::store::purge_expired`) |
//! | a deleted workspace's customer-written text | until it is deleted for good | deleted with it (`app::reactions`); the sweeper runs `forget_deleted_workspaces` after each run for older deletions |
//! | closed accounts | within 30 days | closing deletes at once (`mydata::close_account`) |
//!
//! The sweeper calls [`run_if_due`] every few seconds; it does the work once a day. The
//! claim is a conditional update of `retention_runs`, so several replicas sharing one
//! database run it once between them, and a restart does not make it run again.
//!
//! Files: [`model`] (the periods, what a run deleted), [`store`] (the deletes and the run's
//! claim, with the schedule's tests), [`service`] ([`apply`], [`run_if_due`]). Called by
//! `app/workers.rs` (the sweeper); billing reads [`BILLING_YEARS`]. Calls audit (pruning).

pub mod model;
pub mod service;
pub mod store;

pub use model::{Swept, AUDIT_DAYS, BILLING_YEARS, LIFECYCLE_DAYS, RUN_EVERY_S, USAGE_LOG_DAYS};
pub use service::{apply, run_if_due};
