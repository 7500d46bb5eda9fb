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

/// Checks a credential with its provider. `Ok(true)` validated, `Ok(false)` cannot be
/// checked with the provider (app secrets, verify tokens).
pub async fn validate(
    c: &outbound::Client,
    p: &ProviderUrls,
    kind: SecretKind,
    value: &Secret,
    base_url: Option<&str>,
    phone_number_id: Option<&str>,
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
        SecretKind::WhatsappAppSecret
        | SecretKind::WhatsappVerifyToken
        | SecretKind::WhatsappPhoneNumberId => return Ok(false),
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
