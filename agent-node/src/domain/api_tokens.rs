//! Node API tokens: what a customer's own systems present to the node's JSON API
//! (`web::api`). An admin makes one in the console (Integrations): a name, the scopes it
//! carries, an optional expiry. The token is shown once; the node keeps only a keyed hash
//! of it (HMAC-SHA256 under a key derived from the master key, so a copy of `node.db`
//! alone cannot even confirm a guessed token), when it was last used, and whether it was
//! revoked. Tokens never leave the node and the CP never sees them.

use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store, StoreError};
use outpost_common::hex;
use rusqlite::{params, OptionalExtension as _};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Migration adding the API tokens (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER
);
"#;

/// Every token starts with this, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "onat_";

/// Longest token name, characters.
pub const MAX_NAME_CHARS: usize = 80;

/// Most tokens a node keeps (revoked ones included, until deleted with the node).
pub const MAX_TOKENS: i64 = 100;

/// What a token may do; each API route needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiScope {
    /// List and read contacts.
    ContactsRead,
    /// Change a contact's name, email, phone, stage, score and tags.
    ContactsWrite,
    /// List and read conversations and their messages.
    ConversationsRead,
    /// Start exports and read their status and download link.
    ExportsCreate,
    /// List knowledge-base documents.
    KbRead,
    /// Upload and delete knowledge-base documents.
    KbWrite,
    /// Post a staff reply into a conversation.
    MessagesWrite,
}

impl ApiScope {
    /// Every scope, in the order the console lists them.
    pub const ALL: [ApiScope; 7] = [
        ApiScope::ConversationsRead,
        ApiScope::MessagesWrite,
        ApiScope::ContactsRead,
        ApiScope::ContactsWrite,
        ApiScope::KbRead,
        ApiScope::KbWrite,
        ApiScope::ExportsCreate,
    ];

    /// As stored and as documented (`conversations:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::ContactsRead => "contacts:read",
            ApiScope::ContactsWrite => "contacts:write",
            ApiScope::ConversationsRead => "conversations:read",
            ApiScope::ExportsCreate => "exports:create",
            ApiScope::KbRead => "kb:read",
            ApiScope::KbWrite => "kb:write",
            ApiScope::MessagesWrite => "messages:write",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// What the console says it allows.
    pub fn label(self) -> &'static str {
        match self {
            ApiScope::ContactsRead => "Read contacts",
            ApiScope::ContactsWrite => "Edit contacts",
            ApiScope::ConversationsRead => "Read conversations and messages",
            ApiScope::ExportsCreate => "Create exports (everything the node holds)",
            ApiScope::KbRead => "List knowledge-base documents",
            ApiScope::KbWrite => "Upload and delete knowledge-base documents",
            ApiScope::MessagesWrite => "Reply in conversations as the team",
        }
    }
}

/// A token as the console lists it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Token id (UUID).
    pub id: String,
    /// The name given.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<ApiScope>,
    /// CP user id of who made it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stops working, unix seconds; `None`: never.
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When it last authenticated a request (to the minute).
    pub last_used_at: Option<i64>,
}

impl TokenInfo {
    /// Whether it authenticates requests at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// Why a presented token authenticates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Past its expiry.
    Expired,
    /// Revoked in the console.
    Revoked,
    /// Not a token of this node.
    Unknown,
}

/// Errors of the token store.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A value a user entered is refused; the message is safe to show.
    #[error("{0}")]
    Invalid(&'static str),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for TokenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The node's API tokens. Synchronous (use `web::block` from handlers).
#[derive(Clone)]
pub struct ApiTokens {
    store: Arc<Store>,
    hash_key: Arc<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiTokens(***)")
    }
}

const COLUMNS: &str =
    "id, name, scopes, created_by, created_at, expires_at, revoked_at, last_used_at";

fn info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    let scopes: String = r.get(2)?;
    Ok(TokenInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        scopes: scopes.split(' ').filter_map(ApiScope::parse).collect(),
        created_by: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
        last_used_at: r.get(7)?,
    })
}

impl ApiTokens {
    /// The tokens in `store`, hashed under a key derived from `master`.
    pub fn new(store: Arc<Store>, master: &MasterKey) -> Self {
        Self {
            store,
            hash_key: Arc::new(master.derive("api-token-hash")),
        }
    }

    fn hash(&self, token: &str) -> String {
        hex(&outpost_crypto::hmac_sign(
            &self.hash_key[..],
            token.as_bytes(),
        ))
    }

    /// Makes a token; returns its record and the token, which is shown once and not
    /// kept. `expires_at`: unix seconds, or `None` for a token that does not expire.
    pub fn create(
        &self,
        name: &str,
        scopes: &[ApiScope],
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<(TokenInfo, String), TokenError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(TokenError::Invalid("Give the token a name."));
        }
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(TokenError::Invalid(
                "A token name is at most 80 characters, on one line.",
            ));
        }
        if scopes.is_empty() {
            return Err(TokenError::Invalid("Choose at least one scope."));
        }
        let now = store::now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(TokenError::Invalid("The expiry must be in the future."));
        }
        let mut scopes = scopes.to_vec();
        scopes.sort_by_key(|s| s.as_str());
        scopes.dedup();
        let token = format!("{TOKEN_PREFIX}{}", outpost_crypto::random_token());
        let info = TokenInfo {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            scopes,
            created_by: actor.to_owned(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let scope_list = info
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let hash = self.hash(&token);
        self.store.with(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM api_tokens", [], |r| r.get(0))?;
            if n >= MAX_TOKENS {
                return Ok(false);
            }
            c.execute(
                "INSERT INTO api_tokens (id, name, token_hash, scopes, created_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![info.id, info.name, hash, scope_list, info.created_by, now, expires_at],
            )?;
            Ok(true)
        })?
        .then_some(())
        .ok_or(TokenError::Invalid(
            "This node has 100 tokens: delete revoked ones first.",
        ))?;
        Ok((info, token))
    }

    /// Every token, newest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        Ok(self.store.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, rowid DESC"
            ))?;
            let rows = st.query_map([], info_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?)
    }

    /// Revokes a token at once; `false` when there is no such token.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let now = store::now();
        Ok(self.store.with(|c| {
            Ok(c.execute(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, now],
            )? > 0)
        })?)
    }

    /// Deletes a revoked or expired token's record; `false` when there is no such
    /// token or it still works.
    pub fn delete(&self, id: &str) -> Result<bool, TokenError> {
        let now = store::now();
        Ok(self.store.with(|c| {
            Ok(c.execute(
                "DELETE FROM api_tokens WHERE id = ?1
                   AND (revoked_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= ?2))",
                params![id, now],
            )? > 0)
        })?)
    }

    /// The token `presented` authenticates as, noting when it was used (to the minute,
    /// so a busy integration does not write on every request).
    pub fn authenticate(&self, presented: &str) -> Result<Result<TokenInfo, Refusal>, TokenError> {
        if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
            return Ok(Err(Refusal::Unknown));
        }
        let hash = self.hash(presented);
        let now = store::now();
        Ok(self.store.with(|c| {
            let found = c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
                    [&hash],
                    info_row,
                )
                .optional()?;
            let Some(info) = found else {
                return Ok(Err(Refusal::Unknown));
            };
            if info.revoked_at.is_some() {
                return Ok(Err(Refusal::Revoked));
            }
            if info.expires_at.is_some_and(|e| e <= now) {
                return Ok(Err(Refusal::Expired));
            }
            c.execute(
                "UPDATE api_tokens SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
                params![info.id, now],
            )?;
            Ok(Ok(info))
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> (tempfile::TempDir, ApiTokens, Arc<Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
        let t = ApiTokens::new(store.clone(), &MasterKey::from_bytes([3; 32]));
        (dir, t, store)
    }

    #[test]
    fn a_token_is_stored_hashed_shown_once_and_stops_when_revoked() {
        let (_d, t, store) = tokens();
        let (info, token) = t
            .create("CRM sync", &[ApiScope::ContactsRead], None, "user-1")
            .expect("create");
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() > 40);
        let stored: String = store
            .with(|c| Ok(c.query_row("SELECT token_hash FROM api_tokens", [], |r| r.get(0))?))
            .expect("row");
        assert!(!stored.contains(&token[TOKEN_PREFIX.len()..]));
        assert_ne!(
            stored,
            outpost_crypto::token_hash(&token),
            "keyed, not a bare SHA-256"
        );
        let ok = t.authenticate(&token).expect("db").expect("valid");
        assert_eq!(ok.id, info.id);
        assert_eq!(ok.scopes, vec![ApiScope::ContactsRead]);
        assert!(t.list().expect("list")[0].last_used_at.is_some());
        assert_eq!(
            t.authenticate("onat_nope").expect("db"),
            Err(Refusal::Unknown)
        );
        assert!(
            !t.delete(&info.id).expect("delete"),
            "a working token stays"
        );
        assert!(t.revoke(&info.id).expect("revoke"));
        assert_eq!(t.authenticate(&token).expect("db"), Err(Refusal::Revoked));
        assert!(t.delete(&info.id).expect("delete"));
        assert!(t.list().expect("list").is_empty());
    }

    #[test]
    fn an_expired_token_is_refused_and_bad_input_stores_nothing() {
        let (_d, t, store) = tokens();
        let (_, token) = t
            .create("soon", &[ApiScope::KbRead], Some(store::now() + 100), "u")
            .expect("create");
        store
            .with(|c| Ok(c.execute("UPDATE api_tokens SET expires_at = 1", [])?))
            .expect("age it");
        assert_eq!(t.authenticate(&token).expect("db"), Err(Refusal::Expired));
        for (name, scopes, exp) in [
            ("", vec![ApiScope::KbRead], None),
            ("x", vec![], None),
            ("x", vec![ApiScope::KbRead], Some(1)),
            ("a\nb", vec![ApiScope::KbRead], None),
        ] {
            assert!(matches!(
                t.create(name, &scopes, exp, "u"),
                Err(TokenError::Invalid(_))
            ));
        }
        assert_eq!(t.list().expect("list").len(), 1);
    }
}
