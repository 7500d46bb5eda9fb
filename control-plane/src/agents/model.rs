//! Long because a third of it is the validation tests.
//!
//! An agent's configuration and its rules: the [`Agent`] the node runs (and the
//! `apply_config` document it becomes, `outpost_protocol::AgentConfig`), what a user
//! submits ([`AgentInput`]), and its validation (names, languages, business hours and
//! time zones, provider choice, widget origins, channels). Pure: no database, no HTTP.

use crate::error::{AppError, AppResult, Code};
use outpost_common::outbound::Policy;
use outpost_protocol::{AgentConfig, BusinessHours, ModelChoice, ProviderKind};
use serde::{Deserialize, Serialize};

/// Current time, unix seconds (the business hours' offset is the zone's at this time).
fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Most agents one workspace may have.
pub const MAX_AGENTS: i64 = 20;

/// An agent (a row of `agents`, read by [`super::store`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// Id (UUID); the widget snippet names it.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Display name.
    pub name: String,
    /// First message.
    pub greeting: String,
    /// Persona and instructions.
    pub instructions: String,
    /// Language tag.
    pub language: String,
    /// Said when the agent cannot answer.
    pub fallback_message: String,
    /// Seven 0/1 characters, Monday first.
    pub hours_days: String,
    /// Opening minute of the day.
    pub open_minute: i32,
    /// Closing minute of the day.
    pub close_minute: i32,
    /// Fixed offset from UTC in minutes: the clock only while `time_zone` is empty (an
    /// agent saved before time zones with an offset no zone keeps all year); otherwise
    /// the zone's offset when last saved.
    pub utc_offset_minutes: i32,
    /// Provider name.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Base URL for OpenAI-compatible endpoints.
    pub base_url: String,
    /// Widget origins, one per line.
    pub allowed_origins: String,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Updated, unix seconds.
    pub updated_at: i64,
    /// Messaging channels answered besides web chat, comma-separated.
    pub channels: String,
    /// IANA time zone of the business hours (`Europe/Paris`); empty for an agent saved
    /// before time zones whose offset no zone keeps all year (see the migration).
    pub time_zone: String,
}

impl Agent {
    /// The document the node receives.
    pub fn to_config(&self) -> AgentConfig {
        let mut days = [false; 7];
        for (d, c) in days.iter_mut().zip(self.hours_days.chars()) {
            *d = c == '1';
        }
        AgentConfig {
            id: self.id.clone(),
            name: self.name.clone(),
            greeting: self.greeting.clone(),
            instructions: self.instructions.clone(),
            language: self.language.clone(),
            fallback_message: self.fallback_message.clone(),
            business_hours: self.business_hours(days, unix_now()),
            model: ModelChoice {
                provider: ProviderKind::parse(&self.provider).unwrap_or_default(),
                model: self.model.clone(),
                base_url: self.base_url.clone(),
            },
            allowed_origins: self.origins(),
            channels: self.channel_list(),
        }
    }

    /// The hours for the node. `utc_offset_minutes` is the zone's offset `now`: nodes
    /// older than `time_zone` read only that (and require it).
    fn business_hours(&self, days: [bool; 7], now: i64) -> BusinessHours {
        let mut h = BusinessHours {
            days,
            open_minute: u16::try_from(self.open_minute).unwrap_or(0),
            close_minute: u16::try_from(self.close_minute).unwrap_or(0),
            time_zone: self.time_zone.clone(),
            utc_offset_minutes: i16::try_from(self.utc_offset_minutes).unwrap_or(0),
        };
        h.utc_offset_minutes = h.offset_minutes_at(now);
        h
    }

    /// The messaging channels as a list.
    pub fn channel_list(&self) -> Vec<String> {
        self.channels
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The widget origins as a list.
    pub fn origins(&self) -> Vec<String> {
        self.allowed_origins
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// "Mon–Fri 09:00–17:00 (Paris time)".
    pub fn hours_text(&self) -> String {
        self.to_config().business_hours.describe()
    }

    /// Whether day `i` (0 = Monday) is open; for the form.
    pub fn day_open(&self, i: &usize) -> bool {
        self.hours_days.as_bytes().get(*i) == Some(&b'1')
    }

    /// "09:00" from a minute of the day; for the form.
    pub fn hhmm(m: &i32) -> String {
        format!("{:02}:{:02}", m / 60, m % 60)
    }

    /// Label of the provider.
    pub fn provider_label(&self) -> &'static str {
        ProviderKind::parse(&self.provider)
            .unwrap_or_default()
            .label()
    }
}

/// What a user submits to create or change an agent (page form and API body alike).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AgentInput {
    /// Display name (1–80 characters).
    #[schema(min_length = 1, max_length = 80)]
    pub name: String,
    /// First message (≤ 500).
    #[schema(max_length = 500)]
    pub greeting: String,
    /// Persona and instructions (≤ 8,000).
    #[schema(max_length = 8000)]
    pub instructions: String,
    /// BCP 47 language tag, e.g. `en`, `pt-BR`.
    #[schema(pattern = "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", example = "en")]
    pub language: String,
    /// Fallback/handoff message (1–500).
    #[schema(min_length = 1, max_length = 500)]
    pub fallback_message: String,
    /// Open days, Monday first: exactly seven. Left out of an API body, Monday to Friday.
    #[serde(default = "weekdays")]
    #[schema(min_items = 7, max_items = 7)]
    pub days: Vec<bool>,
    /// Opening time, `HH:MM`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "09:00")]
    pub open: String,
    /// Closing time, `HH:MM`, after `open`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "17:00")]
    pub close: String,
    /// IANA time zone name, e.g. `Europe/Paris` (any case; stored as the database
    /// spells it).
    pub time_zone: String,
    /// Legacy API field, minutes east of UTC: read only when `time_zone` is empty, and
    /// then only whole hours (0 is `UTC`, 60 is `Etc/GMT-1`).
    pub utc_offset_minutes: i32,
    /// `retrieval`, `openai`, `anthropic`, `openai_compatible`.
    #[schema(pattern = "^(retrieval|openai|anthropic|openai_compatible)$")]
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Base URL (OpenAI-compatible only).
    pub base_url: String,
    /// Origins allowed to embed the widget.
    pub allowed_origins: Vec<String>,
    /// Messaging channels answered besides web chat: `telegram`, `whatsapp`, `sms`, `voice`.
    pub channels: Vec<String>,
}

/// Monday to Friday open, the weekend closed.
fn weekdays() -> Vec<bool> {
    vec![true, true, true, true, true, false, false]
}

impl AgentInput {
    /// Sensible defaults for the "new agent" form.
    pub fn new_defaults(workspace_name: &str) -> Self {
        Self {
            name: format!("{workspace_name} assistant"),
            greeting: "Hi! How can I help you today?".into(),
            instructions: String::new(),
            language: "en".into(),
            fallback_message:
                "I'm not sure about that one. A member of our team will get back to you.".into(),
            days: weekdays(),
            open: "09:00".into(),
            close: "17:00".into(),
            // Nothing tells the CP where the business is (the browser's zone needs a
            // script, which the CSP forbids). UTC claims no place: the list then reads
            // "(UTC)" until the owner picks the business's city, where a guessed
            // Europe/London would look deliberate and be an hour off for most.
            time_zone: "UTC".into(),
            utc_offset_minutes: 0,
            provider: "retrieval".into(),
            model: String::new(),
            base_url: String::new(),
            allowed_origins: vec![],
            channels: vec![],
        }
    }

    /// The form of an existing agent.
    pub fn from_agent(a: &Agent) -> Self {
        Self {
            name: a.name.clone(),
            greeting: a.greeting.clone(),
            instructions: a.instructions.clone(),
            language: a.language.clone(),
            fallback_message: a.fallback_message.clone(),
            days: (0..7).map(|i| a.day_open(&i)).collect(),
            open: Agent::hhmm(&a.open_minute),
            close: Agent::hhmm(&a.close_minute),
            time_zone: a.time_zone.clone(),
            utc_offset_minutes: a.utc_offset_minutes,
            provider: a.provider.clone(),
            model: a.model.clone(),
            base_url: a.base_url.clone(),
            allowed_origins: a.origins(),
            channels: a.channel_list(),
        }
    }
}

/// A validated [`AgentInput`], ready for the database.
pub struct Valid {
    /// Column `name`.
    pub name: String,
    /// Column `greeting`.
    pub greeting: String,
    /// Column `instructions`.
    pub instructions: String,
    /// Column `language`.
    pub language: String,
    /// Column `fallback_message`.
    pub fallback_message: String,
    /// Column `hours_days`.
    pub hours_days: String,
    /// Column `open_minute`.
    pub open_minute: i32,
    /// Column `close_minute`.
    pub close_minute: i32,
    /// Column `time_zone`.
    pub time_zone: String,
    /// Column `utc_offset_minutes`.
    pub utc_offset_minutes: i32,
    /// Column `provider`.
    pub provider: String,
    /// Column `model`.
    pub model: String,
    /// Column `base_url`.
    pub base_url: String,
    /// Column `allowed_origins`.
    pub allowed_origins: String,
    /// Column `channels`.
    pub channels: String,
}

/// Channels an agent can answer besides web chat.
pub const CHANNELS: [&str; 4] = ["telegram", "whatsapp", "sms", "voice"];

/// A free text (greeting, instructions, fallback message): trimmed, `min`–`max`
/// characters, line breaks and tabs but no other control character (NUL included).
fn bounded(field: &'static str, v: &str, min: usize, max: usize) -> AppResult<String> {
    let v = v.trim();
    outpost_common::check_text(v, usize::MAX)
        .map_err(|e| AppError::invalid(Code::InvalidAgent, e.message(field)))?;
    let n = v.chars().count();
    if n < min || n > max {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            if min > 0 {
                format!("{field} must be {min}–{max} characters.")
            } else {
                format!("{field} must be at most {max} characters.")
            },
        ));
    }
    Ok(v.to_owned())
}

fn minute_of(field: &'static str, v: &str) -> AppResult<i32> {
    let bad = || {
        AppError::invalid(
            Code::InvalidAgent,
            format!("{field} must be a time like 09:00."),
        )
    };
    let (h, m) = v.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || h * 60 + m > 24 * 60 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `scheme://host[:port]`, lowercase, http(s) only, no path.
pub fn normalize_origin(v: &str) -> Option<String> {
    let v = v.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = v.split_once("://")?;
    if !(scheme == "https" || scheme == "http") || rest.is_empty() {
        return None;
    }
    let ok = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then_some(v)
}

/// An OpenAI-compatible endpoint, checked against the outbound policy and kept as
/// typed (less a trailing slash): the node appends `/chat/completions`.
fn endpoint(raw: &str, endpoints: Policy) -> AppResult<String> {
    let base_url = raw.trim().trim_end_matches('/').to_owned();
    if base_url.is_empty() {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            "Give the model endpoint, an https:// URL such as https://api.deepseek.com/v1.",
        ));
    }
    if base_url.len() > 200 || base_url.contains(char::is_whitespace) {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            "The model endpoint must be an https:// URL of at most 200 characters.",
        ));
    }
    endpoints.check(&base_url).map_err(|r| {
        AppError::invalid(
            Code::UrlNotAllowed,
            format!("The model endpoint was refused. {r}"),
        )
    })?;
    Ok(base_url)
}

/// Names of the time zones an owner may pick, sorted: every zone the database knows but
/// its `localtime`, `posixrules` and `Factory` entries, which are no place.
pub fn time_zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_owned())
        .filter(|n| !NOT_A_PLACE.iter().any(|x| x.eq_ignore_ascii_case(n)))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

const NOT_A_PLACE: [&str; 4] = ["localtime", "posixrules", "Factory", "Etc/Unknown"];

/// The IANA name of `name` as the database spells it (`europe/paris` → `Europe/Paris`),
/// if it is a zone an owner may pick.
pub fn canonical_time_zone(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() || NOT_A_PLACE.iter().any(|x| x.eq_ignore_ascii_case(name)) {
        return None;
    }
    let tz = jiff::tz::db().get(name).ok()?;
    Some(tz.iana_name().unwrap_or(name).to_owned())
}

/// The zone of the input: `time_zone`, or for API clients that predate it a whole-hour
/// `utc_offset_minutes` as the fixed zone that keeps it (`Etc/GMT-1` is UTC+1).
fn time_zone_of(i: &AgentInput) -> AppResult<String> {
    let name = i.time_zone.trim();
    if !name.is_empty() {
        return canonical_time_zone(name).ok_or_else(|| {
            AppError::invalid(
                Code::InvalidAgent,
                "The time zone must be one from the list, such as Europe/Paris, \
                 America/New_York or Asia/Kolkata.",
            )
        });
    }
    let m = i.utc_offset_minutes;
    if m == 0 {
        return Ok("UTC".to_owned());
    }
    if m % 60 == 0 && (-12 * 60..=14 * 60).contains(&m) {
        // POSIX signs: Etc/GMT-1 is one hour east of UTC.
        let sign = if m > 0 { '-' } else { '+' };
        return Ok(format!("Etc/GMT{sign}{}", m.abs() / 60));
    }
    Err(AppError::invalid(
        Code::InvalidAgent,
        "Choose the time zone of your business hours, such as Europe/Paris.",
    ))
}

/// Checks and normalises an input; `now` picks the zone's offset for older nodes;
/// `endpoints` is the outbound policy an OpenAI-compatible endpoint must pass (the node
/// checks it again, on the address it connects to).
pub fn validate(i: &AgentInput, now: i64, endpoints: Policy) -> AppResult<Valid> {
    let name = outpost_common::Name::parse(&i.name, 80)
        .map_err(|e| AppError::invalid(Code::InvalidAgent, e.message("The name")))?
        .into_string();
    let greeting = bounded("The greeting", &i.greeting, 0, 500)?;
    let instructions = bounded("The instructions", &i.instructions, 0, 8000)?;
    let fallback_message = bounded("The fallback message", &i.fallback_message, 1, 500)?;
    let language = i.language.trim().to_owned();
    let lang_ok = {
        let mut parts = language.split('-');
        let primary = parts.next().unwrap_or_default();
        (2..=3).contains(&primary.len())
            && primary.chars().all(|c| c.is_ascii_lowercase())
            && parts
                .all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    if !lang_ok {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            "The language must be a language tag such as en, fr or pt-BR.",
        ));
    }
    if i.days.len() != 7 {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            format!(
                "The open days must list all seven days, Monday first (true or false each); {} given.",
                i.days.len()
            ),
        ));
    }
    let hours_days: String = i.days.iter().map(|d| if *d { '1' } else { '0' }).collect();
    let open_minute = minute_of("The opening time", &i.open)?;
    let close_minute = minute_of("The closing time", &i.close)?;
    if close_minute <= open_minute {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            "The closing time must be after the opening time.",
        ));
    }
    let time_zone = time_zone_of(i)?;
    let provider = ProviderKind::parse(i.provider.trim()).ok_or_else(|| {
        AppError::invalid(
            Code::InvalidAgent,
            "Choose one of the listed model providers.",
        )
    })?;
    let model = bounded("The model name", &i.model, 0, 100)?;
    if provider != ProviderKind::Retrieval && model.is_empty() {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            "Name the model to use, e.g. gpt-4o-mini or claude-3-5-haiku-latest.",
        ));
    }
    let base_url = if provider == ProviderKind::OpenaiCompatible {
        endpoint(&i.base_url, endpoints)?
    } else {
        String::new()
    };
    let mut origins = Vec::new();
    for o in i.allowed_origins.iter().filter(|o| !o.trim().is_empty()) {
        let n = normalize_origin(o).ok_or_else(|| {
            AppError::invalid(
                Code::InvalidAgent,
                "Each website must be an origin like https://www.example.com (no path).",
            )
        })?;
        if !origins.contains(&n) {
            origins.push(n);
        }
    }
    if origins.len() > 20 {
        return Err(AppError::invalid(
            Code::InvalidAgent,
            "At most 20 websites can embed one agent.",
        ));
    }
    let mut channels = Vec::new();
    for c in i
        .channels
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        if !CHANNELS.contains(&c) {
            return Err(AppError::invalid(
                Code::InvalidAgent,
                "Channels are telegram, whatsapp, sms and voice.",
            ));
        }
        if !channels.contains(&c) {
            channels.push(c);
        }
    }
    Ok(Valid {
        channels: channels.join(","),
        name,
        greeting,
        instructions,
        language,
        fallback_message,
        hours_days,
        open_minute,
        close_minute,
        utc_offset_minutes: i32::from(
            BusinessHours {
                time_zone: time_zone.clone(),
                ..BusinessHours::default()
            }
            .offset_minutes_at(now),
        ),
        time_zone,
        provider: provider.as_str().to_owned(),
        model: if provider == ProviderKind::Retrieval {
            String::new()
        } else {
            model
        },
        base_url,
        allowed_origins: origins.join("\n"),
    })
}

/// The web-chat embed snippet for an agent on a node.
pub fn embed_snippet(public_url: &str, agent_id: &str) -> String {
    format!(
        "<script src=\"{}/widget.js\" data-outpost-agent=\"{agent_id}\" async></script>",
        public_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AgentInput {
        AgentInput::new_defaults("Acme")
    }

    fn endpoint(url: &str) -> AgentInput {
        AgentInput {
            provider: "openai_compatible".into(),
            model: "m".into(),
            base_url: url.into(),
            ..input()
        }
    }

    /// Issue 16: an agent can answer SMS and phone calls on Twilio; other names are
    /// refused.
    #[test]
    fn an_agent_can_claim_sms_and_voice() {
        let i = AgentInput {
            channels: vec!["sms".into(), "voice".into(), "sms".into()],
            ..input()
        };
        let v = validate(&i, unix_now(), Policy::STRICT).expect("valid");
        assert_eq!(v.channels, "sms,voice");
        let fax = AgentInput {
            channels: vec!["fax".into()],
            ..input()
        };
        let Err(e) = validate(&fax, unix_now(), Policy::STRICT) else {
            panic!("fax accepted");
        };
        assert!(e.message().contains("sms and voice"), "{}", e.message());
    }

    /// The old "http only to this machine" rule let these through (issue 20): the node
    /// would have sent conversations and the key to the metadata service or the LAN.
    #[test]
    fn the_bypasses_of_the_endpoint_rule_are_refused() {
        for url in [
            "http://127.0.0.1@169.254.169.254/v1",
            "http://127.0.0.1:80@10.0.0.5/v1",
            "http://[::1]@10.0.0.5/v1",
            "http://127.attacker.example/v1",
            "https://169.254.169.254/v1",
            "https://10.0.0.5/v1",
            "https://2130706433/v1",
            "https://0x7f.1/v1",
            "https://[::ffff:127.0.0.1]/v1",
            "https://[fd00::1]/v1",
            "http://localhost:11434/v1",
        ] {
            let Err(e) = validate(&endpoint(url), unix_now(), Policy::STRICT) else {
                panic!("{url} accepted");
            };
            assert_eq!(e.code(), "url_not_allowed", "{url}: {}", e.message());
        }
        // With --allow-local-providers, loopback passes and nothing else private does.
        for url in [
            "http://localhost:11434/v1",
            "http://[::1]:8080/v1",
            "https://127.0.0.1/v1",
        ] {
            assert!(
                validate(&endpoint(url), unix_now(), Policy::new(true)).is_ok(),
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1@169.254.169.254/v1",
            "https://10.0.0.5/v1",
            "http://127.attacker.example/v1",
        ] {
            let e = validate(&endpoint(url), unix_now(), Policy::new(true))
                .err()
                .expect(url);
            assert_eq!(e.code(), "url_not_allowed", "{url}");
        }
        let e = validate(&endpoint("https://10.0.0.5/v1"), unix_now(), Policy::STRICT)
            .err()
            .expect("refused");
        assert_eq!(
            e.message(),
            "The model endpoint was refused. This address points to a private network, not to a public service."
        );
    }

    /// Seven days, no more and no fewer: `[true]` was padded with six closed days.
    #[test]
    fn the_open_days_must_be_seven() {
        for n in [0, 1, 6, 8] {
            let i = AgentInput {
                days: vec![true; n],
                ..input()
            };
            let Err(e) = validate(&i, unix_now(), Policy::STRICT) else {
                panic!("{n} days accepted");
            };
            assert!(e.message().contains("all seven days"), "{}", e.message());
        }
        let body: AgentInput =
            serde_json::from_str(r#"{"name": "A"}"#).expect("a body without days");
        assert_eq!(body.days, weekdays(), "left out: Monday to Friday");
    }

    #[test]
    fn defaults_validate_and_round_trip_to_the_node_document() {
        let v = validate(&input(), unix_now(), Policy::STRICT).expect("valid");
        assert_eq!(v.hours_days, "1111100");
        assert_eq!((v.open_minute, v.close_minute), (540, 1020));
        let a = Agent {
            id: "a1".into(),
            workspace_id: "w".into(),
            name: v.name,
            greeting: v.greeting,
            instructions: v.instructions,
            language: v.language,
            fallback_message: v.fallback_message,
            hours_days: v.hours_days,
            open_minute: v.open_minute,
            close_minute: v.close_minute,
            utc_offset_minutes: v.utc_offset_minutes,
            time_zone: "Europe/Paris".into(),
            provider: v.provider,
            model: v.model,
            base_url: v.base_url,
            allowed_origins: "https://acme.example\nhttp://localhost:8080".into(),
            created_at: 0,
            updated_at: 0,
            channels: "telegram".into(),
        };
        let c = a.to_config();
        assert_eq!(c.model.provider, ProviderKind::Retrieval);
        assert_eq!(c.business_hours.time_zone, "Europe/Paris");
        assert_eq!(c.allowed_origins.len(), 2);
        assert_eq!(AgentInput::from_agent(&a).days, input().days);
        assert_eq!(AgentInput::from_agent(&a).time_zone, "Europe/Paris");
        assert_eq!(a.hours_text(), "Mon–Fri 09:00–17:00 (Paris time)");
        // Nodes older than `time_zone` read only the offset: the zone's, at push time.
        let winter = "2026-01-15T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .expect("t");
        let summer = "2026-07-15T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .expect("t");
        let days = c.business_hours.days;
        let at = |t: jiff::Timestamp| a.business_hours(days, t.as_second()).utc_offset_minutes;
        assert_eq!((at(winter), at(summer)), (60, 120));
        // An agent saved before time zones with an offset no zone keeps all year.
        let legacy = Agent {
            time_zone: String::new(),
            utc_offset_minutes: -210,
            ..a
        };
        let h = legacy.to_config().business_hours;
        assert_eq!((h.time_zone.as_str(), h.utc_offset_minutes), ("", -210));
        assert_eq!(
            legacy.hours_text(),
            "Mon–Fri 09:00–17:00 (3 hours 30 minutes behind UTC)"
        );
    }

    #[test]
    fn time_zones_are_real_iana_names_stored_as_the_database_spells_them() {
        let zone = |tz: &str, offset: i32| {
            validate(
                &AgentInput {
                    time_zone: tz.into(),
                    utc_offset_minutes: offset,
                    ..input()
                },
                unix_now(),
                Policy::STRICT,
            )
            .map(|v| v.time_zone)
            .map_err(|e| e.message().to_owned())
        };
        assert_eq!(input().time_zone, "UTC");
        assert_eq!(zone("Europe/Paris", 0).as_deref(), Ok("Europe/Paris"));
        assert_eq!(zone(" europe/paris ", 0).as_deref(), Ok("Europe/Paris"));
        assert_eq!(zone("Asia/Kolkata", 0).as_deref(), Ok("Asia/Kolkata"));
        for bad in [
            "Europe/Atlantis",
            "UTC+01:00",
            "+01:00",
            "localtime",
            "Etc/Unknown",
        ] {
            let e = zone(bad, 0).expect_err(bad);
            assert!(e.contains("time zone"), "{bad}: {e}");
        }
        // API clients that predate `time_zone` send only a whole-hour offset.
        assert_eq!(zone("", 0).as_deref(), Ok("UTC"));
        assert_eq!(zone("", 60).as_deref(), Ok("Etc/GMT-1"));
        assert_eq!(zone("", -300).as_deref(), Ok("Etc/GMT+5"));
        assert!(zone("", 330).is_err(), "no fixed zone keeps +05:30 by name");
        let names = time_zone_names();
        assert!(names.len() > 300, "{} zones", names.len());
        assert!(names.iter().any(|n| n == "Europe/Paris"));
        assert!(names.iter().all(|n| canonical_time_zone(n).is_some()));
        assert!(!names.iter().any(|n| n == "posixrules" || n == "localtime"));
    }

    #[test]
    fn bad_input_is_refused_with_a_message_naming_the_field() {
        let cases: Vec<(AgentInput, &str)> = vec![
            (
                AgentInput {
                    name: " ".into(),
                    ..input()
                },
                "The name",
            ),
            (
                AgentInput {
                    language: "english".into(),
                    ..input()
                },
                "language",
            ),
            (
                AgentInput {
                    open: "9am".into(),
                    ..input()
                },
                "opening time",
            ),
            (
                AgentInput {
                    close: "08:00".into(),
                    ..input()
                },
                "closing time",
            ),
            (
                AgentInput {
                    time_zone: "UTC+01:00".into(),
                    ..input()
                },
                "time zone",
            ),
            (
                AgentInput {
                    provider: "gpt".into(),
                    ..input()
                },
                "provider",
            ),
            (
                AgentInput {
                    provider: "openai".into(),
                    ..input()
                },
                "model",
            ),
            (
                AgentInput {
                    provider: "openai_compatible".into(),
                    model: "m".into(),
                    base_url: "http://models.example.com/v1".into(),
                    ..input()
                },
                "https",
            ),
            (
                AgentInput {
                    allowed_origins: vec!["https://a.example/path".into()],
                    ..input()
                },
                "origin",
            ),
            (
                AgentInput {
                    fallback_message: String::new(),
                    ..input()
                },
                "fallback",
            ),
        ];
        for (i, needle) in cases {
            let e = validate(&i, unix_now(), Policy::STRICT)
                .err()
                .expect("refused");
            assert!(
                e.message().contains(needle),
                "{} should mention {needle}",
                e.message()
            );
        }
        let ok = AgentInput {
            provider: "openai_compatible".into(),
            model: "llama3".into(),
            base_url: "http://127.0.0.1:11434/v1/".into(),
            allowed_origins: vec!["HTTPS://Shop.Example/".into(), "".into()],
            ..input()
        };
        let e = validate(&ok, unix_now(), Policy::STRICT)
            .err()
            .expect("refused");
        assert_eq!(e.code(), "url_not_allowed");
        let v = validate(&ok, unix_now(), Policy::new(true))
            .expect("a model on this machine is fine with --allow-local-providers");
        assert_eq!(v.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(v.allowed_origins, "https://shop.example");
    }
}
