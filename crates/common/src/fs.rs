//! Private atomic file writes. Keys, certificates and bootstrap documents are written to a
//! temporary file beside the target (mode 0600), fsynced, renamed over the target, and the
//! directory is fsynced: a crash at any point leaves either the old or the new content,
//! never a half-written file, and never a moment where the content is readable by others.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically with mode 0600. The temporary file has a fixed
/// name (`.<name>.tmp`), so a crash leaves at most one behind, overwritten by the next
/// write; two writers of the same path at the same time are not supported.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = stage(path, bytes)?;
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Fsyncs the directory holding `path`, so a rename or unlink is durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Writes the new content to the temporary file and fsyncs it; the target is untouched.
fn stage(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path without file name"))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // A temporary file left by a crash keeps its old mode; make sure it is private
    // before anything is written to it.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn writes_are_0600_and_replace_the_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        write_private(&p, b"one").expect("write");
        assert_eq!(mode(&p), 0o600);
        // An existing, more open file becomes private too: it is replaced, not rewritten.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&p, b"two").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        assert_eq!(mode(&p), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["secret"], "no temporary file is left behind");
    }

    #[test]
    fn a_crash_before_the_rename_keeps_the_old_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ca.key");
        write_private(&p, b"old key").expect("write");
        // The process dies after writing the new content, before the rename.
        let tmp = stage(&p, b"new key, half").expect("stage");
        assert_eq!(fs::read(&p).expect("read"), b"old key");
        assert_eq!(mode(&tmp), 0o600, "even the temporary file is private");
        // The leftover, made readable by someone, is reused privately by the next write.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&p, b"new key").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"new key");
        assert_eq!(mode(&p), 0o600);
        assert!(!tmp.exists());
    }

    #[test]
    fn a_failed_write_leaves_the_target_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("capability.key");
        write_private(&p, b"old").expect("write");
        // Something in the way of the temporary file makes the write fail early.
        fs::create_dir(dir.path().join(".capability.key.tmp")).expect("block");
        assert!(write_private(&p, b"new").is_err());
        assert_eq!(fs::read(&p).expect("read"), b"old");
        assert!(write_private(Path::new("/"), b"x").is_err(), "no file name");
    }
}
