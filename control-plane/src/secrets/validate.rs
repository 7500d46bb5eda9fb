//! Checking a credential with its provider while it is in memory (the only HTTP calls of
//! the domain). The value is never logged: only the kind and the provider's status.

use super::model::SecretKind;
use crate::config::ProviderUrls;
use crate::error::{AppError, AppResult, Code};
use outpost_crypto::Secret;
use std::time::Duration;

/// How long a provider may take to answer a validation.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a provider did not accept a credential, in words for the user.
fn refused(code: Code, msg: &str) -> AppError {
    AppError::invalid(code, format!("{msg} Nothing was saved."))
}

/// Checks a credential with its provider. `Ok(true)` validated, `Ok(false)` cannot be
/// checked with the provider (app secrets, verify tokens).
pub async fn validate(
    c: &reqwest::Client,
    p: &ProviderUrls,
    kind: SecretKind,
    value: &Secret,
    base_url: Option<&str>,
    phone_number_id: Option<&str>,
) -> AppResult<bool> {
    let req = match kind {
        SecretKind::OpenaiApiKey => c
            .get(format!("{}/models", p.openai))
            .bearer_auth(value.expose()),
        SecretKind::OpenaiCompatibleApiKey => {
            let base = base_url
                .filter(|b| b.starts_with("https://") || b.starts_with("http://"))
                .ok_or_else(|| {
                    AppError::invalid(
                        Code::BaseUrlRequired,
                        "Give the endpoint's base URL, e.g. https://api.deepseek.com/v1.",
                    )
                })?;
            c.get(format!("{}/models", base.trim_end_matches('/')))
                .bearer_auth(value.expose())
        }
        SecretKind::AnthropicApiKey => c
            .get(format!("{}/models", p.anthropic))
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
            c.get(format!("{}/bot{}/getMe", p.telegram, value.expose()))
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
            c.get(format!("{}/{id}", p.graph))
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
            return Err(refused(
                Code::ProviderUnreachable,
                "The provider did not answer in time.",
            ));
        }
        Ok(Err(_)) => {
            tracing::info!(
                kind,
                code = "provider_unreachable",
                "secret validation failed"
            );
            return Err(refused(
                Code::ProviderUnreachable,
                "The provider could not be reached.",
            ));
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
