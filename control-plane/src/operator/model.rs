//! The operator console's rules, pure: page sizes, what a search may hold, how a failure
//! reads, which nodes are still live, and what the staff's page of one workspace offers.

use crate::provisioning::{explain_error, NodeState};

/// Workspaces per page of the list.
pub const PAGE_SIZE: i64 = 50;
/// Timeline events shown on a workspace's page.
pub const EVENTS_SHOWN: i64 = 100;
/// Jobs shown on a workspace's page.
pub const JOBS_SHOWN: i64 = 20;

/// Keeps the address characters of a search (lowercased): the rest cannot match a slug.
pub fn slug_filter(q: &str) -> String {
    q.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(40)
        .collect()
}

/// A failed node's failure in words (`None` unless `state` is `failed`).
pub fn failure(state: &str, step: Option<&str>, code: Option<&str>) -> Option<String> {
    (state == NodeState::Failed.as_str()).then(|| {
        format!(
            "{}: {}",
            step.unwrap_or("unknown step"),
            explain_error(code.unwrap_or(""))
        )
    })
}

/// Whether a node in `state` is left to deprovision.
pub fn is_live(state: &str) -> bool {
    !matches!(
        NodeState::parse(state),
        Some(NodeState::Deprovisioning | NodeState::Destroyed)
    )
}

/// Counts members per role, sorted: `(role, count)`.
pub fn count_roles(roles: Vec<String>) -> Vec<(String, usize)> {
    let mut members: Vec<(String, usize)> = vec![];
    for r in roles {
        match members.iter_mut().find(|(role, _)| *role == r) {
            Some((_, n)) => *n += 1,
            None => members.push((r, 1)),
        }
    }
    members.sort();
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_keep_only_address_characters() {
        assert_eq!(slug_filter("  Acme-Dental "), "acme-dental");
        assert_eq!(slug_filter("%_'; drop"), "drop");
        assert_eq!(slug_filter(&"a".repeat(100)).len(), 40);
    }

    #[test]
    fn only_nodes_not_yet_deprovisioning_are_live() {
        assert!(is_live("healthy") && is_live("failed") && is_live("requested"));
        assert!(!is_live("deprovisioning") && !is_live("destroyed"));
        assert_eq!(
            count_roles(vec!["owner".into(), "member".into(), "member".into()]),
            vec![("member".into(), 2), ("owner".into(), 1)]
        );
    }
}
