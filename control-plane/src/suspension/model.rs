//! Suspension causes and their rules, pure: the cause codes, what the owners read for
//! each, and how an operator's reason is cleaned.

use crate::error::{AppError, AppResult, Code};

/// Suspended by an operator, with a reason the owners can read.
pub const OPERATOR: &str = "operator";
/// Suspended because an invoice stayed unpaid past the grace period.
pub const PAYMENT: &str = "payment";

/// Who is emailed when a workspace is suspended or resumed: its owners (the role as stored
/// in `memberships.role`; the role type lives above this domain).
pub const NOTIFIED_ROLES: &[&str] = &["owner"];

/// Longest operator reason kept (it is shown to the owners and stored in the CP).
pub const MAX_REASON: usize = 500;

/// One active cause of a suspension, as the workspace page shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Suspension {
    /// `operator` or `payment`.
    pub code: String,
    /// The operator's words (empty for `payment`).
    pub reason: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl Suspension {
    /// What the owners read on the workspace page.
    pub fn explain(&self) -> String {
        match self.code.as_str() {
            PAYMENT => "Payment is needed: an invoice is unpaid past its grace period, or the subscription has ended. Pay or subscribe again from Billing and the workspace resumes within a minute.".into(),
            OPERATOR if !self.reason.is_empty() => format!("Suspended by Outpost staff: {}", self.reason),
            _ => "Suspended by Outpost staff. Contact support to find out why.".into(),
        }
    }
}

/// Validates an operator's reason: required, one paragraph, bounded.
pub fn clean_reason(raw: &str) -> AppResult<String> {
    let r = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if r.is_empty() {
        return Err(AppError::invalid(
            Code::ReasonRequired,
            "Give the reason: the workspace's owners will read it.",
        ));
    }
    if r.chars().count() > MAX_REASON {
        return Err(AppError::invalid(
            Code::ReasonTooLong,
            "Keep the reason under 500 characters.",
        ));
    }
    Ok(r)
}
