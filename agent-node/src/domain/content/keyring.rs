//! Key-encryption keys (KEKs) for the contacts' data keys, kept **outside** `node.db`, in
//! `keys/kek-<id>` files sealed under a key derived from the master key.
//!
//! Why outside the database: erasing a contact deletes its wrapped data key, but a copy
//! of `node.db` taken earlier (a backup, a snapshot, old WAL frames) still holds it. So
//! erasure also *rotates* the KEK: a new KEK file is written, every remaining contact's
//! data key is re-wrapped under it in the same transaction as the deletion, and once that
//! commits the older KEK files are overwritten and removed. An old copy of the database
//! then holds only keys wrapped under a KEK that no longer exists anywhere.
//!
//! Every call runs inside the node database's single connection lock (the callers are
//! inside `Store::with`), so a rotation and the creation of a contact never interleave.

use super::{ContentError, Dek, Result};
use crate::platform::files;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// The KEK files of one node.
pub struct Keyring {
    dir: PathBuf,
    file_key: Dek,
    cache: Mutex<HashMap<i64, Dek>>,
}

fn aad(id: i64) -> Vec<u8> {
    format!("content-kek:{id}").into_bytes()
}

impl Keyring {
    /// The keyring in `<data dir>/keys`, its files sealed under `file_key`.
    pub fn new(data_dir: &Path, file_key: Dek) -> Self {
        Self {
            dir: data_dir.join("keys"),
            file_key,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, id: i64) -> PathBuf {
        self.dir.join(format!("kek-{id}"))
    }

    /// Ids of the KEK files present, ascending.
    fn ids(&self) -> Result<Vec<i64>> {
        let mut ids = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(ContentError::Keys(e)),
        };
        for e in entries {
            let name = e.map_err(ContentError::Keys)?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("kek-"))
                .and_then(|n| n.parse::<i64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn write(&self, id: i64) -> Result<Dek> {
        files::prepare_dir(&self.dir).map_err(ContentError::Keys)?;
        let key = Zeroizing::new(outpost_crypto::random_bytes::<32>());
        let sealed = outpost_crypto::aead_seal(&self.file_key, key.as_ref(), &aad(id));
        files::write_private(&self.path(id), &sealed).map_err(ContentError::Keys)?;
        files::sync_parent(&self.path(id)).map_err(ContentError::Keys)?;
        self.remember(id, &key);
        Ok(key)
    }

    fn remember(&self, id: i64, key: &Dek) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.insert(id, key.clone());
    }

    /// The KEK with this id (`ContentError::Crypto` if its file is gone: erased).
    pub fn get(&self, id: i64) -> Result<Dek> {
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(k.clone());
        }
        let sealed = match std::fs::read(self.path(id)) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ContentError::Crypto),
            Err(e) => return Err(ContentError::Keys(e)),
        };
        let plain = Zeroizing::new(
            outpost_crypto::aead_open(&self.file_key, &sealed, &aad(id))
                .map_err(|_| ContentError::Crypto)?,
        );
        if plain.len() != 32 {
            return Err(ContentError::Crypto);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        self.remember(id, &key);
        Ok(key)
    }

    /// The KEK new data keys are wrapped under: the newest file, created on first use.
    pub fn current(&self) -> Result<(i64, Dek)> {
        match self.ids()?.last() {
            Some(&id) => Ok((id, self.get(id)?)),
            None => Ok((1, self.write(1)?)),
        }
    }

    /// Writes the next KEK (before the transaction that re-wraps under it commits).
    pub fn next(&self) -> Result<(i64, Dek)> {
        let id = self.ids()?.last().map_or(1, |l| l + 1);
        Ok((id, self.write(id)?))
    }

    /// Destroys every KEK older than `keep` (after the re-wrapping committed): each file is
    /// overwritten, synced and removed, and forgotten from memory.
    pub fn destroy_older_than(&self, keep: i64) -> Result<usize> {
        let mut n = 0;
        for id in self.ids()?.into_iter().filter(|id| *id < keep) {
            files::secure_delete(&self.path(id)).map_err(ContentError::Keys)?;
            n += 1;
        }
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| *id >= keep);
        Ok(n)
    }
}
