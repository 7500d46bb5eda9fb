//! A member's role in a workspace, and the node console scopes each role is given. The CP
//! stores roles and signs scopes into capability tokens; the node checks the scopes.

use crate::Scope;
use serde::{Deserialize, Serialize};

/// A role, ordered by what it may do. Serialized as its [`Role::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers the inbox.
    Member,
    /// Also settings, agents, secrets, the knowledge base and exports.
    Admin,
    /// Everything, including members, billing and deletion.
    Owner,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::Member, Role::Admin, Role::Owner];

    /// As stored and shown: `member`, `admin`, `owner`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The node console scopes of this role.
    pub const fn console_scopes(self) -> &'static [Scope] {
        match self {
            Role::Member => &[Scope::Console, Scope::Inbox],
            Role::Admin | Role::Owner => &[
                Scope::Console,
                Scope::Inbox,
                Scope::Settings,
                Scope::KnowledgeBase,
                Scope::Exports,
            ],
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_are_ordered_by_what_they_may_do() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).expect("serialize");
            assert_eq!(json, format!("\"{r}\""));
        }
        assert_eq!(Role::parse("superuser"), None);
        assert!(Role::Member < Role::Admin && Role::Admin < Role::Owner);
    }

    #[test]
    fn a_higher_role_has_every_scope_of_a_lower_one() {
        for pair in Role::ALL.windows(2) {
            for s in pair[0].console_scopes() {
                assert!(pair[1].console_scopes().contains(s), "{s:?}");
            }
        }
        assert!(!Role::Member.console_scopes().contains(&Scope::Settings));
    }
}
