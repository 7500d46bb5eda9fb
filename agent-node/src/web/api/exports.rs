//! `/api/v1/exports`: start an export (the whole workspace, or one contact's data for an
//! access request) and follow it until its download link is ready. The link is the same
//! signed, expiring link the console shows: whoever holds it can download the file.

use super::{check_id, ApiCaller, ApiError, ErrorJson};
use crate::domain::exports::{Export, Scope, MAX_TTL_SECS};
use crate::web::console::ConsoleState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What to export.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    /// One contact's data (an access request); leave out for the whole workspace.
    pub contact_id: Option<String>,
    /// How long the download link works, hours: 1–168, default 24.
    pub link_hours: Option<i64>,
}

/// An export.
#[derive(Serialize, ToSchema)]
pub struct ExportJson {
    /// Export id.
    pub id: String,
    /// `workspace` or `contact`.
    pub scope: String,
    /// The contact of a contact export.
    pub contact_id: Option<String>,
    /// `running`, `ready`, `failed` or `expired`.
    pub state: String,
    /// Percent done.
    pub percent: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// When the link stops working, unix seconds.
    pub expires_at: i64,
    /// Size of the zip, bytes (once ready).
    pub size_bytes: i64,
    /// SHA-256 of the zip (once ready).
    pub sha256: Option<String>,
    /// The download link, once ready.
    pub download_url: Option<String>,
}

fn to_json(state: &ConsoleState, e: Export) -> ExportJson {
    let link = state
        .exports
        .link(&e)
        .map(|path| format!("{}{path}", state.origin));
    ExportJson {
        percent: e.percent(),
        id: e.id,
        scope: e.scope,
        contact_id: e.contact_id,
        state: e.state,
        created_at: e.created_at,
        expires_at: e.expires_at,
        size_bytes: e.size_bytes,
        sha256: e.sha256,
        download_url: link,
    }
}

/// Starts an export; follow it with `GET /api/v1/exports/{id}`.
#[utoipa::path(post, path = "/api/v1/exports", tag = "exports",
    request_body = ExportInput,
    responses(
        (status = 202, description = "Started; `Location` names it.", body = ExportJson),
        (status = 400, description = "`link_hours` out of range (`invalid_input`).", body = ErrorJson),
        (status = 404, description = "No such contact (`not_found`).", body = ErrorJson),
    ))]
pub(crate) async fn create(
    state: web::Data<ConsoleState>,
    caller: ApiCaller,
    body: web::Json<ExportInput>,
) -> Result<HttpResponse, ApiError> {
    let ExportInput {
        contact_id,
        link_hours,
    } = body.into_inner();
    let ttl = link_hours.unwrap_or(24).saturating_mul(3600);
    if !(3600..=MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::invalid("`link_hours` must be between 1 and 168."));
    }
    let scope = match contact_id {
        None => Scope::Workspace,
        Some(id) => {
            check_id(&id)?;
            let content = super::conversations::content(&state);
            let check = id.clone();
            if web::block(move || content.contact(&check))
                .await??
                .is_none()
            {
                return Err(ApiError::not_found());
            }
            Scope::Contact(id)
        }
    };
    let id = state
        .exports
        .start(scope, ttl, &caller.actor())
        .map_err(ApiError::internal)?;
    tracing::info!(token = %caller.0.id, export = %id, "export started through the API");
    let exports = state.exports.clone();
    let eid = id.clone();
    let e = web::block(move || exports.get(&eid))
        .await?
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/exports/{id}")))
        .json(to_json(&state, e)))
}

/// An export's state, and its download link once ready.
#[utoipa::path(get, path = "/api/v1/exports/{id}", tag = "exports",
    params(("id" = String, Path, description = "Export id")),
    responses((status = 200, description = "The export.", body = ExportJson)))]
pub(crate) async fn get(
    state: web::Data<ConsoleState>,
    _caller: ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    check_id(&id)?;
    let exports = state.exports.clone();
    let e = web::block(move || exports.get(&id))
        .await?
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(to_json(&state, e)))
}
