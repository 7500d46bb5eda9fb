//! Outgoing email. The default is a dev outbox: each message is written to
//! `<data_dir>/outbox/` and its links are logged, so a fresh install needs no mail
//! account. Emails carry links and metadata only, never conversation content.

use std::path::PathBuf;

/// An email to send.
#[derive(Debug, Clone)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Mail transport.
#[derive(Debug, Clone)]
pub enum Mailer {
    /// Writes `.eml` files into a directory.
    DevOutbox(PathBuf),
}

impl Mailer {
    /// Sends (or, for the dev outbox, stores) an email.
    pub fn send(&self, email: &Email) -> anyhow::Result<()> {
        match self {
            Mailer::DevOutbox(dir) => {
                std::fs::create_dir_all(dir)?;
                let name = format!("{}-{}.eml", crate::db::now_ms(), uuid::Uuid::new_v4());
                let path = dir.join(name);
                let content = format!(
                    "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
                    email.to, email.subject, email.body
                );
                std::fs::write(&path, content)?;
                tracing::info!(path = %path.display(), "dev outbox: email written");
                Ok(())
            }
        }
    }

    /// Human description for the start-up banner.
    pub fn describe(&self) -> String {
        match self {
            Mailer::DevOutbox(dir) => format!("dev outbox {}", dir.display()),
        }
    }
}

/// Sends `email` in the background: the request or worker that triggered it does not wait
/// for (or fail with) the mail provider. A failure is logged with its cause, never with the
/// address or the body.
pub fn send_later(state: &crate::app::State, email: Email) {
    let mailer = state.mailer.clone();
    actix_web::rt::spawn(async move {
        let subject = email.subject.clone();
        let r = actix_web::web::block(move || mailer.send(&email)).await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), %subject, "email not sent"),
            Err(e) => tracing::warn!(error = %e, %subject, "email not sent"),
        }
    });
}

/// Email addresses of a workspace's members holding one of `roles` (e.g. the owners, for
/// billing and suspension notices).
pub fn addresses_of(
    conn: &mut crate::db::DbConn,
    ws_id: &str,
    roles: &[&str],
) -> crate::error::AppResult<Vec<String>> {
    use crate::schema::{memberships, users};
    use diesel::prelude::*;
    Ok(memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(ws_id))
        .filter(memberships::role.eq_any(roles))
        .select(users::email)
        .order(users::email)
        .load(conn)?)
}
