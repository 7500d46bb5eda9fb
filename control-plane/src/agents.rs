//! Agents: the configuration a workspace's AI agents run with (name, greeting, persona,
//! business hours, language, fallback message, model choice, widget origins). It is
//! metadata the CP owns (DESIGN §1) and pushes to the node as one `apply_config`
//! document; conversations and provider keys never come here.
//!
//! Pages under `/workspaces/{id}/agents…` and the API under
//! `/api/v1/workspaces/{id}/agents…` share one service layer. Every entry point goes
//! through [`workspaces::load_for_member`], so non-members get 404.

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::http::{html, html_with};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{agents, commands, nodes, workspaces};
use crate::provisioning::{self, state};
use crate::workspaces::{load_for_member, Workspace, ROLE_OWNER};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use outpost_protocol::{
    AgentConfig, BusinessHours, CommandKind, ModelChoice, ProviderKind, WorkspaceConfig,
};
use serde::{Deserialize, Serialize};

/// Most agents one workspace may have.
pub const MAX_AGENTS: i64 = 20;

/// An agent row.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = agents)]
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
            business_hours: self.business_hours(days, db::now()),
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
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AgentInput {
    /// Display name (1–80 characters).
    pub name: String,
    /// First message (≤ 500).
    pub greeting: String,
    /// Persona and instructions (≤ 8,000).
    pub instructions: String,
    /// BCP 47 language tag, e.g. `en`, `pt-BR`.
    pub language: String,
    /// Fallback/handoff message (1–500).
    pub fallback_message: String,
    /// Open days, Monday first.
    pub days: Vec<bool>,
    /// "09:00".
    pub open: String,
    /// "17:00".
    pub close: String,
    /// IANA time zone name, e.g. `Europe/Paris` (any case; stored as the database
    /// spells it).
    pub time_zone: String,
    /// Legacy API field, minutes east of UTC: read only when `time_zone` is empty, and
    /// then only whole hours (0 is `UTC`, 60 is `Etc/GMT-1`).
    pub utc_offset_minutes: i32,
    /// `retrieval`, `openai`, `anthropic`, `openai_compatible`.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Base URL (OpenAI-compatible only).
    pub base_url: String,
    /// Origins allowed to embed the widget.
    pub allowed_origins: Vec<String>,
    /// Messaging channels answered besides web chat: `telegram`, `whatsapp`.
    pub channels: Vec<String>,
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
            days: vec![true, true, true, true, true, false, false],
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

    fn from_agent(a: &Agent) -> Self {
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
struct Valid {
    name: String,
    greeting: String,
    instructions: String,
    language: String,
    fallback_message: String,
    hours_days: String,
    open_minute: i32,
    close_minute: i32,
    time_zone: String,
    utc_offset_minutes: i32,
    provider: String,
    model: String,
    base_url: String,
    allowed_origins: String,
    channels: String,
}

/// Channels an agent can answer besides web chat.
pub const CHANNELS: [&str; 2] = ["telegram", "whatsapp"];

fn bounded(field: &'static str, v: &str, min: usize, max: usize) -> AppResult<String> {
    let v = v.trim();
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

fn is_local_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.starts_with("127.")
        || rest.starts_with("[::1]")
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

fn validate(i: &AgentInput) -> AppResult<Valid> {
    let name = bounded("The name", &i.name, 1, 80)?;
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
    let mut days = i.days.clone();
    days.resize(7, false);
    let hours_days: String = days
        .iter()
        .take(7)
        .map(|d| if *d { '1' } else { '0' })
        .collect();
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
    let base_url = i.base_url.trim().trim_end_matches('/').to_owned();
    if provider == ProviderKind::OpenaiCompatible {
        let https = base_url.starts_with("https://") && base_url.len() > 8;
        let local_http = base_url.starts_with("http://") && is_local_host(&base_url);
        if !(https || local_http) || base_url.len() > 200 || base_url.contains(char::is_whitespace)
        {
            return Err(AppError::invalid(
                Code::InvalidAgent,
                "The endpoint must be an https:// URL (http:// only for a model on this machine).",
            ));
        }
    }
    let base_url = if provider == ProviderKind::OpenaiCompatible {
        base_url
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
                "Channels are telegram and whatsapp.",
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
            .offset_minutes_at(db::now()),
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

/// Owners (and admins, once roles land) may change agents; other members may look.
fn require_editor(role: &str) -> AppResult<()> {
    if role == ROLE_OWNER || role == "admin" {
        Ok(())
    } else {
        Err(AppError::Forbidden(Code::AdminRequired))
    }
}

/// A workspace's agents, oldest first.
pub fn list(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<Agent>> {
    Ok(agents::table
        .filter(agents::workspace_id.eq(ws_id))
        .order((agents::created_at.asc(), agents::id.asc()))
        .select(Agent::as_select())
        .load(conn)?)
}

fn find(conn: &mut DbConn, ws_id: &str, agent_id: &str) -> AppResult<Agent> {
    agents::table
        .filter(agents::workspace_id.eq(ws_id))
        .filter(agents::id.eq(agent_id))
        .select(Agent::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

fn live_workspace(conn: &mut DbConn, ws_id: &str, user_id: &str) -> AppResult<(Workspace, String)> {
    let (ws, role) = load_for_member(conn, ws_id, user_id)?;
    if ws.deleted_at.is_some() {
        return Err(AppError::Conflict(
            Code::WorkspaceDeleted,
            "This workspace was deleted.".into(),
        ));
    }
    Ok((ws, role))
}

/// Creates an agent and pushes the configuration.
pub fn create(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
    input: &AgentInput,
    ip: &str,
) -> AppResult<Agent> {
    let (_, role) = live_workspace(conn, ws_id, user_id)?;
    require_editor(&role)?;
    let v = validate(input)?;
    let id = db::new_id();
    let now = db::now();
    let (agent, node) = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let count: i64 = agents::table
            .filter(agents::workspace_id.eq(ws_id))
            .count()
            .get_result(conn)?;
        if count >= MAX_AGENTS {
            return Err(AppError::Conflict(
                Code::TooManyAgents,
                format!("A workspace can have at most {MAX_AGENTS} agents."),
            ));
        }
        diesel::insert_into(agents::table)
            .values((
                agents::id.eq(&id),
                agents::workspace_id.eq(ws_id),
                agents::name.eq(&v.name),
                agents::greeting.eq(&v.greeting),
                agents::instructions.eq(&v.instructions),
                agents::language.eq(&v.language),
                agents::fallback_message.eq(&v.fallback_message),
                agents::hours_days.eq(&v.hours_days),
                agents::open_minute.eq(v.open_minute),
                agents::close_minute.eq(v.close_minute),
                agents::utc_offset_minutes.eq(v.utc_offset_minutes),
                agents::time_zone.eq(&v.time_zone),
                agents::provider.eq(&v.provider),
                agents::model.eq(&v.model),
                agents::base_url.eq(&v.base_url),
                agents::allowed_origins.eq(&v.allowed_origins),
                agents::channels.eq(&v.channels),
                agents::created_at.eq(now),
                agents::updated_at.eq(now),
            ))
            .execute(conn)?;
        let node = push_config(conn, ws_id)?;
        Ok((find(conn, ws_id, &id)?, node))
    })?;
    notify(st, node.as_deref());
    audit_change(conn, user_id, "agent.created", &agent.id, ws_id, ip)?;
    Ok(agent)
}

/// Changes an agent and pushes the configuration.
pub fn update(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    agent_id: &str,
    user_id: &str,
    input: &AgentInput,
    ip: &str,
) -> AppResult<Agent> {
    let (_, role) = live_workspace(conn, ws_id, user_id)?;
    require_editor(&role)?;
    let v = validate(input)?;
    let (agent, node) = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        find(conn, ws_id, agent_id)?;
        v.update(conn, agent_id)?;
        let node = push_config(conn, ws_id)?;
        Ok((find(conn, ws_id, agent_id)?, node))
    })?;
    notify(st, node.as_deref());
    audit_change(conn, user_id, "agent.updated", agent_id, ws_id, ip)?;
    Ok(agent)
}

/// Removes an agent (its widget stops answering) and pushes the configuration.
pub fn delete(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    agent_id: &str,
    user_id: &str,
    ip: &str,
) -> AppResult<()> {
    let (_, role) = live_workspace(conn, ws_id, user_id)?;
    require_editor(&role)?;
    let node = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        find(conn, ws_id, agent_id)?;
        diesel::delete(agents::table.find(agent_id)).execute(conn)?;
        push_config(conn, ws_id)
    })?;
    notify(st, node.as_deref());
    audit_change(conn, user_id, "agent.deleted", agent_id, ws_id, ip)
}

impl Valid {
    fn update(&self, conn: &mut DbConn, agent_id: &str) -> AppResult<()> {
        diesel::update(agents::table.find(agent_id))
            .set((
                agents::name.eq(&self.name),
                agents::greeting.eq(&self.greeting),
                agents::instructions.eq(&self.instructions),
                agents::language.eq(&self.language),
                agents::fallback_message.eq(&self.fallback_message),
                agents::hours_days.eq(&self.hours_days),
                agents::open_minute.eq(self.open_minute),
                agents::close_minute.eq(self.close_minute),
                agents::utc_offset_minutes.eq(self.utc_offset_minutes),
                agents::time_zone.eq(&self.time_zone),
                agents::provider.eq(&self.provider),
                agents::model.eq(&self.model),
                agents::base_url.eq(&self.base_url),
                agents::allowed_origins.eq(&self.allowed_origins),
                agents::channels.eq(&self.channels),
                agents::updated_at.eq(db::now()),
            ))
            .execute(conn)?;
        Ok(())
    }
}

fn notify(st: &State, node: Option<&str>) {
    if let Some(n) = node {
        st.command_notify.notify(n);
    }
}

fn audit_change(
    conn: &mut DbConn,
    user_id: &str,
    action: &'static str,
    agent_id: &str,
    ws_id: &str,
    ip: &str,
) -> AppResult<()> {
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action,
            object_type: "agent",
            object_id: agent_id,
            workspace_id: Some(ws_id),
            ip: Some(ip),
            detail: "",
        },
    )
}

/// The configuration document of a workspace at its current revision.
pub fn config_document(conn: &mut DbConn, ws_id: &str) -> AppResult<WorkspaceConfig> {
    let revision: i64 = workspaces::table
        .find(ws_id)
        .select(workspaces::config_revision)
        .first(conn)?;
    Ok(WorkspaceConfig {
        revision,
        agents: list(conn, ws_id)?.iter().map(Agent::to_config).collect(),
    })
}

/// Bumps the workspace's configuration revision and queues `apply_config` for its node
/// if it has enrolled (a node that has not yet gets it on enrollment). Undelivered older
/// `apply_config` commands are dropped: the new document supersedes them. Returns the
/// node to wake.
pub fn push_config(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<String>> {
    diesel::update(workspaces::table.find(ws_id))
        .set(workspaces::config_revision.eq(workspaces::config_revision + 1))
        .execute(conn)?;
    let node: Option<String> = nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .filter(nodes::enrolled_at.is_not_null())
        .filter(nodes::state.ne_all([state::DEPROVISIONING, state::DESTROYED]))
        .select(nodes::id)
        .first(conn)
        .optional()?;
    let Some(node) = node else { return Ok(None) };
    queue_config(conn, &node, ws_id)?;
    Ok(Some(node))
}

/// Queues the workspace's current configuration for `node_id` (on enrollment and after
/// every change).
pub fn queue_config(conn: &mut DbConn, node_id: &str, ws_id: &str) -> AppResult<()> {
    let doc = config_document(conn, ws_id)?;
    diesel::delete(
        commands::table
            .filter(commands::node_id.eq(node_id))
            .filter(commands::kind.eq("apply_config"))
            .filter(commands::delivered_at.is_null()),
    )
    .execute(conn)?;
    let config = serde_json::to_value(&doc).map_err(|e| AppError::internal(e.into()))?;
    provisioning::queue_command(conn, node_id, &CommandKind::ApplyConfig { config })?;
    Ok(())
}

/// The web-chat embed snippet for an agent on a node.
pub fn embed_snippet(public_url: &str, agent_id: &str) -> String {
    format!(
        "<script src=\"{}/widget.js\" data-outpost-agent=\"{agent_id}\" async></script>",
        public_url.trim_end_matches('/')
    )
}

// ---------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    user: CurrentUser,
    workspace: Workspace,
    role: String,
    agent: Option<Agent>,
    input: AgentInput,
    error: Option<String>,
    snippet: Option<String>,
    providers: Vec<(&'static str, &'static str)>,
    time_zones: Vec<String>,
    day_names: [&'static str; 7],
}

impl AgentPage {
    fn day_checked(&self, i: &usize) -> bool {
        self.input.days.get(*i).copied().unwrap_or(false)
    }
    fn origins_text(&self) -> String {
        self.input.allowed_origins.join("\n")
    }
    fn provider_selected(&self, p: &str) -> bool {
        p == self.input.provider
    }
    fn channel_checked(&self, c: &&str) -> bool {
        self.input.channels.iter().any(|x| x == c)
    }
    fn can_edit(&self) -> bool {
        require_editor(&self.role).is_ok() && self.workspace.deleted_at.is_none()
    }
}

/// The form's fields: checkboxes `day0`…`day6`, origins one per line.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AgentForm {
    name: String,
    greeting: String,
    instructions: String,
    language: String,
    fallback_message: String,
    day0: Option<String>,
    day1: Option<String>,
    day2: Option<String>,
    day3: Option<String>,
    day4: Option<String>,
    day5: Option<String>,
    day6: Option<String>,
    open: String,
    close: String,
    time_zone: String,
    provider: String,
    model: String,
    base_url: String,
    allowed_origins: String,
    telegram: Option<String>,
    whatsapp: Option<String>,
}

impl AgentForm {
    fn into_input(self) -> AgentInput {
        let days = [
            &self.day0, &self.day1, &self.day2, &self.day3, &self.day4, &self.day5, &self.day6,
        ]
        .iter()
        .map(|d| d.is_some())
        .collect();
        AgentInput {
            name: self.name,
            greeting: self.greeting,
            instructions: self.instructions,
            language: self.language,
            fallback_message: self.fallback_message,
            days,
            open: self.open,
            close: self.close,
            time_zone: self.time_zone,
            // A cleared time-zone field fails validation instead of silently becoming
            // UTC (the offset is only the API's legacy fallback).
            utc_offset_minutes: i32::MIN,
            provider: self.provider,
            model: self.model,
            base_url: self.base_url,
            allowed_origins: self.allowed_origins.lines().map(str::to_owned).collect(),
            channels: [("telegram", &self.telegram), ("whatsapp", &self.whatsapp)]
                .iter()
                .filter(|(_, on)| on.is_some())
                .map(|(c, _)| (*c).to_owned())
                .collect(),
        }
    }
}

fn page(
    user: CurrentUser,
    workspace: Workspace,
    role: String,
    agent: Option<Agent>,
    input: AgentInput,
    error: Option<String>,
    public_url: Option<String>,
) -> AgentPage {
    let snippet = agent
        .as_ref()
        .zip(public_url)
        .map(|(a, u)| embed_snippet(&u, &a.id));
    AgentPage {
        user,
        workspace,
        role,
        agent,
        input,
        error,
        snippet,
        providers: ProviderKind::ALL
            .iter()
            .map(|p| (p.as_str(), p.label()))
            .collect(),
        time_zones: time_zone_names(),
        day_names: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    }
}

fn node_url(conn: &mut DbConn, ws_id: &str) -> AppResult<Option<String>> {
    Ok(nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .order(nodes::created_at.desc())
        .select(nodes::public_url)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

pub(crate) async fn new_page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult {
    let (uid, ws_id) = (user.id.clone(), path.into_inner());
    let (ws, role) = db::run(&state.db, move |conn| live_workspace(conn, &ws_id, &uid)).await?;
    require_editor(&role)?;
    let input = AgentInput::new_defaults(&ws.name);
    Ok(html(&page(user, ws, role, None, input, None, None)))
}

pub(crate) async fn show_page(
    state: State,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (uid, (ws_id, agent_id)) = (user.id.clone(), path.into_inner());
    let (ws, role, agent, url) = db::run(&state.db, move |conn| {
        let (ws, role) = load_for_member(conn, &ws_id, &uid)?;
        let agent = find(conn, &ws_id, &agent_id)?;
        let url = node_url(conn, &ws_id)?;
        Ok((ws, role, agent, url))
    })
    .await?;
    let input = AgentInput::from_agent(&agent);
    Ok(html(&page(user, ws, role, Some(agent), input, None, url)))
}

async fn save(
    state: State,
    req: HttpRequest,
    f: CsrfForm<AgentForm>,
    ws_id: String,
    agent_id: Option<String>,
) -> PageResult {
    let (uid, ip, st) = (f.user.id.clone(), client_ip(&req), state.clone());
    let input = f.form.into_input();
    let inp = input.clone();
    let (w, a) = (ws_id.clone(), agent_id.clone());
    let res = db::run(&state.db, move |conn| {
        Ok(match &a {
            Some(a) => update(conn, &st, &w, a, &uid, &inp, &ip),
            None => create(conn, &st, &w, &uid, &inp, &ip),
        })
    })
    .await?;
    match res {
        Ok(agent) => Ok(HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/workspaces/{ws_id}/agents/{}", agent.id),
            ))
            .finish()),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            let uid = f.user.id.clone();
            let (ws, role, agent, url) = db::run(&state.db, move |conn| {
                let (ws, role) = load_for_member(conn, &ws_id, &uid)?;
                let agent = match &agent_id {
                    Some(a) => Some(find(conn, &ws_id, a)?),
                    None => None,
                };
                Ok((ws, role, agent, node_url(conn, &ws_id)?))
            })
            .await?;
            Ok(html_with(
                HttpResponse::build(e.status()),
                &page(f.user, ws, role, agent, input, Some(e.message()), url),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn create_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<AgentForm>,
    path: web::Path<String>,
) -> PageResult {
    save(state, req, f, path.into_inner(), None).await
}

pub(crate) async fn update_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<AgentForm>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (ws_id, agent_id) = path.into_inner();
    save(state, req, f, ws_id, Some(agent_id)).await
}

pub(crate) async fn delete_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<Empty>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (uid, ip, st, (ws_id, agent_id)) = (
        f.user.id.clone(),
        client_ip(&req),
        state.clone(),
        path.into_inner(),
    );
    let loc = format!("/workspaces/{ws_id}");
    db::run(&state.db, move |conn| {
        delete(conn, &st, &ws_id, &agent_id, &uid, &ip)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, loc))
        .finish())
}

// ---------------------------------------------------------------- API

#[derive(Serialize)]
struct AgentJson {
    #[serde(flatten)]
    config: AgentConfig,
    created_at: i64,
    updated_at: i64,
    embed_snippet: Option<String>,
}

fn to_json(a: &Agent, url: Option<&str>) -> AgentJson {
    AgentJson {
        config: a.to_config(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        embed_snippet: url.map(|u| embed_snippet(u, &a.id)),
    }
}

pub(crate) async fn api_list(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let ws_id = path.into_inner();
    let (list, url) = db::run(&state.db, move |conn| {
        load_for_member(conn, &ws_id, &user.id)?;
        Ok((list(conn, &ws_id)?, node_url(conn, &ws_id)?))
    })
    .await?;
    let items: Vec<_> = list.iter().map(|a| to_json(a, url.as_deref())).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "agents": items })))
}

pub(crate) async fn api_create(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    body: web::Json<AgentInput>,
) -> AppResult<HttpResponse> {
    let (ip, st, ws_id, input) = (
        client_ip(&req),
        state.clone(),
        path.into_inner(),
        body.into_inner(),
    );
    let (agent, url) = db::run(&state.db, move |conn| {
        let a = create(conn, &st, &ws_id, &user.id, &input, &ip)?;
        Ok((a, node_url(conn, &ws_id)?))
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!(
                "/api/v1/workspaces/{}/agents/{}",
                agent.workspace_id, agent.id
            ),
        ))
        .json(to_json(&agent, url.as_deref())))
}

pub(crate) async fn api_get(
    state: State,
    user: ApiUser,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (ws_id, agent_id) = path.into_inner();
    let (agent, url) = db::run(&state.db, move |conn| {
        load_for_member(conn, &ws_id, &user.id)?;
        Ok((find(conn, &ws_id, &agent_id)?, node_url(conn, &ws_id)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(to_json(&agent, url.as_deref())))
}

pub(crate) async fn api_update(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<(String, String)>,
    body: web::Json<AgentInput>,
) -> AppResult<HttpResponse> {
    let (ip, st, (ws_id, agent_id), input) = (
        client_ip(&req),
        state.clone(),
        path.into_inner(),
        body.into_inner(),
    );
    let (agent, url) = db::run(&state.db, move |conn| {
        let a = update(conn, &st, &ws_id, &agent_id, &user.id, &input, &ip)?;
        Ok((a, node_url(conn, &ws_id)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(to_json(&agent, url.as_deref())))
}

pub(crate) async fn api_delete(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (ip, st, (ws_id, agent_id)) = (client_ip(&req), state.clone(), path.into_inner());
    db::run(&state.db, move |conn| {
        delete(conn, &st, &ws_id, &agent_id, &user.id, &ip)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AgentInput {
        AgentInput::new_defaults("Acme")
    }

    #[test]
    fn defaults_validate_and_round_trip_to_the_node_document() {
        let v = validate(&input()).expect("valid");
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
            validate(&AgentInput {
                time_zone: tz.into(),
                utc_offset_minutes: offset,
                ..input()
            })
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
                // A cleared field on the page.
                AgentForm {
                    name: "Ava".into(),
                    language: "en".into(),
                    fallback_message: "Sorry.".into(),
                    open: "09:00".into(),
                    close: "17:00".into(),
                    time_zone: " ".into(),
                    provider: "retrieval".into(),
                    ..AgentForm::default()
                }
                .into_input(),
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
                "https://",
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
            let e = validate(&i).err().expect("refused");
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
        let v = validate(&ok).expect("local http endpoint is fine");
        assert_eq!(v.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(v.allowed_origins, "https://shop.example");
    }
}
