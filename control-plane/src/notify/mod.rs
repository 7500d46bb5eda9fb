//! Who is told what, by email: every email is a template in
//! `control-plane/templates/email/` with its struct in [`emails`]; [`notices`] says which
//! notification goes to whom. Sending itself is the transport's (`crate::infra::mail`).
//! Emails carry links and metadata only, never conversation content, contact identifiers
//! or secrets.

pub mod emails;
pub mod notices;
pub mod store;

pub use store::addresses_of;

use crate::infra::mail::{Email, Mailer};

/// Where notices go out from: the mail transport and the UI's public URL (for links).
#[derive(Clone, Copy)]
pub struct Notifier<'a> {
    /// The transport.
    pub mailer: &'a Mailer,
    /// Public base URL of the UI, without a trailing slash.
    pub public_url: &'a str,
}

/// Sends the same `subject` and `body` to each of `recipients` in the background, one
/// email each ([`Mailer::send_later`]).
pub fn send_later_to_each(mailer: &Mailer, recipients: Vec<String>, subject: &str, body: &str) {
    for to in recipients {
        mailer.send_later(Email {
            to,
            subject: subject.to_owned(),
            body: body.to_owned(),
        });
    }
}
