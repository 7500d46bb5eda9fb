//! The knowledge base: documents uploaded in the console, chunked, encrypted at rest and
//! indexed in SQLite FTS5 for BM25 retrieval.
//!
//! **Architecture invariant:** no plaintext of a document (title, passage or word) is
//! written to `node.db`. Titles and passages are sealed with AES-256-GCM under the
//! master key's `kb-content` sub-key; the FTS5 table is contentless and only ever sees
//! *blinded* terms (keyed hashes under the `kb-index` sub-key, see [`index`]). BM25 works
//! on term statistics alone, so ranking is unchanged by the blinding.

pub mod index;
pub mod text;

use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store, StoreError};
use index::Blinder;
use rusqlite::{params, OptionalExtension as _};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Migration adding the knowledge-base tables (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE kb_documents (
    id TEXT PRIMARY KEY,
    title_ct BLOB NOT NULL,
    kind TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX kb_documents_created ON kb_documents (created_at);
CREATE TABLE kb_chunks (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    body_ct BLOB NOT NULL
);
CREATE INDEX kb_chunks_document ON kb_chunks (document_id, ord);
CREATE VIRTUAL TABLE kb_index USING fts5(terms, content='', contentless_delete=1);
"#;

/// Largest upload accepted, bytes (10 MiB).
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// Longest title kept, characters.
const MAX_TITLE_CHARS: usize = 200;

/// What kind of document an upload is; decides how its text is extracted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    /// Plain text.
    Text,
    /// Markdown (markup stripped).
    Markdown,
    /// HTML (tags, scripts and styles stripped, entities decoded).
    Html,
    /// CSV of question/answer pairs, one passage per row.
    Csv,
}

impl DocKind {
    /// The kind of a file by its extension; `None` for types the KB does not take.
    pub fn from_filename(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => Self::Text,
            "md" | "markdown" => Self::Markdown,
            "html" | "htm" => Self::Html,
            "csv" => Self::Csv,
            _ => return None,
        })
    }

    /// Stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Csv => "csv",
        }
    }

    /// Inverse of [`DocKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Text, Self::Markdown, Self::Html, Self::Csv]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Human label for the console.
    pub fn label(self) -> &'static str {
        match self {
            Self::Text => "Text",
            Self::Markdown => "Markdown",
            Self::Html => "HTML",
            Self::Csv => "Q&A (CSV)",
        }
    }
}

/// A stored document, without its content.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentSummary {
    /// Document id (UUID).
    pub id: String,
    /// Title (the file name unless one was given).
    pub title: String,
    /// Kind.
    pub kind: DocKind,
    /// Size of the upload, bytes.
    pub bytes: i64,
    /// Number of passages.
    pub chunks: i64,
    /// When it was added, unix seconds.
    pub created_at: i64,
}

/// A passage found by [`KnowledgeBase::search`].
#[derive(Clone, Debug, PartialEq)]
pub struct Passage {
    /// The document it belongs to.
    pub document_id: String,
    /// That document's title.
    pub document_title: String,
    /// The passage's id.
    pub chunk_id: i64,
    /// The passage text.
    pub text: String,
    /// FTS5 BM25 score as SQLite returns it: negative, and **lower is better** (results
    /// come best first).
    pub score: f64,
}

/// Knowledge-base errors. Messages are shown to users and never quote content.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// The document has no text once markup is removed.
    #[error("The document contains no text.")]
    Empty,
    /// The upload is not UTF-8 text.
    #[error("The file is not UTF-8 text. Save it as UTF-8 and upload it again.")]
    NotUtf8,
    /// The CSV could not be read as question/answer pairs.
    #[error("The CSV file could not be read: {0}")]
    BadCsv(String),
    /// The body is over [`MAX_UPLOAD_BYTES`].
    #[error("The file is larger than 10 MiB.")]
    TooLarge,
    /// Stored content does not decrypt (wrong master key or a damaged row).
    #[error("stored knowledge-base content could not be decrypted")]
    Decrypt,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for KbError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The node's knowledge base. Cheap to construct (two key derivations); all methods are
/// synchronous and run on the caller's thread (use `web::block` from handlers).
pub struct KnowledgeBase {
    store: Arc<Store>,
    content_key: Zeroizing<[u8; 32]>,
    blinder: Blinder,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KnowledgeBase(***)")
    }
}

fn title_aad(id: &str) -> Vec<u8> {
    format!("kb-title:{id}").into_bytes()
}

fn chunk_aad(id: i64) -> Vec<u8> {
    format!("kb-chunk:{id}").into_bytes()
}

/// Extracts the passages of an upload.
fn passages(kind: DocKind, body: &[u8]) -> Result<Vec<String>, KbError> {
    let raw = std::str::from_utf8(body).map_err(|_| KbError::NotUtf8)?;
    let raw = raw.strip_prefix('\u{FEFF}').unwrap_or(raw);
    let chunks = match kind {
        DocKind::Csv => text::csv_to_passages(raw).map_err(|e| KbError::BadCsv(e.0))?,
        DocKind::Text => text::chunk(&text::normalize_whitespace(raw)),
        DocKind::Markdown => text::chunk(&text::markdown_to_text(raw)),
        DocKind::Html => text::chunk(&text::html_to_text(raw)),
    };
    if chunks.iter().all(|c| c.trim().is_empty()) {
        return Err(KbError::Empty);
    }
    Ok(chunks)
}

/// A document's title from its file name or its own metadata, which nobody typed for
/// this: the characters a name may not hold (`outpost_common::name::forbidden_in_name`:
/// control, bidi and zero-width characters, so `gpj.exe` cannot show as `exe.jpg`) are
/// dropped rather than refused, then it is NFC and cut to [`MAX_TITLE_CHARS`].
fn clean_title(title: &str) -> String {
    let kept: String = title
        .chars()
        .filter(|c| outpost_common::name::forbidden_in_name(*c).is_none())
        .collect();
    let t = match outpost_common::Name::parse(&kept, usize::MAX) {
        Ok(n) => n.into_string().chars().take(MAX_TITLE_CHARS).collect(),
        Err(_) => String::new(),
    };
    let t = t.trim();
    if t.is_empty() {
        "Untitled".to_owned()
    } else {
        t.to_owned()
    }
}

impl KnowledgeBase {
    /// The knowledge base stored in `store`, with keys derived from `master`.
    pub fn new(store: Arc<Store>, master: &MasterKey) -> Self {
        let index_key = master.derive("kb-index");
        Self {
            store,
            content_key: master.derive("kb-content"),
            blinder: Blinder::new(&index_key),
        }
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<String, KbError> {
        let pt = outpost_crypto::aead_open(&self.content_key, sealed, aad)
            .map_err(|_| KbError::Decrypt)?;
        String::from_utf8(pt).map_err(|_| KbError::Decrypt)
    }

    /// Extracts, chunks, encrypts and indexes a document, in one transaction.
    pub fn add_document(
        &self,
        title: &str,
        kind: DocKind,
        body: &[u8],
        actor: Option<&str>,
    ) -> Result<DocumentSummary, KbError> {
        if body.len() > MAX_UPLOAD_BYTES {
            return Err(KbError::TooLarge);
        }
        let chunks = passages(kind, body)?;
        let title = clean_title(title);
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = store::now();
        let title_ct =
            outpost_crypto::aead_seal(&self.content_key, title.as_bytes(), &title_aad(&id));
        // Hashing and sealing happen outside the database lock.
        let indexed: Vec<String> = chunks
            .iter()
            .map(|c| self.blinder.document_terms(&format!("{title}\n{c}")))
            .collect();
        let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let n = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        self.store.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO kb_documents (id, title_ct, kind, bytes, chunks, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, title_ct, kind.as_str(), bytes, n, actor, created_at],
            )?;
            {
                // The chunk id is the AEAD associated data, so it is allocated first
                // (the row is inserted with an empty body, then filled in).
                let mut insert = tx.prepare(
                    "INSERT INTO kb_chunks (document_id, ord, body_ct) VALUES (?1, ?2, x'')",
                )?;
                let mut fill = tx.prepare("UPDATE kb_chunks SET body_ct = ?1 WHERE id = ?2")?;
                let mut index =
                    tx.prepare("INSERT INTO kb_index (rowid, terms) VALUES (?1, ?2)")?;
                for (ord, (chunk, terms)) in chunks.iter().zip(&indexed).enumerate() {
                    insert.execute(params![id, i64::try_from(ord).unwrap_or(i64::MAX)])?;
                    let chunk_id = tx.last_insert_rowid();
                    let ct = outpost_crypto::aead_seal(
                        &self.content_key,
                        chunk.as_bytes(),
                        &chunk_aad(chunk_id),
                    );
                    fill.execute(params![ct, chunk_id])?;
                    index.execute(params![chunk_id, terms])?;
                }
            }
            tx.commit()?;
            Ok(())
        })?;
        Ok(DocumentSummary {
            id,
            title,
            kind,
            bytes,
            chunks: n,
            created_at,
        })
    }

    /// The `limit` passages that best match `query` (BM25), best first. A query with no
    /// searchable word returns nothing.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Passage>, KbError> {
        let Some(expr) = self.blinder.match_expression(query) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<HitRow> = self.store.with(|c| {
            // Two steps: FTS5 ranks alone (its `ORDER BY rank LIMIT` path, the same
            // statement shape as a plain FTS5 query), then the few winners are read by
            // primary key.
            let mut rank = c.prepare_cached(
                "SELECT rowid, rank FROM kb_index WHERE kb_index MATCH ?1 ORDER BY rank LIMIT ?2",
            )?;
            let ranked = rank
                .query_map(params![expr, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut fetch = c.prepare_cached(
                "SELECT c.document_id, c.body_ct, d.title_ct
                 FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
                 WHERE c.id = ?1",
            )?;
            let mut rows = Vec::with_capacity(ranked.len());
            for (id, score) in ranked {
                let row = fetch
                    .query_row([id], |r| Ok((id, r.get(0)?, r.get(1)?, r.get(2)?, score)))
                    .optional()?;
                // An index row without its chunk cannot happen (one transaction adds
                // and removes both); skip it rather than fail the search.
                rows.extend(row);
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(chunk_id, document_id, body_ct, title_ct, score)| {
                Ok(Passage {
                    text: self.open(&body_ct, &chunk_aad(chunk_id))?,
                    document_title: self.open(&title_ct, &title_aad(&document_id))?,
                    document_id,
                    chunk_id,
                    score,
                })
            })
            .collect()
    }

    /// All documents, newest first.
    pub fn list(&self) -> Result<Vec<DocumentSummary>, KbError> {
        let rows = self.store.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, title_ct, kind, bytes, chunks, created_at FROM kb_documents
                 ORDER BY created_at DESC, rowid DESC",
            )?;
            let rows = stmt
                .query_map([], row_to_raw)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        rows.into_iter().map(|r| self.summary(r)).collect()
    }

    fn summary(&self, r: RawDoc) -> Result<DocumentSummary, KbError> {
        Ok(DocumentSummary {
            title: self.open(&r.title_ct, &title_aad(&r.id))?,
            kind: DocKind::parse(&r.kind).unwrap_or(DocKind::Text),
            id: r.id,
            bytes: r.bytes,
            chunks: r.chunks,
            created_at: r.created_at,
        })
    }

    /// One document and the text of its passages, in order.
    pub fn document(&self, id: &str) -> Result<Option<(DocumentSummary, Vec<String>)>, KbError> {
        let found = self.store.with(|c| {
            let Some(doc) = c
                .query_row(
                    "SELECT id, title_ct, kind, bytes, chunks, created_at FROM kb_documents
                     WHERE id = ?1",
                    [id],
                    row_to_raw,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT id, body_ct FROM kb_chunks WHERE document_id = ?1 ORDER BY ord",
            )?;
            let chunks = stmt
                .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((doc, chunks)))
        })?;
        let Some((doc, chunks)) = found else {
            return Ok(None);
        };
        let texts = chunks
            .iter()
            .map(|(cid, ct)| self.open(ct, &chunk_aad(*cid)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((self.summary(doc)?, texts)))
    }

    /// Deletes a document, its passages and their index entries in one transaction.
    /// Returns whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool, KbError> {
        Ok(self.store.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM kb_index WHERE rowid IN
                 (SELECT id FROM kb_chunks WHERE document_id = ?1)",
                [id],
            )?;
            tx.execute("DELETE FROM kb_chunks WHERE document_id = ?1", [id])?;
            let n = tx.execute("DELETE FROM kb_documents WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(n > 0)
        })?)
    }
}

/// A search hit as read: chunk id, document id, sealed body, sealed title, score.
type HitRow = (i64, String, Vec<u8>, Vec<u8>, f64);

struct RawDoc {
    id: String,
    title_ct: Vec<u8>,
    kind: String,
    bytes: i64,
    chunks: i64,
    created_at: i64,
}

fn row_to_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDoc> {
    Ok(RawDoc {
        id: r.get(0)?,
        title_ct: r.get(1)?,
        kind: r.get(2)?,
        bytes: r.get(3)?,
        chunks: r.get(4)?,
        created_at: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_lose_hidden_and_direction_characters() {
        // "invoice\u{202e}gpj.exe" would show as "invoiceexe.jpg".
        assert_eq!(clean_title("invoice\u{202e}gpj.exe"), "invoicegpj.exe");
        assert_eq!(clean_title("a\u{200b}b\u{0}c\n"), "abc");
        assert_eq!(clean_title("Cafe\u{301}.txt"), "Café.txt");
        assert_eq!(clean_title("\u{200b} \u{feff}"), "Untitled");
    }

    fn kb() -> (tempfile::TempDir, KnowledgeBase, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let store = Arc::new(Store::open(&path).expect("db"));
        let kb = KnowledgeBase::new(store, &MasterKey::from_bytes([9; 32]));
        (dir, kb, path)
    }

    #[test]
    fn kinds_from_file_names() {
        assert_eq!(DocKind::from_filename("a.TXT"), Some(DocKind::Text));
        assert_eq!(
            DocKind::from_filename("x.y.markdown"),
            Some(DocKind::Markdown)
        );
        assert_eq!(DocKind::from_filename("p.htm"), Some(DocKind::Html));
        assert_eq!(DocKind::from_filename("faq.csv"), Some(DocKind::Csv));
        assert_eq!(DocKind::from_filename("doc.pdf"), None);
        assert_eq!(DocKind::from_filename("README"), None);
        for k in [
            DocKind::Text,
            DocKind::Markdown,
            DocKind::Html,
            DocKind::Csv,
        ] {
            assert_eq!(DocKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn add_search_list_document_delete() {
        let (_d, kb, _) = kb();
        let hours = kb
            .add_document(
                "hours.md",
                DocKind::Markdown,
                b"# Opening hours\n\nWe are open Monday to Friday from 9 am to 5 pm.",
                Some("user-1"),
            )
            .expect("add");
        assert_eq!(hours.chunks, 1);
        let faq = kb
            .add_document(
                "faq.csv",
                DocKind::Csv,
                b"question,answer\nDo you accept insurance?,Yes we accept most insurance plans\n\
                  Is parking available?,Free parking behind the building\n",
                None,
            )
            .expect("add");
        assert_eq!(faq.chunks, 2);
        kb.add_document(
            "about.html",
            DocKind::Html,
            b"<h1>About</h1><p>Family dentistry since 1990.</p>",
            None,
        )
        .expect("add");

        let hits = kb.search("When are you open?", 5).expect("search");
        assert_eq!(hits[0].document_id, hours.id);
        assert_eq!(hits[0].document_title, "hours.md");
        assert!(hits[0].text.contains("Monday to Friday"));
        assert!(hits[0].score < 0.0, "bm25 as SQLite returns it");

        let hits = kb.search("parking", 5).expect("search");
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].text,
            "Q: Is parking available?\nA: Free parking behind the building"
        );
        assert!(kb.search("the of", 5).expect("search").is_empty());
        assert!(kb.search("unrelated zebra", 5).expect("search").is_empty());

        let list = kb.list().expect("list");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].title, "about.html", "newest first");
        assert_eq!(list[2].id, hours.id);

        let (doc, chunks) = kb.document(&faq.id).expect("doc").expect("exists");
        assert_eq!(doc, faq);
        assert_eq!(chunks.len(), 2);
        assert!(kb.document("nope").expect("doc").is_none());

        assert!(kb.delete(&faq.id).expect("delete"));
        assert!(!kb.delete(&faq.id).expect("delete again"));
        assert!(kb
            .search("parking insurance", 5)
            .expect("search")
            .is_empty());
        assert_eq!(kb.list().expect("list").len(), 2);
        let left: i64 = kb
            .store
            .with(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM kb_chunks WHERE document_id = ?1",
                    [&faq.id],
                    |r| r.get(0),
                )?)
            })
            .expect("count");
        assert_eq!(left, 0);
    }

    #[test]
    fn ranking_prefers_the_more_relevant_passage() {
        let (_d, kb, _) = kb();
        kb.add_document(
            "a.txt",
            DocKind::Text,
            b"Whitening is offered. Cleaning too.",
            None,
        )
        .expect("add");
        let best = kb
            .add_document(
                "b.txt",
                DocKind::Text,
                b"Teeth whitening: our whitening treatment takes one hour. Whitening prices vary.",
                None,
            )
            .expect("add");
        kb.add_document(
            "c.txt",
            DocKind::Text,
            b"Nothing relevant here at all.",
            None,
        )
        .expect("add");
        let hits = kb.search("whitening", 10).expect("search");
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].document_id, best.id);
        assert!(hits[0].score <= hits[1].score);
        assert_eq!(kb.search("whitening", 1).expect("search").len(), 1);
    }

    #[test]
    fn bad_input_is_refused_and_nothing_stored() {
        let (_d, kb, _) = kb();
        assert!(matches!(
            kb.add_document("x.txt", DocKind::Text, b"\xff\xfe bad", None),
            Err(KbError::NotUtf8)
        ));
        assert!(matches!(
            kb.add_document("x.html", DocKind::Html, b"<script>x</script>  ", None),
            Err(KbError::Empty)
        ));
        assert!(matches!(
            kb.add_document("x.csv", DocKind::Csv, b"q,a\njust one\n", None),
            Err(KbError::BadCsv(_))
        ));
        let big = vec![b'a'; MAX_UPLOAD_BYTES + 1];
        assert!(matches!(
            kb.add_document("x.txt", DocKind::Text, &big, None),
            Err(KbError::TooLarge)
        ));
        assert!(kb.list().expect("list").is_empty());
        let msg = KbError::BadCsv("Row 2 needs a question and an answer (two columns).".into())
            .to_string();
        assert!(!msg.contains("just one"));
    }

    #[test]
    fn canary_is_not_in_the_database_file() {
        const CANARY: &str = "canary-kb-7f3a9";
        let (_d, kb, path) = kb();
        let body = format!("Secret procedure {CANARY} for sterilisation of instruments.");
        let doc = kb
            .add_document(
                &format!("{CANARY}.txt"),
                DocKind::Text,
                body.as_bytes(),
                None,
            )
            .expect("add");
        // Retrievable through the API...
        let hits = kb.search(CANARY, 5).expect("search");
        assert_eq!(hits[0].document_id, doc.id);
        assert!(hits[0].text.contains(CANARY));
        assert_eq!(kb.list().expect("list")[0].title, format!("{CANARY}.txt"));
        // ...but absent from the bytes on disk (database and WAL).
        let mut raw = std::fs::read(&path).expect("db");
        if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
            raw.extend_from_slice(&wal);
        }
        assert!(raw.len() > 4096);
        for needle in [
            CANARY,
            "canary",
            "7f3a9",
            "sterilisation",
            "sterilisat",
            "procedure",
        ] {
            assert!(
                !raw.windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
                "{needle} found in node.db"
            );
        }
    }
}
