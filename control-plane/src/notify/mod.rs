//! Who is told what, by email: every email is a template in
//! `control-plane/templates/email/` with its struct in [`emails`]; [`notices`] says which
//! notification goes to whom. Every email but a sign-in link is queued in the durable
//! [`outbox`] inside the transaction of the change it announces, and sent from there by its
//! worker through the transport (`crate::infra::mail`).
//! Emails carry links and metadata only, never conversation content, contact identifiers
//! or secrets.

pub mod emails;
pub mod notices;
pub mod outbox;
pub mod store;

pub use store::addresses_of;

/// What notices need to write their links: the UI's public URL. The emails themselves
/// go to the [`outbox`], on the caller's connection.
#[derive(Clone, Copy)]
pub struct Notifier<'a> {
    /// Public base URL of the UI, without a trailing slash.
    pub public_url: &'a str,
}

/// Queues the same `subject` and `body` for each of `recipients`, one email each, on
/// `conn` ([`outbox::enqueue`]): inside the caller's transaction, the emails are stored
/// with the change or not at all.
pub fn queue_to_each(
    conn: &mut crate::infra::db::DbConn,
    recipients: &[String],
    subject: &str,
    body: &str,
) -> crate::error::AppResult<()> {
    outbox::enqueue(conn, recipients, subject, body)
}
