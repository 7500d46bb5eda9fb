//! The rules of a fleet upgrade, without a database: which nodes go in which wave, and
//! what an upgraded node's facts mean for the upgrade.

/// Upgrade states.
pub mod state {
    /// Waves are being sent.
    pub const RUNNING: &str = "running";
    /// Stopped on a node that refused the release, failed its health or did not come
    /// back; `halted_reason` says which and why.
    pub const HALTED: &str = "halted";
    /// Every node reports the new version, healthy.
    pub const COMPLETED: &str = "completed";
}

/// States of one node in an upgrade.
pub mod node_state {
    /// Its wave has not started.
    pub const PENDING: &str = "pending";
    /// The `upgrade` command is queued or being carried out.
    pub const SENT: &str = "sent";
    /// It reports the new version and is healthy.
    pub const DONE: &str = "done";
    /// It refused the release, failed or did not come back: the upgrade halted on it.
    pub const FAILED: &str = "failed";
}

/// Largest batch an operator may ask for.
pub const MAX_BATCH: i32 = 1000;

/// The waves of an upgrade over `nodes` (in the order given): the first node alone (the
/// canary), then the others `batch_size` at a time.
pub fn plan_waves(nodes: &[String], batch_size: usize) -> Vec<Vec<String>> {
    let batch = batch_size.max(1);
    let Some((canary, rest)) = nodes.split_first() else {
        return vec![];
    };
    let mut waves = vec![vec![canary.clone()]];
    waves.extend(rest.chunks(batch).map(<[String]>::to_vec));
    waves
}

/// What the CP knows of a node whose `upgrade` command was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight<'a> {
    /// The node id.
    pub node_id: &'a str,
    /// Its state (`healthy`, `degraded`, `offline`, `failed`, …).
    pub state: &'a str,
    /// The version it reported last.
    pub version: Option<&'a str>,
    /// The command's acknowledgement: `Some((ok, error_code))` once acked.
    pub ack: Option<(bool, Option<&'a str>)>,
    /// Seconds since the command was queued.
    pub waited_secs: i64,
}

/// What to do about a node in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet back on the new version; keep waiting.
    Wait,
    /// Back on the new version and healthy.
    Done,
    /// Halt the upgrade, for this reason (in words).
    Halt(String),
}

/// Judges a node in flight towards `target` given `timeout_secs`.
pub fn judge(n: &InFlight<'_>, target: &str, timeout_secs: i64) -> Verdict {
    if let Some((false, code)) = n.ack {
        return Verdict::Halt(format!(
            "node {} refused the release: {}",
            n.node_id,
            explain_refusal(code.unwrap_or("unknown"))
        ));
    }
    let on_target = n.version == Some(target);
    if on_target && n.state == "healthy" {
        return Verdict::Done;
    }
    if on_target && matches!(n.state, "degraded" | "failed") {
        return Verdict::Halt(format!(
            "node {} runs {target} but is {}: the new version fails its health checks",
            n.node_id, n.state
        ));
    }
    if n.waited_secs > timeout_secs {
        let now = match n.version {
            Some(v) if v != target => {
                format!("it still reports {v} (rolled back, or never restarted)")
            }
            _ => format!("it is {}", n.state),
        };
        return Verdict::Halt(format!(
            "node {} did not come back healthy on {target} within {timeout_secs} s: {now}",
            n.node_id
        ));
    }
    Verdict::Wait
}

/// A node's refusal code (the `upgrade` command's `error_code`), in words.
pub fn explain_refusal(code: &str) -> String {
    match code {
        "no_release_key" => "it trusts no release key (set OUTPOST_RELEASE_PUBLIC_KEY before provisioning, or --release-public-key on the node), so it refuses every upgrade".into(),
        "bad_signature" => "the release key did not sign this SHA-256 (wrong signature, or signed with another key)".into(),
        "checksum_mismatch" => "the downloaded binary's SHA-256 is not the one given".into(),
        "download_failed" => "it could not download the binary from the URL".into(),
        "release_too_large" => "the binary is larger than the node accepts (--upgrade-max-bytes)".into(),
        "install_failed" => "it could not write the binary next to its own (is the directory writable by the node?)".into(),
        "unsupported" => "this node's version does not know the upgrade command".into(),
        other => format!("error {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn one_canary_then_batches_of_the_asked_size() {
        let w = plan_waves(&ids(6), 2);
        assert_eq!(
            w,
            vec![
                vec!["n1".to_string()],
                vec!["n2".into(), "n3".into()],
                vec!["n4".into(), "n5".into()],
                vec!["n6".into()],
            ]
        );
        assert_eq!(plan_waves(&ids(1), 5), vec![vec!["n1".to_string()]]);
        assert!(plan_waves(&[], 5).is_empty());
        // A batch of 0 is a batch of 1, not a loop that never ends.
        assert_eq!(plan_waves(&ids(3), 0).len(), 3);
    }

    fn inflight<'a>(state: &'a str, version: &'a str, waited: i64) -> InFlight<'a> {
        InFlight {
            node_id: "n1",
            state,
            version: Some(version),
            ack: Some((true, None)),
            waited_secs: waited,
        }
    }

    #[test]
    fn a_node_is_done_only_when_healthy_on_the_new_version() {
        assert_eq!(
            judge(&inflight("healthy", "0.1.0", 5), "0.2.0", 60),
            Verdict::Wait
        );
        assert_eq!(
            judge(&inflight("healthy", "0.2.0", 5), "0.2.0", 60),
            Verdict::Done
        );
        let Verdict::Halt(why) = judge(&inflight("degraded", "0.2.0", 5), "0.2.0", 60) else {
            panic!("a degraded upgraded node halts the upgrade");
        };
        assert!(why.contains("fails its health checks"), "{why}");
    }

    #[test]
    fn refusals_and_timeouts_halt_in_words() {
        let mut n = inflight("healthy", "0.1.0", 5);
        n.ack = Some((false, Some("bad_signature")));
        let Verdict::Halt(why) = judge(&n, "0.2.0", 60) else {
            panic!("a refusal halts");
        };
        assert!(
            why.contains("refused the release") && why.contains("did not sign"),
            "{why}"
        );
        let Verdict::Halt(why) = judge(&inflight("healthy", "0.1.0", 61), "0.2.0", 60) else {
            panic!("a timeout halts");
        };
        assert!(
            why.contains("within 60 s") && why.contains("still reports 0.1.0"),
            "{why}"
        );
        let Verdict::Halt(why) = judge(&inflight("offline", "0.2.0", 61), "0.2.0", 60) else {
            panic!("a timeout halts");
        };
        assert!(why.contains("it is offline"), "{why}");
    }
}
