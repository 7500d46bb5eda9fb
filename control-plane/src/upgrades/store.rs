//! The upgrade tables: `upgrades` (one row per release rolled out) and `upgrade_nodes`
//! (each node's wave and progress). Reads `nodes` (state, version) and `commands` (the
//! `upgrade` command's acknowledgement).

use super::model::{node_state, state};
use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::infra::schema::{commands, nodes, upgrade_nodes, upgrades, workspaces};
use diesel::prelude::*;

/// An upgrade as stored.
#[derive(Queryable, Clone, Debug)]
pub struct Upgrade {
    /// Its id.
    pub id: String,
    /// The version the release reports.
    pub version: String,
    /// Download URL.
    pub url: String,
    /// SHA-256 (hex).
    pub sha256: String,
    /// The release key's signature (base64url).
    pub signature: String,
    /// Nodes per wave after the canary.
    pub batch_size: i32,
    /// `running`, `halted`, `completed`.
    pub state: String,
    /// Why it halted, in words.
    pub halted_reason: Option<String>,
    /// Who started it.
    pub created_by: String,
    /// When (unix seconds).
    pub created_at: i64,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

/// One node of an upgrade.
#[derive(Queryable, Clone, Debug)]
pub struct UpgradeNode {
    /// The node.
    pub node_id: String,
    /// 0 for the canary.
    pub wave: i32,
    /// `pending`, `sent`, `done`, `failed`.
    pub state: String,
    /// The `upgrade` command, once sent.
    pub command_id: Option<String>,
    /// When it was sent (unix seconds).
    pub sent_at: Option<i64>,
}

/// Nodes that can take an upgrade to `version` now: healthy, not already on it; oldest
/// first (the canary is the oldest). `(node id, workspace slug)`.
pub fn eligible_nodes(conn: &mut DbConn, version: &str) -> AppResult<Vec<(String, String)>> {
    Ok(nodes::table
        .inner_join(workspaces::table)
        .filter(nodes::state.eq("healthy"))
        .filter(nodes::version.ne(version).or(nodes::version.is_null()))
        .order((nodes::created_at.asc(), nodes::id.asc()))
        .select((nodes::id, workspaces::slug))
        .load(conn)?)
}

/// Inserts a running upgrade and its nodes' waves.
pub fn insert(conn: &mut DbConn, u: &Upgrade, waves: &[Vec<String>]) -> AppResult<()> {
    diesel::insert_into(upgrades::table)
        .values((
            upgrades::id.eq(&u.id),
            upgrades::version.eq(&u.version),
            upgrades::url.eq(&u.url),
            upgrades::sha256.eq(&u.sha256),
            upgrades::signature.eq(&u.signature),
            upgrades::batch_size.eq(u.batch_size),
            upgrades::state.eq(state::RUNNING),
            upgrades::created_by.eq(&u.created_by),
            upgrades::created_at.eq(u.created_at),
            upgrades::updated_at.eq(u.created_at),
        ))
        .execute(conn)?;
    for (wave, ids) in waves.iter().enumerate() {
        for id in ids {
            diesel::insert_into(upgrade_nodes::table)
                .values((
                    upgrade_nodes::upgrade_id.eq(&u.id),
                    upgrade_nodes::node_id.eq(id),
                    upgrade_nodes::wave.eq(i32::try_from(wave).unwrap_or(i32::MAX)),
                    upgrade_nodes::state.eq(node_state::PENDING),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// The running upgrade, if any.
pub fn running(conn: &mut DbConn) -> AppResult<Option<Upgrade>> {
    Ok(upgrades::table
        .filter(upgrades::state.eq(state::RUNNING))
        .first(conn)
        .optional()?)
}

/// The newest upgrades, newest first.
pub fn latest(conn: &mut DbConn, limit: i64) -> AppResult<Vec<Upgrade>> {
    Ok(upgrades::table
        .order((upgrades::created_at.desc(), upgrades::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// An upgrade's nodes, by wave.
pub fn nodes_of(conn: &mut DbConn, upgrade_id: &str) -> AppResult<Vec<UpgradeNode>> {
    Ok(upgrade_nodes::table
        .filter(upgrade_nodes::upgrade_id.eq(upgrade_id))
        .order((upgrade_nodes::wave.asc(), upgrade_nodes::node_id.asc()))
        .select((
            upgrade_nodes::node_id,
            upgrade_nodes::wave,
            upgrade_nodes::state,
            upgrade_nodes::command_id,
            upgrade_nodes::sent_at,
        ))
        .load(conn)?)
}

/// `pending` → `sent` with the command; `false` if another replica did it first.
pub fn mark_sent(
    conn: &mut DbConn,
    upgrade_id: &str,
    node_id: &str,
    command_id: &str,
    now: i64,
) -> AppResult<bool> {
    Ok(diesel::update(
        upgrade_nodes::table
            .filter(upgrade_nodes::upgrade_id.eq(upgrade_id))
            .filter(upgrade_nodes::node_id.eq(node_id))
            .filter(upgrade_nodes::state.eq(node_state::PENDING)),
    )
    .set((
        upgrade_nodes::state.eq(node_state::SENT),
        upgrade_nodes::command_id.eq(command_id),
        upgrade_nodes::sent_at.eq(now),
    ))
    .execute(conn)?
        == 1)
}

/// `sent` → `done` or `failed`.
pub fn finish_node(
    conn: &mut DbConn,
    upgrade_id: &str,
    node_id: &str,
    to: &str,
    now: i64,
) -> AppResult<bool> {
    Ok(diesel::update(
        upgrade_nodes::table
            .filter(upgrade_nodes::upgrade_id.eq(upgrade_id))
            .filter(upgrade_nodes::node_id.eq(node_id))
            .filter(upgrade_nodes::state.eq(node_state::SENT)),
    )
    .set((upgrade_nodes::state.eq(to), upgrade_nodes::done_at.eq(now)))
    .execute(conn)?
        == 1)
}

/// `running` → `to` (with the reason when halted); `false` if it was no longer running.
pub fn finish(
    conn: &mut DbConn,
    upgrade_id: &str,
    to: &str,
    reason: Option<&str>,
    now: i64,
) -> AppResult<bool> {
    Ok(diesel::update(
        upgrades::table
            .filter(upgrades::id.eq(upgrade_id))
            .filter(upgrades::state.eq(state::RUNNING)),
    )
    .set((
        upgrades::state.eq(to),
        upgrades::halted_reason.eq(reason),
        upgrades::updated_at.eq(now),
    ))
    .execute(conn)?
        == 1)
}

/// `halted` → `running`, the reason cleared; `false` if it was not halted (or another
/// upgrade runs: the unique index allows one).
pub fn reopen(conn: &mut DbConn, upgrade_id: &str, now: i64) -> AppResult<bool> {
    Ok(diesel::update(
        upgrades::table
            .filter(upgrades::id.eq(upgrade_id))
            .filter(upgrades::state.eq(state::HALTED)),
    )
    .set((
        upgrades::state.eq(state::RUNNING),
        upgrades::halted_reason.eq(None::<String>),
        upgrades::updated_at.eq(now),
    ))
    .execute(conn)?
        == 1)
}

/// An upgrade's `failed` nodes back to `pending`, to be sent the release again; how many.
pub fn reset_failed_nodes(conn: &mut DbConn, upgrade_id: &str) -> AppResult<usize> {
    Ok(diesel::update(
        upgrade_nodes::table
            .filter(upgrade_nodes::upgrade_id.eq(upgrade_id))
            .filter(upgrade_nodes::state.eq(node_state::FAILED)),
    )
    .set((
        upgrade_nodes::state.eq(node_state::PENDING),
        upgrade_nodes::command_id.eq(None::<String>),
        upgrade_nodes::sent_at.eq(None::<i64>),
        upgrade_nodes::done_at.eq(None::<i64>),
    ))
    .execute(conn)?)
}

/// A node's state and last reported version, `None` if it is gone.
pub fn node_facts(conn: &mut DbConn, node_id: &str) -> AppResult<Option<(String, Option<String>)>> {
    Ok(nodes::table
        .find(node_id)
        .select((nodes::state, nodes::version))
        .first(conn)
        .optional()?)
}

/// A command's acknowledgement: `Some((ok, error code))` once acked.
pub fn ack_of(conn: &mut DbConn, command_id: &str) -> AppResult<Option<(bool, Option<String>)>> {
    let row: Option<(Option<bool>, Option<String>)> = commands::table
        .find(command_id)
        .select((commands::ack_ok, commands::error_code))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(ok, code)| ok.map(|ok| (ok, code))))
}
