//! The export zip, written streaming: each file goes through a SHA-256 on its way into
//! the zip, the zip through another on its way out, and `manifest.json` (written last)
//! lists every file with its digest, size and row count. Nothing is buffered beyond
//! the deflate window and one page of rows.

use anyhow::Context as _;
use outpost_common::hex;
use serde::Serialize;
use std::io::{self, Write};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

/// Name of the manifest inside the zip.
pub const MANIFEST: &str = "manifest.json";
/// Format name written into the manifest.
pub const FORMAT: &str = "outpost-export/1";

/// Counts and hashes the bytes written through it.
pub struct Hashing<W> {
    inner: W,
    digest: ring::digest::Context,
    bytes: u64,
}

impl<W> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inner writer, the byte count and the lowercase hex SHA-256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex(self.digest.finish().as_ref()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One file of the archive as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// Path inside the zip.
    pub name: String,
    /// Lowercase hex SHA-256 of the file's uncompressed bytes.
    pub sha256: String,
    /// Uncompressed size.
    pub bytes: u64,
    /// Records in the file (CSV rows without the header, JSON array elements).
    pub rows: u64,
}

type Zip<W> = ZipWriter<StreamWriter<Hashing<W>>>;

/// A zip being written to `W`.
pub struct Archive<W: Write> {
    zip: Zip<W>,
    files: Vec<FileEntry>,
    modified: zip::DateTime,
}

impl<W: Write> Archive<W> {
    /// Starts an archive; entries get `modified` as their time.
    pub fn new(out: W, modified: time::OffsetDateTime) -> Self {
        let modified = time::PrimitiveDateTime::new(modified.date(), modified.time())
            .try_into()
            .unwrap_or_default();
        Self {
            zip: ZipWriter::new_stream(Hashing::new(out)),
            files: Vec::new(),
            modified,
        }
    }

    /// Adds the file `name`, whose content `fill` writes and whose row count it
    /// returns. `large` marks a file that may exceed 4 GiB (zip64 headers).
    pub fn file(
        &mut self,
        name: &str,
        large: bool,
        fill: impl FnOnce(&mut dyn Write) -> anyhow::Result<u64>,
    ) -> anyhow::Result<()> {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(1))
            .last_modified_time(self.modified)
            .unix_permissions(0o600)
            .large_file(large);
        self.zip
            .start_file(name, options)
            .with_context(|| format!("starting {name} in the zip"))?;
        let mut entry = Hashing::new(&mut self.zip);
        let rows = fill(&mut entry)?;
        entry.flush()?;
        let (_, bytes, sha256) = entry.finish();
        self.files.push(FileEntry {
            name: name.to_owned(),
            sha256,
            bytes,
            rows,
        });
        Ok(())
    }

    /// Writes `manifest.json` (`head` plus the file list) and the zip's central
    /// directory. Returns the output, the zip's size and its SHA-256.
    pub fn finish(mut self, head: Manifest) -> anyhow::Result<(W, u64, String)> {
        let manifest = ManifestFile {
            head,
            files: std::mem::take(&mut self.files),
        };
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(self.modified)
            .unix_permissions(0o600);
        self.zip.start_file(MANIFEST, options)?;
        serde_json::to_writer_pretty(&mut self.zip, &manifest)?;
        self.zip.write_all(b"\n")?;
        let out = self.zip.finish().context("finishing the zip")?;
        Ok(out.into_inner().finish())
    }
}

/// What the manifest says about the export besides its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Export id.
    pub export_id: String,
    /// `workspace` or `contact`.
    pub scope: String,
    /// Node id.
    pub node_id: String,
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub workspace_name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ManifestFile {
    /// About the export.
    #[serde(flatten)]
    pub head: Manifest,
    /// Every other file of the zip.
    pub files: Vec<FileEntry>,
}

/// Writes a JSON array one element at a time.
pub struct JsonArray<'a> {
    out: &'a mut dyn Write,
    rows: u64,
}

impl<'a> JsonArray<'a> {
    /// Opens the array.
    pub fn new(out: &'a mut dyn Write) -> io::Result<Self> {
        out.write_all(b"[")?;
        Ok(Self { out, rows: 0 })
    }

    /// Appends one element.
    pub fn push(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        self.out
            .write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *self.out, value)?;
        self.rows += 1;
        Ok(())
    }

    /// Closes the array; returns the element count.
    pub fn finish(self) -> io::Result<u64> {
        self.out.write_all(b"\n]\n")?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn the_manifest_lists_every_file_with_a_digest_that_matches() {
        let mut archive = Archive::new(Vec::new(), time::OffsetDateTime::now_utc());
        archive
            .file("a.csv", false, |w| {
                w.write_all(b"h\n1\n2\n")?;
                Ok(2)
            })
            .expect("a");
        archive
            .file("b.json", true, |w| {
                let mut arr = JsonArray::new(w)?;
                arr.push(&serde_json::json!({"x": "ü"}))?;
                Ok(arr.finish()?)
            })
            .expect("b");
        let head = Manifest {
            format: FORMAT.into(),
            export_id: "e".into(),
            scope: "workspace".into(),
            node_id: "n".into(),
            workspace_id: "w".into(),
            workspace_name: "W".into(),
            created_at: "2026-11-23T00:00:00Z".into(),
        };
        let (zip, size, sha) = archive.finish(head.clone()).expect("finish");
        assert_eq!(size as usize, zip.len());
        assert_eq!(
            sha,
            hex(ring::digest::digest(&ring::digest::SHA256, &zip).as_ref())
        );

        let mut read = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("readable zip");
        let mut manifest = String::new();
        read.by_name(MANIFEST)
            .expect("manifest")
            .read_to_string(&mut manifest)
            .expect("read");
        let manifest: ManifestFile = serde_json::from_str(&manifest).expect("manifest json");
        assert_eq!(manifest.head, head);
        assert_eq!(manifest.files.len(), 2);
        for f in &manifest.files {
            let mut body = Vec::new();
            read.by_name(&f.name)
                .expect("listed file")
                .read_to_end(&mut body)
                .expect("read");
            assert_eq!(body.len() as u64, f.bytes);
            assert_eq!(
                f.sha256,
                hex(ring::digest::digest(&ring::digest::SHA256, &body).as_ref())
            );
        }
        assert_eq!(manifest.files[1].rows, 1);
        let mut b = String::new();
        read.by_name("b.json")
            .expect("b")
            .read_to_string(&mut b)
            .expect("read");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&b).expect("valid json"),
            serde_json::json!([{"x": "ü"}])
        );
    }

    #[test]
    fn an_empty_json_array_is_valid_json() {
        let mut out = Vec::new();
        let arr = JsonArray::new(&mut out).expect("open");
        assert_eq!(arr.finish().expect("close"), 0);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).expect("json"),
            serde_json::json!([])
        );
    }
}
