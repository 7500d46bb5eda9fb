//! `/api/v1/kb/documents`: list, upload and delete knowledge-base documents. An upload
//! is the file itself as the body (any content type), its name in `filename`: the same
//! kinds and the same 10 MiB limit as the console's upload.

use super::{check_id, ApiCaller, ApiError, Code, ErrorJson};
use crate::domain::kb::{DocKind, DocumentSummary, KbError, KnowledgeBase, MAX_UPLOAD_BYTES};
use crate::web::console::ConsoleState;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A document (without its content).
#[derive(Serialize, ToSchema)]
pub struct DocumentJson {
    /// Document id.
    pub id: String,
    /// Title (the file name unless one was given).
    pub title: String,
    /// `text`, `markdown`, `html` or `csv`.
    pub kind: String,
    /// Size of the upload, bytes.
    pub bytes: i64,
    /// Passages the assistant searches.
    pub passages: i64,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<DocumentSummary> for DocumentJson {
    fn from(d: DocumentSummary) -> Self {
        Self {
            id: d.id,
            title: d.title,
            kind: d.kind.as_str().to_owned(),
            bytes: d.bytes,
            passages: d.chunks,
            created_at: d.created_at,
        }
    }
}

/// Every document, newest first (a knowledge base is small: no pages).
#[derive(Serialize, ToSchema)]
pub struct DocumentList {
    /// The documents.
    pub items: Vec<DocumentJson>,
}

#[derive(Deserialize)]
pub(crate) struct UploadQuery {
    filename: Option<String>,
    title: Option<String>,
}

fn kb(state: &ConsoleState) -> KnowledgeBase {
    KnowledgeBase::new(state.store.clone(), &state.master)
}

fn kb_error(e: KbError) -> ApiError {
    match e {
        KbError::TooLarge => ApiError::new(Code::PayloadTooLarge, e.to_string()),
        KbError::Empty | KbError::NotUtf8 | KbError::BadCsv(_) => ApiError::invalid(e.to_string()),
        KbError::Store(s) if s.is_full() => ApiError::new(
            Code::StorageFull,
            "The node's disk is full: nothing was saved.",
        ),
        other => ApiError::internal(other),
    }
}

/// The knowledge base's documents.
#[utoipa::path(get, path = "/api/v1/kb/documents", tag = "knowledge base",
    responses((status = 200, description = "Every document.", body = DocumentList)))]
pub(crate) async fn list(
    state: web::Data<ConsoleState>,
    _caller: ApiCaller,
) -> Result<HttpResponse, ApiError> {
    let kb = kb(&state);
    let docs = web::block(move || kb.list()).await?.map_err(kb_error)?;
    Ok(HttpResponse::Ok().json(DocumentList {
        items: docs.into_iter().map(Into::into).collect(),
    }))
}

/// Adds a document: the body is the file (UTF-8 text, Markdown, HTML or CSV, at most
/// 10 MiB), `filename` says which kind it is by its extension.
#[utoipa::path(post, path = "/api/v1/kb/documents", tag = "knowledge base",
    params(
        ("filename" = String, Query, description = "The file's name, e.g. `prices.md` (`.txt`, `.md`, `.html`, `.csv`)"),
        ("title" = Option<String>, Query, description = "A title; the file name by default"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file, at most 10 MiB."),
    responses(
        (status = 201, description = "Stored and searchable.", body = DocumentJson),
        (status = 400, description = "Not a kind the knowledge base takes, not UTF-8, no text, or a CSV it cannot read (`invalid_input`).", body = ErrorJson),
    ))]
pub(crate) async fn upload(
    state: web::Data<ConsoleState>,
    caller: ApiCaller,
    q: web::Query<UploadQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let UploadQuery { filename, title } = q.into_inner();
    let filename = filename
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::invalid("Name the file in `filename` (e.g. prices.md)."))?;
    let kind = DocKind::from_filename(&filename).ok_or_else(|| {
        ApiError::invalid("The knowledge base takes .txt, .md, .html and .csv files.")
    })?;
    // Read up to the limit and no further: an oversized body is refused mid-way.
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("The body could not be read."))?;
        if body.len() + chunk.len() > MAX_UPLOAD_BYTES {
            return Err(kb_error(KbError::TooLarge));
        }
        body.extend_from_slice(&chunk);
    }
    let title = title.unwrap_or(filename);
    let kb = kb(&state);
    let actor = caller.actor();
    let doc = web::block(move || kb.add_document(&title, kind, &body, Some(&actor)))
        .await?
        .map_err(kb_error)?;
    tracing::info!(token = %caller.0.id, document = %doc.id, "knowledge-base document added through the API");
    Ok(HttpResponse::Created().json(DocumentJson::from(doc)))
}

/// Deletes a document.
#[utoipa::path(delete, path = "/api/v1/kb/documents/{id}", tag = "knowledge base",
    params(("id" = String, Path, description = "Document id")),
    responses((status = 204, description = "Deleted.")))]
pub(crate) async fn delete(
    state: web::Data<ConsoleState>,
    caller: ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    check_id(&id)?;
    let kb = kb(&state);
    let doc = id.clone();
    if !web::block(move || kb.delete(&doc))
        .await?
        .map_err(kb_error)?
    {
        return Err(ApiError::not_found());
    }
    tracing::info!(token = %caller.0.id, document = %id, "knowledge-base document deleted through the API");
    Ok(HttpResponse::NoContent().finish())
}
