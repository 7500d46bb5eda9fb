//! Mail configuration: `--mail-*` flags, `OUTPOST_MAIL_*` environment variables, or a
//! `[mail]` table in the TOML file (the same names without the `mail_` prefix). Without
//! any of them emails go to the dev outbox. A real transport needs `from` and its own
//! options; start-up refuses a half-configured one and names what is missing.

use super::api::Provider;
use clap::Args;
use outpost_crypto::Secret;
use serde::Deserialize;

fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s.to_owned()))
}

/// Mail flags and environment variables of `serve`. Prefer the environment or the TOML
/// file for keys and passwords: flags show in the process list.
#[derive(Args, Debug, Clone, Default)]
pub struct MailArgs {
    /// Mail transport: `outbox` (default: each email is written to <data_dir>/outbox, no
    /// account needed), `smtp`, `resend`, `postmark` or `ses`. In the TOML file the mail
    /// options go in a `[mail]` table, without the `mail_` prefix
    #[arg(long, env = "OUTPOST_MAIL_TRANSPORT")]
    pub mail_transport: Option<String>,
    /// Sender, e.g. `Outpost <noreply@example.com>`; required by every transport but the
    /// outbox (the provider must accept it: a verified domain or address)
    #[arg(long, env = "OUTPOST_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// SMTP server host name (smtp)
    #[arg(long, env = "OUTPOST_MAIL_SMTP_HOST")]
    pub mail_smtp_host: Option<String>,
    /// SMTP port [default: 587 with starttls, 465 with tls, 25 with none]
    #[arg(long, env = "OUTPOST_MAIL_SMTP_PORT")]
    pub mail_smtp_port: Option<u16>,
    /// SMTP encryption: `starttls` (default; refuses a server that does not offer it),
    /// `tls` (implicit TLS), or `none` (plaintext, only to a server on this machine)
    #[arg(long, env = "OUTPOST_MAIL_SMTP_TLS")]
    pub mail_smtp_tls: Option<String>,
    /// SMTP user name (with the password; AUTH PLAIN or LOGIN)
    #[arg(long, env = "OUTPOST_MAIL_SMTP_USERNAME")]
    pub mail_smtp_username: Option<String>,
    /// SMTP password
    #[arg(long, env = "OUTPOST_MAIL_SMTP_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub mail_smtp_password: Option<Secret>,
    /// Resend API key (resend)
    #[arg(long, env = "OUTPOST_MAIL_RESEND_API_KEY", hide_env_values = true, value_parser = secret)]
    pub mail_resend_api_key: Option<Secret>,
    /// Resend API base URL [default: https://api.resend.com]
    #[arg(long, env = "OUTPOST_MAIL_RESEND_BASE_URL")]
    pub mail_resend_base_url: Option<String>,
    /// Postmark server token (postmark)
    #[arg(long, env = "OUTPOST_MAIL_POSTMARK_SERVER_TOKEN", hide_env_values = true, value_parser = secret)]
    pub mail_postmark_server_token: Option<Secret>,
    /// Postmark API base URL [default: https://api.postmarkapp.com]
    #[arg(long, env = "OUTPOST_MAIL_POSTMARK_BASE_URL")]
    pub mail_postmark_base_url: Option<String>,
    /// Amazon SES region, e.g. `eu-west-1` (ses)
    #[arg(long, env = "OUTPOST_MAIL_SES_REGION")]
    pub mail_ses_region: Option<String>,
    /// AWS access key id of an IAM user allowed `ses:SendEmail` (ses)
    #[arg(long, env = "OUTPOST_MAIL_SES_ACCESS_KEY_ID")]
    pub mail_ses_access_key_id: Option<String>,
    /// AWS secret access key (ses)
    #[arg(long, env = "OUTPOST_MAIL_SES_SECRET_ACCESS_KEY", hide_env_values = true, value_parser = secret)]
    pub mail_ses_secret_access_key: Option<Secret>,
    /// AWS session token, with temporary credentials only (ses)
    #[arg(long, env = "OUTPOST_MAIL_SES_SESSION_TOKEN", hide_env_values = true, value_parser = secret)]
    pub mail_ses_session_token: Option<Secret>,
    /// SES API base URL [default: https://email.<region>.amazonaws.com]
    #[arg(long, env = "OUTPOST_MAIL_SES_BASE_URL")]
    pub mail_ses_base_url: Option<String>,
    /// Attempts at sending one email before it is given up (logged, kept as `failed` in
    /// the mail_outbox table) [default: 12, about 5 hours with the default delay]
    #[arg(long, env = "OUTPOST_MAIL_MAX_ATTEMPTS")]
    pub mail_max_attempts: Option<u32>,
    /// Seconds before the first retry of an email the transport did not take; each next
    /// retry waits twice as long, at most an hour [default: 30]
    #[arg(long, env = "OUTPOST_MAIL_RETRY_SECS")]
    pub mail_retry_secs: Option<u32>,
}

/// A secret read from the TOML file: a [`Secret`] from the moment it is parsed.
#[derive(Deserialize, Debug)]
#[serde(from = "String")]
pub struct FileSecret(Secret);

impl From<String> for FileSecret {
    fn from(s: String) -> Self {
        Self(Secret::new(s))
    }
}

/// The `[mail]` table of the TOML file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct MailFile {
    transport: Option<String>,
    from: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<FileSecret>,
    resend_api_key: Option<FileSecret>,
    resend_base_url: Option<String>,
    postmark_server_token: Option<FileSecret>,
    postmark_base_url: Option<String>,
    ses_region: Option<String>,
    ses_access_key_id: Option<String>,
    ses_secret_access_key: Option<FileSecret>,
    ses_session_token: Option<FileSecret>,
    ses_base_url: Option<String>,
    max_attempts: Option<u32>,
    retry_secs: Option<u32>,
}

/// How the SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; a server that does not offer it is refused.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// Plaintext: only to a server on this machine (a local relay, or a test).
    None,
}

impl SmtpTls {
    /// As configured.
    pub fn as_str(&self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "tls",
            SmtpTls::None => "none",
        }
    }
}

/// SMTP settings.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Sender mailbox.
    pub from: String,
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Encryption.
    pub tls: SmtpTls,
    /// User name and password, if the server wants them.
    pub credentials: Option<(String, Secret)>,
}

/// Amazon SES credentials.
#[derive(Debug, Clone)]
pub struct SesCredentials {
    /// Region, e.g. `eu-west-1` (part of the signature's scope).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

/// An HTTPS email API: Resend, Postmark or SES.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Which provider.
    pub provider: Provider,
    /// Sender mailbox.
    pub from: String,
    /// API base URL, no trailing slash.
    pub base_url: String,
    /// Resend API key or Postmark server token (SES: unused, see `ses`).
    pub key: Option<Secret>,
    /// SES only.
    pub ses: Option<SesCredentials>,
}

/// The chosen transport.
#[derive(Debug, Clone, Default)]
pub enum Transport {
    /// `<data_dir>/outbox` (the default).
    #[default]
    Outbox,
    /// An SMTP server.
    Smtp(SmtpConfig),
    /// An HTTPS API.
    Api(ApiConfig),
}

/// How the outbox retries an email the transport did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts before an email is given up (at least 1).
    pub max_attempts: u32,
    /// Seconds before the first retry; doubled each time, at most [`Retry::MAX_DELAY_S`].
    pub first_delay_s: i64,
}

impl Retry {
    /// The longest wait between two attempts.
    pub const MAX_DELAY_S: i64 = 3600;

    /// Seconds to wait after the `attempt`-th attempt (1 = the first) failed:
    /// `first_delay_s`, then twice that each time, at most an hour.
    pub fn delay_after(&self, attempt: u32) -> i64 {
        let doublings = attempt.saturating_sub(1).min(30);
        self.first_delay_s
            .max(1)
            .saturating_mul(1_i64 << doublings)
            .min(Self::MAX_DELAY_S)
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 12,
            first_delay_s: 30,
        }
    }
}

/// Resolved mail configuration.
#[derive(Debug, Clone, Default)]
pub struct MailConfig {
    /// The transport and its settings.
    pub transport: Transport,
    /// How emails are retried.
    pub retry: Retry,
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An API base URL: https, or http to this machine only (a key must not cross a network
/// in the clear).
fn base_url(name: &str, url: String) -> anyhow::Result<String> {
    let url = url.trim_end_matches('/').to_owned();
    let parsed = reqwest::Url::parse(&url)
        .map_err(|_| anyhow::anyhow!("mail {name} is not a URL: {url}"))?;
    let host = parsed.host_str().unwrap_or_default();
    anyhow::ensure!(
        parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(host)),
        "mail {name} must be an https:// URL (http:// only to this machine)"
    );
    anyhow::ensure!(
        parsed.query().is_none() && parsed.username().is_empty() && parsed.password().is_none(),
        "mail {name} must have no query and no credentials"
    );
    Ok(url)
}

/// "needs mail_smtp_host (--mail-smtp-host, OUTPOST_MAIL_SMTP_HOST, `smtp_host` in [mail])"
fn missing(transport: &str, key: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "mail transport `{transport}` needs the {key} option (--mail-{}, OUTPOST_MAIL_{}, or `{key}` in the [mail] table of the config file)",
        key.replace('_', "-"),
        key.to_uppercase()
    )
}

impl MailArgs {
    /// Merges flags/env over the `[mail]` table of the file.
    pub fn resolve(&self, file: Option<MailFile>) -> anyhow::Result<MailConfig> {
        let f = file.unwrap_or_default();
        let pick = |a: &Option<String>, b: Option<String>| {
            a.clone()
                .or(b)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let pick_secret = |a: &Option<Secret>, b: Option<FileSecret>| {
            a.clone()
                .or(b.map(|s| s.0))
                .filter(|s| !s.expose().trim().is_empty())
        };
        let transport = pick(&self.mail_transport, f.transport).unwrap_or_else(|| "outbox".into());
        let from = pick(&self.mail_from, f.from);
        let smtp_host = pick(&self.mail_smtp_host, f.smtp_host);
        let smtp_port = self.mail_smtp_port.or(f.smtp_port);
        let smtp_tls = pick(&self.mail_smtp_tls, f.smtp_tls);
        let smtp_username = pick(&self.mail_smtp_username, f.smtp_username);
        let smtp_password = pick_secret(&self.mail_smtp_password, f.smtp_password);
        let resend_key = pick_secret(&self.mail_resend_api_key, f.resend_api_key);
        let resend_url = pick(&self.mail_resend_base_url, f.resend_base_url);
        let postmark_token = pick_secret(&self.mail_postmark_server_token, f.postmark_server_token);
        let postmark_url = pick(&self.mail_postmark_base_url, f.postmark_base_url);
        let ses_region = pick(&self.mail_ses_region, f.ses_region);
        let ses_key_id = pick(&self.mail_ses_access_key_id, f.ses_access_key_id);
        let ses_secret = pick_secret(&self.mail_ses_secret_access_key, f.ses_secret_access_key);
        let ses_token = pick_secret(&self.mail_ses_session_token, f.ses_session_token);
        let ses_url = pick(&self.mail_ses_base_url, f.ses_base_url);
        let defaults = Retry::default();
        let retry = Retry {
            max_attempts: self
                .mail_max_attempts
                .or(f.max_attempts)
                .unwrap_or(defaults.max_attempts),
            first_delay_s: self
                .mail_retry_secs
                .or(f.retry_secs)
                .map_or(defaults.first_delay_s, i64::from),
        };
        anyhow::ensure!(
            (1..=100).contains(&retry.max_attempts),
            "mail max_attempts must be between 1 and 100 (got {})",
            retry.max_attempts
        );
        anyhow::ensure!(
            (1..=Retry::MAX_DELAY_S).contains(&retry.first_delay_s),
            "mail retry_secs must be between 1 and 3600 (got {})",
            retry.first_delay_s
        );

        let t = transport.as_str();
        if t == "outbox" {
            // Options of a real transport without choosing it would be ignored quietly,
            // and the operator would believe mail goes out.
            let set = [
                ("smtp_host", smtp_host.is_some()),
                ("resend_api_key", resend_key.is_some()),
                ("postmark_server_token", postmark_token.is_some()),
                ("ses_access_key_id", ses_key_id.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, on)| *on) {
                anyhow::bail!(
                    "mail option {key} is set but the mail transport is `outbox`: set mail_transport (--mail-transport, OUTPOST_MAIL_TRANSPORT) to the transport you mean"
                );
            }
            return Ok(MailConfig {
                transport: Transport::Outbox,
                retry,
            });
        }
        anyhow::ensure!(
            ["smtp", "resend", "postmark", "ses"].contains(&t),
            "mail transport must be `outbox`, `smtp`, `resend`, `postmark` or `ses` (got `{t}`)"
        );
        let from = from.ok_or_else(|| missing(t, "from"))?;
        from.parse::<lettre::message::Mailbox>().map_err(|_| {
            anyhow::anyhow!("mail from is not an address like `Outpost <noreply@example.com>`")
        })?;

        let transport = match t {
            "smtp" => {
                let host = smtp_host.ok_or_else(|| missing(t, "smtp_host"))?;
                let tls = match smtp_tls.as_deref().unwrap_or("starttls") {
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Implicit,
                    "none" => SmtpTls::None,
                    other => anyhow::bail!(
                        "mail smtp_tls must be `starttls`, `tls` or `none` (got `{other}`)"
                    ),
                };
                anyhow::ensure!(
                    tls != SmtpTls::None || is_loopback(&host),
                    "mail smtp_tls = none sends mail (and any password) in the clear: it is allowed only to a server on this machine (localhost, 127.0.0.1, ::1), not to {host}"
                );
                let credentials = match (smtp_username, smtp_password) {
                    (Some(u), Some(p)) => Some((u, p)),
                    (None, None) => None,
                    (Some(_), None) => return Err(missing(t, "smtp_password")),
                    (None, Some(_)) => return Err(missing(t, "smtp_username")),
                };
                let port = smtp_port.unwrap_or(match tls {
                    SmtpTls::StartTls => 587,
                    SmtpTls::Implicit => 465,
                    SmtpTls::None => 25,
                });
                Transport::Smtp(SmtpConfig {
                    from,
                    host,
                    port,
                    tls,
                    credentials,
                })
            }
            "resend" => Transport::Api(ApiConfig {
                provider: Provider::Resend,
                from,
                key: Some(resend_key.ok_or_else(|| missing(t, "resend_api_key"))?),
                base_url: base_url(
                    "resend_base_url",
                    resend_url.unwrap_or_else(|| "https://api.resend.com".into()),
                )?,
                ses: None,
            }),
            "postmark" => Transport::Api(ApiConfig {
                provider: Provider::Postmark,
                from,
                key: Some(postmark_token.ok_or_else(|| missing(t, "postmark_server_token"))?),
                base_url: base_url(
                    "postmark_base_url",
                    postmark_url.unwrap_or_else(|| "https://api.postmarkapp.com".into()),
                )?,
                ses: None,
            }),
            _ => {
                let region = ses_region.ok_or_else(|| missing(t, "ses_region"))?;
                anyhow::ensure!(
                    !region.is_empty()
                        && region
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                    "mail ses_region must look like `eu-west-1`"
                );
                let access_key_id = ses_key_id.ok_or_else(|| missing(t, "ses_access_key_id"))?;
                let secret_access_key =
                    ses_secret.ok_or_else(|| missing(t, "ses_secret_access_key"))?;
                let url =
                    ses_url.unwrap_or_else(|| format!("https://email.{region}.amazonaws.com"));
                Transport::Api(ApiConfig {
                    provider: Provider::Ses,
                    from,
                    key: None,
                    base_url: base_url("ses_base_url", url)?,
                    ses: Some(SesCredentials {
                        region,
                        access_key_id,
                        secret_access_key,
                        session_token: ses_token,
                    }),
                })
            }
        };
        Ok(MailConfig { transport, retry })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(toml_text: &str) -> Option<MailFile> {
        Some(toml::from_str(toml_text).unwrap())
    }

    fn err(args: &MailArgs, f: Option<MailFile>) -> String {
        args.resolve(f).unwrap_err().to_string()
    }

    #[test]
    fn nothing_configured_is_the_outbox() {
        let c = MailArgs::default().resolve(None).unwrap();
        assert!(matches!(c.transport, Transport::Outbox));
        assert_eq!(c.retry, Retry::default());
    }

    #[test]
    fn retries_double_up_to_an_hour_and_absurd_settings_are_refused() {
        let r = Retry::default();
        let delays: Vec<i64> = (1..=9).map(|a| r.delay_after(a)).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(r.delay_after(u32::MAX), 3600);
        let c = MailArgs::default()
            .resolve(file("max_attempts = 3\nretry_secs = 1\n"))
            .unwrap();
        assert_eq!(
            c.retry,
            Retry {
                max_attempts: 3,
                first_delay_s: 1
            }
        );
        let zero = MailArgs {
            mail_max_attempts: Some(0),
            ..Default::default()
        };
        assert!(err(&zero, None).contains("max_attempts must be between 1 and 100"));
        let long = MailArgs {
            mail_retry_secs: Some(7200),
            ..Default::default()
        };
        assert!(err(&long, None).contains("retry_secs must be between 1 and 3600"));
    }

    #[test]
    fn a_half_configured_transport_is_refused_naming_the_missing_option() {
        let smtp = MailArgs {
            mail_transport: Some("smtp".into()),
            ..Default::default()
        };
        assert!(err(&smtp, None).contains("needs the from option"));
        let smtp = MailArgs {
            mail_from: Some("noreply@acme.test".into()),
            ..smtp
        };
        let e = err(&smtp, None);
        assert!(
            e.contains("smtp_host") && e.contains("OUTPOST_MAIL_SMTP_HOST"),
            "{e}"
        );
        let e = err(
            &MailArgs {
                mail_smtp_host: Some("smtp.acme.test".into()),
                mail_smtp_username: Some("outpost".into()),
                ..smtp
            },
            None,
        );
        assert!(e.contains("smtp_password"), "{e}");

        let e = err(
            &MailArgs::default(),
            file("transport = \"resend\"\nfrom = \"Outpost <noreply@acme.test>\""),
        );
        assert!(e.contains("resend_api_key"), "{e}");
        let e = err(
            &MailArgs::default(),
            file("transport = \"postmark\"\nfrom = \"noreply@acme.test\""),
        );
        assert!(e.contains("postmark_server_token"), "{e}");
        let e = err(
            &MailArgs::default(),
            file("transport = \"ses\"\nfrom = \"noreply@acme.test\"\nses_region = \"eu-west-1\"\nses_access_key_id = \"AKID\""),
        );
        assert!(e.contains("ses_secret_access_key"), "{e}");
        let e = err(
            &MailArgs {
                mail_transport: Some("sendgrid".into()),
                ..Default::default()
            },
            None,
        );
        assert!(
            e.contains("`outbox`, `smtp`, `resend`, `postmark` or `ses`"),
            "{e}"
        );
    }

    #[test]
    fn options_of_a_transport_that_is_not_chosen_are_refused() {
        let e = err(
            &MailArgs {
                mail_resend_api_key: Some(Secret::new("re_live_123".into())),
                ..Default::default()
            },
            None,
        );
        assert!(e.contains("resend_api_key") && e.contains("outbox"), "{e}");
        assert!(!e.contains("re_live_123"));
    }

    #[test]
    fn plaintext_smtp_and_http_apis_only_to_this_machine() {
        let base = MailArgs {
            mail_transport: Some("smtp".into()),
            mail_from: Some("noreply@acme.test".into()),
            mail_smtp_tls: Some("none".into()),
            ..Default::default()
        };
        let e = err(
            &MailArgs {
                mail_smtp_host: Some("smtp.acme.test".into()),
                ..base.clone()
            },
            None,
        );
        assert!(e.contains("in the clear"), "{e}");
        let c = MailArgs {
            mail_smtp_host: Some("127.0.0.1".into()),
            ..base
        }
        .resolve(None)
        .unwrap();
        let Transport::Smtp(s) = c.transport else {
            panic!()
        };
        assert_eq!((s.port, s.tls), (25, SmtpTls::None));

        let resend = MailArgs {
            mail_transport: Some("resend".into()),
            mail_from: Some("noreply@acme.test".into()),
            mail_resend_api_key: Some(Secret::new("re_123".into())),
            ..Default::default()
        };
        let e = err(
            &MailArgs {
                mail_resend_base_url: Some("http://api.resend.example".into()),
                ..resend.clone()
            },
            None,
        );
        assert!(e.contains("https://"), "{e}");
        let c = MailArgs {
            mail_resend_base_url: Some("http://127.0.0.1:9/".into()),
            ..resend
        }
        .resolve(None)
        .unwrap();
        let Transport::Api(a) = c.transport else {
            panic!()
        };
        assert_eq!(a.base_url, "http://127.0.0.1:9");
    }

    #[test]
    fn defaults_are_the_real_endpoints_and_tls_is_required() {
        let c = MailArgs::default()
            .resolve(file(
                "transport = \"smtp\"\nfrom = \"Outpost <noreply@acme.test>\"\nsmtp_host = \"smtp.acme.test\"",
            ))
            .unwrap();
        let Transport::Smtp(s) = c.transport else {
            panic!()
        };
        assert_eq!((s.port, s.tls), (587, SmtpTls::StartTls));

        let c = MailArgs::default()
            .resolve(file(
                "transport = \"ses\"\nfrom = \"noreply@acme.test\"\nses_region = \"eu-west-1\"\nses_access_key_id = \"AKID\"\nses_secret_access_key = \"s3cr3t\"",
            ))
            .unwrap();
        let Transport::Api(a) = c.transport else {
            panic!()
        };
        assert_eq!(a.base_url, "https://email.eu-west-1.amazonaws.com");
        for (t, url) in [
            ("resend", "https://api.resend.com"),
            ("postmark", "https://api.postmarkapp.com"),
        ] {
            let c = MailArgs {
                mail_transport: Some(t.into()),
                mail_from: Some("noreply@acme.test".into()),
                mail_resend_api_key: Some(Secret::new("k".into())),
                mail_postmark_server_token: Some(Secret::new("k".into())),
                ..Default::default()
            }
            .resolve(None)
            .unwrap();
            let Transport::Api(a) = c.transport else {
                panic!()
            };
            assert_eq!(a.base_url, url);
        }
    }

    #[test]
    fn debug_of_the_configuration_masks_every_secret() {
        let args = MailArgs {
            mail_transport: Some("ses".into()),
            mail_from: Some("noreply@acme.test".into()),
            mail_ses_region: Some("eu-west-1".into()),
            mail_ses_access_key_id: Some("AKIDEXAMPLE".into()),
            mail_ses_secret_access_key: Some(Secret::new("SESSECRETCANARY".into())),
            mail_ses_session_token: Some(Secret::new("SESTOKENCANARY".into())),
            mail_smtp_password: Some(Secret::new("SMTPPASSCANARY".into())),
            mail_resend_api_key: Some(Secret::new("RESENDCANARY".into())),
            mail_postmark_server_token: Some(Secret::new("POSTMARKCANARY".into())),
            ..Default::default()
        };
        let resolved = args.resolve(None).unwrap();
        let smtp = MailArgs {
            mail_transport: Some("smtp".into()),
            mail_from: Some("noreply@acme.test".into()),
            mail_smtp_host: Some("smtp.acme.test".into()),
            mail_smtp_username: Some("outpost".into()),
            mail_smtp_password: Some(Secret::new("SMTPPASSCANARY".into())),
            ..Default::default()
        }
        .resolve(None)
        .unwrap();
        let file: MailFile = toml::from_str("resend_api_key = \"FILECANARY\"").unwrap();
        let text = format!("{args:?} {resolved:?} {smtp:?} {file:?}");
        for canary in [
            "SESSECRETCANARY",
            "SESTOKENCANARY",
            "SMTPPASSCANARY",
            "RESENDCANARY",
            "POSTMARKCANARY",
            "FILECANARY",
        ] {
            assert!(!text.contains(canary), "{canary} in {text}");
        }
        assert!(text.contains("***"));
    }
}
