//! What each provider is asked over HTTP, through the CP's reqwest client (rustls + ring):
//! discovery, the token request, the JWKS, GitHub's user and emails, Google's userinfo.
//! Tokens received here live in local variables for the length of the callback and are
//! never logged or stored; failures are logged as provider + status or error kind.

use super::config::{ClientAuth, ProviderConfig};
use super::jwt::{self, Expected};
use super::{Provider, Refusal};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Per-request time limit for provider calls.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a discovery document is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// A provider's endpoints, configured or discovered.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorize: String,
    /// Token endpoint.
    pub token: String,
    /// Userinfo (Google) or API base (GitHub).
    pub userinfo: Option<String>,
    /// JWKS (OIDC providers).
    pub jwks: Option<String>,
}

/// Discovery documents already read, per provider. A cache only: every replica can read
/// the document again, so nothing is lost with the process.
#[derive(Default)]
pub struct DiscoveryCache(std::sync::Mutex<Vec<(Provider, Instant, Endpoints)>>);

/// What calls to a provider need: the HTTP client, the discovery cache, and the public
/// URL our callback is under.
pub struct Calls<'a> {
    /// The outbound client.
    pub http: &'a reqwest::Client,
    /// Discovery documents already fetched.
    pub discovery: &'a DiscoveryCache,
    /// Public base URL of the UI, without a trailing slash.
    pub public_url: &'a str,
}

/// Our callback for `p`, as registered with the provider.
pub fn redirect_uri(public_url: &str, p: Provider) -> String {
    format!("{public_url}/auth/oauth/{}/callback", p.as_str())
}

fn unreachable(p: Provider, what: &str, e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(provider = p.as_str(), call = what, error = %e, "oauth provider call failed");
    Refusal::ProviderUnreachable
}

async fn get_json(
    state: &Calls<'_>,
    p: Provider,
    what: &str,
    url: &str,
    bearer: Option<&str>,
) -> Result<serde_json::Value, Refusal> {
    let mut req = state
        .http
        .get(url)
        .timeout(TIMEOUT)
        .header("accept", "application/json");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .map_err(|e| unreachable(p, what, e.without_url()))?;
    if !r.status().is_success() {
        return Err(unreachable(p, what, r.status()));
    }
    r.json()
        .await
        .map_err(|e| unreachable(p, what, e.without_url()))
}

/// The endpoints of `cfg`: configured ones as they are, missing ones from
/// `<issuer>/.well-known/openid-configuration` (whose `issuer` must be the configured one).
pub async fn endpoints(state: &Calls<'_>, cfg: &ProviderConfig) -> Result<Endpoints, Refusal> {
    let p = cfg.provider;
    let needs_discovery = cfg.authorize_url.is_none()
        || cfg.token_url.is_none()
        || (p != Provider::Github && cfg.jwks_url.is_none());
    let mut discovered: Option<Endpoints> = None;
    if needs_discovery {
        let cache = state.discovery;
        let hit = cache
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(q, at, _)| *q == p && at.elapsed() < DISCOVERY_TTL)
            .map(|(_, _, e)| e.clone());
        discovered = match hit {
            Some(e) => Some(e),
            None => {
                let url = format!("{}/.well-known/openid-configuration", cfg.issuer);
                let doc = get_json(state, p, "discovery", &url, None).await?;
                let s = |k: &str| doc[k].as_str().map(str::to_owned);
                if s("issuer").as_deref().map(|i| i.trim_end_matches('/'))
                    != Some(cfg.issuer.as_str())
                {
                    return Err(unreachable(p, "discovery", "issuer differs"));
                }
                let e = Endpoints {
                    authorize: s("authorization_endpoint").unwrap_or_default(),
                    token: s("token_endpoint").unwrap_or_default(),
                    userinfo: s("userinfo_endpoint"),
                    jwks: s("jwks_uri"),
                };
                let mut c = cache.0.lock().unwrap_or_else(|e| e.into_inner());
                c.retain(|(q, _, _)| *q != p);
                c.push((p, Instant::now(), e.clone()));
                Some(e)
            }
        };
    }
    let d = discovered.as_ref();
    let ep = Endpoints {
        authorize: cfg
            .authorize_url
            .clone()
            .or_else(|| d.map(|d| d.authorize.clone()))
            .unwrap_or_default(),
        token: cfg
            .token_url
            .clone()
            .or_else(|| d.map(|d| d.token.clone()))
            .unwrap_or_default(),
        userinfo: cfg
            .userinfo_url
            .clone()
            .or_else(|| d.and_then(|d| d.userinfo.clone())),
        jwks: cfg
            .jwks_url
            .clone()
            .or_else(|| d.and_then(|d| d.jwks.clone())),
    };
    if ep.authorize.is_empty()
        || ep.token.is_empty()
        || (p != Provider::Github && ep.jwks.is_none())
    {
        return Err(unreachable(p, "discovery", "endpoints missing"));
    }
    Ok(ep)
}

/// Who signed in, as the provider vouches for it.
#[derive(Debug)]
pub struct Verified {
    /// Stable subject id.
    pub subject: String,
    /// Email, when the provider says it verified it.
    pub verified_email: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    id_token: Option<String>,
    error: Option<String>,
}

/// Exchanges the code (with the PKCE verifier and our client authentication) and finds out
/// who signed in.
pub async fn redeem(
    state: &Calls<'_>,
    cfg: &ProviderConfig,
    ep: &Endpoints,
    code: &str,
    verifier: &str,
    nonce: &str,
) -> Result<Verified, Refusal> {
    let p = cfg.provider;
    let redirect_uri = redirect_uri(state.public_url, p);
    let secret = match &cfg.auth {
        ClientAuth::Secret(s) => s.expose().to_owned(),
        ClientAuth::AppleKey {
            team_id,
            key_id,
            pkcs8,
        } => {
            let der = outpost_crypto::unb64(pkcs8.expose())
                .map_err(|_| unreachable(p, "client_secret", "key"))?;
            jwt::apple_client_secret(
                &der,
                key_id,
                team_id,
                &cfg.client_id,
                &cfg.issuer,
                crate::infra::db::now(),
            )
            .map_err(|e| unreachable(p, "client_secret", e))?
        }
    };
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("client_id", &cfg.client_id),
        ("client_secret", &secret),
        ("code_verifier", verifier),
    ];
    let r = state
        .http
        .post(&ep.token)
        .timeout(TIMEOUT)
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| unreachable(p, "token", e.without_url()))?;
    let status = r.status();
    if status.is_server_error() {
        return Err(unreachable(p, "token", status));
    }
    // A refused code is 400 at Google and Apple, but 200 with an `error` field at GitHub.
    let body: TokenResponse = r
        .json()
        .await
        .map_err(|e| unreachable(p, "token", e.without_url()))?;
    if !status.is_success() || body.error.is_some() {
        tracing::info!(provider = p.as_str(), %status, "oauth token request refused");
        return Err(Refusal::TokenRefused);
    }
    match p {
        Provider::Google | Provider::Apple => {
            let id_token = body.id_token.ok_or(Refusal::TokenRefused)?;
            let jwks_url = ep.jwks.as_deref().unwrap_or_default();
            let keys = jwt::parse_jwks(&get_json(state, p, "jwks", jwks_url, None).await?);
            // Google's documented issuer comes with and without the scheme.
            let bare = cfg.issuer.strip_prefix("https://").unwrap_or(&cfg.issuer);
            let issuers: &[&str] = if p == Provider::Google {
                &[cfg.issuer.as_str(), bare]
            } else {
                &[cfg.issuer.as_str()]
            };
            let algorithms: &[Algorithm] = if p == Provider::Google {
                &[Algorithm::RS256]
            } else {
                &[Algorithm::ES256, Algorithm::RS256]
            };
            let claims = jwt::verify_id_token(
                &id_token,
                &keys,
                &Expected {
                    issuers,
                    audience: &cfg.client_id,
                    nonce,
                    algorithms,
                },
            )?;
            let (mut email, mut verified) = (claims.email, claims.email_verified);
            if email.is_none() {
                // Google leaves the email out of the id_token in some configurations;
                // userinfo has it, for the same subject.
                if let (Some(url), Some(access)) = (&ep.userinfo, &body.access_token) {
                    let info = get_json(state, p, "userinfo", url, Some(access)).await?;
                    if info["sub"].as_str() == Some(claims.sub.as_str()) {
                        email = info["email"].as_str().map(str::to_owned);
                        verified =
                            info["email_verified"] == true || info["email_verified"] == "true";
                    }
                }
            }
            Ok(Verified {
                subject: claims.sub,
                verified_email: email.filter(|_| verified),
            })
        }
        Provider::Github => {
            let access = body.access_token.ok_or(Refusal::TokenRefused)?;
            let api = ep.userinfo.as_deref().unwrap_or_default();
            let user = get_json(state, p, "user", &format!("{api}/user"), Some(&access)).await?;
            let subject = match &user["id"] {
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(unreachable(p, "user", "no id")),
            };
            // Only the primary address, and only if GitHub verified it.
            let emails = get_json(
                state,
                p,
                "user_emails",
                &format!("{api}/user/emails"),
                Some(&access),
            )
            .await?;
            let verified_email = emails
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["primary"] == true && e["verified"] == true)
                .and_then(|e| e["email"].as_str())
                .map(str::to_owned);
            Ok(Verified {
                subject,
                verified_email,
            })
        }
    }
}
