//! Reactions across domains that a lower domain must not call itself, all wired here:
//! a node's enrollment and acknowledgements (the gateway) move agents, suspensions and
//! secrets along; billing's confirmed payment requests the workspace's node
//! (`workspaces`), and its arrears suspend and resume the workspace (`suspension`); a
//! workspace deleted for good has its customer-written text forgotten by the domains
//! that hold it ([`forget_workspace_text`]).

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
        public_url: state.public_url.clone(),
        reactions: of(state),
    })
}

/// What a workspace deleted for good does to the domains above `workspaces`.
pub struct WorkspaceReactions;

impl workspaces::service::Reactions for WorkspaceReactions {
    fn gone(&self, conn: &mut DbConn, ws_id: &str) -> AppResult<()> {
        forget_workspace_text(conn, ws_id)
    }
}

/// Forgets the text a workspace's customer wrote, kept nowhere once it is deleted for
/// good (docs/PRIVACY.md P28): its agents (names, greetings, instructions, fallback
/// messages), its invitations (addresses, and the outbox's emails to invitees without an
/// account), its secrets' metadata (fingerprints, last 4),
/// the reasons of its suspensions, and the payloads of its nodes' undelivered commands
/// (configurations, sealed secrets) but `deprovision`. What the retention schedule keeps
/// stays: audit events, billing records, the workspace row its members still see.
/// Idempotent.
pub fn forget_workspace_text(conn: &mut DbConn, ws_id: &str) -> AppResult<()> {
    crate::agents::store::delete_all(conn, ws_id)?;
    let invited = crate::members::store::delete_invitations(conn, ws_id)?;
    // The invitations' emails, to addresses no account has: gone with them.
    crate::notify::store::forget_recipients(conn, &invited)?;
    crate::secrets::store::delete_all(conn, ws_id)?;
    crate::suspension::store::forget_reasons(conn, ws_id)?;
    crate::provisioning::store::forget_payloads(conn, ws_id, crate::infra::db::now())?;
    Ok(())
}

/// Forgets the text of every workspace deleted for good (its export window over), for
/// those deleted before [`forget_workspace_text`] ran with the deletion. Run with the
/// daily retention schedule.
pub fn forget_deleted_workspaces(conn: &mut DbConn) -> AppResult<usize> {
    let gone = workspaces::store::deleted_for_good(conn, crate::infra::db::now())?;
    for ws_id in &gone {
        crate::infra::db::transaction::<_, crate::error::AppError, _>(conn, |conn| {
            forget_workspace_text(conn, ws_id)
        })?;
    }
    Ok(gone.len())
}
