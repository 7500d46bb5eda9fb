//! The knowledge base: documents uploaded in the console, chunked, encrypted at rest and
//! indexed in SQLite FTS5 for BM25 retrieval.
//! Long because the storage of every document kind (add, replace, re-chunk, search, list,
//! delete) shares its sealing and indexing code here.
//!
//! **Architecture invariant:** no plaintext of a document (title, passage or word) is
//! written to `node.db`. Titles and passages are sealed with AES-256-GCM under the
//! master key's `kb-content` sub-key; the FTS5 table is contentless and only ever sees
//! *blinded* terms (keyed hashes under the `kb-index` sub-key, see [`index`]). BM25 works
//! on term statistics alone, so ranking is unchanged by the blinding.

pub mod documents;
pub mod index;
pub mod query;
pub mod sections;
pub mod text;
pub mod website;

use crate::platform::keys::MasterKey;
use crate::platform::store::{self, Store, StoreError};
use index::Blinder;
use rusqlite::{params, OptionalExtension as _};
use sections::{Chunk, CHUNKER_VERSION};
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

/// Migration keeping what re-chunking needs: the upload itself (sealed, so a later
/// chunker can cut it again), the chunker version that cut each document (documents from
/// before this are version 1 and are cut again at start, see
/// [`KnowledgeBase::rechunk_outdated`]) and each passage's context (its heading path,
/// sealed).
pub const SECTIONS_SCHEMA: &str = r#"
ALTER TABLE kb_documents ADD COLUMN source_ct BLOB;
ALTER TABLE kb_documents ADD COLUMN chunker INTEGER NOT NULL DEFAULT 1;
ALTER TABLE kb_chunks ADD COLUMN context_ct BLOB;
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
    /// CSV, one passage per row: question/answer pairs, or a table with a header row.
    Csv,
    /// PDF, its text layer.
    Pdf,
    /// Word (DOCX), cut at its heading styles.
    Docx,
    /// The pages of a website ([`website`]), each cut like HTML.
    Website,
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
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
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
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Website => "website",
        }
    }

    /// Inverse of [`DocKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Text,
            Self::Markdown,
            Self::Html,
            Self::Csv,
            Self::Pdf,
            Self::Docx,
            Self::Website,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Human label for the console.
    pub fn label(self) -> &'static str {
        match self {
            Self::Text => "Text",
            Self::Markdown => "Markdown",
            Self::Html => "HTML",
            Self::Csv => "CSV",
            Self::Pdf => "PDF",
            Self::Docx => "Word",
            Self::Website => "Website",
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
    /// Where it sits in its document: the heading path ("Clinic › Address"), or the
    /// question of a Q&A row; may be empty.
    pub context: String,
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
    /// The CSV could not be read (as a table or as question/answer pairs).
    #[error("The CSV file could not be read: {0}")]
    BadCsv(String),
    /// A PDF or DOCX that cannot be read as one (the message says why).
    #[error("{0}")]
    BadFile(String),
    /// A PDF whose pages carry no text: a scan.
    #[error("The PDF has no text layer (it looks like a scan), so there is nothing to search. Run it through text recognition (OCR) or upload the text itself.")]
    NoTextLayer,
    /// A PDF or DOCX unpacks to more than [`documents::MAX_UNPACKED_BYTES`].
    #[error("The document unpacks to more than 50 MiB, the limit for one document. Split it into smaller files.")]
    Unpacked,
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

fn context_aad(id: i64) -> Vec<u8> {
    format!("kb-context:{id}").into_bytes()
}

fn source_aad(id: &str) -> Vec<u8> {
    format!("kb-source:{id}").into_bytes()
}

/// Extracts the passages of an upload, each with its context.
fn passages(kind: DocKind, body: &[u8]) -> Result<Vec<Chunk>, KbError> {
    let binary = match kind {
        DocKind::Pdf => Some(documents::pdf(body)?),
        DocKind::Docx => Some(documents::docx(body)?),
        DocKind::Website => Some(website::passages(body)?),
        _ => None,
    };
    if let Some(chunks) = binary {
        if chunks.iter().all(|c| c.text.trim().is_empty()) {
            return Err(KbError::Empty);
        }
        return Ok(chunks);
    }
    let raw = std::str::from_utf8(body).map_err(|_| KbError::NotUtf8)?;
    let raw = raw.strip_prefix('\u{FEFF}').unwrap_or(raw);
    let chunks = match kind {
        DocKind::Csv => sections::csv(raw).map_err(|e| KbError::BadCsv(e.0))?,
        DocKind::Text => sections::plain(raw),
        DocKind::Markdown => sections::markdown(raw),
        DocKind::Html => sections::html(raw),
        DocKind::Pdf | DocKind::Docx | DocKind::Website => Vec::new(),
    };
    if chunks.iter().all(|c| c.text.trim().is_empty()) {
        return Err(KbError::Empty);
    }
    Ok(chunks)
}

/// What a document's title adds to the index of each of its passages: its words without
/// the file extension ("opening-hours.md": "opening hours").
fn title_words(title: &str) -> &str {
    match title.rsplit_once('.') {
        Some((stem, ext)) if DocKind::from_filename(title).is_some() || ext.len() <= 4 => stem,
        _ => title,
    }
}

/// A passage as the console and exports show it: its context on the first line.
pub fn display(context: &str, text: &str) -> String {
    if context.is_empty() {
        text.to_owned()
    } else {
        format!("{context}\n{text}")
    }
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
        self.add_unbounded(title, kind, body, actor)
    }

    fn add_unbounded(
        &self,
        title: &str,
        kind: DocKind,
        body: &[u8],
        actor: Option<&str>,
    ) -> Result<DocumentSummary, KbError> {
        let chunks = passages(kind, body)?;
        let title = clean_title(title);
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = store::now();
        let title_ct =
            outpost_crypto::aead_seal(&self.content_key, title.as_bytes(), &title_aad(&id));
        let source_ct = outpost_crypto::aead_seal(&self.content_key, body, &source_aad(&id));
        let indexed = self.index_terms(&title, &chunks);
        let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let n = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        self.store.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO kb_documents
                 (id, title_ct, kind, bytes, chunks, created_by, created_at, source_ct, chunker)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    title_ct,
                    kind.as_str(),
                    bytes,
                    n,
                    actor,
                    created_at,
                    source_ct,
                    CHUNKER_VERSION
                ],
            )?;
            self.insert_chunks(&tx, &id, &chunks, &indexed)?;
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

    /// Stores a website import ([`website::Importer`]): a new document, or document
    /// `existing` replaced in one transaction (same id, so links to it hold). Not bound
    /// by [`MAX_UPLOAD_BYTES`]: the import has its own limits.
    pub fn put_document(
        &self,
        existing: Option<&str>,
        title: &str,
        kind: DocKind,
        body: &[u8],
    ) -> Result<DocumentSummary, KbError> {
        let Some(id) = existing.filter(|id| self.exists(id).unwrap_or(false)) else {
            return self.add_unbounded(title, kind, body, None);
        };
        let chunks = passages(kind, body)?;
        let title = clean_title(title);
        let id = id.to_owned();
        let title_ct =
            outpost_crypto::aead_seal(&self.content_key, title.as_bytes(), &title_aad(&id));
        let source_ct = outpost_crypto::aead_seal(&self.content_key, body, &source_aad(&id));
        let indexed = self.index_terms(&title, &chunks);
        let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let n = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        let created_at = store::now();
        self.store.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM kb_index WHERE rowid IN
                 (SELECT id FROM kb_chunks WHERE document_id = ?1)",
                [&id],
            )?;
            tx.execute("DELETE FROM kb_chunks WHERE document_id = ?1", [&id])?;
            self.insert_chunks(&tx, &id, &chunks, &indexed)?;
            tx.execute(
                "UPDATE kb_documents SET title_ct = ?1, bytes = ?2, chunks = ?3,
                   source_ct = ?4, chunker = ?5, created_at = ?6 WHERE id = ?7",
                params![
                    title_ct,
                    bytes,
                    n,
                    source_ct,
                    CHUNKER_VERSION,
                    created_at,
                    id
                ],
            )?;
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

    fn exists(&self, id: &str) -> Result<bool, KbError> {
        Ok(self.store.with(|c| {
            Ok(
                c.query_row("SELECT 1 FROM kb_documents WHERE id = ?1", [id], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })?)
    }

    /// The FTS5 rows of a document's passages: title words, context and text, blinded.
    /// Computed outside the database lock.
    fn index_terms(&self, title: &str, chunks: &[Chunk]) -> Vec<String> {
        let title = title_words(title);
        chunks
            .iter()
            .map(|c| {
                self.blinder
                    .document_terms(&format!("{title}\n{}\n{}", c.context, c.text))
            })
            .collect()
    }

    /// Inserts, seals and indexes the passages of document `id` inside `tx`.
    fn insert_chunks(
        &self,
        tx: &rusqlite::Transaction<'_>,
        id: &str,
        chunks: &[Chunk],
        indexed: &[String],
    ) -> rusqlite::Result<()> {
        // The chunk id is the AEAD associated data, so it is allocated first (the row is
        // inserted with an empty body, then filled in).
        let mut insert =
            tx.prepare("INSERT INTO kb_chunks (document_id, ord, body_ct) VALUES (?1, ?2, x'')")?;
        let mut fill =
            tx.prepare("UPDATE kb_chunks SET body_ct = ?1, context_ct = ?2 WHERE id = ?3")?;
        let mut index = tx.prepare("INSERT INTO kb_index (rowid, terms) VALUES (?1, ?2)")?;
        for (ord, (chunk, terms)) in chunks.iter().zip(indexed).enumerate() {
            insert.execute(params![id, i64::try_from(ord).unwrap_or(i64::MAX)])?;
            let chunk_id = tx.last_insert_rowid();
            let body = outpost_crypto::aead_seal(
                &self.content_key,
                chunk.text.as_bytes(),
                &chunk_aad(chunk_id),
            );
            let context = outpost_crypto::aead_seal(
                &self.content_key,
                chunk.context.as_bytes(),
                &context_aad(chunk_id),
            );
            fill.execute(params![body, context, chunk_id])?;
            index.execute(params![chunk_id, terms])?;
        }
        Ok(())
    }

    /// Cuts again the documents cut by an older chunker (see
    /// [`sections::CHUNKER_VERSION`]): from their sealed upload when it is kept, else
    /// (documents from before uploads were kept) from their old passages. One
    /// transaction per document, so a crash leaves each either old or new, and the next
    /// start finishes the rest. Returns how many documents were cut again.
    pub fn rechunk_outdated(&self) -> Result<usize, KbError> {
        let outdated: Vec<(String, String, Option<Vec<u8>>)> = self.store.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, kind, source_ct FROM kb_documents WHERE chunker < ?1
                 ORDER BY created_at, rowid",
            )?;
            let rows = stmt
                .query_map([CHUNKER_VERSION], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        let mut done = 0;
        for (id, kind, source_ct) in outdated {
            let Some((summary, old)) = self.document_chunks(&id)? else {
                continue;
            };
            let kind = DocKind::parse(&kind).unwrap_or(DocKind::Text);
            let chunks = match source_ct {
                Some(ct) => {
                    let body = outpost_crypto::aead_open(&self.content_key, &ct, &source_aad(&id))
                        .map_err(|_| KbError::Decrypt)?;
                    passages(kind, &body)?
                }
                None => {
                    let old: Vec<String> = old.into_iter().map(|c| c.text).collect();
                    sections::from_v1_passages(kind == DocKind::Csv, &old)
                }
            };
            let indexed = self.index_terms(&summary.title, &chunks);
            let n = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
            self.store.with(|c| {
                let tx = c.transaction()?;
                tx.execute(
                    "DELETE FROM kb_index WHERE rowid IN
                     (SELECT id FROM kb_chunks WHERE document_id = ?1)",
                    [&id],
                )?;
                tx.execute("DELETE FROM kb_chunks WHERE document_id = ?1", [&id])?;
                self.insert_chunks(&tx, &id, &chunks, &indexed)?;
                tx.execute(
                    "UPDATE kb_documents SET chunks = ?1, chunker = ?2 WHERE id = ?3",
                    params![n, CHUNKER_VERSION, id],
                )?;
                tx.commit()?;
                Ok(())
            })?;
            done += 1;
        }
        Ok(done)
    }

    /// The `limit` passages that best match `query` (BM25), best first. A query with no
    /// searchable word returns nothing.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Passage>, KbError> {
        self.search_query(&query::Query::parse(query), limit)
    }

    /// [`KnowledgeBase::search`] for a question already analysed.
    pub fn search_query(
        &self,
        query: &query::Query,
        limit: usize,
    ) -> Result<Vec<Passage>, KbError> {
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
                "SELECT c.document_id, c.body_ct, d.title_ct, c.context_ct
                 FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
                 WHERE c.id = ?1",
            )?;
            let mut rows = Vec::with_capacity(ranked.len());
            for (id, score) in ranked {
                let row = fetch
                    .query_row([id], |r| {
                        Ok(HitRow {
                            chunk_id: id,
                            document_id: r.get(0)?,
                            body_ct: r.get(1)?,
                            title_ct: r.get(2)?,
                            context_ct: r.get(3)?,
                            score,
                        })
                    })
                    .optional()?;
                // An index row without its chunk cannot happen (one transaction adds
                // and removes both); skip it rather than fail the search.
                rows.extend(row);
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|h| {
                Ok(Passage {
                    text: self.open(&h.body_ct, &chunk_aad(h.chunk_id))?,
                    context: self.context(h.chunk_id, h.context_ct.as_deref())?,
                    document_title: self.open(&h.title_ct, &title_aad(&h.document_id))?,
                    document_id: h.document_id,
                    chunk_id: h.chunk_id,
                    score: h.score,
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

    /// One document and its passages as shown (context on the first line), in order.
    pub fn document(&self, id: &str) -> Result<Option<(DocumentSummary, Vec<String>)>, KbError> {
        Ok(self.document_chunks(id)?.map(|(doc, chunks)| {
            let shown = chunks
                .iter()
                .map(|c| display(&c.context, &c.text))
                .collect();
            (doc, shown)
        }))
    }

    /// One document and its passages with their contexts, in order.
    pub fn document_chunks(
        &self,
        id: &str,
    ) -> Result<Option<(DocumentSummary, Vec<Chunk>)>, KbError> {
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
                "SELECT id, body_ct, context_ct FROM kb_chunks WHERE document_id = ?1
                 ORDER BY ord",
            )?;
            let chunks = stmt
                .query_map([id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((doc, chunks)))
        })?;
        let Some((doc, chunks)) = found else {
            return Ok(None);
        };
        let chunks = chunks
            .iter()
            .map(|(cid, body, context)| {
                Ok(Chunk {
                    text: self.open(body, &chunk_aad(*cid))?,
                    context: self.context(*cid, context.as_deref())?,
                })
            })
            .collect::<Result<Vec<_>, KbError>>()?;
        Ok(Some((self.summary(doc)?, chunks)))
    }

    /// A passage's context; empty for passages cut before contexts were kept.
    fn context(&self, chunk_id: i64, sealed: Option<&[u8]>) -> Result<String, KbError> {
        match sealed {
            Some(ct) => self.open(ct, &context_aad(chunk_id)),
            None => Ok(String::new()),
        }
    }

    /// Deletes a document, its passages and their index entries in one transaction.
    /// Returns whether it existed. The rows go first and the index entries last: the
    /// index's deletions are written as new pages, so on a full disk they must take the
    /// pages the document's rows just freed (the owner frees space by deleting documents).
    pub fn delete(&self, id: &str) -> Result<bool, KbError> {
        Ok(self.store.with(|c| {
            let tx = c.transaction()?;
            let chunks = tx
                .prepare("DELETE FROM kb_chunks WHERE document_id = ?1 RETURNING id")?
                .query_map([id], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let n = tx.execute("DELETE FROM kb_documents WHERE id = ?1", [id])?;
            let mut unindex = tx.prepare("DELETE FROM kb_index WHERE rowid = ?1")?;
            for chunk in chunks {
                unindex.execute([chunk])?;
            }
            drop(unindex);
            tx.commit()?;
            Ok(n > 0)
        })?)
    }
}

/// A search hit as read, still sealed.
struct HitRow {
    chunk_id: i64,
    document_id: String,
    body_ct: Vec<u8>,
    title_ct: Vec<u8>,
    context_ct: Option<Vec<u8>>,
    score: f64,
}

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
mod tests;
