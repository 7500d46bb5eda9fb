//! What the personal data document shows, pure.

/// Audit events shown per workspace and for the user.
pub const AUDIT_LIMIT: i64 = 200;
