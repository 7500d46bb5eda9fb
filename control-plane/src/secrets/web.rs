//! The secrets page and the `/api/v1/workspaces/{id}/secrets` API. The submitted value
//! becomes a [`Secret`] at once and goes straight to [`service::add`].

use super::model::SecretKind;
use super::service::{self, require_admin, SecretsCtx};
use super::store::{self, SecretRow};
use crate::app::openapi::ErrorJson;
use crate::app::State;
use crate::error::{AppError, AppResult};
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::http::{html, html_with};
use crate::infra::db::{self, DbConn};
use crate::workspaces::{load_for_member, Workspace};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use outpost_crypto::Secret;
use serde::{Deserialize, Serialize};

/// What the service needs, from the state.
fn ctx(state: &State) -> SecretsCtx<'_> {
    SecretsCtx {
        db: &state.db,
        http: &state.outbound,
        providers: &state.config.providers,
        fingerprint_key: &state.fingerprint_key,
        command_notify: &state.command_notify,
    }
}

// ---------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    user: CurrentUser,
    workspace: Workspace,
    rows: Vec<SecretRow>,
    error: Option<String>,
    notice: Option<String>,
    kinds: &'static [SecretKind],
}

fn rows(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<SecretRow>> {
    Ok(store::rows(conn, ws_id)?)
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// Set by the redirect after a key was accepted: its kind.
    added: Option<String>,
}

pub(crate) async fn page(
    state: State,
    user: CurrentUser,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> PageResult {
    let notice = q.added.as_deref().and_then(SecretKind::parse).map(|k| {
        format!(
            "{} accepted and sealed to your node. Outpost keeps only its fingerprint and last 4 characters.",
            k.label()
        )
    });
    let (uid, ws_id) = (user.id.clone(), path.into_inner());
    let (workspace, rows) = db::run(&state.db, move |conn| {
        // Which keys are set is a setting: owners and admins only, like changing them.
        let (ws, role) = load_for_member(conn, &ws_id, &uid)?;
        require_admin(&role)?;
        Ok((ws, rows(conn, &ws_id)?))
    })
    .await?;
    Ok(html(&SecretsPage {
        user,
        workspace,
        rows,
        error: None,
        notice,
        kinds: SecretKind::ALL,
    }))
}

/// The submitted form. `value` is moved into a [`Secret`] at once.
#[derive(Deserialize)]
pub(crate) struct SecretForm {
    kind: String,
    value: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    phone_number_id: String,
    #[serde(default)]
    account_sid: String,
}

pub(crate) async fn submit(
    state: State,
    req: HttpRequest,
    f: CsrfForm<SecretForm>,
    path: web::Path<String>,
) -> PageResult {
    let ws_id = path.into_inner();
    let SecretForm {
        kind,
        value,
        base_url,
        phone_number_id,
        account_sid,
    } = f.form;
    let value = Secret::new(value.trim().to_owned());
    let user = f.user;
    let (uid, ip) = (user.id.clone(), client_ip(&req));
    let result = service::add(
        &ctx(&state),
        &ws_id,
        &uid,
        &ip,
        &kind,
        value,
        Some(base_url.trim()).filter(|b| !b.is_empty()),
        Some(phone_number_id.trim()),
        Some(account_sid.trim()).filter(|s| !s.is_empty()),
    )
    .await;
    match result {
        // Back to the page, so reloading it never sends the key again.
        Ok(_) => Ok(HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/workspaces/{ws_id}/secrets?added={kind}"),
            ))
            .finish()),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            let (w, u) = (ws_id.clone(), user.id.clone());
            let (workspace, rows) = db::run(&state.db, move |conn| {
                let (ws, _) = load_for_member(conn, &w, &u)?;
                Ok((ws, rows(conn, &w)?))
            })
            .await?;
            Ok(html_with(
                HttpResponse::build(e.status()),
                &SecretsPage {
                    user,
                    workspace,
                    rows,
                    error: Some(e.message()),
                    notice: None,
                    kinds: SecretKind::ALL,
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn remove_page(
    state: State,
    req: HttpRequest,
    f: CsrfForm<Empty>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (ws_id, kind) = path.into_inner();
    let (uid, ip, st) = (f.user.id.clone(), client_ip(&req), state.clone());
    let loc = format!("/workspaces/{ws_id}/secrets");
    db::run(&state.db, move |conn| {
        service::remove(conn, &st.command_notify, &ws_id, &uid, &kind, &ip)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, loc))
        .finish())
}

// ---------------------------------------------------------------- API

/// `POST /api/v1/workspaces/{id}/secrets` body. The value becomes a [`Secret`] at once.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct SecretBody {
    /// What it is: `openai_api_key`, `anthropic_api_key`, `openai_compatible_api_key`,
    /// `telegram_bot_token`, `whatsapp_access_token`, …
    kind: String,
    /// The value: checked with the provider, sealed to the node, never stored here.
    value: String,
    /// The endpoint (OpenAI-compatible keys only).
    #[serde(default)]
    base_url: Option<String>,
    /// WhatsApp's phone number id (WhatsApp tokens only).
    #[serde(default)]
    phone_number_id: Option<String>,
    /// Twilio's Account SID (`AC…`; Twilio auth tokens only): the token is checked with
    /// it, and both are sealed to the node.
    #[serde(default)]
    account_sid: Option<String>,
}

/// What the control plane keeps about a secret (never its value).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Secret)]
pub(crate) struct SecretJson {
    /// `openai_api_key`, `anthropic_api_key`, `openai_compatible_api_key`,
    /// `telegram_bot_token`, `whatsapp_access_token`, …
    kind: String,
    /// A fingerprint of the value, to tell two values apart.
    fingerprint: String,
    /// The value's last four characters.
    last4: String,
    /// When the provider accepted it (unix seconds).
    validated_at: Option<i64>,
    /// When the node confirmed it has it (unix seconds).
    delivered_at: Option<i64>,
    /// `pending` (on its way to the node), `delivered`, `failed`.
    status: String,
    /// Why delivery failed.
    error_code: Option<String>,
}

/// `GET /api/v1/workspaces/{id}/secrets`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SecretList {
    secrets: Vec<SecretJson>,
}

fn row_json(r: &SecretRow) -> SecretJson {
    SecretJson {
        kind: r.kind.clone(),
        fingerprint: r.fingerprint.clone(),
        last4: r.last4.clone(),
        validated_at: r.validated_at,
        delivered_at: r.delivered_at,
        status: r.status.clone(),
        error_code: r.error_code.clone(),
    }
}

/// The workspace's keys and channel credentials, as metadata.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/secrets", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "Every secret's metadata.", body = SecretList),
        (status = 403, description = "Owners and admins only (`admin_required`).", body = ErrorJson),
    ))]
pub(crate) async fn api_list(
    state: State,
    user: ApiUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let ws_id = path.into_inner();
    let list = db::run(&state.db, move |conn| {
        let (_, role) = load_for_member(conn, &ws_id, &user.id)?;
        require_admin(&role)?;
        rows(conn, &ws_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(SecretList {
        secrets: list.iter().map(row_json).collect(),
    }))
}

/// Validates a key with its provider, seals it to the workspace's node and sends it there;
/// the control plane keeps only its metadata.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/secrets", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = SecretBody,
    responses(
        (status = 201, description = "Validated and on its way to the node.", body = SecretJson),
        (status = 400, description = "Unknown kind (`unknown_secret_kind`), a value the provider refused (`secret_invalid`, `invalid_secret`), a missing field (`base_url_required`, `phone_number_id_required`, `account_sid_required`), the provider unreachable or failing (`provider_unreachable`, `provider_rate_limited`, `provider_error`), or a malformed body.", body = ErrorJson),
        (status = 403, description = "Owners and admins only (`admin_required`).", body = ErrorJson),
        (status = 409, description = "The node is not running yet (`node_not_ready`).", body = ErrorJson),
    ))]
pub(crate) async fn api_add(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<String>,
    body: web::Json<SecretBody>,
) -> AppResult<HttpResponse> {
    let ws_id = path.into_inner();
    let b = body.into_inner();
    let value = Secret::new(b.value.trim().to_owned());
    service::add(
        &ctx(&state),
        &ws_id,
        &user.id,
        &client_ip(&req),
        &b.kind,
        value,
        b.base_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty()),
        b.phone_number_id.as_deref().map(str::trim),
        b.account_sid
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()),
    )
    .await?;
    let (w, k) = (ws_id.clone(), b.kind.clone());
    let row = db::run(&state.db, move |conn| Ok(store::find(conn, &w, &k)?)).await?;
    Ok(HttpResponse::Created().json(row_json(&row)))
}

/// Removes a secret from the node.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/secrets/{kind}", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id"), ("kind" = String, Path, description = "The secret's kind, e.g. `openai_api_key`")),
    responses(
        (status = 202, description = "The node is told to remove it."),
        (status = 400, description = "Unknown kind (`unknown_secret_kind`).", body = ErrorJson),
        (status = 403, description = "Owners and admins only (`admin_required`).", body = ErrorJson),
        (status = 409, description = "The node is not running (`node_not_ready`).", body = ErrorJson),
    ))]
pub(crate) async fn api_remove(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (ws_id, kind) = path.into_inner();
    let (st, ip) = (state.clone(), client_ip(&req));
    db::run(&state.db, move |conn| {
        service::remove(conn, &st.command_notify, &ws_id, &user.id, &kind, &ip)
    })
    .await?;
    Ok(HttpResponse::Accepted().finish())
}
