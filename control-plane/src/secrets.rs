//! Secrets that never rest in the control plane (DESIGN §3). A member submits an API key
//! or channel credential; the CP validates it with the provider while it is in memory,
//! seals it to the workspace node's age recipient, queues `deliver_secret`, and keeps
//! only a keyed fingerprint, the last four characters and the validation and delivery
//! times. The sealed command waits at most an hour for the node; its payload is deleted
//! when the node acknowledges it.
//!
//! The value is an [`outpost_crypto::Secret`] from the moment it is parsed: it prints as
//! `***`, and no error, log line or page ever includes it.

use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult, Code};
use crate::http::PageResult;
use crate::http::{client_ip, ApiUser, CsrfForm, CurrentUser, Empty};
use crate::http::{html, html_with};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::{commands, nodes, workspace_secrets};
use crate::provisioning::{self, state};
use crate::workspaces::{load_for_member, Workspace, ROLE_OWNER};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;
use outpost_crypto::Secret;
use outpost_protocol::CommandKind;
use serde::Deserialize;
use std::time::Duration;

/// How long a sealed secret may wait for the node.
pub const DELIVERY_TTL_SECS: i64 = 3600;
/// Longest value accepted.
const MAX_VALUE_CHARS: usize = 4096;
/// How long a provider may take to answer a validation.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Kinds the CP accepts, with their names for people.
pub const KINDS: [(&str, &str); 8] = [
    ("openai_api_key", "OpenAI API key"),
    ("anthropic_api_key", "Anthropic API key"),
    (
        "openai_compatible_api_key",
        "OpenAI-compatible endpoint key",
    ),
    ("telegram_bot_token", "Telegram bot token"),
    ("whatsapp_access_token", "WhatsApp access token"),
    ("whatsapp_app_secret", "WhatsApp app secret"),
    ("whatsapp_phone_number_id", "WhatsApp phone number id"),
    ("whatsapp_verify_token", "WhatsApp webhook verify token"),
];

/// Name of a kind for people.
pub fn label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("secret", |(_, l)| l)
}

/// What the CP keeps about one secret.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workspace_secrets)]
pub struct SecretRow {
    /// Workspace.
    pub workspace_id: String,
    /// Kind.
    pub kind: String,
    /// Keyed fingerprint (12 hex).
    pub fingerprint: String,
    /// Last four characters.
    pub last4: String,
    /// When the provider accepted it, if it could be checked.
    pub validated_at: Option<i64>,
    /// When the node stored it.
    pub delivered_at: Option<i64>,
    /// pending, delivered, failed, expired, removing.
    pub status: String,
    /// Why delivery failed.
    pub error_code: Option<String>,
    /// The delivering command.
    pub command_id: Option<String>,
    /// Last change.
    pub updated_at: i64,
}

impl SecretRow {
    /// Kind for people.
    pub fn label(&self) -> &'static str {
        label(&self.kind)
    }

    /// Status in words.
    pub fn status_text(&self) -> String {
        match self.status.as_str() {
            "pending" => "waiting for your node (sealed; at most 1 hour)".into(),
            "delivered" => "delivered to your node".into(),
            "expired" => {
                "not delivered: your node was unreachable for an hour. Submit it again.".into()
            }
            "removing" => "being removed from your node".into(),
            "failed" => format!(
                "your node could not store it ({})",
                self.error_code.as_deref().unwrap_or("unknown")
            ),
            other => other.into(),
        }
    }
}

/// Why a provider did not accept a credential, in words for the user.
fn refused(code: Code, msg: &str) -> AppError {
    AppError::invalid(code, format!("{msg} Nothing was saved."))
}

/// Checks a credential with its provider. `Ok(true)` validated, `Ok(false)` cannot be
/// checked with the provider (app secrets, verify tokens).
pub async fn validate(
    st: &State,
    kind: &str,
    value: &Secret,
    base_url: Option<&str>,
    phone_number_id: Option<&str>,
) -> AppResult<bool> {
    let p = &st.config.providers;
    let c = &st.http;
    let req = match kind {
        "openai_api_key" => c
            .get(format!("{}/models", p.openai))
            .bearer_auth(value.expose()),
        "openai_compatible_api_key" => {
            let base = base_url
                .filter(|b| b.starts_with("https://") || b.starts_with("http://"))
                .ok_or_else(|| {
                    AppError::invalid(
                        Code::BaseUrlRequired,
                        "Give the endpoint's base URL, e.g. https://api.deepseek.com/v1.",
                    )
                })?;
            c.get(format!("{}/models", base.trim_end_matches('/')))
                .bearer_auth(value.expose())
        }
        "anthropic_api_key" => c
            .get(format!("{}/models", p.anthropic))
            .header("x-api-key", value.expose())
            .header("anthropic-version", "2023-06-01"),
        "telegram_bot_token" => {
            if !value
                .expose()
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == ':' || ch == '_' || ch == '-')
            {
                return Err(refused(
                    Code::SecretInvalid,
                    "That is not a Telegram bot token (it looks like 123456:ABC-DEF…).",
                ));
            }
            c.get(format!("{}/bot{}/getMe", p.telegram, value.expose()))
        }
        "whatsapp_access_token" => {
            let id = phone_number_id
                .filter(|i| !i.is_empty() && i.chars().all(|ch| ch.is_ascii_digit()))
                .ok_or_else(|| {
                    AppError::invalid(
                        Code::PhoneNumberIdRequired,
                        "Give the WhatsApp phone number id (digits) to check the token against.",
                    )
                })?;
            c.get(format!("{}/{id}", p.graph))
                .query(&[("fields", "id")])
                .bearer_auth(value.expose())
        }
        "whatsapp_app_secret" | "whatsapp_verify_token" | "whatsapp_phone_number_id" => {
            return Ok(false)
        }
        _ => {
            return Err(AppError::invalid(
                Code::UnknownSecretKind,
                "Choose one of the listed kinds.",
            ))
        }
    };
    let resp = match tokio::time::timeout(VALIDATION_TIMEOUT, req.send()).await {
        Err(_) => {
            tracing::info!(kind, code = "provider_timeout", "secret validation failed");
            return Err(refused(
                Code::ProviderUnreachable,
                "The provider did not answer in time.",
            ));
        }
        Ok(Err(_)) => {
            tracing::info!(
                kind,
                code = "provider_unreachable",
                "secret validation failed"
            );
            return Err(refused(
                Code::ProviderUnreachable,
                "The provider could not be reached.",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    tracing::info!(kind, status, "secret validated with the provider");
    match status {
        200..=299 => Ok(true),
        401 | 403 => Err(refused(
            Code::SecretInvalid,
            "The provider rejected it: it is invalid or has been revoked.",
        )),
        // Telegram answers 404 for a malformed or unknown bot token.
        404 if kind == "telegram_bot_token" => Err(refused(
            Code::SecretInvalid,
            "Telegram does not know this bot token.",
        )),
        429 => Err(refused(
            Code::ProviderRateLimited,
            "The provider is rate-limiting requests right now; try again in a minute.",
        )),
        n => Err(refused(
            Code::ProviderError,
            &format!("The provider gave an unexpected answer (HTTP {n})."),
        )),
    }
}

/// The node a workspace's secrets go to: enrolled, not being destroyed.
fn target_node(conn: &mut DbConn, ws_id: &str) -> AppResult<(String, String)> {
    nodes::table
        .filter(nodes::workspace_id.eq(ws_id))
        .filter(nodes::enrolled_at.is_not_null())
        .filter(nodes::state.ne_all([state::DEPROVISIONING, state::DESTROYED]))
        .select((nodes::id, nodes::age_recipient))
        .first::<(String, Option<String>)>(conn)
        .optional()?
        .and_then(|(id, r)| r.map(|r| (id, r)))
        .ok_or_else(|| {
            AppError::Conflict(
                Code::NodeNotReady,
                "Your node is not running yet; secrets can be added once it is healthy.".into(),
            )
        })
}

fn require_admin(role: &str) -> AppResult<()> {
    if role == ROLE_OWNER || role == "admin" {
        Ok(())
    } else {
        Err(AppError::Forbidden(Code::AdminRequired))
    }
}

/// The keyed fingerprint the CP keeps: 12 hex of HMAC-SHA256(fingerprint key, value).
pub fn fingerprint(key: &[u8], value: &Secret) -> String {
    outpost_crypto::secret_fingerprint(key, value)
}

/// Seals a validated secret to the node, queues its delivery and records the metadata.
#[allow(clippy::too_many_arguments)]
pub fn seal_and_queue(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
    kind: &str,
    value: &Secret,
    validated: bool,
    ip: &str,
) -> AppResult<String> {
    let (node_id, recipient) = target_node(conn, ws_id)?;
    let sealed = outpost_crypto::seal_to_recipient(&recipient, value.expose().as_bytes())
        .map_err(|e| AppError::internal(anyhow::anyhow!("sealing to the node: {e}")))?;
    let chars: Vec<char> = value.expose().chars().collect();
    let last4: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    let fp = fingerprint(&st.fingerprint_key, value);
    let now = db::now();
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        // A newer value supersedes one still waiting.
        let previous: Option<Option<String>> = workspace_secrets::table
            .find((ws_id, kind))
            .select(workspace_secrets::command_id)
            .first(conn)
            .optional()?;
        if let Some(Some(old)) = &previous {
            diesel::delete(
                commands::table
                    .find(&old)
                    .filter(commands::delivered_at.is_null()),
            )
            .execute(conn)?;
        }
        let cmd = provisioning::queue_command(
            conn,
            &node_id,
            &CommandKind::DeliverSecret {
                secret_kind: kind.to_owned(),
                sealed,
            },
        )?;
        diesel::update(commands::table.find(&cmd))
            .set(commands::expires_at.eq(now + DELIVERY_TTL_SECS))
            .execute(conn)?;
        diesel::delete(workspace_secrets::table.find((ws_id, kind))).execute(conn)?;
        diesel::insert_into(workspace_secrets::table)
            .values((
                workspace_secrets::workspace_id.eq(ws_id),
                workspace_secrets::kind.eq(kind),
                workspace_secrets::fingerprint.eq(&fp),
                workspace_secrets::last4.eq(&last4),
                workspace_secrets::validated_at.eq(validated.then_some(now)),
                workspace_secrets::status.eq("pending"),
                workspace_secrets::command_id.eq(&cmd),
                workspace_secrets::updated_at.eq(now),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(user_id),
                action: if previous.is_some() {
                    "secret.rotated"
                } else {
                    "secret.added"
                },
                object_type: "secret",
                object_id: kind,
                workspace_id: Some(ws_id),
                ip: Some(ip),
                detail: &fp,
            },
        )?;
        Ok(())
    })?;
    st.command_notify.notify(&node_id);
    tracing::info!(workspace = ws_id, kind, fingerprint = %fp, "secret sealed and queued for the node");
    Ok(fp)
}

/// Asks the node to forget a secret and marks it as being removed.
pub fn remove(
    conn: &mut DbConn,
    st: &State,
    ws_id: &str,
    user_id: &str,
    kind: &str,
    ip: &str,
) -> AppResult<()> {
    let (_, role) = load_for_member(conn, ws_id, user_id)?;
    require_admin(&role)?;
    let (node_id, _) = target_node(conn, ws_id)?;
    crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let row: Option<Option<String>> = workspace_secrets::table
            .find((ws_id, kind))
            .select(workspace_secrets::command_id)
            .first(conn)
            .optional()?;
        let Some(old) = row else {
            return Err(AppError::NotFound);
        };
        if let Some(old) = old {
            diesel::delete(
                commands::table
                    .find(&old)
                    .filter(commands::delivered_at.is_null()),
            )
            .execute(conn)?;
        }
        let cmd = provisioning::queue_command(
            conn,
            &node_id,
            &CommandKind::RemoveSecret {
                secret_kind: kind.to_owned(),
            },
        )?;
        diesel::update(workspace_secrets::table.find((ws_id, kind)))
            .set((
                workspace_secrets::status.eq("removing"),
                workspace_secrets::command_id.eq(&cmd),
                workspace_secrets::updated_at.eq(db::now()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(user_id),
                action: "secret.removed",
                object_type: "secret",
                object_id: kind,
                workspace_id: Some(ws_id),
                ip: Some(ip),
                detail: "",
            },
        )?;
        Ok(())
    })?;
    st.command_notify.notify(&node_id);
    Ok(())
}

/// Called when a node acknowledges `deliver_secret` / `remove_secret`.
pub fn on_ack(
    conn: &mut DbConn,
    command_id: &str,
    ok: bool,
    error_code: Option<&str>,
) -> AppResult<()> {
    let row: Option<(String, String, String)> = workspace_secrets::table
        .filter(workspace_secrets::command_id.eq(command_id))
        .select((
            workspace_secrets::workspace_id,
            workspace_secrets::kind,
            workspace_secrets::status,
        ))
        .first(conn)
        .optional()?;
    let Some((ws, kind, status)) = row else {
        return Ok(());
    };
    let now = db::now();
    if status == "removing" && ok {
        diesel::delete(workspace_secrets::table.find((&ws, &kind))).execute(conn)?;
        return Ok(());
    }
    diesel::update(workspace_secrets::table.find((&ws, &kind)))
        .set((
            workspace_secrets::status.eq(if ok { "delivered" } else { "failed" }),
            workspace_secrets::delivered_at.eq(ok.then_some(now)),
            workspace_secrets::error_code.eq(error_code),
            workspace_secrets::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes sealed secrets that waited longer than [`DELIVERY_TTL_SECS`] and tells the
/// user to retry (run by the sweeper).
pub fn expire_undelivered(conn: &mut DbConn) -> AppResult<()> {
    let now = db::now();
    let stale: Vec<String> = commands::table
        .filter(commands::kind.eq("deliver_secret"))
        .filter(commands::acked_at.is_null())
        .filter(commands::expires_at.lt(now))
        .select(commands::id)
        .load(conn)?;
    for id in stale {
        diesel::update(workspace_secrets::table.filter(workspace_secrets::command_id.eq(&id)))
            .set((
                workspace_secrets::status.eq("expired"),
                workspace_secrets::updated_at.eq(now),
            ))
            .execute(conn)?;
        diesel::delete(commands::table.find(&id)).execute(conn)?;
        tracing::info!(command = %id, "undelivered secret expired and deleted");
    }
    Ok(())
}

/// Checks membership and the node, validates with the provider, seals and queues.
/// Returns the fingerprint. Shared by the page and the API.
#[allow(clippy::too_many_arguments)]
async fn add(
    state: &State,
    ws_id: &str,
    user_id: &str,
    ip: &str,
    kind: &str,
    value: Secret,
    base_url: Option<&str>,
    phone_number_id: Option<&str>,
) -> AppResult<String> {
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    db::run(&state.db, move |conn| {
        let (ws, role) = load_for_member(conn, &w, &u)?;
        require_admin(&role)?;
        if ws.deleted_at.is_some() {
            return Err(AppError::NotFound);
        }
        // No node to deliver to: say so before sending the key anywhere.
        target_node(conn, &w)?;
        Ok(())
    })
    .await?;
    if !KINDS.iter().any(|(k, _)| *k == kind) {
        return Err(AppError::invalid(
            Code::UnknownSecretKind,
            "Choose one of the listed kinds.",
        ));
    }
    let n = value.expose().chars().count();
    if n == 0 || n > MAX_VALUE_CHARS || value.expose().contains(char::is_whitespace) {
        return Err(AppError::invalid(
            Code::InvalidSecret,
            "Paste the value without spaces (at most 4,096 characters).",
        ));
    }
    let validated = validate(state, kind, &value, base_url, phone_number_id).await?;
    let (st, w, u, k, ip) = (
        state.clone(),
        ws_id.to_owned(),
        user_id.to_owned(),
        kind.to_owned(),
        ip.to_owned(),
    );
    db::run(&state.db, move |conn| {
        seal_and_queue(conn, &st, &w, &u, &k, &value, validated, &ip)
    })
    .await
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
    kinds: [(&'static str, &'static str); 8],
}

fn rows(conn: &mut DbConn, ws_id: &str) -> AppResult<Vec<SecretRow>> {
    Ok(workspace_secrets::table
        .filter(workspace_secrets::workspace_id.eq(ws_id))
        .order(workspace_secrets::kind.asc())
        .select(SecretRow::as_select())
        .load(conn)?)
}

pub(crate) async fn page(state: State, user: CurrentUser, path: web::Path<String>) -> PageResult {
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
        notice: None,
        kinds: KINDS,
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
    } = f.form;
    let value = Secret::new(value.trim().to_owned());
    let user = f.user;
    let (uid, ip) = (user.id.clone(), client_ip(&req));
    let result = add(
        &state,
        &ws_id,
        &uid,
        &ip,
        &kind,
        value,
        Some(base_url.trim()).filter(|b| !b.is_empty()),
        Some(phone_number_id.trim()),
    )
    .await;
    let (w, u) = (ws_id.clone(), user.id.clone());
    let (workspace, rows) = db::run(&state.db, move |conn| {
        let (ws, _) = load_for_member(conn, &w, &u)?;
        Ok((ws, rows(conn, &w)?))
    })
    .await?;
    match result {
        Ok(fp) => Ok(html(&SecretsPage {
            user,
            workspace,
            rows,
            error: None,
            notice: Some(format!(
                "{} accepted (fingerprint {fp}) and sealed to your node. Outpost keeps only the fingerprint and the last 4 characters.",
                label(&kind)
            )),
            kinds: KINDS,
        })),
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => Ok(html_with(
            HttpResponse::build(e.status()),
            &SecretsPage {
                user,
                workspace,
                rows,
                error: Some(e.message()),
                notice: None,
                kinds: KINDS,
            },
        )),
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
        remove(conn, &st, &ws_id, &uid, &kind, &ip)
    })
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, loc))
        .finish())
}

// ---------------------------------------------------------------- API

/// `POST /api/v1/workspaces/{id}/secrets` body. The value becomes a [`Secret`] at once.
#[derive(Deserialize)]
pub(crate) struct SecretBody {
    kind: String,
    value: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    phone_number_id: Option<String>,
}

fn row_json(r: &SecretRow) -> serde_json::Value {
    serde_json::json!({"kind": r.kind, "fingerprint": r.fingerprint, "last4": r.last4,
        "validated_at": r.validated_at, "delivered_at": r.delivered_at, "status": r.status,
        "error_code": r.error_code})
}

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
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"secrets": list.iter().map(row_json).collect::<Vec<_>>()})))
}

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
    add(
        &state,
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
    )
    .await?;
    let (w, k) = (ws_id.clone(), b.kind.clone());
    let row = db::run(&state.db, move |conn| {
        Ok(workspace_secrets::table
            .find((&w, &k))
            .select(SecretRow::as_select())
            .first(conn)?)
    })
    .await?;
    Ok(HttpResponse::Created().json(row_json(&row)))
}

pub(crate) async fn api_remove(
    state: State,
    req: HttpRequest,
    user: ApiUser,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (ws_id, kind) = path.into_inner();
    let (st, ip) = (state.clone(), client_ip(&req));
    db::run(&state.db, move |conn| {
        remove(conn, &st, &ws_id, &user.id, &kind, &ip)
    })
    .await?;
    Ok(HttpResponse::Accepted().finish())
}
