//! Hash-chained audit log. Each row's hash covers the previous row's hash and the row's
//! own fields, so editing or deleting a row breaks the chain from there on. Rows hold ids,
//! action names, IPs and reason codes: never content or secret values.
//!
//! Events older than the retention period (2 years, `retention.rs`) are pruned from the
//! front of the chain. The seq and hash of the last pruned event are kept in
//! `audit_anchor`, and verification starts from there: the first kept event must name
//! that hash, so removing more events than were pruned is still detected.

use crate::error::AppResult;
use crate::infra::db::{self, DbConn};
use crate::infra::schema::audit_anchor;
use crate::infra::schema::audit_events::dsl as a;
use diesel::prelude::*;

/// One audit entry to record.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    /// User id or `node:<id>` or `system`; `None` for anonymous callers.
    pub actor: Option<&'a str>,
    /// Dotted action name, e.g. `auth.signin`, `node.enroll_refused`.
    pub action: &'a str,
    /// Object kind: `user`, `workspace`, `node`, `api_token`.
    pub object_type: &'a str,
    /// Object id.
    pub object_id: &'a str,
    /// Workspace the action concerns, for the owners' view.
    pub workspace_id: Option<&'a str>,
    /// Caller IP.
    pub ip: Option<&'a str>,
    /// A stable code or small metadata (never free user text).
    pub detail: &'a str,
}

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

fn row_hash(prev: &str, seq: i64, at: i64, e: &Entry<'_>) -> String {
    let canonical = serde_json::json!([
        prev,
        seq,
        at,
        e.actor,
        e.action,
        e.object_type,
        e.object_id,
        e.workspace_id,
        e.ip,
        e.detail
    ]);
    outpost_pki::sha256_hex(canonical.to_string().as_bytes())
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
    let e = Entry {
        actor: r.actor.as_deref(),
        action: &r.action,
        object_type: &r.object_type,
        object_id: &r.object_id,
        workspace_id: r.workspace_id.as_deref(),
        ip: r.ip.as_deref(),
        detail: &r.detail,
    };
    row_hash(prev, r.seq, r.at, &e)
}

fn row_ok(prev: &str, r: &AuditRow) -> bool {
    r.prev_hash == prev && hash_of(prev, r) == r.hash
}

/// Checks `rows` (ascending seq) against the chain starting at `start`; the seq of the
/// first row that does not verify.
fn first_bad(start: &str, rows: &[AuditRow]) -> Option<i64> {
    let mut prev = start;
    for r in rows {
        if !row_ok(prev, r) {
            return Some(r.seq);
        }
        prev = &r.hash;
    }
    None
}

fn verify_chain(conn: &mut DbConn) -> AppResult<Option<i64>> {
    let start = anchor(conn)?.map(|(_, h)| h).unwrap_or_default();
    let rows: Vec<AuditRow> = a::audit_events.order(a::seq.asc()).load(conn)?;
    Ok(first_bad(&start, &rows))
}

/// What [`prune_before`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pruned {
    /// Events up to and including this seq were deleted; the anchor now names its hash.
    UpTo {
        /// Last pruned seq.
        seq: i64,
        /// Number of events deleted.
        count: usize,
    },
    /// Nothing was older than the cutoff.
    Nothing,
    /// The part to prune does not verify: nothing was deleted, so the evidence of the
    /// edit stays. Carries the seq of the first bad event.
    Refused(i64),
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
        if let Some(bad) = first_bad(&start, &old) {
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
