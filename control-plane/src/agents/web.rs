//! The agent pages (`/workspaces/{id}/agents…`) and the API
//! (`/api/v1/workspaces/{id}/agents…`): both parse, call [`super::service`], render.

use super::model::{embed_snippet, time_zone_names, Agent, AgentInput};
use super::service::{self, find, list, live_workspace, node_url, require_editor};
use crate::app::openapi::ErrorJson;
use crate::app::State;
use crate::error::{AppError, AppResult};
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::http::{html, html_with};
use crate::infra::db;
use crate::workspaces::{load_for_member, Workspace};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use outpost_protocol::{AgentConfig, ProviderKind};
use serde::{Deserialize, Serialize};

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
            Some(a) => service::update(conn, &st.agents_ctx(), &w, a, &uid, &inp, &ip),
            None => service::create(conn, &st.agents_ctx(), &w, &uid, &inp, &ip),
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
        service::delete(conn, &st.command_notify, &ws_id, &agent_id, &uid, &ip)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, loc))
        .finish())
}

// ---------------------------------------------------------------- API

/// An agent as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AgentView)]
pub(crate) struct AgentJson {
    #[serde(flatten)]
    config: AgentConfig,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    /// The HTML to paste into a website, once the node has an address.
    embed_snippet: Option<String>,
}

/// `GET /api/v1/workspaces/{id}/agents`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AgentList {
    agents: Vec<AgentJson>,
}

fn to_json(a: &Agent, url: Option<&str>) -> AgentJson {
    AgentJson {
        config: a.to_config(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        embed_snippet: url.map(|u| embed_snippet(u, &a.id)),
    }
}

/// The workspace's agents.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/agents", tag = "agents",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Every agent of the workspace.", body = AgentList)))]
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
    Ok(HttpResponse::Ok().json(AgentList { agents: items }))
}

/// Adds an agent; the node gets its configuration.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/agents", tag = "agents",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = AgentInput,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = AgentJson),
        (status = 400, description = "A field breaks its rule (`invalid_agent`; the message names the field), or the body is malformed.", body = ErrorJson),
        (status = 403, description = "Owners and admins only (`admin_required`).", body = ErrorJson),
        (status = 409, description = "The workspace is deleted (`workspace_deleted`) or has its 20 agents (`too_many_agents`).", body = ErrorJson),
    ))]
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
        let a = service::create(conn, &st.agents_ctx(), &ws_id, &user.id, &input, &ip)?;
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

/// One agent.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/agents/{agent}", tag = "agents",
    params(("id" = String, Path, description = "Workspace id"), ("agent" = String, Path, description = "Agent id")),
    responses((status = 200, description = "The agent.", body = AgentJson)))]
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

/// Replaces an agent's settings (fields left out take their defaults); the node gets the
/// new configuration.
#[utoipa::path(put, path = "/api/v1/workspaces/{id}/agents/{agent}", tag = "agents",
    params(("id" = String, Path, description = "Workspace id"), ("agent" = String, Path, description = "Agent id")),
    request_body = AgentInput,
    responses(
        (status = 200, description = "Saved.", body = AgentJson),
        (status = 400, description = "A field breaks its rule (`invalid_agent`; the message names the field), or the body is malformed.", body = ErrorJson),
        (status = 403, description = "Owners and admins only (`admin_required`).", body = ErrorJson),
        (status = 409, description = "The workspace is deleted (`workspace_deleted`).", body = ErrorJson),
    ))]
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
        let a = service::update(
            conn,
            &st.agents_ctx(),
            &ws_id,
            &agent_id,
            &user.id,
            &input,
            &ip,
        )?;
        Ok((a, node_url(conn, &ws_id)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(to_json(&agent, url.as_deref())))
}

/// Removes an agent from the workspace and its node.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/agents/{agent}", tag = "agents",
    params(("id" = String, Path, description = "Workspace id"), ("agent" = String, Path, description = "Agent id")),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "Owners and admins only (`admin_required`).", body = ErrorJson),
        (status = 409, description = "The workspace is deleted (`workspace_deleted`).", body = ErrorJson),
    ))]
pub(crate) async fn api_delete(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (ip, st, (ws_id, agent_id)) = (client_ip(&req), state.clone(), path.into_inner());
    db::run(&state.db, move |conn| {
        service::delete(conn, &st.command_notify, &ws_id, &agent_id, &user.id, &ip)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleared_time_zone_on_the_page_is_refused() {
        let (i, needle) = (
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
        );
        let e =
            super::super::model::validate(&i, db::now(), outpost_common::outbound::Policy::STRICT)
                .err()
                .expect("refused");
        assert!(e.message().contains(needle), "{}", e.message());
    }
}
