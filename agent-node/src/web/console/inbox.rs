//! Console pages: the inbox. Conversations refresh live (htmx polls the list and the
//! transcript fragments every 3 s); a team member can take a conversation over, reply,
//! hand it back to the assistant or close it.
//!
//! Replying to a conversation that is not taken over takes it over first (one click
//! fewer, and the assistant never answers over a person): the reply form is always
//! there, and says so while the assistant is in charge. A phone call has no reply box: a
//! typed reply could not reach the caller.

use super::access::Nav;
use super::{
    human_time, render, see_other, valid_id, ConsoleError, ConsoleSession, ConsoleState,
    WriteSession,
};
use crate::domain::content::{
    shown_inline, Author, Content, ConversationStatus, ConversationSummary, MediaInfo, Message,
    VOICE_CHANNEL,
};
use crate::web::channels::{recording, wa_templates};
use actix_web::{web, HttpResponse};
use askama::Template;

mod calls;
mod templates;

pub(super) use templates::{template_picker, typed_values, ChosenTemplate, TemplateOption};

/// Longest reply accepted, characters.
pub const MAX_REPLY_CHARS: usize = 4000;
/// Conversations shown in the list.
const LIST_LIMIT: usize = 200;
/// Messages shown in a transcript.
const TRANSCRIPT_LIMIT: usize = 500;

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/inbox", web::get().to(index))
        .route("/inbox/list", web::get().to(list_fragment))
        .route("/inbox/{id}", web::get().to(conversation))
        .route("/inbox/{id}/messages", web::get().to(messages_fragment))
        .route("/inbox/media/{message}", web::get().to(media))
        .route("/inbox/{id}/reply", web::post().to(reply))
        .route(
            "/inbox/{id}/template",
            web::post().to(templates::template_reply),
        )
        .route("/inbox/{id}/takeover", web::post().to(takeover))
        .route(
            "/inbox/{id}/call/takeover",
            web::post().to(calls::take_call),
        )
        .route("/inbox/{id}/handback", web::post().to(handback))
        .route("/inbox/{id}/close", web::post().to(close));
}

pub(crate) fn content(state: &ConsoleState) -> Content {
    Content::new(state.store.clone(), &state.master)
}

/// Which conversations a tab shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    All,
    Only(ConversationStatus),
}

impl Filter {
    fn parse(s: Option<&str>) -> Self {
        match s.and_then(ConversationStatus::parse) {
            Some(st) => Self::Only(st),
            None => Self::All,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Only(s) => s.as_str(),
        }
    }
    fn status(self) -> Option<ConversationStatus> {
        match self {
            Self::All => None,
            Self::Only(s) => Some(s),
        }
    }
}

struct Tab {
    key: &'static str,
    label: &'static str,
    current: bool,
}

fn tabs(filter: Filter) -> Vec<Tab> {
    [
        ("all", "All"),
        ("open", "Assistant"),
        ("human", "With the team"),
        ("closed", "Closed"),
    ]
    .into_iter()
    .map(|(key, label)| Tab {
        key,
        label,
        current: key == filter.as_str(),
    })
    .collect()
}

struct Row {
    id: String,
    contact_name: String,
    channel: String,
    status: &'static str,
    status_label: &'static str,
    preview: String,
    updated: String,
}

impl From<ConversationSummary> for Row {
    fn from(c: ConversationSummary) -> Self {
        Self {
            status: if c.waiting_since.is_some() {
                "waiting"
            } else {
                c.status.as_str()
            },
            status_label: if c.waiting_since.is_some() {
                "Waiting for the team"
            } else {
                c.status.label()
            },
            updated: human_time(c.updated_at),
            id: c.id,
            contact_name: c.contact_name,
            channel: c.channel,
            preview: c.preview,
        }
    }
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    filter: &'static str,
    tabs: Vec<Tab>,
    rows: Vec<Row>,
    due: Vec<DueReminder>,
}

/// A reminder follow-up whose time has come, shown above the conversations.
struct DueReminder {
    contact_id: String,
    contact: String,
    text: String,
    due: String,
}

#[derive(Template)]
#[template(path = "inbox_list.html")]
struct InboxList {
    rows: Vec<Row>,
}

struct Line {
    who: &'static str,
    class: &'static str,
    body: Vec<String>,
    at: String,
    media: Option<LineMedia>,
}

/// A file stored with a message: an image is shown in the page, anything else linked.
struct LineMedia {
    url: String,
    inline: bool,
    /// A call recording or voicemail (or any sound): played in the page.
    audio: bool,
    label: String,
}

impl From<&MediaInfo> for LineMedia {
    fn from(m: &MediaInfo) -> Self {
        Self {
            url: format!("/inbox/media/{}", m.message_id),
            inline: shown_inline(&m.content_type),
            audio: m.content_type.starts_with("audio/"),
            label: format!("{} ({} KB)", m.file_name(), (m.size + 1023) / 1024),
        }
    }
}

/// The transcript lines of `messages`, with the files stored with them.
fn lines(messages: Vec<Message>, media: &[MediaInfo]) -> Vec<Line> {
    messages
        .into_iter()
        .map(|m| {
            let file = media
                .iter()
                .find(|f| f.message_id == m.id)
                .map(LineMedia::from);
            Line {
                media: file,
                ..Line::from(m)
            }
        })
        .collect()
}

impl From<Message> for Line {
    fn from(m: Message) -> Self {
        let (who, class) = match m.author {
            Author::Contact => ("Contact", "from-contact"),
            Author::Agent => ("Assistant", "from-agent"),
            Author::Human => ("Team", "from-human"),
            Author::System => ("System", "from-system"),
        };
        Self {
            who,
            class,
            body: m.body.lines().map(str::to_owned).collect(),
            at: human_time(m.created_at),
            media: None,
        }
    }
}

#[derive(Template)]
#[template(path = "inbox_conversation.html")]
struct ConversationPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    id: String,
    contact_id: String,
    contact_name: String,
    channel: String,
    status: &'static str,
    status_label: &'static str,
    taken_over: bool,
    /// The customer asked for a person and nobody has taken it over yet.
    waiting: bool,
    closed: bool,
    lines: Vec<Line>,
    /// Recordings of this conversation Twilio still has (its deletion failed and is
    /// retried), in words.
    recording_deletions: Vec<String>,
    max_reply: usize,
    /// WhatsApp's 24-hour window has closed: only a template can be sent.
    template_needed: bool,
    templates: Vec<TemplateOption>,
    chosen: Option<ChosenTemplate>,
    max_variable: usize,
    /// A phone conversation's calls.
    calls: calls::Calls,
}

/// Query string of a conversation page: the template picked, if any.
#[derive(serde::Deserialize)]
pub struct ConversationQuery {
    template: Option<String>,
}

#[derive(Template)]
#[template(path = "inbox_messages.html")]
struct MessagesFragment {
    lines: Vec<Line>,
}

/// Query string of the inbox pages.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

async fn rows(state: &ConsoleState, filter: Filter) -> Result<Vec<Row>, ConsoleError> {
    let content = content(state);
    let list =
        web::block(move || content.list_conversations(filter.status(), LIST_LIMIT)).await??;
    Ok(list.into_iter().map(Row::from).collect())
}

/// `GET /inbox[?status=open|human|closed|all]`.
pub async fn index(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let filter = Filter::parse(query.status.as_deref());
    let c = content(&state);
    let due = web::block(move || {
        let mut out = Vec::new();
        for f in c.due_followups(crate::platform::store::now())? {
            if f.kind != crate::domain::content::FollowupKind::Reminder {
                continue;
            }
            let contact = c
                .contact(&f.contact_id)?
                .map(|d| d.display_name)
                .unwrap_or_default();
            out.push(DueReminder {
                contact,
                due: human_time(f.due_at),
                contact_id: f.contact_id,
                text: f.text,
            });
        }
        Ok::<_, crate::domain::content::ContentError>(out)
    })
    .await??;
    render(&InboxPage {
        nav: Nav::for_session(&session),
        filter: filter.as_str(),
        tabs: tabs(filter),
        rows: rows(&state, filter).await?,
        due,
    })
}

/// `GET /inbox/list?status=…`: only the table (polled by the inbox page).
pub async fn list_fragment(
    state: web::Data<ConsoleState>,
    _session: ConsoleSession,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let filter = Filter::parse(query.status.as_deref());
    render(&InboxList {
        rows: rows(&state, filter).await?,
    })
}

/// `GET /inbox/{id}`: the transcript and the controls.
pub async fn conversation(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    path: web::Path<String>,
    query: web::Query<ConversationQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let page = conversation_page(&state, &session, id, query.template.as_deref(), None).await?;
    render(&page)
}

/// The conversation page; `typed` refills the template form after an error.
async fn conversation_page(
    state: &ConsoleState,
    session: &ConsoleSession,
    id: String,
    picked: Option<&str>,
    typed: Option<(&wa_templates::TemplateValues, String)>,
) -> Result<ConversationPage, ConsoleError> {
    let content = content(state);
    let (store, conv_id) = (state.store.clone(), id.clone());
    let (template_needed, templates) = web::block(move || {
        let needed = !wa_templates::window_open(&store, &conv_id);
        let templates = if needed {
            wa_templates::cached_templates(&store)
        } else {
            Vec::new()
        };
        (needed, templates)
    })
    .await?;
    let (templates, chosen) = template_picker(&templates, picked, typed);
    let calls = calls::calls(state.store.clone(), id.clone()).await?;
    let store = state.store.clone();
    let (conv, contact, messages, media, pending) = web::block(move || {
        let conv = content
            .conversation(&id)?
            .ok_or(crate::domain::content::ContentError::NotFound)?;
        let contact = content.contact(&conv.contact_id)?;
        let messages = content.recent_messages(&conv.id, TRANSCRIPT_LIMIT)?;
        let media = content.media_of_conversation(&conv.id)?;
        let pending = recording::pending_deletions(&store, &conv.id)?;
        Ok::<_, ConsoleError>((conv, contact, messages, media, pending))
    })
    .await??;
    let recording_deletions = pending
        .iter()
        .map(|p| {
            format!(
                "A recording of this call is still at Twilio: deleting it failed {} time(s) ({}); the node tries again at {}.",
                p.attempts,
                p.last_error.as_deref().unwrap_or("not tried yet"),
                human_time(p.next_attempt_at)
            )
        })
        .collect();
    Ok(ConversationPage {
        nav: Nav::for_session(session),
        contact_name: contact.map(|c| c.display_name).unwrap_or_default(),
        status: conv.status.as_str(),
        status_label: conv.status_label(),
        taken_over: conv.taken_over(),
        waiting: conv.waiting_since.is_some(),
        closed: conv.status == ConversationStatus::Closed,
        lines: lines(messages, &media),
        recording_deletions,
        max_reply: MAX_REPLY_CHARS,
        template_needed,
        templates,
        chosen,
        max_variable: wa_templates::MAX_VARIABLE_CHARS,
        calls,
        id: conv.id,
        contact_id: conv.contact_id,
        channel: conv.channel,
    })
}

/// `GET /inbox/{id}/messages`: only the transcript (polled by the conversation page).
pub async fn messages_fragment(
    state: web::Data<ConsoleState>,
    _session: ConsoleSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let content = content(&state);
    let (messages, media) = web::block(move || {
        Ok::<_, crate::domain::content::ContentError>((
            content.recent_messages(&id, TRANSCRIPT_LIMIT)?,
            content.media_of_conversation(&id)?,
        ))
    })
    .await??;
    render(&MessagesFragment {
        lines: lines(messages, &media),
    })
}

/// `GET /inbox/media/{message}`: the file a customer sent with that message, opened. An
/// image is shown inline, anything else downloaded; the type is the one checked when it
/// was fetched, never sniffed, and the file runs in a sandbox with no rights.
pub async fn media(
    state: web::Data<ConsoleState>,
    _session: ConsoleSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let Ok(id) = path.into_inner().parse::<i64>() else {
        return Err(ConsoleError::NotFound);
    };
    let content = content(&state);
    let file = web::block(move || content.media(id))
        .await??
        .ok_or(ConsoleError::NotFound)?;
    let disposition = if shown_inline(&file.info.content_type) {
        "inline"
    } else {
        "attachment"
    };
    Ok(HttpResponse::Ok()
        .content_type(file.info.content_type.clone())
        .insert_header((
            "Content-Disposition",
            format!("{disposition}; filename=\"{}\"", file.info.file_name()),
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; sandbox"))
        .insert_header(("Cache-Control", "private, no-store"))
        .body(file.data))
}

/// Why a typed reply to a phone call is refused.
const CALL_REPLY_REFUSED: &str = "This conversation is a phone call: a typed reply cannot \
     reach the caller. Take the call while it is live, or call them back from their \
     contact page. Nothing was sent.";

/// Body of `POST /inbox/{id}/reply`.
#[derive(serde::Deserialize)]
pub struct ReplyForm {
    text: String,
}

/// `POST /inbox/{id}/reply`: appends a team member's message, taking the conversation
/// over first when the assistant is in charge.
pub async fn reply(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<ReplyForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let text = form.into_inner().text;
    let text = text.trim();
    if text.is_empty() {
        return Err(ConsoleError::BadRequest("Write a reply first.".into()));
    }
    if text.chars().count() > MAX_REPLY_CHARS {
        return Err(ConsoleError::BadRequest(format!(
            "A reply can be at most {MAX_REPLY_CHARS} characters."
        )));
    }
    let text = text.to_owned();
    let content = content(&state);
    let actor = session.user_id.clone();
    let conv = id.clone();
    web::block(move || {
        let c = content
            .conversation(&conv)?
            .ok_or(crate::domain::content::ContentError::NotFound)?;
        if c.channel == VOICE_CHANNEL {
            // Nothing could carry it to the caller: stored, it would wait forever while
            // the team believes it answered.
            return Err(ConsoleError::BadRequest(CALL_REPLY_REFUSED.into()));
        }
        if !c.taken_over() {
            content.set_status(&conv, ConversationStatus::Human, &actor)?;
        }
        Ok(content.append_message(&conv, Author::Human, &text)?)
    })
    .await??;
    Ok(see_other(&format!("/inbox/{id}")))
}

async fn change_status(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    id: String,
    status: ConversationStatus,
) -> Result<HttpResponse, ConsoleError> {
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let content = content(&state);
    let actor = session.user_id.clone();
    let conv = id.clone();
    web::block(move || content.set_status(&conv, status, &actor)).await??;
    Ok(see_other(&format!("/inbox/{id}")))
}

/// `POST /inbox/{id}/takeover`: a team member answers from now on.
pub async fn takeover(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    change_status(state, session, path.into_inner(), ConversationStatus::Human).await
}

/// `POST /inbox/{id}/handback`: the assistant answers again.
pub async fn handback(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    change_status(state, session, path.into_inner(), ConversationStatus::Open).await
}

/// `POST /inbox/{id}/close`.
pub async fn close(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    change_status(
        state,
        session,
        path.into_inner(),
        ConversationStatus::Closed,
    )
    .await
}

#[cfg(test)]
pub(crate) mod tests;
