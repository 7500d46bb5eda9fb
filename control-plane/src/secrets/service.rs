//! Adding, rotating and removing a secret, the node's acknowledgement, and the expiry of
//! undelivered ones (run by the sweeper).

use super::model::{self, SecretKind, SecretStatus, DELIVERY_TTL_SECS};
use super::store::{self, NewSecret};
use super::validate::validate;
use crate::audit::{self, Entry};
use crate::config::ProviderUrls;
use crate::error::{AppError, AppResult, Code};
use crate::infra::db::{self, DbConn, DbPool};
use crate::infra::wake::CommandNotify;
use crate::provisioning;
use crate::workspaces::{load_for_member, ROLE_OWNER};
use outpost_crypto::Secret;
use outpost_protocol::CommandKind;

/// What adding a secret needs from the application (built by `web.rs` from the state).
pub struct SecretsCtx<'a> {
    /// Database pool.
    pub db: &'a DbPool,
    /// Client for the providers, under the outbound-URL policy.
    pub http: &'a outpost_common::outbound::Client,
    /// Where the providers are.
    pub providers: &'a ProviderUrls,
    /// Keys the fingerprints.
    pub fingerprint_key: &'a [u8],
    /// Wakes the node's long-poll.
    pub command_notify: &'a CommandNotify,
}

/// The node a workspace's secrets go to: enrolled, not being destroyed.
fn target_node(conn: &mut DbConn, ws_id: &str) -> AppResult<(String, String)> {
    store::target_node(conn, ws_id)?.ok_or_else(|| {
        AppError::Conflict(
            Code::NodeNotReady,
            "Your node is not running yet; secrets can be added once it is healthy.".into(),
        )
    })
}

/// Secrets are settings: owners and admins only.
pub(crate) fn require_admin(role: &str) -> AppResult<()> {
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

/// A value sealed and queued.
pub struct Sealed {
    /// Its keyed fingerprint.
    pub fingerprint: String,
    /// The node it waits for (to wake).
    pub node_id: String,
}

/// Seals a validated secret to the node, queues its delivery and records the metadata.
/// The caller wakes [`Sealed::node_id`].
#[allow(clippy::too_many_arguments)]
pub fn seal_and_queue(
    conn: &mut DbConn,
    fingerprint_key: &[u8],
    ws_id: &str,
    user_id: &str,
    kind: SecretKind,
    value: &Secret,
    validated: bool,
    ip: &str,
) -> AppResult<Sealed> {
    let (node_id, recipient) = target_node(conn, ws_id)?;
    let sealed = outpost_crypto::seal_to_recipient(&recipient, value.expose().as_bytes())
        .map_err(|e| AppError::internal(anyhow::anyhow!("sealing to the node: {e}")))?;
    let last4 = model::last4(value);
    let fp = fingerprint(fingerprint_key, value);
    let now = db::now();
    let kind = kind.as_str();
    db::transaction::<_, AppError, _>(conn, |conn| {
        // A newer value supersedes one still waiting.
        let previous = store::command_of(conn, ws_id, kind)?;
        if let Some(Some(old)) = &previous {
            store::drop_undelivered_command(conn, old)?;
        }
        let cmd = provisioning::queue_command(
            conn,
            &node_id,
            &CommandKind::DeliverSecret {
                secret_kind: kind.to_owned(),
                sealed,
            },
        )?;
        store::set_command_expiry(conn, &cmd, now + DELIVERY_TTL_SECS)?;
        store::put_pending(
            conn,
            &NewSecret {
                workspace_id: ws_id,
                kind,
                fingerprint: &fp,
                last4: &last4,
                validated_at: validated.then_some(now),
                command_id: &cmd,
                now,
            },
        )?;
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
    tracing::info!(workspace = ws_id, kind, fingerprint = %fp, "secret sealed and queued for the node");
    Ok(Sealed {
        fingerprint: fp,
        node_id,
    })
}

/// Asks the node to forget a secret and marks it as being removed.
pub fn remove(
    conn: &mut DbConn,
    command_notify: &CommandNotify,
    ws_id: &str,
    user_id: &str,
    kind: &str,
    ip: &str,
) -> AppResult<()> {
    let (_, role) = load_for_member(conn, ws_id, user_id)?;
    require_admin(&role)?;
    let (node_id, _) = target_node(conn, ws_id)?;
    db::transaction::<_, AppError, _>(conn, |conn| {
        let Some(old) = store::command_of(conn, ws_id, kind)? else {
            return Err(AppError::NotFound);
        };
        if let Some(old) = old {
            store::drop_undelivered_command(conn, &old)?;
        }
        let cmd = provisioning::queue_command(
            conn,
            &node_id,
            &CommandKind::RemoveSecret {
                secret_kind: kind.to_owned(),
            },
        )?;
        store::mark_removing(conn, ws_id, kind, &cmd, db::now())?;
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
    command_notify.notify(&node_id);
    Ok(())
}

/// Called when a node acknowledges `deliver_secret` / `remove_secret`.
pub fn on_ack(
    conn: &mut DbConn,
    command_id: &str,
    ok: bool,
    error_code: Option<&str>,
) -> AppResult<()> {
    let Some((ws, kind, status)) = store::by_command(conn, command_id)? else {
        return Ok(());
    };
    let now = db::now();
    if status == SecretStatus::Removing.as_str() && ok {
        store::delete(conn, &ws, &kind)?;
        return Ok(());
    }
    store::mark_delivery(conn, &ws, &kind, ok, error_code, now)?;
    Ok(())
}

/// Deletes sealed secrets that waited longer than [`DELIVERY_TTL_SECS`] and tells the
/// user to retry (run by the sweeper).
pub fn expire_undelivered(conn: &mut DbConn) -> AppResult<()> {
    let now = db::now();
    for id in store::expired_deliveries(conn, now)? {
        store::expire_delivery(conn, &id, now)?;
        tracing::info!(command = %id, "undelivered secret expired and deleted");
    }
    Ok(())
}

/// Checks membership and the node, validates with the provider, seals and queues.
/// Returns the fingerprint. Shared by the page and the API.
#[allow(clippy::too_many_arguments)]
pub async fn add(
    ctx: &SecretsCtx<'_>,
    ws_id: &str,
    user_id: &str,
    ip: &str,
    kind: &str,
    value: Secret,
    base_url: Option<&str>,
    phone_number_id: Option<&str>,
    account_sid: Option<&str>,
) -> AppResult<String> {
    let (w, u) = (ws_id.to_owned(), user_id.to_owned());
    db::run(ctx.db, move |conn| {
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
    let kind = model::parse_kind(kind)?;
    model::check_value(&value)?;
    let validated = validate(
        ctx.http,
        ctx.providers,
        kind,
        &value,
        base_url,
        phone_number_id,
        account_sid,
    )
    .await?;
    let (key, w, u, ip) = (
        ctx.fingerprint_key.to_vec(),
        ws_id.to_owned(),
        user_id.to_owned(),
        ip.to_owned(),
    );
    // The phone number id the access token was checked with is what the node sends
    // from: it goes with the token, so the owner does not have to save it again.
    let phone_number_id = match (kind, phone_number_id.map(str::trim)) {
        (SecretKind::WhatsappAccessToken, Some(id)) if !id.is_empty() => {
            Some(Secret::new(id.to_owned()))
        }
        _ => None,
    };
    // Likewise the Account SID a Twilio auth token was checked with: the node needs both
    // to call Twilio and to check its webhooks' signatures.
    let companion = match kind {
        SecretKind::WhatsappAccessToken => {
            phone_number_id.map(|id| (SecretKind::WhatsappPhoneNumberId, id))
        }
        SecretKind::TwilioAuthToken => account_sid.map(|sid| {
            (
                SecretKind::TwilioAccountSid,
                Secret::new(sid.trim().to_owned()),
            )
        }),
        _ => None,
    };
    let sealed = db::run(ctx.db, move |conn| {
        if let Some((companion_kind, id)) = &companion {
            seal_and_queue(conn, &key, &w, &u, *companion_kind, id, validated, &ip)?;
        }
        seal_and_queue(conn, &key, &w, &u, kind, &value, validated, &ip)
    })
    .await?;
    ctx.command_notify.notify(&sealed.node_id);
    Ok(sealed.fingerprint)
}
