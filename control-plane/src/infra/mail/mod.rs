//! Outgoing email through one [`Mailer`], chosen in configuration ([`config`]):
//!
//! - `outbox` (the default): each message is written to `<data_dir>/outbox/`, so a fresh
//!   install needs no mail account;
//! - `smtp` ([`smtp`], lettre over STARTTLS or implicit TLS, rustls with ring);
//! - `resend`, `postmark` and `ses` ([`api`]): the providers' HTTPS JSON APIs, SES signed
//!   with AWS Signature V4 ([`sigv4`]).
//!
//! This is the transport only: what is sent, and to whom, is `crate::notify` (every email
//! a template in `control-plane/templates/email/`). Emails carry links and metadata only,
//! never conversation content, contact identifiers or secrets. Failures
//! name the transport and a kind ([`MailError`]): never the recipient, the body or the
//! provider's answer, which may echo either.

pub mod api;
pub mod config;
pub mod sigv4;
pub mod smtp;

use std::path::{Path, PathBuf};

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
    /// An SMTP server (TLS required unless it is on this machine).
    Smtp(smtp::Smtp),
    /// An HTTPS email API: Resend, Postmark or Amazon SES.
    Api(api::Api),
}

/// What went wrong, in words safe to log and show: a status code or an error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The provider answered with this HTTP status.
    Http(u16),
    /// The SMTP server answered with this reply code.
    Smtp(u16),
    /// No answer in time.
    Timeout,
    /// The connection could not be made.
    Unreachable,
    /// The TLS handshake failed (or STARTTLS was not offered).
    Tls,
    /// The request or the conversation went wrong in another way.
    Protocol,
    /// The recipient is not an address the transport accepts.
    InvalidAddress,
    /// The outbox could not be written.
    Io,
}

impl ErrorKind {
    /// Stable snake_case code for logs.
    pub fn code(&self) -> String {
        match self {
            ErrorKind::Http(s) => format!("http_{s}"),
            ErrorKind::Smtp(c) => format!("smtp_{c}"),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Unreachable => "unreachable".into(),
            ErrorKind::Tls => "tls".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::InvalidAddress => "invalid_address".into(),
            ErrorKind::Io => "io".into(),
        }
    }
}

/// An email that was not sent: the transport and what went wrong, nothing else (no
/// address, body, or provider answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{transport} did not take the email: {}", .kind.code())]
pub struct MailError {
    /// `outbox`, `smtp`, `resend`, `postmark` or `ses`.
    pub transport: &'static str,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl MailError {
    /// An error of `transport`.
    pub fn new(transport: &'static str, kind: ErrorKind) -> Self {
        Self { transport, kind }
    }
}

/// Replaces line breaks and other control characters, so a workspace name in a subject
/// cannot add headers.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Mailer {
    /// The mailer `config` describes. `public_url` names this host in SMTP's EHLO.
    pub fn from_config(
        config: &config::MailConfig,
        data_dir: &Path,
        http: reqwest::Client,
        public_url: &str,
    ) -> anyhow::Result<Self> {
        use config::Transport;
        Ok(match &config.transport {
            Transport::Outbox => Mailer::DevOutbox(data_dir.join("outbox")),
            Transport::Smtp(c) => Mailer::Smtp(smtp::Smtp::new(c, public_url)?),
            Transport::Api(c) => Mailer::Api(api::Api::new(c.clone(), http)),
        })
    }

    /// Sends (or, for the dev outbox, stores) an email.
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self {
            Mailer::DevOutbox(dir) => write_outbox(dir, email).await,
            Mailer::Smtp(s) => s.send(email).await,
            Mailer::Api(a) => a.send(email).await,
        }
    }

    /// Transport name as logged: `outbox`, `smtp`, `resend`, `postmark`, `ses`.
    pub fn transport(&self) -> &'static str {
        match self {
            Mailer::DevOutbox(_) => "outbox",
            Mailer::Smtp(_) => "smtp",
            Mailer::Api(a) => a.provider().as_str(),
        }
    }

    /// The outbox directory when this is the dev outbox (the sign-in page then says where
    /// links go, and the log shows them).
    pub fn dev_outbox(&self) -> Option<&Path> {
        match self {
            Mailer::DevOutbox(d) => Some(d),
            _ => None,
        }
    }

    /// Sends `email`, known to the caller by `key` (the durable outbox's row id). The dev
    /// outbox writes it as `<key>.eml`: a second attempt at the same email
    /// (after a crash between writing it and recording that it was written) replaces the
    /// file instead of adding one. The other transports send it as [`Mailer::send`] does.
    pub async fn send_keyed(&self, email: &Email, key: &str) -> Result<(), MailError> {
        match self {
            Mailer::DevOutbox(dir) => write_outbox_as(dir, email, key).await,
            _ => self.send(email).await,
        }
    }

    /// Human description for the start-up banner (no key, password or token).
    pub fn describe(&self) -> String {
        match self {
            Mailer::DevOutbox(dir) => format!("dev outbox {}", dir.display()),
            Mailer::Smtp(s) => s.describe(),
            Mailer::Api(a) => a.describe(),
        }
    }
}

async fn write_outbox(dir: &Path, email: &Email) -> Result<(), MailError> {
    let key = format!("{}-{}", crate::infra::db::now_ms(), uuid::Uuid::new_v4());
    write_outbox_as(dir, email, &key).await
}

/// Writes `<dir>/<key>.eml`: writing the same key twice leaves one file (the second
/// replaces the first, whole or partly written).
async fn write_outbox_as(dir: &Path, email: &Email, key: &str) -> Result<(), MailError> {
    let io = |_| MailError::new("outbox", ErrorKind::Io);
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let path = dir.join(format!("{key}.eml"));
    let content = format!(
        "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        one_line(&email.to),
        one_line(&email.subject),
        email.body
    );
    tokio::fs::write(&path, content).await.map_err(io)?;
    tracing::info!(path = %path.display(), "dev outbox: email written");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn outbox_files(dir: &Path) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }

    #[actix_web::test]
    async fn the_outbox_writes_one_file_per_email_and_a_subject_cannot_add_headers() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::DevOutbox(dir.path().join("outbox"));
        mailer
            .send(&Email {
                to: "owner@acme.test".into(),
                subject: "Acme\r\nBcc: eve@evil.test".into(),
                body: "Hello\r\n".into(),
            })
            .await
            .unwrap();
        let files = outbox_files(&dir.path().join("outbox"));
        assert_eq!(files.len(), 1);
        assert!(
            files[0].starts_with("To: owner@acme.test\r\nSubject: Acme  Bcc: eve@evil.test\r\n")
        );
        assert!(!files[0].contains("\r\nBcc:"));
    }

    #[actix_web::test]
    async fn the_same_key_twice_is_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::DevOutbox(dir.path().join("outbox"));
        let email = Email {
            to: "owner@acme.test".into(),
            subject: "Outpost: Acme is ready".into(),
            body: "link".into(),
        };
        for _ in 0..2 {
            mailer
                .send_keyed(&email, "1700000000000-abc")
                .await
                .unwrap();
        }
        assert_eq!(outbox_files(&dir.path().join("outbox")).len(), 1);
    }

    #[test]
    fn errors_name_the_transport_and_kind_only() {
        let e = MailError::new("resend", ErrorKind::Http(422));
        assert_eq!(e.to_string(), "resend did not take the email: http_422");
        let e = MailError::new("smtp", ErrorKind::Smtp(550));
        assert_eq!(e.to_string(), "smtp did not take the email: smtp_550");
    }
}
