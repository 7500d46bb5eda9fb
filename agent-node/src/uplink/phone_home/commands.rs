//! Commands: `GET /v1/node/commands?wait=25` long-poll, then for each command execute it
//! at most once (its id is recorded in `executed_commands` with its effects, in one
//! transaction) and ack it. Delivery is at-least-once, so a command seen again is only
//! re-acked with its recorded outcome. A lost ack needs no retry here: the CP redelivers
//! unacked commands on the next poll.

use super::{sleep_or_stop, CallError, Exit, PhoneHome};
use crate::platform::backoff::Backoff;
use crate::platform::store::{self, Store, CONFIG_KEY, SUSPENDED_KEY};
use outpost_protocol::{Command, CommandAck, CommandKind, WorkspaceConfig, MAX_COMMAND_WAIT_SECS};
use rusqlite::Connection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longer than the long-poll, so an idle poll ends with an empty batch, not a timeout.
const POLL_TIMEOUT: Duration = Duration::from_secs(MAX_COMMAND_WAIT_SECS + 10);
const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// Polls and executes commands until `deprovision`, a refused certificate or stop.
pub async fn run(ctx: Arc<PhoneHome>, mut stop: watch::Receiver<bool>) -> anyhow::Result<Exit> {
    let path = format!("/v1/node/commands?wait={MAX_COMMAND_WAIT_SECS}");
    let mut backoff = Backoff::new(Duration::from_secs(1), ctx.max_backoff);
    loop {
        let polled = tokio::select! {
            r = ctx.gateway.get::<serde_json::Value>(&path, POLL_TIMEOUT) => r,
            _ = stop.wait_for(|s| *s) => return Ok(Exit::Stopped),
        };
        match polled {
            Ok(batch) => {
                backoff.reset();
                for raw in batch_items(batch) {
                    if let Some(exit) = handle(&ctx, raw).await {
                        return Ok(exit);
                    }
                }
            }
            Err(CallError::Refused(status)) => {
                tracing::error!(
                    status,
                    "the control plane refuses this node's certificate; stopping the command poll"
                );
                return Ok(Exit::Refused);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "command poll failed"
                );
                if sleep_or_stop(delay, &mut stop).await {
                    return Ok(Exit::Stopped);
                }
            }
        }
    }
}

/// The `commands` array of a batch. Commands are decoded one by one, so a kind this
/// version does not know is refused alone instead of blocking the whole batch.
fn batch_items(batch: serde_json::Value) -> Vec<serde_json::Value> {
    match batch {
        serde_json::Value::Object(mut o) => match o.remove("commands") {
            Some(serde_json::Value::Array(items)) => items,
            _ => vec![],
        },
        _ => vec![],
    }
}

/// Command ids go into a URL path: accept only what the CP issues (UUID-like).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn failed(code: &str) -> CommandAck {
    CommandAck {
        ok: false,
        error_code: Some(code.to_owned()),
        receipt: None,
    }
}

/// Executes (or re-acks) one command; `Some` ends the poll loop.
async fn handle(ctx: &Arc<PhoneHome>, raw: serde_json::Value) -> Option<Exit> {
    let id = raw
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    if !valid_id(&id) {
        tracing::warn!("ignoring a command with a malformed id");
        return None;
    }
    let kind = match serde_json::from_value::<Command>(raw) {
        Ok(Command {
            kind: CommandKind::Deprovision,
            ..
        }) => {
            tracing::info!(command = %id, "deprovision requested");
            return Some(Exit::Deprovision { command_id: id });
        }
        Ok(Command {
            kind:
                CommandKind::Upgrade {
                    url,
                    sha256,
                    signature,
                    version,
                },
            ..
        }) => {
            let release = crate::uplink::upgrade::Release {
                url: &url,
                sha256: &sha256,
                signature: &signature,
                version: &version,
            };
            return upgrade(ctx, &id, &release).await;
        }
        Ok(c) => Some(c.kind),
        Err(_) => None,
    };
    let store = ctx.store.clone();
    let cmd_id = id.clone();
    let c = ctx.clone();
    let ran = tokio::task::spawn_blocking(move || match kind {
        Some(kind @ CommandKind::DeliverSecret { .. }) => {
            let identity = c
                .master
                .open_file(&c.paths.file(crate::platform::config::AGE_IDENTITY_FILE))
                .ok()
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .map(outpost_crypto::Secret::new);
            let Some(age_identity) = identity else {
                tracing::error!("the age identity cannot be opened; secret not delivered");
                return store.run_command_once(&cmd_id, kind.name(), |_| Ok(failed("no_identity")));
            };
            let keys = SecretKeys {
                master: &c.master,
                age_identity: &age_identity,
            };
            execute_with(&store, &cmd_id, &kind, Some(&keys))
        }
        Some(kind) => execute_once(&store, &cmd_id, &kind),
        None => store.run_command_once(&cmd_id, "unknown", |_| Ok(failed("unsupported"))),
    })
    .await;
    let ack = match ran {
        Ok(Ok((ack, replay))) => {
            tracing::info!(command = %id, ok = ack.ok, code = ?ack.error_code, replay, "command executed");
            ack
        }
        Ok(Err(e)) => {
            // Not recorded: the CP redelivers it and it runs again.
            tracing::error!(command = %id, error = %e, "command failed to execute");
            return None;
        }
        Err(e) => {
            tracing::error!(command = %id, error = %e, "command panicked");
            return None;
        }
    };
    let path = format!("/v1/node/commands/{id}/ack");
    match ctx
        .gateway
        .post::<_, serde::de::IgnoredAny>(&path, &ack, ACK_TIMEOUT)
        .await
    {
        Ok(_) => None,
        Err(CallError::Refused(status)) => {
            tracing::error!(command = %id, status, "ack refused: certificate not accepted");
            Some(Exit::Refused)
        }
        Err(e) => {
            tracing::warn!(command = %id, error = %e, "ack not delivered; the command will be re-acked");
            None
        }
    }
}

/// `upgrade`: install the release and ack, then end the loop for a restart into it. A
/// redelivery to the new binary (the ack was lost) finds it already running and acks
/// again; a refusal is acked with its code and the node keeps running.
async fn upgrade(
    ctx: &Arc<PhoneHome>,
    id: &str,
    release: &crate::uplink::upgrade::Release<'_>,
) -> Option<Exit> {
    let outcome = if release.version == crate::version() {
        tracing::info!(command = %id, version = release.version, "upgrade: already running this version");
        Ok(false)
    } else if let Some(u) = &ctx.upgrade {
        tracing::info!(command = %id, to = release.version, "upgrade requested");
        u.install(release).await.map(|()| true)
    } else {
        Err(crate::uplink::upgrade::refusal::INSTALL_FAILED)
    };
    let ack = match outcome {
        Ok(_) => CommandAck {
            ok: true,
            error_code: None,
            receipt: None,
        },
        Err(code) => failed(code),
    };
    let (store, cmd_id, a) = (ctx.store.clone(), id.to_owned(), ack.clone());
    let recorded =
        tokio::task::spawn_blocking(move || store.run_command_once(&cmd_id, "upgrade", |_| Ok(a)))
            .await;
    if !matches!(recorded, Ok(Ok(_))) {
        tracing::error!(command = %id, "recording the upgrade command failed");
    }
    let path = format!("/v1/node/commands/{id}/ack");
    let delivered = ctx
        .gateway
        .post::<_, serde::de::IgnoredAny>(&path, &ack, ACK_TIMEOUT)
        .await;
    if let Err(e) = &delivered {
        tracing::warn!(command = %id, error = %e, "upgrade ack not delivered; the new binary acks the redelivery");
    }
    match outcome {
        Ok(true) => Some(Exit::Restart),
        _ if matches!(delivered, Err(CallError::Refused(_))) => Some(Exit::Refused),
        _ => None,
    }
}

/// Runs a (non-deprovision) command at most once; returns its ack and whether it was a
/// redelivery.
pub fn execute_once(
    store: &Store,
    id: &str,
    kind: &CommandKind,
) -> store::Result<(CommandAck, bool)> {
    execute_with(store, id, kind, None)
}

/// What `deliver_secret` needs: the master key (to seal the secret at rest) and the
/// node's age identity (to open what the CP sealed to it).
pub struct SecretKeys<'a> {
    /// The master key.
    pub master: &'a crate::platform::keys::MasterKey,
    /// The age identity (`AGE-SECRET-KEY-1…`).
    pub age_identity: &'a outpost_crypto::Secret,
}

/// [`execute_once`] with the keys `deliver_secret` needs.
pub fn execute_with(
    store: &Store,
    id: &str,
    kind: &CommandKind,
    keys: Option<&SecretKeys<'_>>,
) -> store::Result<(CommandAck, bool)> {
    store.run_command_once(id, kind.name(), |tx| apply(tx, kind, keys))
}

/// Opens a delivered secret and stores it sealed under the master key. The CP keeps
/// the fingerprint; the ack says only whether it worked.
fn deliver_secret(
    tx: &Connection,
    keys: Option<&SecretKeys<'_>>,
    secret_kind: &str,
    sealed: &str,
) -> store::Result<CommandAck> {
    use crate::domain::secrets::{SecretKind, SecretSource, SecretStore};
    let Some(keys) = keys else {
        return Ok(failed("unsupported"));
    };
    let Some(kind) = SecretKind::parse(secret_kind) else {
        return Ok(failed("unknown_secret_kind"));
    };
    let Ok(plain) = outpost_crypto::open_with_identity(keys.age_identity, sealed) else {
        return Ok(failed("cannot_open"));
    };
    let Ok(text) = String::from_utf8(plain.to_vec()) else {
        return Ok(failed("cannot_open"));
    };
    let meta = SecretStore::put_in(
        tx,
        keys.master,
        kind,
        &outpost_crypto::Secret::new(text),
        SecretSource::ControlPlane,
    )?;
    tracing::info!(kind = kind.as_str(), fingerprint = %meta.fingerprint, "secret delivered by the control plane");
    Ok(ok())
}

fn ok() -> CommandAck {
    CommandAck {
        ok: true,
        error_code: None,
        receipt: None,
    }
}

fn apply(
    tx: &Connection,
    kind: &CommandKind,
    keys: Option<&SecretKeys<'_>>,
) -> store::Result<CommandAck> {
    Ok(match kind {
        CommandKind::ApplyConfig { config } => {
            let Ok(doc) = serde_json::from_value::<WorkspaceConfig>(config.clone()) else {
                return Ok(failed("malformed_config"));
            };
            let held = Store::meta_in(tx, CONFIG_KEY)?
                .and_then(|raw| serde_json::from_str::<WorkspaceConfig>(&raw).ok())
                .map_or(i64::MIN, |c| c.revision);
            if doc.revision < held {
                // Redelivered after a newer document: keep the newer one.
                tracing::info!(revision = doc.revision, held, "older configuration ignored");
                return Ok(ok());
            }
            Store::set_meta(tx, CONFIG_KEY, &serde_json::to_string(&doc)?)?;
            tracing::info!(
                revision = doc.revision,
                agents = doc.agents.len(),
                "configuration applied"
            );
            ok()
        }
        CommandKind::Suspend { reason_code } => {
            let reason: String = reason_code.chars().take(64).collect();
            Store::set_meta(tx, SUSPENDED_KEY, &reason)?;
            ok()
        }
        CommandKind::Resume => {
            Store::delete_meta(tx, SUSPENDED_KEY)?;
            ok()
        }
        CommandKind::EndConsoleSessions { user_id } => {
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
            ok()
        }
        CommandKind::DeliverSecret {
            secret_kind,
            sealed,
        } => deliver_secret(tx, keys, secret_kind, sealed)?,
        CommandKind::RemoveSecret { secret_kind } => {
            match crate::domain::secrets::SecretKind::parse(secret_kind) {
                Some(kind) => {
                    tx.execute("DELETE FROM secrets WHERE kind = ?1", [kind.as_str()])?;
                    tracing::info!(kind = kind.as_str(), "secret removed by the control plane");
                    ok()
                }
                None => failed("unknown_secret_kind"),
            }
        }
        // Handled by the caller before reaching here; refuse rather than half-do it.
        CommandKind::Deprovision | CommandKind::Upgrade { .. } => failed("unsupported"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_a_users_console_sessions_leaves_the_others_signed_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("open");
        let until = crate::platform::store::now() + 3600;
        for (jti, hash, user) in [
            ("j1", "h1", "carol"),
            ("j2", "h2", "carol"),
            ("j3", "h3", "dave"),
        ] {
            let session = crate::platform::store::Session {
                user_id: user.into(),
                scopes: vec!["console".into(), "inbox".into()],
                expires_at: until,
            };
            assert!(store.sign_in(jti, until, hash, &session).expect("sign in"));
        }
        let end = CommandKind::EndConsoleSessions {
            user_id: "carol".into(),
        };
        let (ack, _) = execute_once(&store, "c1", &end).expect("run");
        assert!(ack.ok);
        assert!(store.session("h1").expect("q").is_none());
        assert!(store.session("h2").expect("q").is_none());
        assert!(
            store.session("h3").expect("q").is_some(),
            "Dave stays signed in"
        );
    }

    #[test]
    fn commands_execute_once_and_redeliveries_reack_the_same_outcome() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("open");
        let suspend = CommandKind::Suspend {
            reason_code: "payment_failed".into(),
        };
        let (ack, replay) = execute_once(&store, "c1", &suspend).expect("run");
        assert!(ack.ok && !replay);
        assert!(store.meta(SUSPENDED_KEY).expect("q").is_some());

        // resume, then a redelivered suspend must not suspend again
        execute_once(&store, "c2", &CommandKind::Resume).expect("resume");
        let (ack, replay) = execute_once(&store, "c1", &suspend).expect("redelivery");
        assert!(ack.ok && replay);
        assert!(
            store.meta(SUSPENDED_KEY).expect("q").is_none(),
            "not re-run"
        );

        let secret = CommandKind::DeliverSecret {
            secret_kind: "openai_api_key".into(),
            sealed: "age".into(),
        };
        let (ack, _) = execute_once(&store, "c3", &secret).expect("run");
        assert!(!ack.ok);
        assert_eq!(
            ack.error_code.as_deref(),
            Some("unsupported"),
            "no keys given"
        );

        let config = |revision: i64, name: &str| CommandKind::ApplyConfig {
            config: serde_json::json!({"revision": revision, "agents": [{"id": "a1", "name": name}]}),
        };
        let stored = || -> WorkspaceConfig {
            serde_json::from_str(&store.meta(CONFIG_KEY).expect("q").expect("config"))
                .expect("json")
        };
        execute_once(&store, "c4", &config(2, "Ava")).expect("run");
        assert_eq!(stored().agents[0].name, "Ava");
        // an older document delivered late does not win
        let (ack, _) = execute_once(&store, "c5", &config(1, "Old")).expect("run");
        assert!(ack.ok);
        assert_eq!(stored().agents[0].name, "Ava");
        let bad = CommandKind::ApplyConfig {
            config: serde_json::json!({"agents": "not a list"}),
        };
        let (ack, _) = execute_once(&store, "c6", &bad).expect("run");
        assert_eq!(ack.error_code.as_deref(), Some("malformed_config"));
    }

    #[test]
    fn delivered_secrets_open_with_this_node_identity_only_and_are_stored_sealed() {
        use crate::domain::secrets::{SecretKind, SecretStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(Store::open(&dir.path().join("node.db")).expect("open"));
        let master = std::sync::Arc::new(crate::platform::keys::MasterKey::from_bytes([5; 32]));
        let (identity, recipient) = outpost_crypto::generate_age_identity();
        let (other, other_recipient) = outpost_crypto::generate_age_identity();
        let keys = SecretKeys {
            master: &master,
            age_identity: &identity,
        };
        let deliver = |sealed: String, kind: &str| CommandKind::DeliverSecret {
            secret_kind: kind.into(),
            sealed,
        };
        let sealed = outpost_crypto::seal_to_recipient(&recipient, b"sk-delivered-canary-1234")
            .expect("seal");
        let (ack, _) = execute_with(
            &store,
            "d1",
            &deliver(sealed, "openai_api_key"),
            Some(&keys),
        )
        .expect("run");
        assert!(ack.ok, "{ack:?}");
        let secrets = SecretStore::new(store.clone(), master.clone());
        assert_eq!(
            secrets
                .get(SecretKind::OpenaiApiKey)
                .expect("get")
                .expect("set")
                .expose(),
            "sk-delivered-canary-1234"
        );
        assert_eq!(secrets.list().expect("list")[0].source, "control_plane");
        // Sealed for another node: refused, nothing stored.
        let foreign = outpost_crypto::seal_to_recipient(&other_recipient, b"x").expect("seal");
        let (ack, _) = execute_with(
            &store,
            "d2",
            &deliver(foreign, "anthropic_api_key"),
            Some(&keys),
        )
        .expect("run");
        assert_eq!(ack.error_code.as_deref(), Some("cannot_open"));
        assert!(secrets
            .get(SecretKind::AnthropicApiKey)
            .expect("get")
            .is_none());
        let _ = other;
        let sealed = outpost_crypto::seal_to_recipient(&recipient, b"x").expect("seal");
        let (ack, _) =
            execute_with(&store, "d3", &deliver(sealed, "future_kind"), Some(&keys)).expect("run");
        assert_eq!(ack.error_code.as_deref(), Some("unknown_secret_kind"));
        let mut bytes = std::fs::read(dir.path().join("node.db")).expect("db");
        bytes.extend(std::fs::read(dir.path().join("node.db-wal")).unwrap_or_default());
        assert!(!bytes.windows(15).any(|w| w == b"delivered-canar"));
    }

    #[test]
    fn batches_are_decoded_per_command_and_ids_are_checked() {
        let batch = serde_json::json!({"commands": [
            {"id": "a", "kind": {"type": "resume"}},
            {"id": "b", "kind": {"type": "from_the_future"}}
        ]});
        let items = batch_items(batch);
        assert_eq!(items.len(), 2);
        assert!(serde_json::from_value::<Command>(items[1].clone()).is_err());
        assert!(batch_items(serde_json::json!([])).is_empty());
        assert!(valid_id("3f1c2a9e-7b7d-4c1e-9a57-1f0f4f3f2a10"));
        assert!(!valid_id("../x") && !valid_id("") && !valid_id("a/b"));
    }
}
