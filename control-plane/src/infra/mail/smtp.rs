//! SMTP through lettre (async on tokio, rustls with ring, Mozilla roots). STARTTLS is
//! required by default: a server that does not offer it gets nothing, not even the
//! password. Plaintext is possible only to a server on this machine (a local relay), which
//! configuration checks. One connection per email; the volume is a few emails a day.

use super::config::{SmtpConfig, SmtpTls};
use super::{one_line, Email, ErrorKind, MailError};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Limit for each SMTP command (connect, greeting, each reply).
const TIMEOUT: Duration = Duration::from_secs(20);

/// A configured SMTP transport.
#[derive(Clone)]
pub struct Smtp {
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port (tls) from sender`, for the banner.
    label: String,
    /// Domain of the sender, for Message-IDs.
    domain: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp").field("label", &self.label).finish()
    }
}

/// The EHLO name: the public URL's host (an address literal when it is an IP).
fn client_id(public_url: &str) -> ClientId {
    let host = reqwest::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "localhost".into());
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => ClientId::Ipv4(a),
        Ok(std::net::IpAddr::V6(a)) => ClientId::Ipv6(a),
        Err(_) => ClientId::Domain(host),
    }
}

impl Smtp {
    /// Builds the transport (no connection is made until the first email).
    pub fn new(c: &SmtpConfig, public_url: &str) -> anyhow::Result<Self> {
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|_| anyhow::anyhow!("mail from is not an email address"))?;
        let tls = match c.tls {
            SmtpTls::StartTls => Tls::Required(TlsParameters::new(c.host.clone())?),
            SmtpTls::Implicit => Tls::Wrapper(TlsParameters::new(c.host.clone())?),
            SmtpTls::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
            .port(c.port)
            .tls(tls)
            .timeout(Some(TIMEOUT))
            .hello_name(client_id(public_url));
        if let Some((user, password)) = &c.credentials {
            b = b.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            domain: from.email.domain().to_owned(),
            from,
            transport: b.build(),
            label: format!(
                "smtp {}:{} ({}) from {}",
                c.host,
                c.port,
                c.tls.as_str(),
                c.from
            ),
        })
    }

    /// Start-up banner text (no user name or password).
    pub fn describe(&self) -> String {
        self.label.clone()
    }

    /// Sends one email; `Ok` once the server accepted it (250 after DATA).
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let err = |kind| MailError::new("smtp", kind);
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| err(ErrorKind::InvalidAddress))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(one_line(&email.subject))
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::new_v4().simple(),
                self.domain
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|_| err(ErrorKind::Protocol))?;
        self.transport.send(message).await.map_err(|e| {
            // Never the error's text: a server reply may quote the recipient.
            err(if let Some(code) = e.status() {
                ErrorKind::Smtp(code.to_string().parse().unwrap_or(0))
            } else if e.is_timeout() {
                ErrorKind::Timeout
            } else if e.is_tls() {
                ErrorKind::Tls
            } else if e.is_client() || e.is_response() {
                ErrorKind::Protocol
            } else {
                ErrorKind::Unreachable
            })
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use outpost_crypto::Secret;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// What the fake server saw of one session.
    #[derive(Debug, Default)]
    struct Session {
        commands: Vec<String>,
        data: String,
    }

    /// A tiny SMTP server on 127.0.0.1:0 speaking plain RFC 5321 for one session: EHLO,
    /// optional AUTH PLAIN (accepts `outpost`/`pass-word`), MAIL FROM, RCPT TO (refuses
    /// `reject@…` with 550), DATA, QUIT. `starttls` adds STARTTLS to the EHLO answer
    /// (and answers it, then hangs up at the ClientHello).
    async fn fake_server(starttls: bool) -> (u16, tokio::task::JoinHandle<Session>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            let mut s = Session::default();
            w.write_all(b"220 fake.test ESMTP\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                s.commands.push(line.clone());
                let upper = line.to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") {
                    if starttls {
                        b"250-fake.test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
                    } else {
                        b"250-fake.test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n"
                    }
                } else if upper.starts_with("AUTH PLAIN") {
                    let arg = line.split_whitespace().nth(2).unwrap_or_default();
                    use base64::Engine;
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(arg)
                        .unwrap_or_default();
                    if decoded == b"\0outpost\0pass-word" {
                        b"235 2.7.0 ok\r\n"
                    } else {
                        b"535 5.7.8 bad credentials\r\n"
                    }
                } else if upper.starts_with("MAIL FROM") {
                    b"250 ok\r\n"
                } else if upper.starts_with("RCPT TO") {
                    if upper.contains("REJECT@") {
                        b"550 5.1.1 <reject@acme.test>: Recipient address rejected\r\n"
                    } else {
                        b"250 ok\r\n"
                    }
                } else if upper == "DATA" {
                    w.write_all(b"354 go ahead\r\n").await.unwrap();
                    while let Ok(Some(d)) = lines.next_line().await {
                        if d == "." {
                            break;
                        }
                        s.data.push_str(&d);
                        s.data.push('\n');
                    }
                    b"250 2.0.0 queued\r\n"
                } else if upper == "STARTTLS" {
                    // What follows is a TLS ClientHello, which this fake does not speak.
                    w.write_all(b"220 ready\r\n").await.unwrap();
                    break;
                } else if upper == "QUIT" {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                } else if upper == "RSET" || upper == "NOOP" {
                    b"250 ok\r\n"
                } else {
                    b"502 not implemented\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
            s
        });
        (port, handle)
    }

    fn config(port: u16, tls: SmtpTls, creds: Option<(&str, &str)>) -> SmtpConfig {
        SmtpConfig {
            from: "Outpost <noreply@outpost.test>".into(),
            host: "127.0.0.1".into(),
            port,
            tls,
            credentials: creds.map(|(u, p)| (u.to_owned(), Secret::new(p.to_owned()))),
        }
    }

    fn email(to: &str) -> Email {
        Email {
            to: to.into(),
            subject: "Outpost: Acme Dental is ready".into(),
            body: "Open the workspace: https://cp.test/workspaces/ws1\r\n".into(),
        }
    }

    #[tokio::test]
    async fn a_message_goes_through_ehlo_auth_plain_mail_rcpt_data_quit() {
        let (port, server) = fake_server(false).await;
        let smtp = Smtp::new(
            &config(port, SmtpTls::None, Some(("outpost", "pass-word"))),
            "https://cp.outpost.test",
        )
        .unwrap();
        smtp.send(&email("owner@acme.test")).await.unwrap();
        let s = server.await.unwrap();
        let verbs: Vec<String> = s
            .commands
            .iter()
            .map(|c| c.split([' ', ':']).next().unwrap().to_ascii_uppercase())
            .collect();
        assert_eq!(
            verbs,
            ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"],
            "{s:?}"
        );
        assert_eq!(s.commands[0], "EHLO cp.outpost.test");
        assert!(s.commands[2].contains("<noreply@outpost.test>"), "{s:?}");
        assert!(s.commands[3].contains("<owner@acme.test>"), "{s:?}");
        assert!(
            s.data.contains("From: Outpost <noreply@outpost.test>"),
            "{}",
            s.data
        );
        assert!(s.data.contains("To: owner@acme.test"), "{}", s.data);
        assert!(s.data.contains("Subject: Outpost: Acme Dental is ready"));
        assert!(s.data.contains("Message-ID: <"));
        assert!(s.data.contains("@outpost.test>"));
        assert!(s.data.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(s.data.contains("https://cp.test/workspaces/ws1"));
    }

    #[tokio::test]
    async fn refusals_are_reported_as_reply_codes_without_the_server_text() {
        let (port, server) = fake_server(false).await;
        let smtp = Smtp::new(
            &config(port, SmtpTls::None, Some(("outpost", "wrong"))),
            "http://127.0.0.1:8080",
        )
        .unwrap();
        let e = smtp.send(&email("owner@acme.test")).await.unwrap_err();
        assert_eq!(e, MailError::new("smtp", ErrorKind::Smtp(535)));
        assert_eq!(server.await.unwrap().commands[0], "EHLO [127.0.0.1]");

        let (port, _server) = fake_server(false).await;
        let smtp = Smtp::new(&config(port, SmtpTls::None, None), "http://127.0.0.1").unwrap();
        let e = smtp.send(&email("reject@acme.test")).await.unwrap_err();
        assert_eq!(e, MailError::new("smtp", ErrorKind::Smtp(550)));
        assert!(!e.to_string().contains("reject@"));
    }

    /// The production default: a server that does not upgrade to TLS gets neither the
    /// password nor the message.
    #[tokio::test]
    async fn starttls_is_required_by_default() {
        // No STARTTLS offered at all.
        let (port, server) = fake_server(false).await;
        let smtp = Smtp::new(
            &config(port, SmtpTls::StartTls, Some(("outpost", "pass-word"))),
            "https://cp.outpost.test",
        )
        .unwrap();
        let e = smtp.send(&email("owner@acme.test")).await.unwrap_err();
        assert_eq!(e.transport, "smtp");
        drop(smtp);
        let s = server.await.unwrap();
        assert!(
            s.commands.iter().all(|c| !c.starts_with("AUTH")
                && !c.starts_with("MAIL")
                && !c.contains("pass-word")),
            "{s:?}"
        );

        // STARTTLS offered but the handshake cannot complete (the fake speaks no TLS).
        let (port, server) = fake_server(true).await;
        let smtp = Smtp::new(
            &config(port, SmtpTls::StartTls, Some(("outpost", "pass-word"))),
            "https://cp.outpost.test",
        )
        .unwrap();
        assert!(smtp.send(&email("owner@acme.test")).await.is_err());
        drop(smtp);
        let s = server.await.unwrap();
        assert!(
            s.commands
                .iter()
                .all(|c| !c.starts_with("AUTH") && !c.starts_with("MAIL")),
            "{s:?}"
        );
    }

    #[tokio::test]
    async fn nobody_listening_is_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let smtp = Smtp::new(&config(port, SmtpTls::None, None), "http://127.0.0.1").unwrap();
        let e = smtp.send(&email("owner@acme.test")).await.unwrap_err();
        assert_eq!(e, MailError::new("smtp", ErrorKind::Unreachable));
    }
}
