//! Small file-system helpers: private atomic writes, secure deletion, directory size.
//!
//! Every file the node writes holds either a secret or something it must not lose, so
//! writes go through [`write_private`] (shared with the control plane): a temporary file
//! (mode 0600), fsynced, renamed over the target, the directory fsynced. A crash leaves
//! either the old or the new content.

pub use outpost_common::fs::{sync_parent, write_private};
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Creates the data directory if needed and restricts it to its owner.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Creates an empty private file (0600) if it does not exist, so that programs that
/// create it later (SQLite) inherit the mode.
pub fn touch_private(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

/// Overwrites a file with zeros, fsyncs it, then unlinks it. On SSDs and copy-on-write
/// file systems the overwrite is best effort; what makes the data unreadable is that
/// every other secret is sealed under the key held in this file.
pub fn secure_delete(path: &Path) -> io::Result<()> {
    let len = fs::metadata(path)?.len();
    {
        let mut f = OpenOptions::new().write(true).open(path)?;
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).max(32)];
        f.write_all(&zeros)?;
        f.sync_all()?;
    }
    fs::remove_file(path)?;
    sync_parent(path)
}

/// Total size of the regular files under `dir`, in bytes (symlinks are not followed).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_private_files_and_deletes_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        write_private(&p, b"one").expect("write");
        write_private(&p, b"two").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(dir_size(dir.path()), 3);
        secure_delete(&p).expect("delete");
        assert!(!p.exists());
    }
}
