//! Console pages: contacts (the CRM). A list with a stage filter, and one page per
//! contact with its fields (name, email, phone, stage, score, tags), notes, follow-ups,
//! conversations and timeline. Every change is recorded on the timeline with the user who
//! made it. Email addresses and phone numbers are contact identifiers: shown on these
//! pages and in exports, never logged (DESIGN §1).
//!
//! Follow-up due times come from a `datetime-local` field, which carries no time zone;
//! they are read as UTC (the page says so).

use super::access::Nav;
use super::flash::{see_other_done, Done};
use super::inbox::{content, template_picker, typed_values, ChosenTemplate, TemplateOption};
use super::{human_time, render, valid_id};
use super::{ConsoleError, ConsoleSession, ConsoleState, WriteSession};
use crate::domain::content::{
    ContactDetail, ContactSummary, ContactUpdate, ContentError, Conversation, Followup,
    FollowupKind, FollowupStatus, Stage, TimelineEntry,
};
use crate::web::channels::wa_templates;
use actix_web::{web, HttpResponse};
use askama::Template;

/// Longest note accepted, characters.
pub const MAX_NOTE_CHARS: usize = 4000;
/// Longest follow-up text accepted, characters.
pub const MAX_FOLLOWUP_CHARS: usize = 1000;
/// Longest name accepted, characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Contacts shown in the list.
const LIST_LIMIT: usize = 500;
/// Timeline entries shown.
const TIMELINE_LIMIT: usize = 200;

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/contacts", web::get().to(index))
        .route("/contacts/{id}", web::get().to(contact))
        .route("/contacts/{id}", web::post().to(update))
        .route("/contacts/{id}/notes", web::post().to(add_note))
        .route("/contacts/{id}/followups", web::post().to(add_followup))
        .route(
            "/contacts/{id}/followups/{fid}/done",
            web::post().to(complete_followup),
        )
        .route("/contacts/{id}/erase", web::post().to(erase))
        .route("/erasures", web::get().to(erasures));
}

#[derive(serde::Deserialize)]
struct EraseForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /contacts/{id}/erase`: erases the contact at once (data key and rows, KEK
/// rotated) and records the erasure; the form must carry `confirm=erase`.
async fn erase(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<EraseForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    if form.confirm.trim() != "erase" {
        return Err(ConsoleError::BadRequest(
            "Type erase to confirm: erasing cannot be undone.".into(),
        ));
    }
    let c = content(&state);
    let actor = session.user_id.clone();
    let record = web::block(move || c.erase_contact(&id, &actor)).await??;
    tracing::info!(user = %session.user_id, erasure = %record.id, "contact erased");
    Ok(see_other_done("/erasures", Done::Erased))
}

struct ErasureRow {
    id: String,
    contact_hash: String,
    channel: String,
    erased_by: String,
    at: String,
}

#[derive(Template)]
#[template(path = "erasures.html")]
struct ErasuresPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    rows: Vec<ErasureRow>,
}

/// `GET /erasures`: the record of erasures carried out.
async fn erasures(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    let c = content(&state);
    let list = web::block(move || c.erasures(500)).await??;
    render(&ErasuresPage {
        nav: Nav::for_session(&session),
        rows: list
            .into_iter()
            .map(|e| ErasureRow {
                at: human_time(e.erased_at),
                id: e.id,
                contact_hash: e.contact_hash,
                channel: e.channel,
                erased_by: actor_words(&e.erased_by, &session.user_id),
            })
            .collect(),
    })
}

struct StageTab {
    key: &'static str,
    label: &'static str,
    current: bool,
}

struct ContactRow {
    id: String,
    name: String,
    email: String,
    phone: String,
    channel: String,
    stage: &'static str,
    score: i64,
    tags: String,
    last_seen: String,
}

impl From<ContactSummary> for ContactRow {
    fn from(c: ContactSummary) -> Self {
        Self {
            stage: c.stage.label(),
            tags: c.tags.join(", "),
            last_seen: human_time(c.last_seen_at),
            id: c.id,
            name: c.display_name,
            email: c.email.unwrap_or_default(),
            phone: c.phone.unwrap_or_default(),
            channel: c.channel,
            score: c.score,
        }
    }
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    tabs: Vec<StageTab>,
    rows: Vec<ContactRow>,
}

struct StageOption {
    key: &'static str,
    label: &'static str,
    selected: bool,
}

struct FollowupRow {
    id: String,
    kind: &'static str,
    due: String,
    text: String,
    pending: bool,
    status: &'static str,
    overdue: bool,
    /// The WhatsApp template it is sent as past the 24-hour window (`name:language`).
    template: Option<String>,
}

struct ConversationRow {
    id: String,
    channel: String,
    status: &'static str,
    updated: String,
}

struct TimelineRow {
    at: String,
    label: String,
    text: Vec<String>,
    actor: String,
    conversation_id: String,
}

#[derive(Template)]
#[template(path = "contact.html")]
struct ContactPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    /// Whether to offer "Export this contact" (`exports`).
    can_export: bool,
    /// Whether to offer "Erase this contact" (`access::ERASURE`).
    can_erase: bool,
    c: ContactDetail,
    name_value: String,
    email_value: String,
    phone_value: String,
    tags_value: String,
    created: String,
    last_seen: String,
    stages: Vec<StageOption>,
    followups: Vec<FollowupRow>,
    conversations: Vec<ConversationRow>,
    timeline: Vec<TimelineRow>,
    /// A WhatsApp contact: a follow-up message may carry a template.
    whatsapp: bool,
    templates: Vec<TemplateOption>,
    chosen: Option<ChosenTemplate>,
    max_variable: usize,
}

/// Query string of `GET /contacts/{id}`: the template picked for a follow-up, if any.
#[derive(serde::Deserialize)]
pub struct ContactQuery {
    template: Option<String>,
}

/// Query string of `GET /contacts`.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    stage: Option<String>,
}

/// `GET /contacts[?stage=new|qualified|won|lost]`.
pub async fn index(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let stage = query.stage.as_deref().and_then(Stage::parse);
    let content = content(&state);
    let rows = web::block(move || content.list_contacts(stage, LIST_LIMIT)).await??;
    let mut tabs = vec![StageTab {
        key: "",
        label: "All",
        current: stage.is_none(),
    }];
    tabs.extend(Stage::ALL.iter().map(|s| StageTab {
        key: s.as_str(),
        label: s.label(),
        current: Some(*s) == stage,
    }));
    render(&ContactsPage {
        nav: Nav::for_session(&session),
        tabs,
        rows: rows.into_iter().map(ContactRow::from).collect(),
    })
}

fn followup_row((f, template): (Followup, Option<String>), now: i64) -> FollowupRow {
    let pending = f.status == FollowupStatus::Pending;
    let template = template
        .and_then(|json| serde_json::from_str::<wa_templates::FollowupTemplate>(&json).ok())
        .map(|t| format!("{}:{}", t.name, t.language));
    FollowupRow {
        template,
        kind: f.kind.label(),
        due: human_time(f.due_at),
        overdue: pending && f.due_at <= now,
        pending,
        status: f.status.as_str(),
        id: f.id,
        text: f.text,
    }
}

fn conversation_row(c: Conversation) -> ConversationRow {
    ConversationRow {
        status: c.status.label(),
        updated: human_time(c.updated_at),
        id: c.id,
        channel: c.channel,
    }
}

/// Who did something, in words for the person reading. The node knows staff only by
/// their control-plane user id, which means nothing to a reader.
fn actor_words(actor: &str, me: &str) -> String {
    match actor {
        "" => String::new(),
        a if a == me => "you".to_owned(),
        crate::domain::content::AGENT_ACTOR => "the assistant".to_owned(),
        _ => "a team member".to_owned(),
    }
}

fn timeline_row(e: TimelineEntry, me: &str) -> TimelineRow {
    TimelineRow {
        at: human_time(e.at),
        label: e.label(),
        text: e.text.lines().map(str::to_owned).collect(),
        actor: actor_words(e.actor.as_deref().unwrap_or_default(), me),
        conversation_id: e.conversation_id.unwrap_or_default(),
    }
}

/// `GET /contacts/{id}[?template=name:language]`.
pub async fn contact(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    path: web::Path<String>,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let content = content(&state);
    let (c, followups, conversations, timeline) = web::block(move || {
        let c = content.contact(&id)?.ok_or(ContentError::NotFound)?;
        Ok::<_, ContentError>((
            c,
            content
                .followups(&id, 100)?
                .into_iter()
                .map(|f| {
                    let template = content.followup_template(&f.id)?;
                    Ok::<_, ContentError>((f, template))
                })
                .collect::<Result<Vec<_>, _>>()?,
            content.contact_conversations(&id, 100)?,
            content.timeline(&id, TIMELINE_LIMIT)?,
        ))
    })
    .await??;
    let now = crate::platform::store::now();
    let whatsapp = c.channel == crate::web::channels::WHATSAPP;
    let store = state.store.clone();
    let templates = if whatsapp {
        web::block(move || wa_templates::cached_templates(&store)).await?
    } else {
        Vec::new()
    };
    let (templates, chosen) = template_picker(&templates, query.template.as_deref(), None);
    render(&ContactPage {
        whatsapp,
        templates,
        chosen,
        max_variable: wa_templates::MAX_VARIABLE_CHARS,
        nav: Nav::for_session(&session),
        can_export: session.may("POST", "/contacts/{id}/export"),
        can_erase: session.may("POST", "/contacts/{id}/erase"),
        name_value: c.name.clone().unwrap_or_default(),
        email_value: c.email.clone().unwrap_or_default(),
        phone_value: c.phone.clone().unwrap_or_default(),
        tags_value: c.tags.join(", "),
        created: human_time(c.created_at),
        last_seen: human_time(c.last_seen_at),
        stages: Stage::ALL
            .iter()
            .map(|s| StageOption {
                key: s.as_str(),
                label: s.label(),
                selected: *s == c.stage,
            })
            .collect(),
        followups: followups
            .into_iter()
            .map(|f| followup_row(f, now))
            .collect(),
        conversations: conversations.into_iter().map(conversation_row).collect(),
        timeline: timeline
            .into_iter()
            .map(|e| timeline_row(e, &session.user_id))
            .collect(),
        c,
    })
}

/// Body of `POST /contacts/{id}`.
#[derive(serde::Deserialize)]
pub struct ContactForm {
    name: String,
    /// Absent (a form from before these fields) keeps the stored value; empty clears it.
    email: Option<String>,
    /// See `email`.
    phone: Option<String>,
    stage: String,
    score: String,
    tags: String,
}

fn parse_update(form: ContactForm) -> Result<ContactUpdate, ConsoleError> {
    // Empty clears the name; anything else follows the one rule for names
    // (`outpost_common::Name`: NFC, no control, bidi or zero-width character).
    let name = if form.name.trim().is_empty() {
        String::new()
    } else {
        outpost_common::Name::parse(&form.name, MAX_NAME_CHARS)
            .map_err(|e| ConsoleError::BadRequest(e.message("A name")))?
            .into_string()
    };
    let stage = Stage::parse(form.stage.trim())
        .ok_or_else(|| ConsoleError::BadRequest("Choose a stage from the list.".into()))?;
    let score = form
        .score
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| (0..=100).contains(s))
        .ok_or_else(|| {
            ConsoleError::BadRequest("The score must be a whole number from 0 to 100.".into())
        })?;
    // Checked here so the page says what is wrong before anything is read; the content
    // store checks them again (`update_contact`) for every other caller.
    let email = form
        .email
        .as_deref()
        .map(crate::domain::content::check_email)
        .transpose()
        .map_err(|m| ConsoleError::BadRequest(m.to_owned()))?;
    let phone = form
        .phone
        .as_deref()
        .map(crate::domain::content::check_phone)
        .transpose()
        .map_err(|m| ConsoleError::BadRequest(m.to_owned()))?;
    Ok(ContactUpdate {
        name: Some(name),
        email,
        phone,
        stage: Some(stage),
        score: Some(score),
        tags: Some(crate::domain::content::normalize_tags(form.tags.split(','))),
    })
}

/// `POST /contacts/{id}`: saves name, email, phone, stage, score and tags.
pub async fn update(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<ContactForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let update = parse_update(form.into_inner())?;
    let content = content(&state);
    let actor = session.user_id.clone();
    let cid = id.clone();
    web::block(move || content.update_contact(&cid, update, &actor)).await??;
    Ok(see_other_done(&format!("/contacts/{id}"), Done::Saved))
}

/// Body of `POST /contacts/{id}/notes`.
#[derive(serde::Deserialize)]
pub struct NoteForm {
    text: String,
}

fn checked_text(text: &str, max: usize, what: &str) -> Result<String, ConsoleError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ConsoleError::BadRequest(format!("The {what} is empty.")));
    }
    if t.chars().count() > max {
        return Err(ConsoleError::BadRequest(format!(
            "The {what} can be at most {max} characters."
        )));
    }
    Ok(t.to_owned())
}

/// `POST /contacts/{id}/notes`.
pub async fn add_note(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<NoteForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let text = checked_text(&form.text, MAX_NOTE_CHARS, "note")?;
    let content = content(&state);
    let actor = session.user_id.clone();
    let cid = id.clone();
    web::block(move || content.add_note(&cid, &text, &actor)).await??;
    Ok(see_other_done(&format!("/contacts/{id}"), Done::NoteAdded))
}

/// Reads a `datetime-local` value (`YYYY-MM-DDTHH:MM[:SS]`) as UTC.
pub fn parse_due(s: &str) -> Option<i64> {
    let s = s.trim();
    let long = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(s, short)
        .or_else(|_| time::PrimitiveDateTime::parse(s, long))
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// `POST /contacts/{id}/followups` (`kind`, `due`, `text`; for a message to a WhatsApp
/// contact also `template` = `name:language` and its variables `v1`…`vN`, sent in place
/// of the text when the follow-up is due outside the 24-hour window).
pub async fn add_followup(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let form = form.into_inner();
    let field = |name: &str| form.get(name).map_or("", |v| v.trim());
    let kind = FollowupKind::parse(field("kind"))
        .ok_or_else(|| ConsoleError::BadRequest("Choose a kind of follow-up.".into()))?;
    let due = parse_due(field("due"))
        .ok_or_else(|| ConsoleError::BadRequest("Give the due date and time (UTC).".into()))?;
    let text = checked_text(field("text"), MAX_FOLLOWUP_CHARS, "follow-up text")?;
    let template = match field("template") {
        "" => None,
        _ if kind != FollowupKind::Message => {
            return Err(ConsoleError::BadRequest(
                "Only a message to the contact can carry a template.".into(),
            ))
        }
        key => {
            let values = typed_values(&form);
            let (store, key) = (state.store.clone(), key.to_owned());
            let json =
                web::block(move || wa_templates::followup_template_json(&store, &key, values))
                    .await?
                    .map_err(ConsoleError::BadRequest)?;
            Some(json)
        }
    };
    let content = content(&state);
    let actor = session.user_id.clone();
    let cid = id.clone();
    web::block(move || {
        content.add_followup_with_template(&cid, kind, due, &text, &actor, template.as_deref())
    })
    .await??;
    Ok(see_other_done(
        &format!("/contacts/{id}"),
        Done::FollowupAdded,
    ))
}

/// `POST /contacts/{id}/followups/{fid}/done`.
pub async fn complete_followup(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, fid) = path.into_inner();
    if !valid_id(&id) || !valid_id(&fid) {
        return Err(ConsoleError::NotFound);
    }
    let content = content(&state);
    let actor = session.user_id.clone();
    let cid = id.clone();
    web::block(move || {
        // the follow-up must belong to the contact in the URL
        if !content.followups(&cid, 1000)?.iter().any(|f| f.id == fid) {
            return Err(ContentError::NotFound);
        }
        content.complete_followup(&fid, &actor)
    })
    .await??;
    Ok(see_other_done(
        &format!("/contacts/{id}"),
        Done::FollowupDone,
    ))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod name_tests {
    use super::*;

    fn form(name: &str) -> ContactForm {
        ContactForm {
            name: name.into(),
            email: None,
            phone: None,
            stage: "new".into(),
            score: "0".into(),
            tags: String::new(),
        }
    }

    #[test]
    fn contact_names_follow_the_one_rule_for_names() {
        for bad in ["a\u{0}b", "\u{202e}abc", "abc\u{200b}", "two\nlines"] {
            assert!(parse_update(form(bad)).is_err(), "{bad:?}");
        }
        let name = |raw: &str| parse_update(form(raw)).ok().and_then(|u| u.name);
        assert_eq!(name("  Zoe\u{301}  ").as_deref(), Some("Zoé"));
        assert_eq!(name("  ").as_deref(), Some(""), "empty clears the name");
    }
}
