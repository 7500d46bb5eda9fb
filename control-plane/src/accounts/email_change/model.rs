//! Email change rules, pure.

/// How long the confirmation link works, seconds.
pub const LINK_TTL: i64 = 30 * 60;
/// Changes one account may ask for per hour.
pub const PER_HOUR: i64 = 5;

/// What asking for a change did.
#[derive(Debug)]
pub struct Requested {
    /// The address now (told of the request).
    pub old_email: String,
    /// The address asked for, normalised.
    pub new_email: String,
    /// The confirmation token, or `None` when another account uses the new address (its
    /// mailbox is told so instead).
    pub token: Option<String>,
}

/// A change done: the account and its old and new addresses.
#[derive(Debug)]
pub struct Changed {
    /// The account.
    pub user_id: String,
    /// The address before (told of the change).
    pub old_email: String,
    /// The address now.
    pub new_email: String,
}
