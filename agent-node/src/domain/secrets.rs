//! Secrets on the node (LLM keys now; channel tokens with the channels), sealed under
//! the master key (AES-256-GCM, associated data `secret:<kind>`). Only a keyed
//! fingerprint and the last four characters are kept readable, to show which key is set.
//! Nothing here is ever sent to the CP.

use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store};
use outpost_crypto::Secret;
use rusqlite::{params, OptionalExtension as _};
use std::sync::Arc;

/// Migration adding the secrets table (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE secrets (
    kind TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    last4 TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('console', 'control_plane')),
    created_at INTEGER NOT NULL
);
"#;

/// What a secret is for; shared with the CP, which names kinds in its commands.
pub use outpost_protocol::SecretKind;

/// Where a secret came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// Entered in the node console.
    Console,
    /// Delivered sealed by the CP (`deliver_secret`).
    ControlPlane,
}

impl SecretSource {
    /// Stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretSource::Console => "console",
            SecretSource::ControlPlane => "control_plane",
        }
    }
}

/// What may be shown about a stored secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    /// Kind.
    pub kind: SecretKind,
    /// Keyed fingerprint (12 hex characters).
    pub fingerprint: String,
    /// Last four characters.
    pub last4: String,
    /// `console` or `control_plane`.
    pub source: String,
    /// Stored at, unix seconds.
    pub created_at: i64,
}

/// The sealed secret store.
#[derive(Clone)]
pub struct SecretStore {
    store: Arc<Store>,
    master: Arc<MasterKey>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretStore(***)")
    }
}

/// The keyed fingerprint of a value: first 12 hex characters of
/// `HMAC-SHA256(master-derived key, value)`. Identifies a key without revealing it.
pub fn fingerprint(master: &MasterKey, value: &Secret) -> String {
    outpost_crypto::secret_fingerprint(master.derive("secret-fingerprint").as_ref(), value)
}

fn aad(kind: SecretKind) -> Vec<u8> {
    format!("secret:{}", kind.as_str()).into_bytes()
}

/// A `secrets` row as [`SecretStore::list`] shows it; `None` for a kind this build does
/// not know (skipped).
fn meta_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<SecretMeta>> {
    let Some(kind) = SecretKind::parse(&r.get::<_, String>("kind")?) else {
        return Ok(None);
    };
    Ok(Some(SecretMeta {
        kind,
        fingerprint: r.get("fingerprint")?,
        last4: r.get("last4")?,
        source: r.get("source")?,
        created_at: r.get("created_at")?,
    }))
}

impl SecretStore {
    /// The store over `node.db`.
    pub fn new(store: Arc<Store>, master: Arc<MasterKey>) -> Self {
        Self { store, master }
    }

    /// The keyed fingerprint of a value (see [`fingerprint`]).
    pub fn fingerprint(&self, value: &Secret) -> String {
        fingerprint(&self.master, value)
    }

    /// Stores (or replaces) a secret.
    pub fn put(
        &self,
        kind: SecretKind,
        value: &Secret,
        source: SecretSource,
    ) -> store::Result<SecretMeta> {
        let meta = self
            .store
            .with(|c| Self::put_in(c, &self.master, kind, value, source))?;
        tracing::info!(kind = kind.as_str(), fingerprint = %meta.fingerprint, "secret stored");
        Ok(meta)
    }

    /// [`SecretStore::put`] inside a caller's transaction (the `deliver_secret` command
    /// stores the secret and records its execution atomically).
    pub fn put_in(
        conn: &rusqlite::Connection,
        master: &MasterKey,
        kind: SecretKind,
        value: &Secret,
        source: SecretSource,
    ) -> store::Result<SecretMeta> {
        let sealed = master.seal(value.expose().as_bytes(), &aad(kind));
        let chars: Vec<char> = value.expose().chars().collect();
        let last4: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        let meta = SecretMeta {
            kind,
            fingerprint: fingerprint(master, value),
            last4,
            source: source.as_str().to_owned(),
            created_at: store::now(),
        };
        conn.execute(
            "INSERT INTO secrets (kind, sealed, fingerprint, last4, source, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (kind) DO UPDATE SET sealed = excluded.sealed,
               fingerprint = excluded.fingerprint, last4 = excluded.last4,
               source = excluded.source, created_at = excluded.created_at",
            params![
                kind.as_str(),
                sealed,
                meta.fingerprint,
                meta.last4,
                meta.source,
                meta.created_at
            ],
        )?;
        Ok(meta)
    }

    /// The secret of `kind`, opened, if set.
    pub fn get(&self, kind: SecretKind) -> store::Result<Option<Secret>> {
        let sealed: Option<Vec<u8>> = self.store.with(|c| {
            Ok(c.query_row(
                "SELECT sealed FROM secrets WHERE kind = ?1",
                [kind.as_str()],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self.master.open(&sealed, &aad(kind)).map_err(|_| {
            store::StoreError::Io(std::io::Error::other(
                "a stored secret cannot be opened with the master key",
            ))
        })?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| {
            store::StoreError::Io(std::io::Error::other("a stored secret is not UTF-8"))
        })?;
        Ok(Some(Secret::new(text)))
    }

    /// What is stored, never the values.
    pub fn list(&self) -> store::Result<Vec<SecretMeta>> {
        self.store.with(|c| {
            let mut st = c.prepare(
                "SELECT kind, fingerprint, last4, source, created_at FROM secrets ORDER BY kind",
            )?;
            let metas = st
                .query_map([], meta_from_row)?
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?;
            Ok(metas)
        })
    }

    /// Removes a secret; `false` if none was set.
    pub fn remove(&self, kind: SecretKind) -> store::Result<bool> {
        let n = self
            .store
            .with(|c| Ok(c.execute("DELETE FROM secrets WHERE kind = ?1", [kind.as_str()])?))?;
        if n > 0 {
            tracing::info!(kind = kind.as_str(), "secret removed");
        }
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_sealed_at_rest_and_open_only_with_the_master_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let store = Arc::new(Store::open(&path).expect("db"));
        let secrets = SecretStore::new(store.clone(), Arc::new(MasterKey::from_bytes([1; 32])));
        let value = Secret::new("sk-canary-secret-5e7a9c0d".into());
        let meta = secrets
            .put(SecretKind::OpenaiApiKey, &value, SecretSource::Console)
            .expect("put");
        assert_eq!(meta.last4, "9c0d");
        assert_eq!(meta.fingerprint.len(), 12);
        assert_eq!(
            secrets
                .get(SecretKind::OpenaiApiKey)
                .expect("get")
                .expect("set")
                .expose(),
            value.expose()
        );
        assert!(secrets
            .get(SecretKind::AnthropicApiKey)
            .expect("get")
            .is_none());
        assert_eq!(secrets.list().expect("list"), vec![meta]);
        assert_eq!(format!("{secrets:?}"), "SecretStore(***)");
        assert_eq!(format!("{value:?}"), "***");

        let other = SecretStore::new(store.clone(), Arc::new(MasterKey::from_bytes([2; 32])));
        assert!(
            other.get(SecretKind::OpenaiApiKey).is_err(),
            "another master key cannot open it"
        );

        let mut bytes = std::fs::read(&path).expect("db");
        bytes.extend(std::fs::read(dir.path().join("node.db-wal")).unwrap_or_default());
        assert!(
            !bytes.windows(13).any(|w| w == b"canary-secret"),
            "the value is not in node.db in plaintext"
        );
        assert!(secrets.remove(SecretKind::OpenaiApiKey).expect("remove"));
        assert!(!secrets.remove(SecretKind::OpenaiApiKey).expect("remove"));
        assert!(secrets.list().expect("list").is_empty());
    }
}
