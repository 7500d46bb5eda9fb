//! Where a node is in its life (DESIGN §4): the states of the machine the CP runs for each
//! node, stored and shown by their [`NodeState::as_str`] names.

use serde::{Deserialize, Serialize};

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Row created, job queued.
    Requested,
    /// The provider is creating the server.
    Provisioning,
    /// The server runs; waiting for the node to enroll.
    Booting,
    /// Certificate issued; waiting for the first report.
    Enrolling,
    /// Reporting, all checks pass.
    Healthy,
    /// Reporting, some check fails.
    Degraded,
    /// No report for `offline_after_secs`.
    Offline,
    /// Channels stopped by the CP; data kept.
    Suspended,
    /// `deprovision` sent; waiting for the receipt.
    Deprovisioning,
    /// Data and keys destroyed; certificate revoked.
    Destroyed,
    /// A step failed; see `failed_step` and `error_code`.
    Failed,
}

impl NodeState {
    /// Every state, in the order of the machine.
    pub const ALL: [NodeState; 11] = [
        NodeState::Requested,
        NodeState::Provisioning,
        NodeState::Booting,
        NodeState::Enrolling,
        NodeState::Healthy,
        NodeState::Degraded,
        NodeState::Offline,
        NodeState::Suspended,
        NodeState::Deprovisioning,
        NodeState::Destroyed,
        NodeState::Failed,
    ];

    /// States in which the node holds a certificate and talks to the gateway.
    pub const ENROLLED: [NodeState; 5] = [
        NodeState::Enrolling,
        NodeState::Healthy,
        NodeState::Degraded,
        NodeState::Offline,
        NodeState::Suspended,
    ];

    /// States in which the node reports (the ones a report or silence moves between).
    pub const REPORTING: [NodeState; 4] = [
        NodeState::Enrolling,
        NodeState::Healthy,
        NodeState::Degraded,
        NodeState::Offline,
    ];

    /// The state as stored by the CP (`nodes.state`) and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeState::Requested => "requested",
            NodeState::Provisioning => "provisioning",
            NodeState::Booting => "booting",
            NodeState::Enrolling => "enrolling",
            NodeState::Healthy => "healthy",
            NodeState::Degraded => "degraded",
            NodeState::Offline => "offline",
            NodeState::Suspended => "suspended",
            NodeState::Deprovisioning => "deprovisioning",
            NodeState::Destroyed => "destroyed",
            NodeState::Failed => "failed",
        }
    }

    /// The state stored as `s`, if it is one.
    pub fn parse(s: &str) -> Option<NodeState> {
        NodeState::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// Whether the node holds a certificate and talks to the gateway.
    pub fn is_enrolled(self) -> bool {
        NodeState::ENROLLED.contains(&self)
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_name_and_serde() {
        for s in NodeState::ALL {
            assert_eq!(NodeState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).expect("serialize");
            assert_eq!(json, format!("\"{s}\""));
        }
        assert_eq!(NodeState::parse("running"), None);
        assert!(NodeState::REPORTING.iter().all(|s| s.is_enrolled()));
    }
}
