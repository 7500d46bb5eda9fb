//! `/api/v1/conversations`: list and read conversations and their messages, and post a
//! reply as the team (which takes the conversation over, as a reply in the inbox does).

use super::{check_id, cursor, ApiCaller, ApiError, ErrorJson, PageQuery, MAX_LIMIT};
use crate::domain::content::{Author, Content, Conversation, ConversationStatus, Message};
use crate::web::console::ConsoleState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest reply, characters (as in the console).
pub const MAX_REPLY_CHARS: usize = crate::web::console::inbox::MAX_REPLY_CHARS;

/// A conversation.
#[derive(Serialize, ToSchema)]
pub struct ConversationJson {
    /// Conversation id.
    pub id: String,
    /// The contact.
    pub contact_id: String,
    /// The agent answering.
    pub agent_id: String,
    /// `web`, `telegram` or `whatsapp`.
    pub channel: String,
    /// `open` (the assistant answers), `human` (the team has it or is asked for) or `closed`.
    pub status: String,
    /// The customer asked for a person and nobody has taken it over yet.
    pub waiting_for_team: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Last activity, unix seconds.
    pub updated_at: i64,
}

impl From<Conversation> for ConversationJson {
    fn from(c: Conversation) -> Self {
        Self {
            waiting_for_team: c.waiting_since.is_some(),
            status: c.status.as_str().to_owned(),
            id: c.id,
            contact_id: c.contact_id,
            agent_id: c.agent_id,
            channel: c.channel,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A page of conversations, newest first.
#[derive(Serialize, ToSchema)]
pub struct ConversationPage {
    /// This page.
    pub items: Vec<ConversationJson>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A message.
#[derive(Serialize, ToSchema)]
pub struct MessageJson {
    /// Increasing id.
    pub id: i64,
    /// The conversation.
    pub conversation_id: String,
    /// `contact`, `agent` (the assistant), `human` (the team) or `system`.
    pub author: String,
    /// The text.
    pub text: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<Message> for MessageJson {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            author: m.author.as_str().to_owned(),
            text: m.body,
            created_at: m.created_at,
        }
    }
}

/// A page of messages, oldest first.
#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    /// This page.
    pub items: Vec<MessageJson>,
    /// Pass as `cursor` for the next page; `null` when there is nothing newer yet (poll
    /// again with the last cursor you had to get new messages).
    pub next_cursor: Option<String>,
}

/// A reply from the team.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyInput {
    /// The text, 1–4,000 characters.
    pub text: String,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
    status: Option<String>,
}

pub(super) fn content(state: &ConsoleState) -> Content {
    Content::new(state.store.clone(), &state.master)
}

/// Conversations, newest first (by creation).
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
        ("status" = Option<String>, Query, description = "`open`, `human` or `closed`"),
    ),
    responses((status = 200, description = "A page of conversations.", body = ConversationPage)))]
pub(crate) async fn list(
    state: web::Data<ConsoleState>,
    _caller: ApiCaller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let ListQuery {
        cursor: c,
        limit,
        status,
    } = q.into_inner();
    let page = PageQuery { cursor: c, limit };
    let limit = page.limit()?;
    let position = page.position()?;
    let status = status
        .map(|s| {
            ConversationStatus::parse(&s)
                .ok_or_else(|| ApiError::invalid("`status` must be open, human or closed."))
        })
        .transpose()?;
    let content = content(&state);
    let rows = web::block(move || {
        content.conversations_page(
            status,
            position.as_ref().map(|(a, i)| (*a, i.as_str())),
            limit,
        )
    })
    .await??;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|c| cursor(c.created_at, &c.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(ConversationPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One conversation.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "The conversation.", body = ConversationJson)))]
pub(crate) async fn get(
    state: web::Data<ConsoleState>,
    _caller: ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    check_id(&id)?;
    let content = content(&state);
    let conv = web::block(move || content.conversation(&id))
        .await??
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(ConversationJson::from(conv)))
}

/// A conversation's messages, oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
    ),
    responses((status = 200, description = "A page of messages.", body = MessagePage)))]
pub(crate) async fn messages(
    state: web::Data<ConsoleState>,
    _caller: ApiCaller,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    check_id(&id)?;
    let limit = q.limit()?.min(MAX_LIMIT);
    // A message cursor is the last message id (its creation time is not needed: ids grow).
    let after = q.position()?.map_or(0, |(at, _)| at);
    let content = content(&state);
    let rows = web::block(move || content.messages_after(&id, after, limit)).await??;
    let next_cursor = rows.last().map(|m| cursor(m.id, "m"));
    Ok(HttpResponse::Ok().json(MessagePage {
        next_cursor: if rows.len() == limit {
            next_cursor
        } else {
            None
        },
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Posts a reply as the team; the conversation is taken over (the assistant stops
/// answering), as when the team replies in the inbox. The node sends it to the contact
/// on the conversation's channel.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = ReplyInput,
    responses(
        (status = 201, description = "Stored and on its way.", body = MessageJson),
        (status = 400, description = "The text is empty or too long (`invalid_input`).", body = ErrorJson),
    ))]
pub(crate) async fn reply(
    state: web::Data<ConsoleState>,
    caller: ApiCaller,
    path: web::Path<String>,
    body: web::Json<ReplyInput>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    check_id(&id)?;
    let text = body.into_inner().text.trim().to_owned();
    if text.is_empty() {
        return Err(ApiError::invalid("`text` is empty."));
    }
    if text.chars().count() > MAX_REPLY_CHARS {
        return Err(ApiError::invalid(format!(
            "`text` can be at most {MAX_REPLY_CHARS} characters."
        )));
    }
    let content = content(&state);
    let actor = caller.actor();
    let msg = web::block(move || {
        let c = content
            .conversation(&id)?
            .ok_or(crate::domain::content::ContentError::NotFound)?;
        if !c.taken_over() {
            content.set_status(&id, ConversationStatus::Human, &actor)?;
        }
        content.append_message(&id, Author::Human, &text)
    })
    .await??;
    Ok(HttpResponse::Created().json(MessageJson::from(msg)))
}
