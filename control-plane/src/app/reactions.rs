//! Reactions across domains that a lower domain must not call itself, all wired here:
//! a node's enrollment and acknowledgements (the gateway) move agents, suspensions and
//! secrets along; billing's confirmed payment requests the workspace's node
//! (`workspaces`), and its arrears suspend and resume the workspace (`suspension`).

use super::state::State;
use crate::billing::model::ACTOR as BILLING;
use crate::billing::service::{BillingRuntime, Reactions};
use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::{gateway, suspension, workspaces};
use outpost_protocol::CommandKind;
use std::sync::Arc;

/// The other domains' reactions to what nodes do: a node that enrolls gets its
/// workspace's agents and, if the workspace is suspended, `suspend`; an acknowledged
/// `suspend` or `resume` moves the node in or out of `suspended`; an acknowledged secret
/// delivery or removal updates the secret.
pub struct NodeReactions;

impl gateway::service::Reactions for NodeReactions {
    fn enrolled(&self, conn: &mut DbConn, node_id: &str, workspace_id: &str) -> AppResult<()> {
        // The node starts with the workspace's current agents.
        crate::agents::queue_config(conn, node_id, workspace_id)?;
        // Suspended before it enrolled: it must not start answering.
        crate::suspension::sync_node(conn, node_id, false)?;
        Ok(())
    }

    fn acked(&self, conn: &mut DbConn, ack: &gateway::service::Acked<'_>) -> AppResult<()> {
        match ack.kind {
            CommandKind::Suspend { .. } if ack.ok => {
                crate::suspension::on_suspend_ack(conn, ack.node_id)
            }
            CommandKind::Resume if ack.ok => crate::suspension::on_resume_ack(conn, ack.node_id),
            CommandKind::DeliverSecret { .. } | CommandKind::RemoveSecret { .. } => {
                crate::secrets::on_ack(conn, ack.command_id, ack.ok, ack.error_code)
            }
            _ => Ok(()),
        }
    }
}

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
