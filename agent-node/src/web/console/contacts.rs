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
use super::inbox::content;
use super::{human_time, render, valid_id};
use super::{ConsoleError, ConsoleSession, ConsoleState, WriteSession};
use crate::domain::content::{
    ContactDetail, ContactSummary, ContactUpdate, ContentError, Conversation, Followup,
    FollowupKind, FollowupStatus, Stage, TimelineEntry,
};
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

fn followup_row(f: Followup, now: i64) -> FollowupRow {
    let pending = f.status == FollowupStatus::Pending;
    FollowupRow {
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

/// `GET /contacts/{id}`.
pub async fn contact(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    path: web::Path<String>,
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
            content.followups(&id, 100)?,
            content.contact_conversations(&id, 100)?,
            content.timeline(&id, TIMELINE_LIMIT)?,
        ))
    })
    .await??;
    let now = crate::platform::store::now();
    render(&ContactPage {
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
    let name = form.name.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ConsoleError::BadRequest(format!(
            "A name can be at most {MAX_NAME_CHARS} characters."
        )));
    }
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
        name: Some(name.to_owned()),
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

/// Body of `POST /contacts/{id}/followups`.
#[derive(serde::Deserialize)]
pub struct FollowupForm {
    kind: String,
    due: String,
    text: String,
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

/// `POST /contacts/{id}/followups`.
pub async fn add_followup(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<FollowupForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let form = form.into_inner();
    let kind = FollowupKind::parse(form.kind.trim())
        .ok_or_else(|| ConsoleError::BadRequest("Choose a kind of follow-up.".into()))?;
    let due = parse_due(&form.due)
        .ok_or_else(|| ConsoleError::BadRequest("Give the due date and time (UTC).".into()))?;
    let text = checked_text(&form.text, MAX_FOLLOWUP_CHARS, "follow-up text")?;
    let content = content(&state);
    let actor = session.user_id.clone();
    let cid = id.clone();
    web::block(move || content.add_followup(&cid, kind, due, &text, &actor)).await??;
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
mod tests {
    use super::*;
    use crate::domain::content::Content;
    use crate::web::console::inbox::tests::{app, body, post, sign_in};
    use crate::web::console::tests::fixture;
    use actix_web::http::StatusCode;
    use actix_web::test as at;

    #[test]
    fn due_times_are_read_as_utc() {
        assert_eq!(parse_due("1970-01-01T01:00"), Some(3600));
        assert_eq!(parse_due("1970-01-01T00:00:30"), Some(30));
        assert_eq!(parse_due("tomorrow"), None);
    }

    use crate::test_support::LogBuffer;

    /// Issue 13: the contact page edits an email address and a phone number (browser
    /// `type="email"` / `type="tel"` fields, checked again on the server); both show on
    /// the contact page and in the list; a wrong one is refused with a 400 that says what
    /// is wrong and changes nothing; neither reaches the log.
    #[actix_web::test]
    async fn email_and_phone_are_edited_on_the_contact_page() {
        const EMAIL: &str = "jonas.weber@example.com";
        const PHONE: &str = "+49 151 1234 5678";
        let logs = LogBuffer::default();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(logs.clone())
                .finish(),
        );
        let f = fixture();
        let content = Content::new(f.data.store.clone(), &f.data.master);
        let id = content
            .contact_for_identity("web", "visitor-9", None)
            .expect("contact");
        let app = app!(f);
        let cookie = sign_in!(f, app);
        let page = |cookie: actix_web::cookie::Cookie<'static>, uri: String| {
            at::TestRequest::get().uri(&uri).cookie(cookie).to_request()
        };

        let b = body(at::call_service(&app, page(cookie.clone(), format!("/contacts/{id}"))).await)
            .await;
        for s in [
            r#"<input type="email" id="contact-email-input" name="email" value="""#,
            r#"<input type="tel" id="contact-phone-input" name="phone" value="""#,
            r#"<label for="contact-email-input">Email</label>"#,
            r#"<label for="contact-phone-input">Phone</label>"#,
        ] {
            assert!(b.contains(s), "{s} missing: {b}");
        }

        let form = |name: &'static str, email: &'static str, phone: &'static str| {
            [
                ("name", name),
                ("email", email),
                ("phone", phone),
                ("stage", "new"),
                ("score", "0"),
                ("tags", ""),
            ]
        };
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}"), &cookie)
                .set_form(form("Jonas", EMAIL, PHONE))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let d = content.contact(&id).expect("get").expect("some");
        assert_eq!(
            (d.email.as_deref(), d.phone.as_deref()),
            (Some(EMAIL), Some(PHONE))
        );
        let b = body(at::call_service(&app, page(cookie.clone(), format!("/contacts/{id}"))).await)
            .await;
        for s in [
            format!(r#"<a href="mailto:{EMAIL}">{EMAIL}</a>"#),
            format!(r#"<a href="tel:{PHONE}">{PHONE}</a>"#),
            format!(r#"name="email" value="{EMAIL}""#),
            format!(r#"name="phone" value="{PHONE}""#),
        ] {
            assert!(b.contains(&s), "{s} missing: {b}");
        }
        let b = body(at::call_service(&app, page(cookie.clone(), "/contacts".into())).await).await;
        assert!(b.contains(&format!("<td>{EMAIL}</td>")), "{b}");
        assert!(b.contains(&format!("<td>{PHONE}</td>")), "{b}");

        // A wrong email (or phone) refuses the whole form: 400, the reason, nothing saved.
        for (bad, message) in [
            (
                form("Someone else", "jonas weber@example", PHONE),
                "The email address is not valid: write it like name@example.com, without spaces.",
            ),
            (
                form("Someone else", EMAIL, "call 0151 after 5"),
                "The phone number is not valid: use digits, spaces and + ( ) - . only.",
            ),
        ] {
            let r = at::call_service(
                &app,
                post(&format!("/contacts/{id}"), &cookie)
                    .set_form(bad)
                    .to_request(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            let b = body(r).await;
            assert!(b.contains(message), "{message}: {b}");
            assert!(
                !b.contains("jonas weber@example") && !b.contains("after 5"),
                "{b}"
            );
            let after = content.contact(&id).expect("get").expect("some");
            assert_eq!(after, d, "nothing changed");
        }

        // Empty clears; a form without the fields keeps them.
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}"), &cookie)
                .set_form(form("Jonas", "", PHONE))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}"), &cookie)
                .set_form([
                    ("name", "Jonas"),
                    ("stage", "won"),
                    ("score", "5"),
                    ("tags", ""),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let d = content.contact(&id).expect("get").expect("some");
        assert_eq!((d.email, d.phone.as_deref()), (None, Some(PHONE)));
        assert_eq!(d.stage, Stage::Won);

        let logged = logs.text();
        for value in [EMAIL, PHONE, "jonas weber@example", "after 5"] {
            assert!(!logged.contains(value), "{value} logged: {logged}");
        }
    }

    #[actix_web::test]
    async fn contacts_pages_update_note_and_follow_up() {
        let f = fixture();
        let content = Content::new(f.data.store.clone(), &f.data.master);
        let id = content
            .contact_for_identity("whatsapp", "+4915112345678", None)
            .expect("contact");
        let app = app!(f);

        let r = at::call_service(&app, at::TestRequest::get().uri("/contacts").to_request()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri(&format!("/contacts/{id}"))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(!body(r).await.contains("+4915112345678"));

        let cookie = sign_in!(f, app);
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/contacts")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let b = body(r).await;
        assert!(b.contains(&format!("WhatsApp contact {}", &id[..4])), "{b}");
        assert!(!b.contains("+4915112345678"), "the list shows no identity");

        let form = [
            ("name", "Jonas Weber"),
            ("stage", "qualified"),
            ("score", "80"),
            ("tags", "implant, vip, "),
        ];
        // foreign origin refused
        let r = at::call_service(
            &app,
            at::TestRequest::post()
                .uri(&format!("/contacts/{id}"))
                .insert_header(("origin", "http://evil.localhost"))
                .cookie(cookie.clone())
                .set_form(form)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}"), &cookie)
                .set_form(form)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let d = content.contact(&id).expect("get").expect("some");
        assert_eq!(d.stage, Stage::Qualified);
        assert_eq!(d.score, 80);
        assert_eq!(d.tags, ["implant", "vip"]);
        assert_eq!(d.name.as_deref(), Some("Jonas Weber"));

        for bad in [
            [
                ("name", ""),
                ("stage", "bogus"),
                ("score", "1"),
                ("tags", ""),
            ],
            [
                ("name", ""),
                ("stage", "won"),
                ("score", "101"),
                ("tags", ""),
            ],
            [("name", ""), ("stage", "won"), ("score", "x"), ("tags", "")],
        ] {
            let r = at::call_service(
                &app,
                post(&format!("/contacts/{id}"), &cookie)
                    .set_form(bad)
                    .to_request(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }

        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}/notes"), &cookie)
                .set_form([("text", "Asked about financing")])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}/notes"), &cookie)
                .set_form([("text", " ")])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}/followups"), &cookie)
                .set_form([
                    ("kind", "reminder"),
                    ("due", "2030-05-01T09:30"),
                    ("text", "Send the quote"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}/followups"), &cookie)
                .set_form([("kind", "reminder"), ("due", "soon"), ("text", "x")])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let fu = content.followups(&id, 10).expect("followups");
        assert_eq!(fu.len(), 1);
        assert_eq!(fu[0].due_at, parse_due("2030-05-01T09:30").expect("due"));

        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri(&format!("/contacts/{id}"))
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let b = body(r).await;
        for s in [
            "Jonas Weber",
            "+4915112345678",
            "Asked about financing",
            "Send the quote",
            "Stage: New → Qualified",
            // The signed-in user's own change, in words rather than their user id.
            r#"<span class="muted">by you</span>"#,
            r#"<option value="qualified" selected>"#,
        ] {
            assert!(b.contains(s), "{s} missing: {b}");
        }
        assert!(!b.contains("user-1"), "no user id on the page: {b}");

        // a follow-up id under another contact is not found
        let other = content
            .contact_for_identity("web", "v-2", None)
            .expect("other");
        let fid = &fu[0].id;
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{other}/followups/{fid}/done"), &cookie).to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}/followups/{fid}/done"), &cookie).to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            content.followups(&id, 10).expect("followups")[0].status,
            FollowupStatus::Done
        );

        // stage filter
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/contacts?stage=won")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert!(!body(r).await.contains("Jonas Weber"));
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/contacts?stage=qualified")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert!(body(r).await.contains("Jonas Weber"));

        // unknown ids
        let unknown = uuid::Uuid::new_v4();
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri(&format!("/contacts/{unknown}"))
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{unknown}"), &cookie)
                .set_form(form)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{unknown}/notes"), &cookie)
                .set_form([("text", "x")])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
