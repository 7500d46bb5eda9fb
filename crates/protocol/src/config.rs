//! The configuration document the CP pushes with `apply_config`: agents and their
//! settings. It is metadata the CP owns (DESIGN §1: agent name, model, persona, enabled
//! channels) and never holds a secret: provider keys reach the node separately.
//!
//! The node stores the last document it applied and rebuilds its agents from it. Fields
//! are only ever added, with defaults, so an older node reads a newer document.

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Weekly opening hours in the business's IANA time zone, so "09:00–17:00" in
/// `Europe/Paris` means Paris time in winter (UTC+1) and in summer (UTC+2) alike.
///
/// Compatibility: documents written before `time_zone` existed carry only
/// `utc_offset_minutes`; they read with an empty `time_zone` and keep meaning that fixed
/// offset. The CP still writes `utc_offset_minutes` (the zone's offset when the document
/// was written) because nodes older than `time_zone` require the field; a current node
/// uses it only when `time_zone` is empty or unknown to its time zone database.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// Open days, Monday first.
    pub days: [bool; 7],
    /// Opening time, minutes after midnight, local time.
    pub open_minute: u16,
    /// Closing time, minutes after midnight, local time (after `open_minute`).
    pub close_minute: u16,
    /// IANA time zone name, e.g. `Europe/Paris`; empty in documents older than the field.
    #[serde(default)]
    pub time_zone: String,
    /// Fixed offset from UTC in minutes: the only clock of documents without
    /// `time_zone`, and the fallback when this node's database lacks the zone.
    #[serde(default)]
    pub utc_offset_minutes: i16,
}

impl Default for BusinessHours {
    /// Monday to Friday, 09:00–17:00 UTC.
    fn default() -> Self {
        Self {
            days: [true, true, true, true, true, false, false],
            open_minute: 9 * 60,
            close_minute: 17 * 60,
            time_zone: "UTC".to_owned(),
            utc_offset_minutes: 0,
        }
    }
}

impl BusinessHours {
    /// The clock the hours are kept in: `time_zone` when this machine's time zone
    /// database knows it, else the fixed `utc_offset_minutes`.
    fn zone(&self) -> TimeZone {
        if !self.time_zone.is_empty() {
            if let Ok(tz) = jiff::tz::db().get(&self.time_zone) {
                return tz;
            }
        }
        let offset =
            Offset::from_seconds(i32::from(self.utc_offset_minutes) * 60).unwrap_or(Offset::UTC);
        TimeZone::fixed(offset)
    }

    /// Whether the business is open at `unix_secs`, in its local time (daylight saving
    /// included).
    pub fn is_open(&self, unix_secs: i64) -> bool {
        let Ok(at) = Timestamp::from_second(unix_secs) else {
            return false;
        };
        let local = at.to_zoned_datetime(self.zone());
        let weekday = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        self.days[weekday]
            && minute >= i32::from(self.open_minute)
            && minute < i32::from(self.close_minute)
    }

    /// The zone's offset from UTC at `unix_secs`, in minutes: what the CP writes into
    /// `utc_offset_minutes` for nodes that predate `time_zone`.
    pub fn offset_minutes_at(&self, unix_secs: i64) -> i16 {
        let at = Timestamp::from_second(unix_secs).unwrap_or(Timestamp::UNIX_EPOCH);
        i16::try_from(self.zone().to_offset(at).seconds() / 60).unwrap_or(0)
    }

    /// "Mon–Fri 09:00–17:00 (Paris time)", for people and prompts: the zone in words,
    /// never a bare "UTC+01:00" that is wrong half the year.
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
        format!(
            "{} {}–{} ({})",
            runs.join(", "),
            hm(self.open_minute),
            hm(self.close_minute),
            self.zone_words()
        )
    }

    /// "Paris time", "New York time", "UTC"; for a fixed offset (a legacy document, or
    /// an `Etc/GMT-1` zone) "1 hour ahead of UTC".
    pub fn zone_words(&self) -> String {
        let name = self.time_zone.trim();
        if name.is_empty() {
            return offset_words(i32::from(self.utc_offset_minutes));
        }
        let bare = name.strip_prefix("Etc/").unwrap_or(name);
        const UTC_NAMES: [&str; 9] = [
            "UTC",
            "UCT",
            "Universal",
            "Zulu",
            "GMT",
            "GMT0",
            "GMT+0",
            "GMT-0",
            "Greenwich",
        ];
        if UTC_NAMES.iter().any(|u| u.eq_ignore_ascii_case(bare)) {
            return "UTC".to_owned();
        }
        // POSIX-style names count west as positive: Etc/GMT-1 is one hour *ahead*.
        if let Some(hours) = name
            .strip_prefix("Etc/GMT")
            .and_then(|h| h.parse::<i32>().ok())
        {
            return offset_words(-hours * 60);
        }
        let place = name.rsplit('/').next().unwrap_or(name).replace('_', " ");
        format!("{place} time")
    }
}

/// "UTC", "1 hour ahead of UTC", "5 hours 30 minutes behind UTC".
fn offset_words(minutes: i32) -> String {
    if minutes == 0 {
        return "UTC".to_owned();
    }
    let (h, m) = (minutes.unsigned_abs() / 60, minutes.unsigned_abs() % 60);
    let mut amount = match h {
        0 => String::new(),
        1 => "1 hour".to_owned(),
        h => format!("{h} hours"),
    };
    if m > 0 {
        if !amount.is_empty() {
            amount.push(' ');
        }
        amount.push_str(&format!("{m} minutes"));
    }
    let side = if minutes > 0 { "ahead of" } else { "behind" };
    format!("{amount} {side} UTC")
}

/// Which model answers an agent's conversations.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

    /// Unix seconds of an RFC 3339 instant.
    fn at(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().expect("instant").as_second()
    }

    fn hours_in(zone: &str) -> BusinessHours {
        BusinessHours {
            time_zone: zone.to_owned(),
            ..BusinessHours::default()
        }
    }

    #[test]
    fn paris_hours_follow_paris_time_in_winter_and_summer() {
        let h = hours_in("Europe/Paris");
        // Winter, UTC+1: 08:30 UTC is 09:30 in Paris.
        assert!(h.is_open(at("2026-01-15T08:30:00Z")));
        assert!(!h.is_open(at("2026-01-15T07:30:00Z")), "08:30 in Paris");
        assert!(h.is_open(at("2026-01-15T15:30:00Z")), "16:30 in Paris");
        assert!(!h.is_open(at("2026-01-15T16:00:00Z")), "17:00 in Paris");
        // Summer, UTC+2: a fixed UTC+1 would get both of these wrong.
        assert!(h.is_open(at("2026-07-15T07:30:00Z")), "09:30 in Paris");
        assert!(!h.is_open(at("2026-07-15T15:30:00Z")), "17:30 in Paris");
        // Saturday 2026-07-18 is closed.
        assert!(!h.is_open(at("2026-07-18T08:00:00Z")));
        assert_eq!(h.offset_minutes_at(at("2026-01-15T12:00:00Z")), 60);
        assert_eq!(h.offset_minutes_at(at("2026-07-15T12:00:00Z")), 120);
        assert_eq!(h.describe(), "Mon–Fri 09:00–17:00 (Paris time)");
    }

    #[test]
    fn half_hour_and_southern_zones() {
        // Asia/Kolkata is UTC+05:30 all year.
        let india = hours_in("Asia/Kolkata");
        assert!(
            !india.is_open(at("2026-07-15T03:29:00Z")),
            "08:59 in Kolkata"
        );
        assert!(
            india.is_open(at("2026-07-15T03:30:00Z")),
            "09:00 in Kolkata"
        );
        assert!(
            india.is_open(at("2026-07-15T11:29:00Z")),
            "16:59 in Kolkata"
        );
        assert!(
            !india.is_open(at("2026-07-15T11:30:00Z")),
            "17:00 in Kolkata"
        );
        assert_eq!(india.describe(), "Mon–Fri 09:00–17:00 (Kolkata time)");
        // Sydney keeps daylight saving in January (UTC+11), not in July (UTC+10).
        let sydney = hours_in("Australia/Sydney");
        assert!(sydney.is_open(at("2026-01-14T22:30:00Z")), "Thu 09:30 AEDT");
        assert!(
            !sydney.is_open(at("2026-01-14T21:30:00Z")),
            "Thu 08:30 AEDT"
        );
        assert!(sydney.is_open(at("2026-07-14T23:30:00Z")), "Wed 09:30 AEST");
        assert!(
            !sydney.is_open(at("2026-07-14T22:30:00Z")),
            "Wed 08:30 AEST"
        );
        let ny = hours_in("America/New_York");
        assert_eq!(ny.describe(), "Mon–Fri 09:00–17:00 (New York time)");
    }

    #[test]
    fn zones_resolve_without_a_system_database() {
        // The copy bundled into the binary (`tzdb-bundle-always`) is what a machine
        // without /usr/share/zoneinfo uses.
        let db = jiff::tz::TimeZoneDatabase::bundled();
        let paris = db.get("Europe/Paris").expect("bundled Europe/Paris");
        let summer: Timestamp = "2026-07-15T12:00:00Z".parse().expect("instant");
        assert_eq!(paris.to_offset(summer).seconds(), 7200);
    }

    #[test]
    fn hours_are_described_in_words_never_as_bare_offsets() {
        let odd = BusinessHours {
            days: [true, false, true, false, false, false, true],
            ..hours_in("Etc/UTC")
        };
        assert_eq!(odd.describe(), "Mon, Wed, Sun 09:00–17:00 (UTC)");
        assert_eq!(hours_in("Etc/GMT-1").zone_words(), "1 hour ahead of UTC");
        assert_eq!(hours_in("Etc/GMT+5").zone_words(), "5 hours behind UTC");
        let closed = BusinessHours {
            days: [false; 7],
            ..BusinessHours::default()
        };
        assert_eq!(closed.describe(), "closed every day");
    }

    #[test]
    fn documents_without_a_zone_keep_their_fixed_offset() {
        // What a CP wrote before `time_zone` existed.
        let old: BusinessHours = serde_json::from_str(
            r#"{"days":[true,true,true,true,true,false,false],
                "open_minute":540,"close_minute":1020,"utc_offset_minutes":60}"#,
        )
        .expect("parse");
        assert_eq!(old.time_zone, "");
        // A fixed UTC+1, summer or not.
        assert!(old.is_open(at("2026-07-15T08:30:00Z")));
        assert!(!old.is_open(at("2026-07-15T07:30:00Z")));
        assert_eq!(old.describe(), "Mon–Fri 09:00–17:00 (1 hour ahead of UTC)");
        let india = BusinessHours {
            utc_offset_minutes: -330,
            ..old.clone()
        };
        assert_eq!(india.zone_words(), "5 hours 30 minutes behind UTC");
        // A zone this node's database lacks falls back to the offset the CP wrote.
        let unknown = BusinessHours {
            time_zone: "Mars/Olympus_Mons".into(),
            ..old
        };
        assert!(unknown.is_open(at("2026-07-15T08:30:00Z")));
        assert_eq!(unknown.zone_words(), "Olympus Mons time");
        // A current document still carries the offset older nodes require.
        let v = serde_json::to_value(hours_in("Europe/Paris")).expect("json");
        assert_eq!(v["time_zone"], "Europe/Paris");
        assert!(v.get("utc_offset_minutes").is_some());
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
