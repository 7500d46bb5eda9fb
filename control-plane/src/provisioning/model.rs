//! The node state machine as types and rules (DESIGN §4): the states, which of them hold
//! a certificate, where a retry starts again, and failure codes in plain words. Pure: the
//! states are stored as text (`nodes.state`), [`NodeState::as_str`] and
//! [`NodeState::parse`] convert.

/// Where a node is in its life: one enum for both programs (`outpost_protocol::NodeState`).
pub use outpost_protocol::NodeState;

/// Node states as stored (`nodes.state`), for code that compares the text column.
pub mod state {
    use super::NodeState;

    /// Row created, job queued.
    pub const REQUESTED: &str = NodeState::Requested.as_str();
    /// The provider is creating the server.
    pub const PROVISIONING: &str = NodeState::Provisioning.as_str();
    /// The server runs; waiting for the node to enroll.
    pub const BOOTING: &str = NodeState::Booting.as_str();
    /// Certificate issued; waiting for the first report.
    pub const ENROLLING: &str = NodeState::Enrolling.as_str();
    /// Reporting, all checks pass.
    pub const HEALTHY: &str = NodeState::Healthy.as_str();
    /// Reporting, some check fails.
    pub const DEGRADED: &str = NodeState::Degraded.as_str();
    /// No report for `offline_after_secs`.
    pub const OFFLINE: &str = NodeState::Offline.as_str();
    /// Channels stopped by the CP; data kept.
    pub const SUSPENDED: &str = NodeState::Suspended.as_str();
    /// `deprovision` sent; waiting for the receipt.
    pub const DEPROVISIONING: &str = NodeState::Deprovisioning.as_str();
    /// Data and keys destroyed; certificate revoked.
    pub const DESTROYED: &str = NodeState::Destroyed.as_str();
    /// A step failed; see `failed_step` and `error_code`.
    pub const FAILED: &str = NodeState::Failed.as_str();

    /// States in which the node holds a certificate and talks to the gateway.
    pub const ENROLLED: &[&str] = &[ENROLLING, HEALTHY, DEGRADED, OFFLINE, SUSPENDED];
}

/// Job kinds of the durable queue (`jobs.kind`).
pub mod job {
    /// Create the node's server and boot it.
    pub const PROVISION: &str = "provision";
    /// Delete the node's server (after the receipt, or with no enrolled node).
    pub const DESTROY_SERVER: &str = "destroy_server";
    /// Destroy the server anyway if no receipt arrived in time.
    pub const DEPROVISION_TIMEOUT: &str = "deprovision_timeout";
    /// Start an enrolled node's server again if it stopped (an operator's retry).
    pub const RESTART_SERVER: &str = "restart_server";
}

/// Plain-words explanation of a failure code, for the UI.
pub fn explain_error(code: &str) -> &'static str {
    match code {
        "enroll_timeout" => "The node started but never enrolled with the control plane. It may not reach the node gateway address, or its clock may be wrong.",
        "clock_skew" => "The node's clock is more than 5 minutes off the control plane's, so its enrollment was refused. Fix the time on the node's machine (NTP); the node keeps trying and enrolls once its clock is right.",
        "enroll_refused" => "The control plane refused the node's enrollment: its bootstrap token was invalid, expired or already used.",
        "process_crashing" => "The node process keeps exiting right after it starts. Its log is in the node directory.",
        "spawn_failed" => "The node process could not be started on this machine.",
        "provider_error" => "The hosting provider returned an error while creating the server.",
        "provider_quota" => "The hosting provider refused a new server: the project's quota (instances, cores or memory) is used up. An operator must raise the quota at OVHcloud or free a server, then retry.",
        "provider_credentials" => "The hosting provider refused the control plane's credentials (OVH application key, secret or consumer key, or their rights). An operator must fix them; `control-plane ovh check` tells.",
        "provider_unknown_flavor" => "The hosting provider does not know the configured server size (flavor) in this region.",
        "provider_unknown_image" => "The hosting provider does not know the configured system image in this region.",
        "provider_unknown_region" => "The hosting provider does not offer the configured region to this project.",
        "provider_unavailable" => "The hosting provider's API kept failing (server errors); it was retried several times.",
        "provider_unreachable" => "The hosting provider's API could not be reached; it was retried several times.",
        "server_error" => "The hosting provider could not build the server (it ended in an error state); it was deleted.",
        "server_building" => "The server took too long to start at the hosting provider.",
        "server_replacing" => "An older server of this node was still being deleted at the hosting provider.",
        "dns_error" => "The node's DNS name could not be written at Cloudflare; it was retried several times.",
        "dns_credentials" => "Cloudflare refused the control plane's API token (it needs Zone DNS edit on the nodes' zone).",
        "job_timeout" => "A provisioning step kept taking longer than a minute (the hosting provider or the database answering slowly); it was retried several times.",
        "no_receipt" => "The node did not confirm destruction in time; the server was destroyed by the provider instead.",
        _ => "An unexpected error happened. Operators can see the details in the control-plane log.",
    }
}

/// What an operator's retry of a failed node did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The step that had failed.
    pub step: String,
    /// The failure code it had.
    pub code: String,
    /// The state the node went back to.
    pub to: &'static str,
    /// The job queued to carry on from there.
    pub job: &'static str,
}

/// Where a retry of a node that failed at `step` starts again, and the job that carries on.
///
/// A node that never enrolled holds nothing: it goes back to the state before the step
/// that failed and the provisioning job runs again. Creating the server is idempotent and
/// writes a new single-use bootstrap token (unused older ones are deleted), so an expired,
/// refused or lost token is replaced; only a node process that is still running keeps the
/// token it has. A node that had enrolled keeps its certificate (a new token would only
/// let a second key enroll): it goes back to `enrolling`, waiting for its next report
/// under the same timeouts, and its server is started again if it stopped.
pub fn retry_plan(step: &str, enrolled: bool) -> (&'static str, &'static str) {
    match (enrolled, step) {
        (true, _) => (state::ENROLLING, job::RESTART_SERVER),
        (false, state::REQUESTED | state::PROVISIONING) => (state::REQUESTED, job::PROVISION),
        (false, _) => (state::PROVISIONING, job::PROVISION),
    }
}

/// Seconds before a job that failed on its `attempts`-th attempt runs again.
pub fn backoff(attempts: i32) -> i64 {
    (2_i64.pow(attempts.clamp(0, 10) as u32)).min(300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_starts_again_before_the_step_that_failed() {
        use job::{PROVISION, RESTART_SERVER};
        assert_eq!(
            retry_plan(state::PROVISIONING, false),
            (state::REQUESTED, PROVISION)
        );
        // Never enrolled: the server is created again, with a new bootstrap token.
        for step in [state::BOOTING, state::ENROLLING] {
            assert_eq!(retry_plan(step, false), (state::PROVISIONING, PROVISION));
        }
        // Enrolled: it keeps its certificate and is started again.
        for step in [state::ENROLLING, state::HEALTHY, "running"] {
            assert_eq!(retry_plan(step, true), (state::ENROLLING, RESTART_SERVER));
        }
    }

    #[test]
    fn every_state_reads_back_from_its_stored_text() {
        for s in NodeState::ALL {
            assert_eq!(NodeState::parse(s.as_str()), Some(s));
        }
        assert_eq!(NodeState::parse("running"), None);
        let enrolled: Vec<&str> = NodeState::ENROLLED.iter().map(|s| s.as_str()).collect();
        assert_eq!(enrolled, state::ENROLLED);
    }
}
