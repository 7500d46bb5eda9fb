//! Who is told what, by email: every email is a template in
//! `control-plane/templates/email/` with its struct in [`emails`]; [`notices`] says which
//! notification goes to whom. Sending itself is the transport's (`crate::infra::mail`).
//! Emails carry links and metadata only, never conversation content, contact identifiers
//! or secrets.

pub mod emails;
pub mod notices;

use crate::error::AppResult;
use crate::infra::db::DbConn;
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

/// Email addresses of a workspace's members holding one of `roles` (e.g. the owners, for
/// billing and suspension notices).
pub fn addresses_of(conn: &mut DbConn, ws_id: &str, roles: &[&str]) -> AppResult<Vec<String>> {
    use crate::infra::schema::{memberships, users};
    use diesel::prelude::*;
    Ok(memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(memberships::role.eq_any(roles))
        .select(users::email)
        .order(users::email)
        .load(conn)?)
}
