//! The configuration document the CP pushes with `apply_config`: agents and their
//! settings. It is metadata the CP owns (DESIGN §1: agent name, model, persona, enabled
//! channels) and never holds a secret: provider keys reach the node separately.
//!
//! The node stores the last document it applied and rebuilds its agents from it. Fields
//! are only ever added, with defaults, so an older node reads a newer document.

use serde::{Deserialize, Serialize};

/// The whole configuration of one workspace's node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceConfig {
    /// Increases with every change in the CP; a node ignores a document older than the
    /// one it holds (commands may be redelivered out of order after an outage).
    #[serde(default)]
    pub revision: i64,
    /// The workspace's agents.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
}

/// One AI agent: who it is, how it answers, where it may be embedded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Stable id (UUID) chosen by the CP; the widget embed snippet names it.
    pub id: String,
    /// Display name shown to visitors, e.g. "Ava from Acme Dental".
    pub name: String,
    /// First message a visitor sees.
    #[serde(default)]
    pub greeting: String,
    /// Persona and instructions for the model.
    #[serde(default)]
    pub instructions: String,
    /// BCP 47 language tag of the agent's answers, e.g. `en`, `fr`.
    #[serde(default = "default_language")]
    pub language: String,
    /// Said when the agent cannot answer, on provider failure, and when a human is asked for.
    #[serde(default)]
    pub fallback_message: String,
    /// When humans are available to take over.
    #[serde(default)]
    pub business_hours: BusinessHours,
    /// Which model answers.
    #[serde(default)]
    pub model: ModelChoice,
    /// Origins (`https://shop.example`) allowed to embed the web-chat widget.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Messaging channels this agent answers besides web chat: `telegram`, `whatsapp`.
    /// When no agent claims a channel, the first agent answers it.
    #[serde(default)]
    pub channels: Vec<String>,
}

fn default_language() -> String {
    "en".to_owned()
}

/// Weekly opening hours in one fixed UTC offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// Open days, Monday first.
    pub days: [bool; 7],
    /// Opening time, minutes after midnight.
    pub open_minute: u16,
    /// Closing time, minutes after midnight (after `open_minute`).
    pub close_minute: u16,
    /// Offset of the business's local time from UTC, in minutes.
    pub utc_offset_minutes: i16,
}

impl Default for BusinessHours {
    /// Monday to Friday, 09:00–17:00 UTC.
    fn default() -> Self {
        Self {
            days: [true, true, true, true, true, false, false],
            open_minute: 9 * 60,
            close_minute: 17 * 60,
            utc_offset_minutes: 0,
        }
    }
}

impl BusinessHours {
    /// Whether the business is open at `unix_secs`.
    pub fn is_open(&self, unix_secs: i64) -> bool {
        let local = unix_secs + i64::from(self.utc_offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let minute = local.rem_euclid(86_400) / 60;
        // 1970-01-01 was a Thursday: Monday-first index 3.
        let weekday = usize::try_from((days + 3).rem_euclid(7)).unwrap_or(0);
        self.days[weekday]
            && minute >= i64::from(self.open_minute)
            && minute < i64::from(self.close_minute)
    }

    /// "Mon–Fri 09:00–17:00 (UTC+01:00)", for people and prompts.
    pub fn describe(&self) -> String {
        const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let mut runs: Vec<String> = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !self.days[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < 7 && self.days[i + 1] {
                i += 1;
            }
            runs.push(if start == i {
                NAMES[i].to_owned()
            } else {
                format!("{}–{}", NAMES[start], NAMES[i])
            });
            i += 1;
        }
        if runs.is_empty() {
            return "closed every day".to_owned();
        }
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        let off = self.utc_offset_minutes;
        let sign = if off < 0 { '-' } else { '+' };
        let abs = off.unsigned_abs();
        format!(
            "{} {}–{} (UTC{sign}{:02}:{:02})",
            runs.join(", "),
            hm(self.open_minute),
            hm(self.close_minute),
            abs / 60,
            abs % 60
        )
    }
}

/// Which model answers an agent's conversations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice {
    /// The provider.
    #[serde(default)]
    pub provider: ProviderKind,
    /// Model name, e.g. `gpt-4o-mini`, `claude-3-5-haiku-latest`; empty for retrieval.
    #[serde(default)]
    pub model: String,
    /// Base URL of an OpenAI-compatible endpoint (`https://api.deepseek.com/v1`); empty
    /// for the others, which use the node's configured default.
    #[serde(default)]
    pub base_url: String,
}

/// LLM providers an agent can use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The built-in retrieval responder: quotes the knowledge base, needs no key.
    #[default]
    Retrieval,
    /// OpenAI chat completions.
    Openai,
    /// Anthropic messages.
    Anthropic,
    /// Any OpenAI-compatible chat completions endpoint (DeepSeek, a local model…).
    OpenaiCompatible,
}

impl ProviderKind {
    /// Every provider, in the order forms list them.
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Retrieval,
        ProviderKind::Openai,
        ProviderKind::Anthropic,
        ProviderKind::OpenaiCompatible,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Retrieval => "retrieval",
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenaiCompatible => "openai_compatible",
        }
    }

    /// Parses [`ProviderKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Name for people.
    pub fn label(self) -> &'static str {
        match self {
            ProviderKind::Retrieval => "Built-in retrieval (no key needed)",
            ProviderKind::Openai => "OpenAI",
            ProviderKind::Anthropic => "Anthropic",
            ProviderKind::OpenaiCompatible => "OpenAI-compatible endpoint",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_hours_follow_the_local_week() {
        let h = BusinessHours {
            utc_offset_minutes: 60,
            ..BusinessHours::default()
        };
        // 2026-11-23 is a Monday. 08:30 UTC = 09:30 local: open.
        let monday_0830_utc = 1_795_422_600;
        assert!(h.is_open(monday_0830_utc));
        // 07:30 UTC = 08:30 local: closed.
        assert!(!h.is_open(monday_0830_utc - 3600));
        // Saturday: closed.
        assert!(!h.is_open(monday_0830_utc + 5 * 86_400));
        assert_eq!(h.describe(), "Mon–Fri 09:00–17:00 (UTC+01:00)");
        let odd = BusinessHours {
            days: [true, false, true, false, false, false, true],
            utc_offset_minutes: -330,
            ..BusinessHours::default()
        };
        assert_eq!(odd.describe(), "Mon, Wed, Sun 09:00–17:00 (UTC-05:30)");
    }

    #[test]
    fn old_documents_read_with_defaults() {
        let c: WorkspaceConfig =
            serde_json::from_str(r#"{"agents":[{"id":"a","name":"Ava","future":1}]}"#)
                .expect("parse");
        assert_eq!(c.revision, 0);
        let a = &c.agents[0];
        assert_eq!(a.model.provider, ProviderKind::Retrieval);
        assert_eq!(a.language, "en");
        assert!(a.allowed_origins.is_empty());
    }
}
