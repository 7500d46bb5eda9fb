//! Provider configuration: `[oauth.google]`, `[oauth.github]`, `[oauth.apple]` tables in
//! the TOML file, overridden by `OUTPOST_GOOGLE_*`, `OUTPOST_GITHUB_*`, `OUTPOST_APPLE_*`
//! (or the matching flags). A provider without a client id is off: its button is not shown
//! and its routes answer 404. Endpoints default to the real providers; tests point them at
//! a local fake.

use super::Provider;
use clap::Args;
use outpost_crypto::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// Google's issuer; its endpoints are built in, so no discovery request is needed.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// Apple's issuer (also the audience of the client-secret JWT Apple requires).
pub const APPLE_ISSUER: &str = "https://appleid.apple.com";

fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s.to_owned()))
}

/// OAuth/OIDC flags and environment variables of `serve`. Prefer the environment or the
/// TOML file for secrets: flags show in the process list.
#[derive(Args, Debug, Clone, Default)]
pub struct OAuthArgs {
    /// Google OAuth client id ("Web application"); without it Google sign-in is off.
    /// Register <public_url>/auth/oauth/google/callback as its redirect URI. In the TOML file
    /// the Google options go in an `[oauth.google]` table, without the `google_` prefix
    /// (likewise `[oauth.github]`, `[oauth.apple]`)
    #[arg(long, env = "OUTPOST_GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,
    /// Google OAuth client secret
    #[arg(long, env = "OUTPOST_GOOGLE_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    pub google_client_secret: Option<Secret>,
    /// Google issuer; when set to another issuer, endpoints not given below are read from its
    /// /.well-known/openid-configuration [default: https://accounts.google.com]
    #[arg(long, env = "OUTPOST_GOOGLE_ISSUER")]
    pub google_issuer: Option<String>,
    /// Google authorization endpoint [default: https://accounts.google.com/o/oauth2/v2/auth]
    #[arg(long, env = "OUTPOST_GOOGLE_AUTHORIZE_URL")]
    pub google_authorize_url: Option<String>,
    /// Google token endpoint [default: https://oauth2.googleapis.com/token]
    #[arg(long, env = "OUTPOST_GOOGLE_TOKEN_URL")]
    pub google_token_url: Option<String>,
    /// Google userinfo endpoint, asked only when the id_token carries no email
    /// [default: https://openidconnect.googleapis.com/v1/userinfo]
    #[arg(long, env = "OUTPOST_GOOGLE_USERINFO_URL")]
    pub google_userinfo_url: Option<String>,
    /// Google JWKS (id_token signing keys) [default: https://www.googleapis.com/oauth2/v3/certs]
    #[arg(long, env = "OUTPOST_GOOGLE_JWKS_URL")]
    pub google_jwks_url: Option<String>,

    /// GitHub OAuth app client id; without it GitHub sign-in is off. Set the app's
    /// callback URL to <public_url>/auth/oauth/github/callback
    #[arg(long, env = "OUTPOST_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    /// GitHub OAuth app client secret
    #[arg(long, env = "OUTPOST_GITHUB_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    pub github_client_secret: Option<Secret>,
    /// GitHub authorization endpoint [default: https://github.com/login/oauth/authorize]
    #[arg(long, env = "OUTPOST_GITHUB_AUTHORIZE_URL")]
    pub github_authorize_url: Option<String>,
    /// GitHub token endpoint [default: https://github.com/login/oauth/access_token]
    #[arg(long, env = "OUTPOST_GITHUB_TOKEN_URL")]
    pub github_token_url: Option<String>,
    /// GitHub REST API base (GET /user, GET /user/emails) [default: https://api.github.com]
    #[arg(long, env = "OUTPOST_GITHUB_API_URL")]
    pub github_api_url: Option<String>,

    /// Apple Services ID (the client id of Sign in with Apple on the web); without it Apple
    /// sign-in is off. Register <public_url>/auth/oauth/apple/callback as its return URL
    /// (Apple requires https)
    #[arg(long, env = "OUTPOST_APPLE_CLIENT_ID")]
    pub apple_client_id: Option<String>,
    /// Apple developer team id (issuer of the client-secret JWT)
    #[arg(long, env = "OUTPOST_APPLE_TEAM_ID")]
    pub apple_team_id: Option<String>,
    /// Key id of the Sign in with Apple private key
    #[arg(long, env = "OUTPOST_APPLE_KEY_ID")]
    pub apple_key_id: Option<String>,
    /// Path of that private key (the AuthKey_<key id>.p8 PEM file Apple lets you download
    /// once); it signs a short-lived ES256 client secret for each token request
    #[arg(long, env = "OUTPOST_APPLE_PRIVATE_KEY_PATH")]
    pub apple_private_key_path: Option<PathBuf>,
    /// Apple issuer; when set to another issuer, endpoints not given below are read from its
    /// /.well-known/openid-configuration [default: https://appleid.apple.com]
    #[arg(long, env = "OUTPOST_APPLE_ISSUER")]
    pub apple_issuer: Option<String>,
    /// Apple authorization endpoint [default: https://appleid.apple.com/auth/authorize]
    #[arg(long, env = "OUTPOST_APPLE_AUTHORIZE_URL")]
    pub apple_authorize_url: Option<String>,
    /// Apple token endpoint [default: https://appleid.apple.com/auth/token]
    #[arg(long, env = "OUTPOST_APPLE_TOKEN_URL")]
    pub apple_token_url: Option<String>,
    /// Apple JWKS (id_token signing keys) [default: https://appleid.apple.com/auth/keys]
    #[arg(long, env = "OUTPOST_APPLE_JWKS_URL")]
    pub apple_jwks_url: Option<String>,
}

/// One `[oauth.<provider>]` table of the TOML file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    team_id: Option<String>,
    key_id: Option<String>,
    private_key_path: Option<PathBuf>,
    issuer: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    jwks_url: Option<String>,
    api_url: Option<String>,
}

/// The `[oauth]` table of the TOML file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct OAuthFile {
    google: Option<ProviderFile>,
    github: Option<ProviderFile>,
    apple: Option<ProviderFile>,
}

/// How the CP authenticates itself at a provider's token endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A client secret issued by the provider (Google, GitHub).
    Secret(Secret),
    /// Apple: an ES256 JWT minted per request from the team's private key.
    AppleKey {
        /// Developer team id (`iss`).
        team_id: String,
        /// Key id (`kid`).
        key_id: String,
        /// PKCS#8 DER of the P-256 key, base64url (a [`Secret`], so Debug prints `***`).
        pkcs8: Secret,
    },
}

/// A provider that is on.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Which provider.
    pub provider: Provider,
    /// OAuth client id (Apple: the Services ID).
    pub client_id: String,
    /// Client authentication at the token endpoint.
    pub auth: ClientAuth,
    /// Expected `iss` of id_tokens (OIDC providers); GitHub: unused.
    pub issuer: String,
    /// Endpoints; `None` = read from the issuer's discovery document.
    pub authorize_url: Option<String>,
    /// Token endpoint.
    pub token_url: Option<String>,
    /// Userinfo endpoint (Google), or API base (GitHub).
    pub userinfo_url: Option<String>,
    /// JWKS endpoint (OIDC providers).
    pub jwks_url: Option<String>,
}

/// The providers that are on (none by default).
#[derive(Debug, Clone, Default)]
pub struct OAuthConfig {
    /// In button order: Google, GitHub, Apple.
    pub providers: Vec<ProviderConfig>,
}

impl OAuthConfig {
    /// The configuration of `p`, if it is on.
    pub fn get(&self, p: Provider) -> Option<&ProviderConfig> {
        self.providers.iter().find(|c| c.provider == p)
    }
}

fn url(flag: &Option<String>, file: Option<String>) -> Option<String> {
    flag.clone()
        .or(file)
        .map(|u| u.trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
}

/// Endpoint defaults apply only with the provider's own issuer; another issuer's
/// endpoints come from its discovery document unless given.
fn endpoint(
    flag: &Option<String>,
    file: Option<String>,
    default_issuer: bool,
    default: &str,
) -> Option<String> {
    url(flag, file).or_else(|| default_issuer.then(|| default.to_owned()))
}

fn check_url(name: &str, u: &Option<String>) -> anyhow::Result<()> {
    if let Some(u) = u {
        anyhow::ensure!(
            u.starts_with("https://") || u.starts_with("http://"),
            "{name} must be an http(s) URL"
        );
    }
    Ok(())
}

/// Reads an Apple `.p8` key (PKCS#8 PEM) and checks that it is a P-256 key ring can sign
/// with, so a wrong file fails at start-up rather than at the first sign-in.
pub fn read_apple_key(path: &std::path::Path) -> anyhow::Result<Secret> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read apple private key {}: {e}", path.display()))?;
    use rustls::pki_types::pem::PemObject;
    let der = match rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem) {
        Ok(rustls::pki_types::PrivateKeyDer::Pkcs8(k)) => k.secret_pkcs8_der().to_vec(),
        _ => anyhow::bail!(
            "apple private key {} is not a PKCS#8 PEM file (the .p8 file Apple issues)",
            path.display()
        ),
    };
    let rng = ring::rand::SystemRandom::new();
    ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &rng,
    )
    .map_err(|_| {
        anyhow::anyhow!(
            "apple private key {} is not a P-256 key (ES256)",
            path.display()
        )
    })?;
    Ok(Secret::new(outpost_crypto::b64(&der)))
}

impl OAuthArgs {
    /// Merges flags/env over the `[oauth]` table of the file.
    pub fn resolve(&self, file: Option<OAuthFile>) -> anyhow::Result<OAuthConfig> {
        let file = file.unwrap_or_default();
        let mut providers = vec![];

        let g = file.google.unwrap_or_default();
        anyhow::ensure!(
            g.team_id.is_none()
                && g.key_id.is_none()
                && g.private_key_path.is_none()
                && g.api_url.is_none(),
            "[oauth.google] takes client_id, client_secret, issuer, authorize_url, token_url, userinfo_url, jwks_url"
        );
        if let Some(client_id) = url(&self.google_client_id, g.client_id) {
            let secret = self
                .google_client_secret
                .clone()
                .or(g.client_secret.map(Secret::new))
                .ok_or_else(|| {
                    anyhow::anyhow!("google client_id is set but client_secret is not")
                })?;
            let issuer = url(&self.google_issuer, g.issuer).unwrap_or(GOOGLE_ISSUER.into());
            let own = issuer == GOOGLE_ISSUER;
            providers.push(ProviderConfig {
                provider: Provider::Google,
                client_id,
                auth: ClientAuth::Secret(secret),
                authorize_url: endpoint(
                    &self.google_authorize_url,
                    g.authorize_url,
                    own,
                    "https://accounts.google.com/o/oauth2/v2/auth",
                ),
                token_url: endpoint(
                    &self.google_token_url,
                    g.token_url,
                    own,
                    "https://oauth2.googleapis.com/token",
                ),
                userinfo_url: endpoint(
                    &self.google_userinfo_url,
                    g.userinfo_url,
                    own,
                    "https://openidconnect.googleapis.com/v1/userinfo",
                ),
                jwks_url: endpoint(
                    &self.google_jwks_url,
                    g.jwks_url,
                    own,
                    "https://www.googleapis.com/oauth2/v3/certs",
                ),
                issuer,
            });
        }

        let h = file.github.unwrap_or_default();
        anyhow::ensure!(
            h.team_id.is_none()
                && h.key_id.is_none()
                && h.private_key_path.is_none()
                && h.issuer.is_none()
                && h.userinfo_url.is_none()
                && h.jwks_url.is_none(),
            "[oauth.github] takes client_id, client_secret, authorize_url, token_url, api_url"
        );
        if let Some(client_id) = url(&self.github_client_id, h.client_id) {
            let secret = self
                .github_client_secret
                .clone()
                .or(h.client_secret.map(Secret::new))
                .ok_or_else(|| {
                    anyhow::anyhow!("github client_id is set but client_secret is not")
                })?;
            providers.push(ProviderConfig {
                provider: Provider::Github,
                client_id,
                auth: ClientAuth::Secret(secret),
                issuer: String::new(),
                authorize_url: endpoint(
                    &self.github_authorize_url,
                    h.authorize_url,
                    true,
                    "https://github.com/login/oauth/authorize",
                ),
                token_url: endpoint(
                    &self.github_token_url,
                    h.token_url,
                    true,
                    "https://github.com/login/oauth/access_token",
                ),
                userinfo_url: endpoint(
                    &self.github_api_url,
                    h.api_url,
                    true,
                    "https://api.github.com",
                ),
                jwks_url: None,
            });
        }

        let a = file.apple.unwrap_or_default();
        anyhow::ensure!(
            a.client_secret.is_none() && a.userinfo_url.is_none() && a.api_url.is_none(),
            "[oauth.apple] takes client_id, team_id, key_id, private_key_path, issuer, authorize_url, token_url, jwks_url (no client_secret: it is minted from the key)"
        );
        if let Some(client_id) = url(&self.apple_client_id, a.client_id) {
            let team_id = self.apple_team_id.clone().or(a.team_id);
            let key_id = self.apple_key_id.clone().or(a.key_id);
            let key_path = self.apple_private_key_path.clone().or(a.private_key_path);
            let (Some(team_id), Some(key_id), Some(key_path)) = (team_id, key_id, key_path) else {
                anyhow::bail!(
                    "apple client_id is set: team_id, key_id and private_key_path are needed too"
                );
            };
            let issuer = url(&self.apple_issuer, a.issuer).unwrap_or(APPLE_ISSUER.into());
            let own = issuer == APPLE_ISSUER;
            providers.push(ProviderConfig {
                provider: Provider::Apple,
                client_id,
                auth: ClientAuth::AppleKey {
                    team_id,
                    key_id,
                    pkcs8: read_apple_key(&key_path)?,
                },
                authorize_url: endpoint(
                    &self.apple_authorize_url,
                    a.authorize_url,
                    own,
                    "https://appleid.apple.com/auth/authorize",
                ),
                token_url: endpoint(
                    &self.apple_token_url,
                    a.token_url,
                    own,
                    "https://appleid.apple.com/auth/token",
                ),
                userinfo_url: None,
                jwks_url: endpoint(
                    &self.apple_jwks_url,
                    a.jwks_url,
                    own,
                    "https://appleid.apple.com/auth/keys",
                ),
                issuer,
            });
        }
        for p in &providers {
            let name = p.provider.as_str();
            check_url(
                &format!("{name} issuer"),
                &Some(p.issuer.clone()).filter(|i| !i.is_empty()),
            )?;
            check_url(&format!("{name} authorize_url"), &p.authorize_url)?;
            check_url(&format!("{name} token_url"), &p.token_url)?;
            check_url(&format!("{name} userinfo/api url"), &p.userinfo_url)?;
            check_url(&format!("{name} jwks_url"), &p.jwks_url)?;
        }
        Ok(OAuthConfig { providers })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn no_client_id_means_off_and_defaults_are_the_real_endpoints() {
        let c = OAuthArgs::default().resolve(None).unwrap();
        assert!(c.providers.is_empty());
        let args = OAuthArgs {
            google_client_id: Some("cid".into()),
            google_client_secret: Some(Secret::new("s".into())),
            github_client_id: Some("gh".into()),
            github_client_secret: Some(Secret::new("t".into())),
            ..Default::default()
        };
        let c = args.resolve(None).unwrap();
        let g = c.get(Provider::Google).unwrap();
        assert_eq!(g.issuer, GOOGLE_ISSUER);
        assert_eq!(
            g.token_url.as_deref(),
            Some("https://oauth2.googleapis.com/token")
        );
        assert!(format!("{g:?}").contains("***"), "secret masked in Debug");
        let h = c.get(Provider::Github).unwrap();
        assert_eq!(h.userinfo_url.as_deref(), Some("https://api.github.com"));
        assert!(c.get(Provider::Apple).is_none());
    }

    #[test]
    fn another_issuer_leaves_unset_endpoints_to_discovery() {
        let file: OAuthFile = toml::from_str(
            "[google]\nclient_id = \"x\"\nclient_secret = \"y\"\nissuer = \"http://127.0.0.1:9/\"\ntoken_url = \"http://127.0.0.1:9/tok\"\n",
        )
        .unwrap();
        let c = OAuthArgs::default().resolve(Some(file)).unwrap();
        let g = c.get(Provider::Google).unwrap();
        assert_eq!(g.issuer, "http://127.0.0.1:9");
        assert_eq!(g.token_url.as_deref(), Some("http://127.0.0.1:9/tok"));
        assert!(g.authorize_url.is_none() && g.jwks_url.is_none());
    }

    #[test]
    fn half_configured_providers_are_refused_at_start() {
        let args = OAuthArgs {
            google_client_id: Some("cid".into()),
            ..Default::default()
        };
        assert!(args.resolve(None).is_err(), "client id without secret");
        let args = OAuthArgs {
            apple_client_id: Some("svc".into()),
            ..Default::default()
        };
        assert!(args.resolve(None).is_err(), "apple without key");
        let file: Result<OAuthFile, _> = toml::from_str("[github]\nclient_idd = \"x\"\n");
        assert!(file.is_err(), "unknown keys are refused");
    }
}
