//! Checking a credential with its provider while it is in memory (the only HTTP calls of
//! the domain). The value is never logged: only the kind and the provider's status.
//!
//! Every call goes through the outbound-URL policy ([`outpost_common::outbound`]): a
//! customer's `base_url` must be a public https address (names are checked on the
//! address connected to), and no redirect is followed, so a key is only ever sent to the
//! address that was checked. Whatever stops the call (refused connection, timeout, TLS
//! failure) gets the same words, so the answer cannot be used to map open ports.

use super::model::SecretKind;
use crate::config::ProviderUrls;
use crate::error::{AppError, AppResult, Code};
use outpost_common::outbound::{self, Refused};
use outpost_crypto::Secret;
use std::time::Duration;

/// How long a provider may take to answer a validation.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a provider did not accept a credential, in words for the user.
fn refused(code: Code, msg: &str) -> AppError {
    AppError::invalid(code, format!("{msg} Nothing was saved."))
}

/// The address was refused by the outbound policy, in words for the owner.
fn not_allowed(r: Refused) -> AppError {
    refused(
        Code::UrlNotAllowed,
        &format!("The provider's address was refused. {r}"),
    )
}

/// The one answer for every way a call can fail before the provider answers.
fn unreachable() -> AppError {
    refused(
        Code::ProviderUnreachable,
        "We could not reach the provider; check the address and try again later.",
    )
}

/// The Account SID a Twilio auth token is checked with: `AC` and 32 hex digits (it goes
/// into the URL path, so nothing else is accepted).
pub fn twilio_account_sid(given: Option<&str>) -> AppResult<&str> {
    let sid = given.map(str::trim).unwrap_or_default();
    let ok =
        sid.len() == 34 && sid.starts_with("AC") && sid[2..].chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(sid)
    } else {
        Err(AppError::invalid(
            Code::AccountSidRequired,
            "Give the Twilio Account SID (AC followed by 32 characters, on the Twilio console's home page) to check the auth token with.",
        ))
    }
}

/// Checks a credential with its provider. `Ok(true)` validated, `Ok(false)` cannot be
/// checked with the provider (app secrets, verify tokens).
pub async fn validate(
    c: &outbound::Client,
    p: &ProviderUrls,
    kind: SecretKind,
    value: &Secret,
    base_url: Option<&str>,
    phone_number_id: Option<&str>,
    account_sid: Option<&str>,
) -> AppResult<bool> {
    let req = match kind {
        SecretKind::OpenaiApiKey => c
            .get(&format!("{}/models", p.openai))
            .map_err(not_allowed)?
            .bearer_auth(value.expose()),
        SecretKind::OpenaiCompatibleApiKey => {
            let base = base_url
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .ok_or_else(|| {
                    AppError::invalid(
                        Code::BaseUrlRequired,
                        "Give the endpoint's base URL, e.g. https://api.deepseek.com/v1.",
                    )
                })?;
            // The base alone first, so a refusal is about what the owner typed.
            c.policy().check(base).map_err(not_allowed)?;
            c.get(&format!("{}/models", base.trim_end_matches('/')))
                .map_err(not_allowed)?
                .bearer_auth(value.expose())
        }
        SecretKind::AnthropicApiKey => c
            .get(&format!("{}/models", p.anthropic))
            .map_err(not_allowed)?
            .header("x-api-key", value.expose())
            .header("anthropic-version", "2023-06-01"),
        SecretKind::TelegramBotToken => {
            if !value
                .expose()
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == ':' || ch == '_' || ch == '-')
            {
                return Err(refused(
                    Code::SecretInvalid,
                    "That is not a Telegram bot token (it looks like 123456:ABC-DEF…).",
                ));
            }
            c.get(&format!("{}/bot{}/getMe", p.telegram, value.expose()))
                .map_err(not_allowed)?
        }
        SecretKind::WhatsappAccessToken => {
            let id = phone_number_id
                .filter(|i| !i.is_empty() && i.chars().all(|ch| ch.is_ascii_digit()))
                .ok_or_else(|| {
                    AppError::invalid(
                        Code::PhoneNumberIdRequired,
                        "Give the WhatsApp phone number id (digits) to check the token against.",
                    )
                })?;
            c.get(&format!("{}/{id}", p.graph))
                .map_err(not_allowed)?
                .query(&[("fields", "id")])
                .bearer_auth(value.expose())
        }
        SecretKind::TwilioAuthToken => {
            let sid = twilio_account_sid(account_sid)?;
            c.get(&format!("{}/2010-04-01/Accounts/{sid}.json", p.twilio))
                .map_err(not_allowed)?
                .basic_auth(sid, Some(value.expose()))
        }
        SecretKind::WhatsappAppSecret
        | SecretKind::WhatsappVerifyToken
        | SecretKind::WhatsappPhoneNumberId
        | SecretKind::TwilioAccountSid => return Ok(false),
    };
    let kind = kind.as_str();
    let resp = match tokio::time::timeout(VALIDATION_TIMEOUT, req.send()).await {
        Err(_) => {
            tracing::info!(kind, code = "provider_timeout", "secret validation failed");
            return Err(unreachable());
        }
        Ok(Err(e)) => {
            // Refused by the resolver: the name leads to a private address.
            if let Some(r) = outbound::refusal_of(&e) {
                tracing::info!(kind, code = r.code(), "secret validation refused");
                return Err(not_allowed(r));
            }
            tracing::info!(
                kind,
                code = "provider_unreachable",
                "secret validation failed"
            );
            return Err(unreachable());
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    tracing::info!(kind, status, "secret validated with the provider");
    match status {
        200..=299 => Ok(true),
        401 | 403 => Err(refused(
            Code::SecretInvalid,
            "The provider rejected it: it is invalid or has been revoked.",
        )),
        // Telegram answers 404 for a malformed or unknown bot token.
        404 if kind == SecretKind::TelegramBotToken.as_str() => Err(refused(
            Code::SecretInvalid,
            "Telegram does not know this bot token.",
        )),
        // Not followed: the key goes only to the address that was checked.
        300..=399 => Err(refused(
            Code::ProviderError,
            "The provider answered with a redirect, which is not followed: give the address it finally answers at.",
        )),
        429 => Err(refused(
            Code::ProviderRateLimited,
            "The provider is rate-limiting requests right now; try again in a minute.",
        )),
        n => Err(refused(
            Code::ProviderError,
            &format!("The provider gave an unexpected answer (HTTP {n})."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_common::outbound::{Policy, Redirects};
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "twilio-canary-auth-token-4e1f";

    fn urls(twilio: &str) -> ProviderUrls {
        ProviderUrls {
            openai: "http://127.0.0.1:9".into(),
            anthropic: "http://127.0.0.1:9".into(),
            telegram: "http://127.0.0.1:9".into(),
            graph: "http://127.0.0.1:9".into(),
            twilio: twilio.into(),
        }
    }

    fn client() -> outbound::Client {
        outbound::Client::new(
            "outpost-test",
            Duration::from_secs(5),
            Policy::new(true),
            Redirects::None,
        )
        .expect("client")
    }

    async fn check(twilio: &str, token: &str, sid: Option<&str>) -> AppResult<bool> {
        validate(
            &client(),
            &urls(twilio),
            SecretKind::TwilioAuthToken,
            &Secret::new(token.into()),
            None,
            None,
            sid,
        )
        .await
    }

    /// Twilio answers `GET /2010-04-01/Accounts/{sid}.json` with the account for the right
    /// basic credentials (`sid:token`) and 401 with its error document otherwise.
    async fn fake_twilio() -> MockServer {
        let s = MockServer::start().await;
        let basic = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
        };
        Mock::given(method("GET"))
            .and(path(format!("/2010-04-01/Accounts/{SID}.json")))
            .and(header("authorization", format!("Basic {basic}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "sid": SID, "friendly_name": "Acme", "status": "active", "type": "Full"
            })))
            .mount(&s)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401
            })))
            .mount(&s)
            .await;
        s
    }

    #[tokio::test]
    async fn a_twilio_token_is_checked_with_its_account_sid() {
        let twilio = fake_twilio().await;
        assert!(check(&twilio.uri(), TOKEN, Some(SID)).await.expect("valid"));
        let e = check(&twilio.uri(), "wrong-token", Some(SID))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), "secret_invalid");
        assert!(
            e.message().contains("invalid or has been revoked"),
            "{}",
            e.message()
        );
        // Without a well-formed SID nothing is sent to Twilio.
        for sid in [None, Some(""), Some("AC../../x"), Some("ACnothex")] {
            let e = check(&twilio.uri(), TOKEN, sid).await.expect_err("sid");
            assert_eq!(e.code(), "account_sid_required", "{sid:?}");
        }
        assert_eq!(
            twilio.received_requests().await.unwrap_or_default().len(),
            2
        );
    }

    #[tokio::test]
    async fn a_twilio_that_does_not_answer_is_said_in_words() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let e = check(&format!("http://{addr}"), TOKEN, Some(SID))
            .await
            .expect_err("timeout");
        assert_eq!(e.code(), "provider_unreachable");
        assert!(e.message().contains("could not reach"), "{}", e.message());
        hold.abort();
    }
}
