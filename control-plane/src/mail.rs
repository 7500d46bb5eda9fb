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
