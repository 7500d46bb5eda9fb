//! The knowledge base: documents uploaded in the console, chunked, encrypted at rest and
//! indexed in SQLite FTS5 for BM25 retrieval.

/// Migration adding the knowledge-base tables (see `store::MIGRATIONS`).
pub const SCHEMA: &str = "";
