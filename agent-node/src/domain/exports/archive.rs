//! The export zip, written streaming: each file goes through a SHA-256 on its way into
//! the zip, the zip through another on its way out, and `manifest.json` (written last)
//! lists every file with its digest, size and row count. Nothing is buffered beyond
//! the deflate window, one page of rows and the chunks in flight between the two
//! threads that write it ([`Archive`]).

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

/// Bytes the producer gathers before handing them to the zip thread.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the two threads: the most the pipeline holds (256 KiB).
const IN_FLIGHT: usize = 4;

/// What the producer sends the zip thread.
enum Step {
    /// Start the next file in the zip.
    Start(String, SimpleFileOptions),
    /// Bytes of the current file.
    Bytes(Vec<u8>),
    /// Write the central directory and hand the output back.
    Finish,
}

/// What the zip thread hands back: the output, the zip's size and its SHA-256.
type Finished<W> = anyhow::Result<(W, u64, String)>;

/// A zip being written to `W`, in two stages on two threads (benchmark B6): the caller's
/// thread reads, decrypts and formats the files and hashes each one; a second thread
/// deflates them into the zip and writes it out (through the age encryption, for an
/// export), the costlier half. A bounded channel between them holds at most
/// [`IN_FLIGHT`] chunks of [`CHUNK`] bytes, so memory stays flat however large the export.
pub struct Archive<W: Write + Send + 'static> {
    to_zip: Option<std::sync::mpsc::SyncSender<Step>>,
    zipper: Option<std::thread::JoinHandle<Finished<W>>>,
    files: Vec<FileEntry>,
    modified: zip::DateTime,
}

impl<W: Write + Send + 'static> Archive<W> {
    /// Starts an archive; entries get `modified` as their time.
    pub fn new(out: W, modified: time::OffsetDateTime) -> anyhow::Result<Self> {
        let modified = time::PrimitiveDateTime::new(modified.date(), modified.time())
            .try_into()
            .unwrap_or_default();
        let (to_zip, steps) = std::sync::mpsc::sync_channel(IN_FLIGHT);
        let zipper = std::thread::Builder::new()
            .name("export-zip".into())
            .spawn(move || zip_steps(ZipWriter::new_stream(Hashing::new(out)), &steps))
            .context("starting the export's zip thread")?;
        Ok(Self {
            to_zip: Some(to_zip),
            zipper: Some(zipper),
            files: Vec::new(),
            modified,
        })
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
        let written = self.write_file(name, options, fill);
        written.map_err(|e| self.fail(e))
    }

    fn write_file(
        &mut self,
        name: &str,
        options: SimpleFileOptions,
        fill: impl FnOnce(&mut dyn Write) -> anyhow::Result<u64>,
    ) -> anyhow::Result<()> {
        let to_zip = self.to_zip.as_ref().context("the export's zip is closed")?;
        send(to_zip, Step::Start(name.to_owned(), options))?;
        let mut entry = Hashing::new(Chunks::new(to_zip));
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

    /// Closes the archive after `e` and says the cause: the zip thread's own error when
    /// it failed first (a full disk, say: the producer only saw its channel closed),
    /// otherwise `e`. The zip thread is stopped and waited for either way.
    fn fail(&mut self, e: anyhow::Error) -> anyhow::Error {
        match self.stop() {
            Some(Ok(Err(zip_error))) if !zip_error.is::<GivenUp>() => zip_error,
            Some(Err(_)) => anyhow::anyhow!("the export's zip thread panicked"),
            _ => e,
        }
    }

    /// Closes the channel and waits for the zip thread: what it ended with (`Err` if it
    /// panicked), or `None` when it was stopped already.
    fn stop(&mut self) -> Option<std::thread::Result<Finished<W>>> {
        drop(self.to_zip.take());
        self.zipper.take().map(std::thread::JoinHandle::join)
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
        let mut json = serde_json::to_vec_pretty(&manifest)?;
        json.push(b'\n');
        let to_zip = self.to_zip.as_ref().context("the export's zip is closed")?;
        let sent = send(to_zip, Step::Start(MANIFEST.to_owned(), options))
            .and_then(|()| send(to_zip, Step::Bytes(json)))
            .and_then(|()| send(to_zip, Step::Finish));
        let finished = self
            .stop()
            .context("the export's zip is closed")?
            .map_err(|_| anyhow::anyhow!("the export's zip thread panicked"))?;
        // The zip thread's own error says more than the closed channel.
        let out = finished?;
        sent?;
        Ok(out)
    }
}

impl<W: Write + Send + 'static> Drop for Archive<W> {
    /// An archive given up (its producer failed) stops the zip thread and waits for it,
    /// so nothing writes the output after the caller has moved on (and removed it).
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The zip thread: runs `steps` until [`Step::Finish`], or fails on the first write that
/// does, or stops when the producer gives up (its sender dropped).
fn zip_steps<W: Write>(mut zip: Zip<W>, steps: &std::sync::mpsc::Receiver<Step>) -> Finished<W> {
    let mut current = String::new();
    loop {
        match steps.recv() {
            Ok(Step::Start(name, options)) => {
                zip.start_file(name.as_str(), options)
                    .with_context(|| format!("starting {name} in the zip"))?;
                current = name;
            }
            Ok(Step::Bytes(bytes)) => zip
                .write_all(&bytes)
                .with_context(|| format!("writing {current} into the zip"))?,
            Ok(Step::Finish) => {
                let out = zip.finish().context("finishing the zip")?;
                return Ok(out.into_inner().finish());
            }
            Err(_) => return Err(GivenUp.into()),
        }
    }
}

/// The zip thread's end when its producer gave up first (its sender dropped).
#[derive(Debug, thiserror::Error)]
#[error("the export was given up before it was finished")]
struct GivenUp;

/// Hands `step` to the zip thread; fails when it has stopped.
fn send(to_zip: &std::sync::mpsc::SyncSender<Step>, step: Step) -> io::Result<()> {
    to_zip
        .send(step)
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the export's zip thread stopped"))
}

/// Gathers a file's bytes into [`CHUNK`]s for the zip thread.
struct Chunks<'a> {
    to_zip: &'a std::sync::mpsc::SyncSender<Step>,
    buf: Vec<u8>,
}

impl<'a> Chunks<'a> {
    fn new(to_zip: &'a std::sync::mpsc::SyncSender<Step>) -> Self {
        Self {
            to_zip,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl Write for Chunks<'_> {
    /// Takes what fits in the current chunk (a large write goes in several), so no
    /// chunk is larger than [`CHUNK`].
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            send(self.to_zip, Step::Bytes(full))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let rest = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            send(self.to_zip, Step::Bytes(rest))?;
        }
        Ok(())
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
        let mut archive =
            Archive::new(Vec::new(), time::OffsetDateTime::now_utc()).expect("archive");
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
        let (zip, size, sha) = archive.finish(head()).expect("finish");
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
        assert_eq!(manifest.head, head());
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

    /// Bytes no deflate can shrink (xorshift), so a file this long really crosses many
    /// chunks and fills the output.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn head() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            export_id: "e".into(),
            scope: "workspace".into(),
            node_id: "n".into(),
            workspace_id: "w".into(),
            workspace_name: "W".into(),
            created_at: "2026-11-23T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_file_of_many_chunks_written_in_odd_pieces_comes_out_whole() {
        let body = noise(5 * CHUNK + 12_345);
        let mut archive =
            Archive::new(Vec::new(), time::OffsetDateTime::now_utc()).expect("archive");
        archive
            .file("big.bin", false, |w| {
                for piece in body.chunks(CHUNK / 3 + 7) {
                    w.write_all(piece)?;
                }
                w.write_all(&body[..CHUNK * 2])?;
                Ok(1)
            })
            .expect("big");
        let (zip, _, _) = archive.finish(head()).expect("finish");
        let mut read = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("readable zip");
        let mut out = Vec::new();
        read.by_name("big.bin")
            .expect("big")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out.len(), body.len() + CHUNK * 2);
        assert!(out.starts_with(&body) && out.ends_with(&body[..CHUNK * 2]));
    }

    /// An output that takes `room` bytes, then fails as a full disk does.
    struct FullAfter {
        room: usize,
    }

    impl Write for FullAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("no space left (test)"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_output_that_fails_is_said_in_its_own_words_and_nothing_hangs() {
        for room in [0, 10_000, 3 * CHUNK] {
            let mut archive =
                Archive::new(FullAfter { room }, time::OffsetDateTime::now_utc()).expect("archive");
            let big = noise(32 * CHUNK);
            let written = archive.file("a.bin", false, |w| {
                w.write_all(&big)?;
                Ok(1)
            });
            let failed = match written {
                Err(e) => e,
                // Everything fit in the pipeline before the zip thread failed.
                Ok(()) => archive.finish(head()).map(|_| ()).expect_err("a full disk"),
            };
            let said = format!("{failed:#}");
            assert!(said.contains("no space left (test)"), "room {room}: {said}");
        }
        // A producer that gives up drops the archive: the zip thread stops with it.
        let mut archive =
            Archive::new(Vec::new(), time::OffsetDateTime::now_utc()).expect("archive");
        let given_up = archive.file("a.csv", false, |w| {
            w.write_all(&noise(3 * CHUNK))?;
            anyhow::bail!("the export was deleted")
        });
        assert_eq!(
            given_up.expect_err("given up").to_string(),
            "the export was deleted"
        );
        drop(archive);
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
