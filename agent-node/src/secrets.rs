//! Secrets on the node (LLM keys; channel tokens later), sealed under the master key.

/// Migration adding the secrets table (see `store::MIGRATIONS`).
pub const SCHEMA: &str = "";
