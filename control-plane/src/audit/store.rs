//! The audit table: appending to the chain, reading it back, verifying and pruning it
//! (`audit_events`, and `audit_anchor` for the last pruned event).

use super::model::{first_bad, row_hash, Entry, Link, Pruned};
use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::audit_anchor;
use crate::infra::schema::audit_events::dsl as a;
use diesel::prelude::*;

/// A stored audit row.
#[derive(Debug, Clone, Queryable)]
pub struct AuditRow {
    /// Position in the chain.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Actor.
    pub actor: Option<String>,
    /// Action.
    pub action: String,
    /// Object type.
    pub object_type: String,
    /// Object id.
    pub object_id: String,
    /// Workspace.
    pub workspace_id: Option<String>,
    /// IP.
    pub ip: Option<String>,
    /// Detail code.
    pub detail: String,
    /// Hash of the previous row.
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

/// Appends an entry to the chain. Retries when another writer took the same position or
/// held the write lock.
pub fn record(conn: &mut DbConn, e: &Entry<'_>) -> AppResult<()> {
    for _ in 0..8 {
        let res = crate::infra::db::transaction::<_, diesel::result::Error, _>(conn, |conn| {
            let last: Option<(i64, String)> = a::audit_events
                .select((a::seq, a::hash))
                .order(a::seq.desc())
                .first(conn)
                .optional()?;
            // An empty table after pruning continues from the anchor, not from scratch.
            let last = match last {
                Some(l) => Some(l),
                None => audit_anchor::table
                    .find(1)
                    .select((audit_anchor::seq, audit_anchor::hash))
                    .first(conn)
                    .optional()?,
            };
            let (seq, prev) = last.map_or((1, String::new()), |(s, h)| (s + 1, h));
            let at = db::now();
            let hash = row_hash(&prev, seq, at, e);
            diesel::insert_into(a::audit_events)
                .values((
                    a::seq.eq(seq),
                    a::at.eq(at),
                    a::actor.eq(e.actor),
                    a::action.eq(e.action),
                    a::object_type.eq(e.object_type),
                    a::object_id.eq(e.object_id),
                    a::workspace_id.eq(e.workspace_id),
                    a::ip.eq(e.ip),
                    a::detail.eq(e.detail),
                    a::prev_hash.eq(&prev),
                    a::hash.eq(&hash),
                ))
                .execute(conn)?;
            Ok(())
        });
        match res {
            Ok(()) => return Ok(()),
            Err(err) if db::is_retryable(&err) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(crate::error::AppError::internal(anyhow::anyhow!(
        "audit chain contention"
    )))
}

/// Verifies the whole chain; returns the seq of the first bad row, if any.
pub fn verify(conn: &mut DbConn) -> AppResult<Option<i64>> {
    verify_chain(conn)
}

/// Number of events in the log.
pub fn count(conn: &mut DbConn) -> AppResult<i64> {
    Ok(a::audit_events.count().get_result(conn)?)
}

/// The chain's starting point: `(seq, hash)` of the last pruned event, if any was pruned.
pub fn anchor(conn: &mut DbConn) -> AppResult<Option<(i64, String)>> {
    Ok(audit_anchor::table
        .find(1)
        .select((audit_anchor::seq, audit_anchor::hash))
        .first(conn)
        .optional()?)
}

/// The hash a stored row should carry after `prev`.
pub fn hash_of(prev: &str, r: &AuditRow) -> String {
    row_hash(prev, r.seq, r.at, &r.link().entry)
}

impl AuditRow {
    /// The row as a link of the chain, for [`first_bad`].
    pub fn link(&self) -> Link<'_> {
        Link {
            seq: self.seq,
            at: self.at,
            entry: Entry {
                actor: self.actor.as_deref(),
                action: &self.action,
                object_type: &self.object_type,
                object_id: &self.object_id,
                workspace_id: self.workspace_id.as_deref(),
                ip: self.ip.as_deref(),
                detail: &self.detail,
            },
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

fn verify_chain(conn: &mut DbConn) -> AppResult<Option<i64>> {
    let start = anchor(conn)?.map(|(_, h)| h).unwrap_or_default();
    let rows: Vec<AuditRow> = a::audit_events.order(a::seq.asc()).load(conn)?;
    Ok(first_bad(&start, rows.iter().map(AuditRow::link)))
}

/// Deletes the events recorded before `cutoff` (unix seconds) from the front of the
/// chain, and moves the anchor to the last deleted one, in one transaction. Only a prefix
/// that verifies is pruned: pruning must not erase the evidence of tampering.
pub fn prune_before(conn: &mut DbConn, cutoff: i64) -> AppResult<Pruned> {
    crate::infra::db::transaction::<_, crate::error::AppError, _>(conn, |conn| {
        // The first event recent enough to keep; everything before it goes (so a clock
        // step between replicas never leaves a hole in the middle of the chain).
        let first_kept: Option<i64> = a::audit_events
            .filter(a::at.ge(cutoff))
            .select(diesel::dsl::min(a::seq))
            .first(conn)?;
        let mut q = a::audit_events.order(a::seq.asc()).into_boxed();
        if let Some(k) = first_kept {
            q = q.filter(a::seq.lt(k));
        }
        let old: Vec<AuditRow> = q.load(conn)?;
        let Some(last) = old.last() else {
            return Ok(Pruned::Nothing);
        };
        let start = anchor(conn)?.map(|(_, h)| h).unwrap_or_default();
        if let Some(bad) = first_bad(&start, old.iter().map(AuditRow::link)) {
            return Ok(Pruned::Refused(bad));
        }
        let (seq, hash, count) = (last.seq, last.hash.clone(), old.len());
        let moved = diesel::update(audit_anchor::table.find(1))
            .set((
                audit_anchor::seq.eq(seq),
                audit_anchor::hash.eq(&hash),
                audit_anchor::pruned_at.eq(db::now()),
            ))
            .execute(conn)?;
        if moved == 0 {
            diesel::insert_into(audit_anchor::table)
                .values((
                    audit_anchor::id.eq(1),
                    audit_anchor::seq.eq(seq),
                    audit_anchor::hash.eq(&hash),
                    audit_anchor::pruned_at.eq(db::now()),
                ))
                .execute(conn)?;
        }
        diesel::delete(a::audit_events.filter(a::seq.le(seq))).execute(conn)?;
        Ok(Pruned::UpTo { seq, count })
    })
}
