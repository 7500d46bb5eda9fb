//! `/api/v1/contacts`: list, read and update contacts (the CRM fields the team edits).

use super::conversations::content;
use super::{check_id, cursor, ApiCaller, ApiError, ErrorJson, PageQuery};
use crate::domain::content::{normalize_tags, ContactDetail, ContactSummary, ContactUpdate, Stage};
use crate::web::console::ConsoleState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A contact.
#[derive(Serialize, ToSchema)]
pub struct ContactJson {
    /// Contact id.
    pub id: String,
    /// The name, if one is known.
    pub name: Option<String>,
    /// Email address the team entered.
    pub email: Option<String>,
    /// Phone number the team entered.
    pub phone: Option<String>,
    /// The channel the contact came from.
    pub channel: String,
    /// `new`, `qualified`, `won` or `lost`.
    pub stage: String,
    /// Lead score, 0–100.
    pub score: i64,
    /// Tags.
    pub tags: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen_at: i64,
}

impl From<ContactDetail> for ContactJson {
    fn from(c: ContactDetail) -> Self {
        Self {
            id: c.id,
            name: c.name,
            email: c.email,
            phone: c.phone,
            channel: c.channel,
            stage: c.stage.as_str().to_owned(),
            score: c.score,
            tags: c.tags,
            created_at: c.created_at,
            last_seen_at: c.last_seen_at,
        }
    }
}

impl From<ContactSummary> for ContactJson {
    fn from(c: ContactSummary) -> Self {
        // The list shows a neutral label for a contact without a name; the API says none.
        let neutral = crate::domain::content::display_name(None, &c.channel, &c.id);
        Self {
            name: (c.display_name != neutral).then_some(c.display_name),
            id: c.id,
            email: c.email,
            phone: c.phone,
            channel: c.channel,
            stage: c.stage.as_str().to_owned(),
            score: c.score,
            tags: c.tags,
            created_at: c.created_at,
            last_seen_at: c.last_seen_at,
        }
    }
}

/// A page of contacts, newest first.
#[derive(Serialize, ToSchema)]
pub struct ContactPage {
    /// This page.
    pub items: Vec<ContactJson>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Changes to a contact; fields left out stay as they are. An empty string removes a
/// name, email or phone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Name.
    pub name: Option<String>,
    /// Email address (`name@example.com`).
    pub email: Option<String>,
    /// Phone number (digits, spaces and `+ ( ) - .`).
    pub phone: Option<String>,
    /// `new`, `qualified`, `won` or `lost`.
    pub stage: Option<String>,
    /// 0–100.
    pub score: Option<i64>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
}

/// Contacts, newest first (by creation).
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
    ),
    responses((status = 200, description = "A page of contacts.", body = ContactPage)))]
pub(crate) async fn list(
    state: web::Data<ConsoleState>,
    _caller: ApiCaller,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let position = q.position()?;
    let content = content(&state);
    let rows = web::block(move || {
        content.contacts_page(position.as_ref().map(|(a, i)| (*a, i.as_str())), limit)
    })
    .await??;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|c| cursor(c.created_at, &c.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(ContactPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id")),
    responses((status = 200, description = "The contact.", body = ContactJson)))]
pub(crate) async fn get(
    state: web::Data<ConsoleState>,
    _caller: ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    check_id(&id)?;
    let content = content(&state);
    let c = web::block(move || content.contact(&id))
        .await??
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(ContactJson::from(c)))
}

/// Updates a contact; each change is on its timeline, by this token.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id")),
    request_body = ContactInput,
    responses(
        (status = 200, description = "The contact as it is now.", body = ContactJson),
        (status = 400, description = "A field breaks its rule (`invalid_input`; the message names it).", body = ErrorJson),
    ))]
pub(crate) async fn update(
    state: web::Data<ConsoleState>,
    caller: ApiCaller,
    path: web::Path<String>,
    body: web::Json<ContactInput>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    check_id(&id)?;
    let input = body.into_inner();
    let stage = input
        .stage
        .map(|s| {
            Stage::parse(&s)
                .ok_or_else(|| ApiError::invalid("`stage` must be new, qualified, won or lost."))
        })
        .transpose()?;
    if input
        .name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "`name` is at most 200 characters, on one line.",
        ));
    }
    if input.tags.as_ref().is_some_and(|t| t.len() > 50) {
        return Err(ApiError::invalid("At most 50 `tags`."));
    }
    let update = ContactUpdate {
        name: input.name.map(|n| n.trim().to_owned()),
        email: input.email,
        phone: input.phone,
        stage,
        score: input.score,
        tags: input.tags.map(normalize_tags),
    };
    let content = content(&state);
    let actor = caller.actor();
    let c = web::block(move || {
        if content.contact(&id)?.is_none() {
            return Err(crate::domain::content::ContentError::NotFound);
        }
        content.update_contact(&id, update, &actor)?;
        content.contact(&id)
    })
    .await??
    .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(ContactJson::from(c)))
}
