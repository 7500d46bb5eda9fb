//! What a node console session may open: the scopes the CP signs into a capability
//! token for a user's workspace role, checked by the node's console guard.
//!
//! The token carries scopes as strings; a name this enum does not know (the CP's own
//! `billing`) is carried and ignored by the node, so [`Scope::parse`] returns `None`
//! for it rather than failing the token.

use serde::{Deserialize, Serialize};

/// A scope a console session can carry. Serialized as its [`Scope::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every session: the overview and signing out.
    Console,
    /// The inbox, conversations, contacts and their notes and follow-ups (every role).
    Inbox,
    /// The knowledge base: documents, upload, delete, search (admins and owners).
    KnowledgeBase,
    /// Settings: provider keys, agents, retention, erasure (admins and owners).
    Settings,
    /// Exports of the workspace or of one contact (admins and owners).
    Exports,
}

impl Scope {
    /// Every scope the node checks.
    pub const ALL: [Scope; 5] = [
        Scope::Console,
        Scope::Inbox,
        Scope::KnowledgeBase,
        Scope::Settings,
        Scope::Exports,
    ];

    /// Its name in the capability token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Console => "console",
            Scope::Inbox => "inbox",
            Scope::KnowledgeBase => "knowledge_base",
            Scope::Settings => "settings",
            Scope::Exports => "exports",
        }
    }

    /// Parses [`Scope::as_str`]; `None` for a name the node does not check.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// What it opens, as the 403 page says it: "Your role in this workspace does not
    /// include {what}."
    pub const fn what(self) -> &'static str {
        match self {
            Scope::Console => "this console",
            Scope::Inbox => "the inbox and contacts",
            Scope::KnowledgeBase => "the knowledge base",
            Scope::Settings => "settings",
            Scope::Exports => "exports",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_name_and_serde() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert_eq!(scope.to_string(), scope.as_str());
            let json = serde_json::to_string(&scope).expect("serialize");
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
            assert_eq!(
                serde_json::from_str::<Scope>(&json).expect("deserialize"),
                scope
            );
            assert!(!scope.what().is_empty());
        }
        assert_eq!(Scope::parse("billing"), None, "a CP-only scope");
        assert_eq!(Scope::parse("KnowledgeBase"), None);
    }
}
