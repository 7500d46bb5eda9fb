//! Reactions across domains that a lower domain must not call itself, wired here:
//! billing's confirmed payment requests the workspace's node (`workspaces`), and its
//! arrears suspend and resume the workspace (`suspension`).

use super::state::State;
use crate::billing::model::ACTOR as BILLING;
use crate::billing::service::{BillingRuntime, Reactions};
use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::{suspension, workspaces};
use std::sync::Arc;

/// Billing's [`Reactions`], carried out with the state.
struct BillingReactions(State);

impl Reactions for BillingReactions {
    fn request_node(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<String> {
        workspaces::service::request_node(conn, &self.0.provisioner, ws_id)
    }

    fn suspend_for_payment(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<bool> {
        let ctx = self.0.suspension();
        suspension::service::suspend(conn, &ctx, ws_id, suspension::PAYMENT, "", BILLING, None)
    }

    fn resume_for_payment(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<bool> {
        let ctx = self.0.suspension();
        suspension::service::resume(conn, &ctx, ws_id, suspension::PAYMENT, BILLING, None)
    }
}

/// Billing's reactions, for its pages and webhook.
pub fn of(state: &State) -> Arc<dyn Reactions> {
    Arc::new(BillingReactions(state.clone()))
}

/// What the billing webhook and sweeper run with; `None` while billing is off.
pub fn billing_runtime(state: &State) -> Option<BillingRuntime> {
    Some(BillingRuntime {
        cfg: state.config.billing.clone()?,
        db: state.db.clone(),
        http: state.http.clone(),
        mailer: state.mailer.clone(),
        public_url: state.public_url.clone(),
        reactions: of(state),
    })
}
