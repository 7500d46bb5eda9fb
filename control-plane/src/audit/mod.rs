//! Hash-chained audit log. Each row's hash covers the previous row's hash and the row's
//! own fields, so editing or deleting a row breaks the chain from there on. Rows hold ids,
//! action names, IPs and reason codes: never content or secret values.
//!
//! Events older than the retention period (2 years, `retention.rs`) are pruned from the
//! front of the chain. The seq and hash of the last pruned event are kept in
//! `audit_anchor`, and verification starts from there: the first kept event must name
//! that hash, so removing more events than were pruned is still detected.
//!
//! [`model`] holds the chain's rules (entry, row hash, checking a run of rows, what a prune
//! did); [`store`] the tables `audit_events` and `audit_anchor`. Every domain records
//! through [`record`]; the owners' log (`members`), the personal data export (`mydata`),
//! retention and the `audit verify` CLI read it. It imports no other domain: it is the
//! lowest one.

pub mod model;
pub mod store;

pub use model::{Entry, Pruned};
pub use store::{anchor, count, hash_of, prune_before, record, verify, AuditRow};
