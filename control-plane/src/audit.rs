//! Hash-chained audit log. Each row's hash covers the previous row's hash and the row's
//! own fields, so editing or deleting a row breaks the chain from there on. Rows hold ids,
//! action names, IPs and reason codes: never content or secret values.

use crate::db::{self, DbConn};
use crate::error::AppResult;
use crate::schema::audit_events::dsl as a;
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
        let res = conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let last: Option<(i64, String)> = a::audit_events
                .select((a::seq, a::hash))
                .order(a::seq.desc())
                .first(conn)
                .optional()?;
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

fn verify_chain(conn: &mut DbConn) -> AppResult<Option<i64>> {
    let rows: Vec<AuditRow> = a::audit_events.order(a::seq.asc()).load(conn)?;
    let mut prev = String::new();
    for r in rows {
        let e = Entry {
            actor: r.actor.as_deref(),
            action: &r.action,
            object_type: &r.object_type,
            object_id: &r.object_id,
            workspace_id: r.workspace_id.as_deref(),
            ip: r.ip.as_deref(),
            detail: &r.detail,
        };
        if r.prev_hash != prev || row_hash(&prev, r.seq, r.at, &e) != r.hash {
            return Ok(Some(r.seq));
        }
        prev = r.hash;
    }
    Ok(None)
}
