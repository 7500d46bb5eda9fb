//! HTTPS email APIs, through the CP's reqwest client (rustls + ring, public roots):
//!
//! - Resend: `POST /emails`, `Authorization: Bearer <api key>`;
//! - Postmark: `POST /email`, `X-Postmark-Server-Token`, link and open tracking off (a
//!   tracked link would send every sign-in link through the provider's redirector);
//! - Amazon SES v2: `POST /v2/email/outbound-emails`, signed with SigV4 ([`super::sigv4`]).
//!
//! A refusal is reported as provider + HTTP status; the answer's body is never read into
//! an error or a log line (providers echo addresses in it).

use super::config::ApiConfig;
use super::{one_line, Email, ErrorKind, MailError};
use std::time::Duration;

/// Per-request time limit.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Which API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// resend.com
    Resend,
    /// postmarkapp.com
    Postmark,
    /// Amazon Simple Email Service, API v2.
    Ses,
}

impl Provider {
    /// Name as configured and logged.
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Resend => "resend",
            Provider::Postmark => "postmark",
            Provider::Ses => "ses",
        }
    }
}

/// A configured API transport.
#[derive(Debug, Clone)]
pub struct Api {
    config: ApiConfig,
    http: reqwest::Client,
}

impl Api {
    /// `http` is the CP's shared client.
    pub fn new(config: ApiConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    /// Which provider.
    pub fn provider(&self) -> Provider {
        self.config.provider
    }

    /// Start-up banner text: provider, endpoint, sender; never the key.
    pub fn describe(&self) -> String {
        let c = &self.config;
        match &c.ses {
            Some(s) => format!("ses {} ({}) from {}", s.region, c.base_url, c.from),
            None => format!("{} {} from {}", c.provider.as_str(), c.base_url, c.from),
        }
    }

    fn err(&self, kind: ErrorKind) -> MailError {
        MailError::new(self.config.provider.as_str(), kind)
    }

    fn request_error(&self, e: &reqwest::Error) -> MailError {
        self.err(if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_connect() {
            ErrorKind::Unreachable
        } else {
            ErrorKind::Protocol
        })
    }

    /// Sends one email; `Ok` once the provider accepted it (2xx).
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let c = &self.config;
        let subject = one_line(&email.subject);
        let req = match c.provider {
            Provider::Resend => self
                .http
                .post(format!("{}/emails", c.base_url))
                .bearer_auth(c.key.as_ref().map(|k| k.expose()).unwrap_or_default())
                .json(&serde_json::json!({
                    "from": c.from,
                    "to": [email.to],
                    "subject": subject,
                    "text": email.body,
                })),
            Provider::Postmark => self
                .http
                .post(format!("{}/email", c.base_url))
                .header("accept", "application/json")
                .header(
                    "x-postmark-server-token",
                    c.key.as_ref().map(|k| k.expose()).unwrap_or_default(),
                )
                .json(&serde_json::json!({
                    "From": c.from,
                    "To": email.to,
                    "Subject": subject,
                    "TextBody": email.body,
                    "MessageStream": "outbound",
                    "TrackOpens": false,
                    "TrackLinks": "None",
                })),
            Provider::Ses => self.ses_request(email, &subject)?,
        };
        let r = req
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| self.request_error(&e))?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(self.err(ErrorKind::Http(status.as_u16())))
        }
    }

    fn ses_request(
        &self,
        email: &Email,
        subject: &str,
    ) -> Result<reqwest::RequestBuilder, MailError> {
        let c = &self.config;
        let creds = c.ses.as_ref().ok_or(self.err(ErrorKind::Protocol))?;
        let body = serde_json::to_vec(&serde_json::json!({
            "FromEmailAddress": c.from,
            "Destination": { "ToAddresses": [email.to] },
            "Content": { "Simple": {
                "Subject": { "Data": subject, "Charset": "UTF-8" },
                "Body": { "Text": { "Data": email.body, "Charset": "UTF-8" } },
            }},
        }))
        .map_err(|_| self.err(ErrorKind::Protocol))?;
        let url = reqwest::Url::parse(&format!("{}/v2/email/outbound-emails", c.base_url))
            .map_err(|_| self.err(ErrorKind::Protocol))?;
        // The Host header reqwest sends: the port only when it is not the scheme's default.
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(self.err(ErrorKind::Protocol)),
        };
        let date = super::sigv4::amz_date(time::OffsetDateTime::now_utc());
        let content_type = "application/json";
        let mut headers = vec![
            ("content-type", content_type),
            ("host", host.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        if let Some(t) = &creds.session_token {
            headers.push(("x-amz-security-token", t.expose()));
        }
        let authorization = super::sigv4::authorization(
            &super::sigv4::Request {
                method: "POST",
                path: url.path(),
                query: &[],
                headers: &headers,
                body: &body,
            },
            &super::sigv4::Scope {
                access_key_id: &creds.access_key_id,
                secret_access_key: creds.secret_access_key.expose(),
                region: &creds.region,
                service: "ses",
            },
            &date,
        );
        let mut req = self
            .http
            .post(url)
            .header("content-type", content_type)
            .header("x-amz-date", &date)
            .header("authorization", authorization)
            .body(body);
        if let Some(t) = &creds.session_token {
            req = req.header("x-amz-security-token", t.expose());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::config::SesCredentials;
    use super::*;
    use outpost_crypto::Secret;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn client() -> reqwest::Client {
        outpost_common::http::client(crate::app::USER_AGENT, std::time::Duration::from_secs(5))
            .unwrap()
    }

    fn email() -> Email {
        Email {
            to: "owner@acme.test".into(),
            subject: "Outpost: Acme Dental is ready".into(),
            body: "Open the workspace:\r\nhttps://cp.test/workspaces/ws-1\r\n".into(),
        }
    }

    fn api(provider: Provider, base_url: &str, key: &str) -> Api {
        Api::new(
            ApiConfig {
                provider,
                from: "Outpost <noreply@outpost.test>".into(),
                base_url: base_url.into(),
                key: (provider != Provider::Ses).then(|| Secret::new(key.into())),
                ses: (provider == Provider::Ses).then(|| SesCredentials {
                    region: "eu-west-1".into(),
                    access_key_id: "AKIDEXAMPLE".into(),
                    secret_access_key: Secret::new(key.into()),
                    session_token: None,
                }),
            },
            client(),
        )
    }

    /// A provider's refusal, with a body that echoes the address as real ones do.
    fn refusal(status: u16) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "message": "owner@acme.test: The to field is invalid. Open the workspace",
        }))
    }

    fn assert_no_echo(e: &MailError) {
        let text = format!("{e} {e:?}");
        for leak in [
            "owner@acme.test",
            "invalid",
            "workspace",
            "re_test",
            "pm-token",
        ] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }

    #[tokio::test]
    async fn resend_posts_the_email_with_a_bearer_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/emails"))
            .and(header("authorization", "Bearer re_test_123"))
            .and(header("content-type", "application/json"))
            .and(body_json(serde_json::json!({
                "from": "Outpost <noreply@outpost.test>",
                "to": ["owner@acme.test"],
                "subject": "Outpost: Acme Dental is ready",
                "text": "Open the workspace:\r\nhttps://cp.test/workspaces/ws-1\r\n",
            })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}),
                ),
            )
            .expect(1)
            .mount(&server)
            .await;
        let resend = api(Provider::Resend, &server.uri(), "re_test_123");
        resend.send(&email()).await.unwrap();
        assert!(!format!("{resend:?} {}", resend.describe()).contains("re_test_123"));
    }

    #[tokio::test]
    async fn resend_refusal_names_the_provider_and_status_only() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/emails"))
            .respond_with(refusal(422))
            .mount(&server)
            .await;
        let e = api(Provider::Resend, &server.uri(), "re_test_123")
            .send(&email())
            .await
            .unwrap_err();
        assert_eq!(e, MailError::new("resend", ErrorKind::Http(422)));
        assert_eq!(e.to_string(), "resend did not take the email: http_422");
        assert_no_echo(&e);
    }

    #[tokio::test]
    async fn postmark_posts_the_email_with_its_server_token_and_no_tracking() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/email"))
            .and(header("x-postmark-server-token", "pm-token-1"))
            .and(header("accept", "application/json"))
            .and(body_json(serde_json::json!({
                "From": "Outpost <noreply@outpost.test>",
                "To": "owner@acme.test",
                "Subject": "Outpost: Acme Dental is ready",
                "TextBody": "Open the workspace:\r\nhttps://cp.test/workspaces/ws-1\r\n",
                "MessageStream": "outbound",
                "TrackOpens": false,
                "TrackLinks": "None",
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "To": "owner@acme.test", "SubmittedAt": "2026-11-23T11:00:00Z",
                "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817", "ErrorCode": 0, "Message": "OK",
            })))
            .expect(1)
            .mount(&server)
            .await;
        api(Provider::Postmark, &server.uri(), "pm-token-1")
            .send(&email())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn postmark_refusal_names_the_provider_and_status_only() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/email"))
            .respond_with(refusal(401))
            .mount(&server)
            .await;
        let e = api(Provider::Postmark, &server.uri(), "pm-token-wrong")
            .send(&email())
            .await
            .unwrap_err();
        assert_eq!(e, MailError::new("postmark", ErrorKind::Http(401)));
        assert_no_echo(&e);
    }

    /// What SES does with a request: recompute the SigV4 signature from the request as
    /// received (method, path, the signed headers' values, body) with the secret, and
    /// compare. The signer itself is checked against AWS's example in `sigv4::tests`.
    fn ses_signature_verifies(req: &wiremock::Request, secret: &str) -> bool {
        let Some(auth) = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let field = |name: &str| {
            auth.split(", ")
                .find_map(|p| p.split_once(&format!("{name}=")).map(|(_, v)| v.to_owned()))
                .map(|v| {
                    v.trim_start_matches("AWS4-HMAC-SHA256 Credential=")
                        .to_owned()
                })
        };
        let (Some(credential), Some(signed)) = (
            auth.strip_prefix("AWS4-HMAC-SHA256 Credential=")
                .and_then(|r| r.split(',').next()),
            field("SignedHeaders"),
        ) else {
            return false;
        };
        let parts: Vec<&str> = credential.split('/').collect();
        let [key_id, _date, region, service, "aws4_request"] = parts[..] else {
            return false;
        };
        let values: Vec<(String, String)> = signed
            .split(';')
            .map(|h| {
                let v = req
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                (h.to_owned(), v.to_owned())
            })
            .collect();
        let headers: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let Some(date) = req.headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let expected = crate::infra::mail::sigv4::authorization(
            &crate::infra::mail::sigv4::Request {
                method: req.method.as_str(),
                path: req.url.path(),
                query: &[],
                headers: &headers,
                body: &req.body,
            },
            &crate::infra::mail::sigv4::Scope {
                access_key_id: key_id,
                secret_access_key: secret,
                region,
                service,
            },
            date,
        );
        signed.split(';').any(|h| h == "host") && expected == auth
    }

    #[tokio::test]
    async fn ses_posts_a_sigv4_signed_simple_email() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/email/outbound-emails"))
            .and(header("content-type", "application/json"))
            .and(body_json(serde_json::json!({
                "FromEmailAddress": "Outpost <noreply@outpost.test>",
                "Destination": { "ToAddresses": ["owner@acme.test"] },
                "Content": { "Simple": {
                    "Subject": { "Data": "Outpost: Acme Dental is ready", "Charset": "UTF-8" },
                    "Body": { "Text": {
                        "Data": "Open the workspace:\r\nhttps://cp.test/workspaces/ws-1\r\n",
                        "Charset": "UTF-8",
                    }},
                }},
            })))
            .and(|req: &wiremock::Request| ses_signature_verifies(req, "ses-secret"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"MessageId": "0100018c-example"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let ses = api(Provider::Ses, &server.uri(), "ses-secret");
        ses.send(&email()).await.unwrap();
        let got = &server.received_requests().await.unwrap()[0];
        let auth = got.headers["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(auth
            .contains("/eu-west-1/ses/aws4_request, SignedHeaders=content-type;host;x-amz-date, "));
        assert!(!format!("{ses:?} {}", ses.describe()).contains("ses-secret"));
    }

    #[tokio::test]
    async fn ses_signed_with_another_secret_does_not_verify_and_a_refusal_is_its_status() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(|req: &wiremock::Request| ses_signature_verifies(req, "ses-secret"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        // SES answers a bad signature with 403 SignatureDoesNotMatch.
        Mock::given(method("POST"))
            .respond_with(refusal(403))
            .mount(&server)
            .await;
        let e = api(Provider::Ses, &server.uri(), "another-secret")
            .send(&email())
            .await
            .unwrap_err();
        assert_eq!(e, MailError::new("ses", ErrorKind::Http(403)));
        assert_no_echo(&e);
        assert!(!e.to_string().contains("another-secret"));
    }

    #[tokio::test]
    async fn ses_sends_the_session_token_of_temporary_credentials_signed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("x-amz-security-token", "session-tok"))
            .and(|req: &wiremock::Request| ses_signature_verifies(req, "ses-secret"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let mut ses = api(Provider::Ses, &server.uri(), "ses-secret");
        if let Some(c) = ses.config.ses.as_mut() {
            c.session_token = Some(Secret::new("session-tok".into()));
        }
        ses.send(&email()).await.unwrap();
        let got = &server.received_requests().await.unwrap()[0];
        assert!(got.headers["authorization"]
            .to_str()
            .unwrap()
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "));
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_reported_as_such() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = api(
            Provider::Resend,
            &format!("http://127.0.0.1:{port}"),
            "re_test",
        )
        .send(&email())
        .await
        .unwrap_err();
        assert_eq!(e, MailError::new("resend", ErrorKind::Unreachable));
    }
}
