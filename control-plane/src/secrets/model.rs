//! Secret kinds and delivery statuses, and the rules a submitted value must meet. Pure:
//! no database, no HTTP.

use crate::error::{AppError, AppResult, Code};
use outpost_crypto::Secret;

/// How long a sealed secret may wait for the node.
pub const DELIVERY_TTL_SECS: i64 = 3600;
/// Longest value accepted.
pub const MAX_VALUE_CHARS: usize = 4096;

/// What a secret is for: one list for both programs (`outpost_protocol::SecretKind`).
pub use outpost_protocol::SecretKind;

/// Parses a submitted kind, or says to choose a listed one.
pub fn parse_kind(s: &str) -> AppResult<SecretKind> {
    SecretKind::parse(s).ok_or_else(|| {
        AppError::invalid(Code::UnknownSecretKind, "Choose one of the listed kinds.")
    })
}

/// Name of a stored kind for people (`"secret"` for one this build does not know).
pub fn label(kind: &str) -> &'static str {
    SecretKind::parse(kind).map_or("secret", SecretKind::label)
}

/// Where a secret's delivery to the node stands (`workspace_secrets.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretStatus {
    /// Sealed and queued, waiting for the node (at most [`DELIVERY_TTL_SECS`]).
    Pending,
    /// The node stored it.
    Delivered,
    /// The node could not store it (`error_code` says why).
    Failed,
    /// The node did not fetch it in time; the sealed value was deleted.
    Expired,
    /// The node was asked to forget it.
    Removing,
}

impl SecretStatus {
    /// Stable name stored in the database and shown by the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecretStatus::Pending => "pending",
            SecretStatus::Delivered => "delivered",
            SecretStatus::Failed => "failed",
            SecretStatus::Expired => "expired",
            SecretStatus::Removing => "removing",
        }
    }

    /// Parses [`SecretStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            SecretStatus::Pending,
            SecretStatus::Delivered,
            SecretStatus::Failed,
            SecretStatus::Expired,
            SecretStatus::Removing,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A stored status in words (unknown ones as they are).
pub fn status_text(status: &str, error_code: Option<&str>) -> String {
    match SecretStatus::parse(status) {
        Some(SecretStatus::Pending) => "waiting for your node (sealed; at most 1 hour)".into(),
        Some(SecretStatus::Delivered) => "delivered to your node".into(),
        Some(SecretStatus::Expired) => {
            "not delivered: your node was unreachable for an hour. Submit it again.".into()
        }
        Some(SecretStatus::Removing) => "being removed from your node".into(),
        Some(SecretStatus::Failed) => format!(
            "your node could not store it ({})",
            error_code.unwrap_or("unknown")
        ),
        None => status.into(),
    }
}

/// A value must be non-empty, without whitespace, at most [`MAX_VALUE_CHARS`].
pub fn check_value(value: &Secret) -> AppResult<()> {
    let n = value.expose().chars().count();
    if n == 0 || n > MAX_VALUE_CHARS || value.expose().contains(char::is_whitespace) {
        return Err(AppError::invalid(
            Code::InvalidSecret,
            "Paste the value without spaces (at most 4,096 characters).",
        ));
    }
    Ok(())
}

/// The last four characters, which the CP keeps to help people recognise a key.
pub fn last4(value: &Secret) -> String {
    let chars: Vec<char> = value.expose().chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in SecretKind::ALL {
            assert_eq!(SecretKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(SecretKind::ALL.len(), 10);
        assert_eq!(label("nope"), "secret");
        assert_eq!(label("telegram_bot_token"), "Telegram bot token");
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["pending", "delivered", "failed", "expired", "removing"] {
            assert_eq!(SecretStatus::parse(s).map(SecretStatus::as_str), Some(s));
        }
        assert_eq!(status_text("odd", None), "odd");
    }

    #[test]
    fn last_four() {
        assert_eq!(last4(&Secret::new("sk-abcdef".into())), "cdef");
        assert_eq!(last4(&Secret::new("ab".into())), "ab");
    }
}
