//! Console pages of the knowledge base: list, search, upload, view and delete documents.
//!
//! Uploads are streamed: the file field is read chunk by chunk and the request is refused
//! with 413 as soon as it passes [`MAX_UPLOAD_BYTES`], before anything is stored. A refused
//! upload names the file the user chose ([`refused`]), so they know which one failed.

use super::access::Nav;
use super::flash::{see_other_done, Done};
use super::{render, valid_id, ConsoleError, ConsoleSession, ConsoleState, WriteSession};
use crate::domain::kb::website::{ImportError, Source, SourceState};
use crate::domain::kb::{DocKind, DocumentSummary, KbError, KnowledgeBase, MAX_UPLOAD_BYTES};
use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt as _;

/// Multipart framing (boundaries, part headers, a title field) allowed on top of the file
/// before a request is refused on its `Content-Length` alone.
const FORM_OVERHEAD: usize = 64 * 1024;
/// Longest title field read.
const MAX_TITLE_FIELD: usize = 1024;
/// Longest search query used, characters.
const MAX_QUERY_CHARS: usize = 500;
/// Passages shown for a search.
const SEARCH_RESULTS: usize = 10;

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/kb", web::get().to(index))
        .route("/kb/upload", web::post().to(upload))
        .route("/kb/sites", web::post().to(add_site))
        .route("/kb/sites/{id}/row", web::get().to(site_row))
        .route("/kb/sites/{id}/import", web::post().to(import_site))
        .route("/kb/sites/{id}/delete", web::post().to(delete_site))
        .route("/kb/{id}", web::get().to(document))
        .route("/kb/{id}/delete", web::post().to(delete));
}

fn too_large() -> ConsoleError {
    ConsoleError::TooLarge(
        "The file is larger than 10 MiB, the limit for one document. Split it into smaller files and upload them one by one."
            .to_owned(),
    )
}

fn unreadable(e: MultipartError) -> ConsoleError {
    tracing::info!(error = %e, "kb upload: unreadable multipart body");
    ConsoleError::BadRequest(
        "The upload could not be read. Choose the file again and retry.".into(),
    )
}

/// Longest file name quoted on an error page, characters.
const MAX_NAME_SHOWN: usize = 80;

/// `e`, a refusal of the file `name`, saying which file it was: "“prices.pdf” was not
/// added: …". The name is the user's own choice and only ever reaches their page (escaped
/// by the template), never the log; the file's content is never quoted.
fn refused(name: &str, e: ConsoleError) -> ConsoleError {
    let printable: String = name.chars().filter(|c| !c.is_control()).collect();
    let shown = crate::domain::content::preview(&printable, MAX_NAME_SHOWN);
    let named = |m: String| format!("“{shown}” was not added: {m}");
    match e {
        ConsoleError::BadRequest(m) => ConsoleError::BadRequest(named(m)),
        ConsoleError::TooLarge(m) => ConsoleError::TooLarge(named(m)),
        e => e,
    }
}

/// The refusal of a file whose type the knowledge base does not read.
fn not_accepted(name: &str) -> ConsoleError {
    let why = "This type of file is not accepted. Upload a .txt, .md, .html, .csv, .pdf or .docx file (an old Word .doc: save it as .docx first).";
    refused(name, ConsoleError::BadRequest(why.into()))
}

fn kb_error(e: KbError) -> ConsoleError {
    match e {
        KbError::Empty
        | KbError::NotUtf8
        | KbError::BadCsv(_)
        | KbError::BadFile(_)
        | KbError::NoTextLayer => ConsoleError::BadRequest(e.to_string()),
        KbError::TooLarge => too_large(),
        KbError::Unpacked => ConsoleError::TooLarge(e.to_string()),
        KbError::Store(e) => e.into(),
        KbError::Decrypt => ConsoleError::Internal(e.into()),
    }
}

fn knowledge_base(state: &ConsoleState) -> KnowledgeBase {
    KnowledgeBase::new(state.store.clone(), &state.master)
}

/// `1.2 MiB`, `340 KiB`, `12 B`.
pub fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn human_time(unix: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

struct DocRow {
    id: String,
    title: String,
    kind: &'static str,
    size: String,
    chunks: i64,
    added: String,
}

impl From<DocumentSummary> for DocRow {
    fn from(d: DocumentSummary) -> Self {
        Self {
            kind: d.kind.label(),
            size: human_size(d.bytes),
            added: human_time(d.created_at),
            chunks: d.chunks,
            id: d.id,
            title: d.title,
        }
    }
}

struct HitRow {
    document_id: String,
    document_title: String,
    lines: Vec<String>,
    score: String,
}

/// A website source as its row shows it.
pub(crate) struct SiteRow {
    id: String,
    url: String,
    /// Queued or running: the row polls itself.
    busy: bool,
    status: String,
    schedule: &'static str,
    last: String,
    document_id: Option<String>,
    notes: Vec<String>,
}

impl From<Source> for SiteRow {
    fn from(s: Source) -> Self {
        let status = match s.state {
            SourceState::Queued => "Waiting to start".to_owned(),
            SourceState::Running => format!(
                "Reading pages: {} of {} found so far",
                s.pages_done,
                s.pages_found.max(s.pages_done)
            ),
            SourceState::Done => format!("Imported {} pages", s.pages_done),
            SourceState::Failed => "Failed".to_owned(),
        };
        Self {
            busy: matches!(s.state, SourceState::Queued | SourceState::Running),
            schedule: match s.every_hours {
                0 => "Only when asked",
                24 => "Daily",
                168 => "Weekly",
                _ => "Scheduled",
            },
            last: s
                .finished_at
                .map(human_time)
                .unwrap_or_else(|| "never".to_owned()),
            status,
            id: s.id,
            url: s.url,
            document_id: s.document_id,
            notes: s.notes,
        }
    }
}

#[derive(Template)]
#[template(path = "kb_site_row_only.html")]
struct SiteRowFragment {
    s: SiteRow,
}

#[derive(Template)]
#[template(path = "kb.html")]
struct KbPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    sites: Vec<SiteRow>,
    query: String,
    searched: bool,
    hits: Vec<HitRow>,
    docs: Vec<DocRow>,
}

#[derive(Template)]
#[template(path = "kb_document.html")]
struct DocumentPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    doc: DocRow,
    chunks: Vec<Vec<String>>,
}

/// Query string of `GET /kb`.
#[derive(serde::Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// `GET /kb[?q=…]`: the documents, and search results when `q` is given.
pub async fn index(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let q: String = query
        .q
        .as_deref()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_QUERY_CHARS)
        .collect();
    let kb = knowledge_base(&state);
    let search = q.clone();
    let sites = state.sites.clone();
    let (docs, hits, sites) = web::block(move || -> Result<_, KbError> {
        let hits = if search.is_empty() {
            Vec::new()
        } else {
            kb.search(&search, SEARCH_RESULTS)?
        };
        Ok((kb.list()?, hits, sites.list()?))
    })
    .await?
    .map_err(kb_error)?;
    render(&KbPage {
        nav: Nav::for_session(&session),
        searched: !q.is_empty(),
        sites: sites.into_iter().map(SiteRow::from).collect(),
        query: q,
        hits: hits
            .into_iter()
            .map(|h| HitRow {
                lines: lines(&crate::domain::kb::display(&h.context, &h.text)),
                document_id: h.document_id,
                document_title: h.document_title,
                score: format!("{:.2}", h.score),
            })
            .collect(),
        docs: docs.into_iter().map(DocRow::from).collect(),
    })
}

/// `GET /kb/{id}`: one document's passages.
pub async fn document(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = id.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let kb = knowledge_base(&state);
    let found = web::block(move || kb.document(&id))
        .await?
        .map_err(kb_error)?;
    let (doc, chunks) = found.ok_or(ConsoleError::NotFound)?;
    render(&DocumentPage {
        nav: Nav::for_session(&session),
        doc: doc.into(),
        chunks: chunks.iter().map(|c| lines(c)).collect(),
    })
}

/// `POST /kb/{id}/delete`.
pub async fn delete(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = id.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let kb = knowledge_base(&state);
    let doc = id.clone();
    let existed = web::block(move || kb.delete(&doc))
        .await?
        .map_err(kb_error)?;
    if !existed {
        return Err(ConsoleError::NotFound);
    }
    tracing::info!(document = %id, "kb document deleted");
    Ok(see_other_done("/kb", Done::Deleted))
}

/// Form of `POST /kb/sites`.
#[derive(serde::Deserialize)]
pub struct SiteForm {
    url: String,
    /// Hours between imports: 24, 168 or 0 (only when asked).
    every: i64,
}

/// `POST /kb/sites`: adds a website source and starts its first import.
pub async fn add_site(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    form: web::Form<SiteForm>,
) -> Result<HttpResponse, ConsoleError> {
    let every = match form.every {
        0 | 24 | 168 => form.every,
        _ => {
            return Err(ConsoleError::BadRequest(
                "Choose how often to import.".into(),
            ))
        }
    };
    let url = form.url.trim().to_owned();
    if url.is_empty() || url.len() > 2000 {
        return Err(ConsoleError::BadRequest(
            "Enter the address of a page or of a sitemap.xml.".into(),
        ));
    }
    let sites = state.sites.clone();
    let id = web::block(move || sites.add(&url, every))
        .await?
        .map_err(|e| match e {
            ImportError::Refused(r) => {
                ConsoleError::BadRequest(format!("This address cannot be imported: {r}"))
            }
            ImportError::Kb(e) => kb_error(e),
            e => ConsoleError::BadRequest(e.to_string()),
        })?;
    tracing::info!(source = %id, every_hours = every, "website source added");
    Ok(see_other_done("/kb", Done::ImportQueued))
}

fn site_id(id: &str) -> Result<(), ConsoleError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ConsoleError::NotFound)
    }
}

/// `GET /kb/sites/{id}/row`: the source's table row (polled while it imports).
pub async fn site_row(
    state: web::Data<ConsoleState>,
    _session: ConsoleSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = id.into_inner();
    site_id(&id)?;
    let sites = state.sites.clone();
    let source = web::block(move || sites.get(&id))
        .await?
        .map_err(kb_error)?
        .ok_or(ConsoleError::NotFound)?;
    render(&SiteRowFragment { s: source.into() })
}

/// `POST /kb/sites/{id}/import`: imports the source again now.
pub async fn import_site(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = id.into_inner();
    site_id(&id)?;
    let sites = state.sites.clone();
    if !web::block(move || sites.queue_now(&id))
        .await?
        .map_err(kb_error)?
    {
        return Err(ConsoleError::NotFound);
    }
    Ok(see_other_done("/kb", Done::ImportQueued))
}

/// `POST /kb/sites/{id}/delete`: removes the source and the document of its pages.
pub async fn delete_site(
    state: web::Data<ConsoleState>,
    _session: WriteSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = id.into_inner();
    site_id(&id)?;
    let sites = state.sites.clone();
    let source = id.clone();
    if !web::block(move || sites.delete(&source))
        .await?
        .map_err(kb_error)?
    {
        return Err(ConsoleError::NotFound);
    }
    tracing::info!(source = %id, "website source deleted");
    Ok(see_other_done("/kb", Done::Deleted))
}

/// Reads a field to its end, refusing it past `limit` bytes (with `over`) as soon as the
/// limit is crossed, without reading the rest.
async fn read_field(
    field: &mut Field,
    limit: usize,
    over: fn() -> ConsoleError,
) -> Result<Vec<u8>, ConsoleError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if buf.len() + chunk.len() > limit {
            return Err(over());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The file name without any directory part (some browsers send `C:\fakepath\x.txt`).
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name).trim()
}

/// `POST /kb/upload` (multipart: `file`, optional `title`): stores the document and
/// redirects to it.
pub async fn upload(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    req: HttpRequest,
    mut form: Multipart,
) -> Result<HttpResponse, ConsoleError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // Over the limit by its declared length: refused without reading the file, once its
    // part's headers have said which file it is (browsers send the file field first).
    let declared_too_large = declared.is_some_and(|n| n > MAX_UPLOAD_BYTES + FORM_OVERHEAD);
    let mut file: Option<(String, DocKind, Vec<u8>)> = None;
    let mut title: Option<String> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(unreadable)?;
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(ConsoleError::BadRequest(
                        "Upload one file at a time.".into(),
                    ));
                }
                let name = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .map(|n| base_name(n).to_owned())
                    .unwrap_or_default();
                if name.is_empty() {
                    return Err(ConsoleError::BadRequest("Choose a file to upload.".into()));
                }
                // Refuse by type and declared size before reading a byte of the body.
                let kind = DocKind::from_filename(&name).ok_or_else(|| not_accepted(&name))?;
                if declared_too_large {
                    return Err(refused(&name, too_large()));
                }
                let body = read_field(&mut field, MAX_UPLOAD_BYTES, too_large)
                    .await
                    .map_err(|e| refused(&name, e))?;
                file = Some((name, kind, body));
            }
            Some("title") => {
                let raw = read_field(&mut field, MAX_TITLE_FIELD, || {
                    ConsoleError::BadRequest("The title is too long.".into())
                })
                .await?;
                let t = String::from_utf8(raw)
                    .map_err(|_| ConsoleError::BadRequest("The title is not valid text.".into()))?;
                let t = t.trim();
                if !t.is_empty() {
                    title = Some(t.to_owned());
                }
            }
            // Unknown fields are read and dropped, within the same limit.
            _ if declared_too_large => return Err(too_large()),
            _ => {
                read_field(&mut field, MAX_UPLOAD_BYTES, too_large).await?;
            }
        }
    }
    if declared_too_large {
        return Err(too_large());
    }
    let (name, kind, body) =
        file.ok_or_else(|| ConsoleError::BadRequest("Choose a file to upload.".into()))?;
    let title = title.unwrap_or_else(|| name.clone());
    let kb = knowledge_base(&state);
    let actor = session.user_id.clone();
    let doc = web::block(move || kb.add_document(&title, kind, &body, Some(&actor)))
        .await?
        .map_err(|e| refused(&name, kb_error(e)))?;
    // Ids and sizes only: titles and text are content.
    tracing::info!(
        document = %doc.id,
        kind = doc.kind.as_str(),
        bytes = doc.bytes,
        chunks = doc.chunks,
        "kb document added"
    );
    Ok(see_other_done(&format!("/kb/{}", doc.id), Done::Uploaded))
}

#[cfg(test)]
mod tests;
