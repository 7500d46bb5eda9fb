//! Use cases of a fleet upgrade: start one (the CLI), move it along (the fleet sweeper,
//! every 2 s, on any replica: every step is a conditional update, so two replicas never
//! send a node two commands), and say where it is.

use super::model::{self, node_state, state, InFlight, Verdict};
use super::store::{self, Upgrade};
use crate::audit::{self, Entry};
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use outpost_protocol::CommandKind;

/// What the operator asks for.
pub struct Release {
    /// Download URL of the `agent-node` binary.
    pub url: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The release key's signature over it (base64url).
    pub signature: String,
    /// The version the binary reports.
    pub version: String,
}

/// A started upgrade, for the operator's words.
pub struct Started {
    /// Its id.
    pub id: String,
    /// The canary: `(node id, workspace slug)`.
    pub canary: (String, String),
    /// Nodes after the canary.
    pub others: usize,
}

/// Starts an upgrade of every healthy node not on `release.version`: checked first
/// (digest, signature against `release_key` when the CP has one, nothing else running,
/// some node to upgrade); `Ok(Err(why))` says in words why not.
pub fn start(
    conn: &mut DbConn,
    release: &Release,
    batch_size: i32,
    release_key: Option<&str>,
    actor: &str,
) -> AppResult<Result<Started, String>> {
    if !outpost_crypto::release::is_sha256_hex(&release.sha256) {
        return Ok(Err("--sha256 must be 64 hex digits".into()));
    }
    let version = release.version.trim();
    if version.is_empty() || version.len() > 64 {
        return Ok(Err(
            "--version must name the version the binary reports".into()
        ));
    }
    if !(1..=model::MAX_BATCH).contains(&batch_size) {
        return Ok(Err(format!(
            "--batch-size must be between 1 and {}",
            model::MAX_BATCH
        )));
    }
    match release_key.map(outpost_crypto::release::ReleaseKey::from_b64) {
        None => {
            return Ok(Err(
                "OUTPOST_RELEASE_PUBLIC_KEY is not set: nodes would refuse the release, and the signature cannot be checked here".into(),
            ))
        }
        Some(Err(_)) => return Ok(Err("OUTPOST_RELEASE_PUBLIC_KEY is not a valid key".into())),
        Some(Ok(key)) => {
            if key.verify(&release.sha256, &release.signature).is_err() {
                return Ok(Err(
                    "the signature does not verify with OUTPOST_RELEASE_PUBLIC_KEY over this SHA-256: nodes would refuse it".into(),
                ));
            }
        }
    }
    let release_url = url::Url::parse(&release.url).ok();
    if !release_url.is_some_and(|u| matches!(u.scheme(), "https" | "http")) {
        return Ok(Err("--url must be an http(s) URL".into()));
    }
    db::transaction(conn, |conn| {
        if let Some(u) = store::running(conn)? {
            return Ok(Err(format!(
                "upgrade {} to {} is still running; wait for it to complete or halt",
                u.id, u.version
            )));
        }
        let nodes = store::eligible_nodes(conn, version)?;
        let Some(canary) = nodes.first().cloned() else {
            return Ok(Err(format!(
                "no healthy node runs a version other than {version}: nothing to upgrade"
            )));
        };
        let ids: Vec<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
        let waves = model::plan_waves(&ids, usize::try_from(batch_size).unwrap_or(1));
        let u = Upgrade {
            id: db::new_id(),
            version: version.to_owned(),
            url: release.url.clone(),
            sha256: release.sha256.to_ascii_lowercase(),
            signature: release.signature.clone(),
            batch_size,
            state: state::RUNNING.into(),
            halted_reason: None,
            created_by: actor.to_owned(),
            created_at: db::now(),
            updated_at: db::now(),
        };
        store::insert(conn, &u, &waves)?;
        audit::record(
            conn,
            &Entry {
                actor: Some(actor),
                action: "upgrade.started",
                object_type: "upgrade",
                object_id: &u.id,
                detail: &u.version,
                ..Default::default()
            },
        )?;
        tracing::info!(upgrade = %u.id, version = %u.version, nodes = ids.len(), "fleet upgrade started");
        Ok(Ok(Started {
            id: u.id,
            canary,
            others: ids.len() - 1,
        }))
    })
}

/// Halts the running upgrade at an operator's request (`actor`, from `ip`): no further
/// wave is sent; nodes already sent the command finish their own upgrade. `Ok(Err(why))`
/// when there is nothing to halt.
pub fn halt(conn: &mut DbConn, actor: &str, ip: Option<&str>) -> AppResult<Result<String, String>> {
    db::transaction(conn, |conn| {
        let Some(u) = store::running(conn)? else {
            return Ok(Err("no upgrade is running: there is nothing to halt".into()));
        };
        let why = format!("halted by an operator ({actor}); `upgrade resume` carries on");
        if !store::finish(conn, &u.id, state::HALTED, Some(&why), db::now())? {
            return Ok(Err(format!("upgrade {} stopped meanwhile", u.id)));
        }
        audit::record(
            conn,
            &Entry {
                actor: Some(actor),
                action: "upgrade.halted",
                object_type: "upgrade",
                object_id: &u.id,
                ip,
                detail: &u.version,
                ..Default::default()
            },
        )?;
        tracing::warn!(upgrade = %u.id, version = %u.version, "fleet upgrade halted by an operator");
        Ok(Ok(format!(
            "upgrade {} to {} halted: no further wave is sent (nodes already sent it finish theirs)",
            u.id, u.version
        )))
    })
}

/// Resumes the newest upgrade if it halted: it runs again from where it stopped, the
/// nodes done stay done, and a node it halted on is sent the release again (its refusal
/// or timeout halts it again, in words, if the cause is still there). Only the newest
/// upgrade resumes, and not while another runs. `Ok(Err(why))` says why not.
pub fn resume(
    conn: &mut DbConn,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<Result<String, String>> {
    db::transaction(conn, |conn| {
        let Some(u) = store::latest(conn, 1)?.into_iter().next() else {
            return Ok(Err("there is no upgrade to resume".into()));
        };
        if u.state != state::HALTED {
            return Ok(Err(format!(
                "the newest upgrade ({} to {}) is {}: only a halted upgrade resumes",
                u.id, u.version, u.state
            )));
        }
        let now = db::now();
        let retried = store::reset_failed_nodes(conn, &u.id)?;
        if !store::reopen(conn, &u.id, now)? {
            return Ok(Err(format!("upgrade {} changed meanwhile", u.id)));
        }
        audit::record(
            conn,
            &Entry {
                actor: Some(actor),
                action: "upgrade.resumed",
                object_type: "upgrade",
                object_id: &u.id,
                ip,
                detail: &u.version,
                ..Default::default()
            },
        )?;
        let nodes = store::nodes_of(conn, &u.id)?;
        let done = nodes.iter().filter(|n| n.state == node_state::DONE).count();
        tracing::info!(upgrade = %u.id, version = %u.version, "fleet upgrade resumed");
        Ok(Ok(format!(
            "upgrade {} to {} resumed: {done} of {} nodes done, {retried} node(s) it halted on sent the release again",
            u.id,
            u.version,
            nodes.len()
        )))
    })
}

/// One step of the running upgrade, if any: judge the nodes in flight, then send the
/// next wave when the one before is done. Returns the nodes sent a command (to wake
/// their long-poll).
pub fn advance(conn: &mut DbConn, timeout_secs: i64) -> AppResult<Vec<String>> {
    let Some(u) = store::running(conn)? else {
        return Ok(vec![]);
    };
    db::transaction(conn, |conn| step(conn, &u, timeout_secs))
}

fn step(conn: &mut DbConn, u: &Upgrade, timeout_secs: i64) -> AppResult<Vec<String>> {
    let now = db::now();
    let nodes = store::nodes_of(conn, &u.id)?;
    let Some(wave) = nodes
        .iter()
        .filter(|n| n.state != node_state::DONE)
        .map(|n| n.wave)
        .min()
    else {
        if store::finish(conn, &u.id, state::COMPLETED, None, now)? {
            record(conn, u, "upgrade.completed")?;
            tracing::info!(upgrade = %u.id, version = %u.version, "fleet upgrade completed");
        }
        return Ok(vec![]);
    };
    let mut woken = vec![];
    for n in nodes.iter().filter(|n| n.wave == wave) {
        match n.state.as_str() {
            node_state::PENDING => {
                let command_id = db::new_id();
                if store::mark_sent(conn, &u.id, &n.node_id, &command_id, now)? {
                    let kind = CommandKind::Upgrade {
                        url: u.url.clone(),
                        sha256: u.sha256.clone(),
                        signature: u.signature.clone(),
                        version: u.version.clone(),
                    };
                    crate::provisioning::queue_command_with_id(
                        conn,
                        &command_id,
                        &n.node_id,
                        &kind,
                    )?;
                    woken.push(n.node_id.clone());
                }
            }
            node_state::SENT => {
                let (node_st, version) = store::node_facts(conn, &n.node_id)?
                    .unwrap_or_else(|| ("destroyed".into(), None));
                let ack = match &n.command_id {
                    Some(c) => store::ack_of(conn, c)?,
                    None => None,
                };
                let verdict = model::judge(
                    &InFlight {
                        node_id: &n.node_id,
                        state: &node_st,
                        version: version.as_deref(),
                        ack: ack.as_ref().map(|(ok, c)| (*ok, c.as_deref())),
                        waited_secs: now - n.sent_at.unwrap_or(now),
                    },
                    &u.version,
                    timeout_secs,
                );
                match verdict {
                    Verdict::Wait => {}
                    Verdict::Done => {
                        store::finish_node(conn, &u.id, &n.node_id, node_state::DONE, now)?;
                        tracing::info!(upgrade = %u.id, node = %n.node_id, version = %u.version, "node upgraded");
                    }
                    Verdict::Halt(why) => {
                        store::finish_node(conn, &u.id, &n.node_id, node_state::FAILED, now)?;
                        if store::finish(conn, &u.id, state::HALTED, Some(&why), now)? {
                            record(conn, u, "upgrade.halted")?;
                            tracing::warn!(upgrade = %u.id, node = %n.node_id, reason = %why, "fleet upgrade halted");
                        }
                        return Ok(woken);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(woken)
}

fn record(conn: &mut DbConn, u: &Upgrade, action: &str) -> AppResult<()> {
    audit::record(
        conn,
        &Entry {
            actor: Some("system"),
            action,
            object_type: "upgrade",
            object_id: &u.id,
            detail: &u.version,
            ..Default::default()
        },
    )
}

/// The newest upgrades in words, newest first: a line for the upgrade, then one per node.
pub fn status(conn: &mut DbConn, limit: i64) -> AppResult<Vec<String>> {
    let mut out = vec![];
    for u in store::latest(conn, limit)? {
        let nodes = store::nodes_of(conn, &u.id)?;
        let done = nodes.iter().filter(|n| n.state == node_state::DONE).count();
        let mut line = format!(
            "upgrade {} to {}: {} ({done} of {} nodes done, batches of {}, started {} by {})",
            u.id,
            u.version,
            u.state,
            nodes.len(),
            u.batch_size,
            crate::workspaces::fmt_time(&u.created_at),
            u.created_by
        );
        if let Some(why) = &u.halted_reason {
            line.push_str(&format!("\n  halted: {why}"));
        }
        out.push(line);
        for n in nodes {
            let role = if n.wave == 0 {
                "canary".to_owned()
            } else {
                format!("wave {}", n.wave)
            };
            out.push(format!("  {role}\t{}\t{}", n.node_id, n.state));
        }
    }
    Ok(out)
}
