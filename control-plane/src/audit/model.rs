//! The audit chain's rules, pure: what an entry holds, how a row's hash covers the previous
//! row's hash and the row's own fields, and how a run of rows is checked.

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

/// A stored row as the chain sees it (borrowed from the store's row).
#[derive(Debug, Clone)]
pub struct Link<'a> {
    /// Position in the chain.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// The recorded fields.
    pub entry: Entry<'a>,
    /// Hash of the previous row, as stored.
    pub prev_hash: &'a str,
    /// This row's hash, as stored.
    pub hash: &'a str,
}

/// The hash of the row at `seq`, recorded at `at`, after `prev`.
pub fn row_hash(prev: &str, seq: i64, at: i64, e: &Entry<'_>) -> String {
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

fn link_ok(prev: &str, l: &Link<'_>) -> bool {
    l.prev_hash == prev && row_hash(prev, l.seq, l.at, &l.entry) == l.hash
}

/// Checks `links` (ascending seq) against the chain starting at `start`; the seq of the
/// first link that does not verify.
pub fn first_bad<'a>(start: &'a str, links: impl IntoIterator<Item = Link<'a>>) -> Option<i64> {
    let mut prev = start;
    for l in links {
        if !link_ok(prev, &l) {
            return Some(l.seq);
        }
        prev = l.hash;
    }
    None
}

/// What [`prune_before`](super::store::prune_before) did.
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
