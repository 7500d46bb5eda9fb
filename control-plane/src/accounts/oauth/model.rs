//! Sign-in rules, pure: the providers, why a sign-in is refused (codes and sentences),
//! PKCE, and the shapes of a sign-in in progress.

/// A sign-in provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Google (OIDC).
    Google,
    /// GitHub (OAuth2).
    Github,
    /// Sign in with Apple (OIDC, form_post).
    Apple,
}

impl Provider {
    /// Path segment and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Github => "github",
            Provider::Apple => "apple",
        }
    }

    /// Name for people.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Google => "Google",
            Provider::Github => "GitHub",
            Provider::Apple => "Apple",
        }
    }

    /// From a path segment.
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "google" => Some(Provider::Google),
            "github" => Some(Provider::Github),
            "apple" => Some(Provider::Apple),
            _ => None,
        }
    }
}

/// Why a sign-in with a provider was refused. Each has a stable code (audit detail, error
/// page) and a sentence for the user; none carries anything the provider sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The callback has no `state`.
    StateMissing,
    /// The state is unknown, used, expired, for another provider or from another browser.
    StateMismatch,
    /// The id_token's nonce is not this sign-in's.
    NonceMismatch,
    /// The id_token's signature does not verify against the provider's keys.
    BadSignature,
    /// The id_token has expired (beyond 5 minutes of skew).
    IdTokenExpired,
    /// The id_token is for another issuer or client, or lacks required claims.
    IdTokenInvalid,
    /// No verified email to link or create an account with.
    EmailUnverified,
    /// The provider answered with an error (`error=access_denied`, …): the code.
    ProviderError(String),
    /// The token endpoint refused the code.
    TokenRefused,
    /// The provider could not be reached or answered nonsense.
    ProviderUnreachable,
    /// The answer names another issuer than the provider's (RFC 9207 `iss`): a mix-up
    /// attack, or a misconfigured provider.
    IssuerMismatch,
}

impl Refusal {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::StateMissing => "state_missing",
            Refusal::StateMismatch => "state_mismatch",
            Refusal::NonceMismatch => "nonce_mismatch",
            Refusal::BadSignature => "bad_signature",
            Refusal::IdTokenExpired => "id_token_expired",
            Refusal::IdTokenInvalid => "id_token_invalid",
            Refusal::EmailUnverified => "email_unverified",
            Refusal::ProviderError(_) => "provider_error",
            Refusal::TokenRefused => "token_refused",
            Refusal::ProviderUnreachable => "provider_unreachable",
            Refusal::IssuerMismatch => "issuer_mismatch",
        }
    }

    /// What the user reads.
    pub fn message(&self, p: Provider) -> String {
        let name = p.label();
        match self {
            Refusal::StateMissing => format!(
                "The answer from {name} did not say which sign-in it belongs to (no state), so it cannot be checked. Start again from the sign-in page."
            ),
            Refusal::StateMismatch => format!(
                "This answer from {name} does not match a sign-in started in this browser in the last 10 minutes: it was already used, it expired, or it was started in another browser. Start again from the sign-in page."
            ),
            Refusal::NonceMismatch => format!(
                "{name}'s identity token was issued for a different sign-in (nonce mismatch), so it was not accepted."
            ),
            Refusal::BadSignature => format!(
                "{name}'s identity token is not signed by any of {name}'s published keys, so it was not accepted."
            ),
            Refusal::IdTokenExpired => format!(
                "{name}'s identity token has expired. Check this computer's clock, then start again."
            ),
            Refusal::IdTokenInvalid => format!(
                "{name}'s identity token was issued by someone else or for another application, so it was not accepted."
            ),
            Refusal::EmailUnverified => format!(
                "{name} has not verified an email address for this account, and Outpost needs one to know which account is yours. Verify your email at {name}, or sign in with an email link."
            ),
            Refusal::ProviderError(code) if code == "access_denied" || code == "user_cancelled_authorize" => format!(
                "Sign-in at {name} was cancelled or not allowed ({code})."
            ),
            Refusal::ProviderError(code) => format!("{name} refused the sign-in ({code})."),
            Refusal::TokenRefused => format!(
                "{name} did not accept the sign-in code: it may have expired or been used already. Start again from the sign-in page."
            ),
            Refusal::ProviderUnreachable => format!(
                "{name} could not be reached or gave an answer Outpost could not read. Try again in a moment, or sign in with an email link."
            ),
            Refusal::IssuerMismatch => format!(
                "This answer says it comes from another sign-in service than {name}, so it was not accepted and its code was not used. Start again from the sign-in page; if it happens again, tell us."
            ),
        }
    }
}

/// Whether the authorization response's `iss` parameter (RFC 9207), when the provider sent
/// one, names the provider's own issuer. Compared as strings, as the RFC says, up to a
/// trailing `/` (configured issuers are kept without one). A provider without a known issuer
/// (GitHub publishes none) has nothing to compare with, and an answer without `iss` is
/// accepted, as providers that do not implement RFC 9207 send none.
pub fn issuer_matches(expected: &str, iss: Option<&str>) -> bool {
    match iss {
        Some(iss) if !expected.is_empty() => {
            iss.trim_end_matches('/') == expected.trim_end_matches('/')
        }
        _ => true,
    }
}

/// How long a started sign-in may take.
pub const STATE_TTL: i64 = 10 * 60;

/// `code_challenge` for a verifier: base64url(SHA-256(verifier)), no padding.
pub fn pkce_challenge(verifier: &str) -> String {
    outpost_crypto::b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// A sign-in being started: what goes to the provider and into the cookie.
#[derive(Debug)]
pub struct Started {
    /// `state` parameter.
    pub state: String,
    /// Value of the binding cookie.
    pub binding: String,
    /// OIDC `nonce` parameter.
    pub nonce: String,
    /// PKCE `code_challenge` (S256).
    pub challenge: String,
}

/// What the callback gets back from a valid state.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    /// The nonce the id_token must carry.
    pub nonce: String,
    /// The PKCE verifier for the token request.
    pub verifier: String,
}

/// Why a state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// No `state` in the callback.
    Missing,
    /// Unknown, already used, expired, for another provider, or another browser.
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iss_parameter_must_name_the_providers_issuer_when_present() {
        let google = "https://accounts.google.com";
        assert!(issuer_matches(google, Some("https://accounts.google.com")));
        assert!(issuer_matches(google, Some("https://accounts.google.com/")));
        assert!(issuer_matches(google, None), "absent: accepted as before");
        assert!(!issuer_matches(google, Some("https://attacker.example")));
        assert!(!issuer_matches(
            google,
            Some("https://accounts.google.com.attacker.example")
        ));
        assert!(!issuer_matches(google, Some("")));
        assert!(
            issuer_matches("", Some("https://github.com")),
            "no issuer known"
        );
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
