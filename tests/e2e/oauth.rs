//! Sign in with Google, GitHub and Apple (issue 7) against a local provider speaking their
//! wire formats: OIDC discovery, JWKS, an authorize endpoint that sends the browser back
//! with a code (Apple: an auto-submitting form_post page), a token endpoint that checks the
//! PKCE verifier and the client's credentials (Apple: the ES256 client-secret JWT), Google's
//! userinfo, GitHub's /user and /user/emails. id_tokens are signed with a fixed test RSA key
//! (Google, RS256) and a P-256 key made in the test (Apple, ES256).

use crate::agents::{contains, files_under, pg_rows_text};
use crate::harness::*;
use control_plane::infra::schema::{audit_events, oauth_identities, oauth_states, sessions, users};
use diesel::prelude::*;
use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const GOOGLE_CLIENT: &str = "google-client-id";
const GOOGLE_SECRET: &str = "google-secret-canary-7f3a";
const GITHUB_CLIENT: &str = "github-client-id";
const GITHUB_SECRET: &str = "github-secret-canary-91bd";
const APPLE_CLIENT: &str = "com.example.outpost.web";
const APPLE_TEAM: &str = "TEAM123456";
const APPLE_KEY_ID: &str = "KEY7654321";
/// Every code, access token and id_token the fake issues contains this.
const TOKEN_CANARY: &str = "canary0auth";

/// How the fake provider misbehaves for the next sign-in.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Good,
    WrongNonce,
    BadSignature,
    Expired,
    Deny,
    /// The answer carries another issuer's `iss` (RFC 9207): a mix-up.
    WrongIssuer,
}

/// Who the fake provider says signs in next.
#[derive(Clone)]
struct Person {
    sub: String,
    email: String,
    verified: bool,
}

struct Grant {
    provider: &'static str,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    person: Person,
}

struct Fake {
    uri: String,
    mode: Mode,
    person: Person,
    grants: HashMap<String, Grant>,
    access: HashMap<String, Person>,
    /// PKCE verifiers or client credentials the token endpoint refused.
    refused: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

struct Keys {
    rsa: RsaKeyPair,
    rsa_jwk: Value,
    apple: EcdsaKeyPair,
    apple_jwk: Value,
    /// The team key the CP signs Apple client secrets with (public half).
    team_jwk: Value,
}

fn b64(d: &[u8]) -> String {
    outpost_crypto::b64(d)
}

fn ec_key() -> (Vec<u8>, EcdsaKeyPair, Value) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
    let pt = kp.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
        "x": b64(&pt[1..33]), "y": b64(&pt[33..65])});
    (pkcs8, kp, jwk)
}

fn rsa_key() -> (RsaKeyPair, Value) {
    let pem = include_str!("fixtures/oauth-test-rsa.pem");
    use rustls::pki_types::pem::PemObject;
    let der = match rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap() {
        rustls::pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => panic!("PKCS#8 fixture"),
    };
    let kp = RsaKeyPair::from_pkcs8(&der).unwrap();
    let pk: ring::rsa::PublicKeyComponents<Vec<u8>> = kp.public().into();
    let jwk = json!({"kty": "RSA", "kid": "google-1", "alg": "RS256", "use": "sig",
        "n": b64(&pk.n), "e": b64(&pk.e)});
    (kp, jwk)
}

fn sign_jwt(keys: &Keys, provider: &str, claims: &Value) -> String {
    let rng = ring::rand::SystemRandom::new();
    let (alg, kid) = if provider == "apple" {
        ("ES256", "apple-1")
    } else {
        ("RS256", "google-1")
    };
    let msg = format!(
        "{}.{}",
        b64(json!({"alg": alg, "kid": kid, "typ": "JWT"})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = if provider == "apple" {
        keys.apple
            .sign(&rng, msg.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    } else {
        let mut sig = vec![0; keys.rsa.public().modulus_len()];
        keys.rsa
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &rng,
                msg.as_bytes(),
                &mut sig,
            )
            .unwrap();
        sig
    };
    format!("{msg}.{}", b64(&sig))
}

fn form_of(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn query_of(r: &Request) -> HashMap<String, String> {
    r.url.query_pairs().into_owned().collect()
}

/// The authorize endpoint: checks the request, records the grant, sends the browser back.
struct Authorize(Shared, &'static str, &'static str);

impl Respond for Authorize {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let (provider, client) = (self.1, self.2);
        let q = query_of(r);
        let mut f = self.0.lock().unwrap();
        assert_eq!(q["client_id"], client);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        if provider != "github" {
            assert!(q.contains_key("nonce"), "OIDC sign-ins carry a nonce");
        }
        let redirect = q["redirect_uri"].clone();
        assert!(redirect.ends_with(&format!("/auth/oauth/{provider}/callback")));
        let state = q["state"].clone();
        if f.mode == Mode::Deny {
            let to = format!(
                "{redirect}?error=access_denied&error_description=The+user+said+no&state={state}"
            );
            return ResponseTemplate::new(302).insert_header("location", to.as_str());
        }
        let code = format!("code-{TOKEN_CANARY}-{}", uuid::Uuid::new_v4().simple());
        let person = f.person.clone();
        f.grants.insert(
            code.clone(),
            Grant {
                provider,
                client_id: client.into(),
                redirect_uri: redirect.clone(),
                challenge: q["code_challenge"].clone(),
                nonce: q.get("nonce").cloned(),
                person,
            },
        );
        if provider == "apple" {
            assert_eq!(q["response_mode"], "form_post");
            // What appleid.apple.com answers: a page that posts the code to the client.
            let page = format!(
                "<html><body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{redirect}\">\
                 <input type=\"hidden\" name=\"state\" value=\"{state}\">\
                 <input type=\"hidden\" name=\"code\" value=\"{code}\">\
                 <input type=\"hidden\" name=\"user\" value='{{\"name\":{{\"firstName\":\"Ann\"}}}}'>\
                 </form></body></html>"
            );
            return ResponseTemplate::new(200).set_body_raw(page, "text/html");
        }
        // Google sends RFC 9207's `iss` with its answers; GitHub sends none.
        let iss = match (provider, f.mode) {
            (_, Mode::WrongIssuer) => "&iss=https%3A%2F%2Fidp.attacker.example".to_owned(),
            ("google", _) => format!("&iss={}/google", f.uri),
            _ => String::new(),
        };
        let to = format!("{redirect}?code={code}&state={state}{iss}");
        ResponseTemplate::new(302).insert_header("location", to.as_str())
    }
}

/// The token endpoint: single-use codes, PKCE S256, client authentication.
struct Token(Shared, Arc<Keys>, &'static str);

impl Respond for Token {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let provider = self.2;
        let form = form_of(&r.body);
        let mut f = self.0.lock().unwrap();
        let refuse = |f: &mut Fake, why: &str| {
            f.refused.push(why.to_owned());
            // GitHub says no with a 200, the others with a 400.
            let status = if provider == "github" { 200 } else { 400 };
            ResponseTemplate::new(status).set_body_json(json!({"error": "invalid_grant"}))
        };
        let Some(grant) = form.get("code").and_then(|c| f.grants.remove(c)) else {
            return refuse(&mut f, "unknown or used code");
        };
        assert_eq!(grant.provider, provider);
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        let challenge =
            b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
        if challenge != grant.challenge {
            return refuse(&mut f, "pkce");
        }
        if form.get("redirect_uri") != Some(&grant.redirect_uri)
            || form.get("client_id") != Some(&grant.client_id)
            || form.get("grant_type").map(String::as_str) != Some("authorization_code")
        {
            return refuse(&mut f, "request");
        }
        let secret = form.get("client_secret").cloned().unwrap_or_default();
        let client_ok = match provider {
            "google" => secret == GOOGLE_SECRET,
            "github" => secret == GITHUB_SECRET,
            _ => {
                // Apple: an ES256 JWT from the team key, {iss: team, sub: client, aud: issuer}.
                let key = jsonwebtoken::DecodingKey::from_ec_components(
                    self.1.team_jwk["x"].as_str().unwrap(),
                    self.1.team_jwk["y"].as_str().unwrap(),
                )
                .unwrap();
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
                v.set_issuer(&[APPLE_TEAM]);
                v.set_audience(&[format!("{}/apple", f.uri)]);
                let kid_ok = jsonwebtoken::decode_header(&secret)
                    .map(|h| h.kid.as_deref() == Some(APPLE_KEY_ID))
                    .unwrap_or(false);
                kid_ok
                    && jsonwebtoken::decode::<Value>(&secret, &key, &v)
                        .is_ok_and(|d| d.claims["sub"] == APPLE_CLIENT)
            }
        };
        if !client_ok {
            return refuse(&mut f, "client authentication");
        }
        let access = format!("at-{TOKEN_CANARY}-{}", uuid::Uuid::new_v4().simple());
        f.access.insert(access.clone(), grant.person.clone());
        if provider == "github" {
            return ResponseTemplate::new(200).set_body_json(
                json!({"access_token": access, "token_type": "bearer", "scope": "read:user,user:email"}),
            );
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let p = &grant.person;
        let mut claims = json!({
            "iss": format!("{}/{provider}", f.uri),
            "aud": grant.client_id,
            "sub": p.sub,
            "iat": now,
            "exp": now + 600,
            "nonce": grant.nonce,
            "email": p.email,
            // Apple sends the string form.
            "email_verified": if provider == "apple" { json!(p.verified.to_string()) } else { json!(p.verified) },
            "at_hash": TOKEN_CANARY,
        });
        match f.mode {
            Mode::WrongNonce => claims["nonce"] = json!("a-nonce-from-another-sign-in"),
            Mode::Expired => {
                claims["iat"] = json!(now - 7200);
                claims["exp"] = json!(now - 3600);
            }
            _ => {}
        }
        let mut id_token = sign_jwt(&self.1, provider, &claims);
        if f.mode == Mode::BadSignature {
            // Same header and claims, someone else's signature bytes.
            let (msg, sig) = id_token.rsplit_once('.').unwrap();
            let mut sig = outpost_crypto::unb64(sig).unwrap();
            sig[7] ^= 0x40;
            id_token = format!("{msg}.{}", b64(&sig));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access, "token_type": "Bearer", "expires_in": 3600, "id_token": id_token
        }))
    }
}

/// Bearer-authenticated JSON about the person an access token was issued to.
struct WhoAmI(Shared, &'static str);

impl Respond for WhoAmI {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let f = self.0.lock().unwrap();
        let token = r
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let Some(p) = f.access.get(token) else {
            return ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"}));
        };
        let body = match self.1 {
            "user" => json!({"id": p.sub.parse::<i64>().unwrap(), "login": "octo"}),
            // A secondary verified address comes first: only the primary one counts.
            "emails" => json!([
                {"email": "old-address@elsewhere.test", "primary": false, "verified": true, "visibility": null},
                {"email": p.email, "primary": true, "verified": p.verified, "visibility": "private"}
            ]),
            _ => json!({"sub": p.sub, "email": p.email, "email_verified": p.verified}),
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

struct Provider {
    server: MockServer,
    fake: Shared,
    _key_dir: tempfile::TempDir,
    key_path: std::path::PathBuf,
}

impl Provider {
    async fn start() -> Provider {
        let server = MockServer::start().await;
        let uri = server.uri();
        let (rsa, rsa_jwk) = rsa_key();
        let (_, apple, mut apple_jwk) = ec_key();
        apple_jwk["kid"] = json!("apple-1");
        let (team_pkcs8, _, team_jwk) = ec_key();
        let keys = Arc::new(Keys {
            rsa,
            rsa_jwk,
            apple,
            apple_jwk,
            team_jwk,
        });
        let key_dir = tempfile::tempdir().unwrap();
        let key_path = key_dir.path().join(format!("AuthKey_{APPLE_KEY_ID}.p8"));
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &team_pkcs8);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        std::fs::write(
            &key_path,
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                lines.join("\n")
            ),
        )
        .unwrap();
        let fake = Arc::new(Mutex::new(Fake {
            uri: uri.clone(),
            mode: Mode::Good,
            person: Person {
                sub: "0".into(),
                email: String::new(),
                verified: true,
            },
            grants: HashMap::new(),
            access: HashMap::new(),
            refused: vec![],
        }));
        let json_at = |p: &str, body: Value| {
            Mock::given(method("GET"))
                .and(path(p.to_owned()))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
        };
        json_at(
            "/google/.well-known/openid-configuration",
            json!({
                "issuer": format!("{uri}/google"),
                "authorization_endpoint": format!("{uri}/google/authorize"),
                "token_endpoint": format!("{uri}/google/token"),
                "userinfo_endpoint": format!("{uri}/google/userinfo"),
                "jwks_uri": format!("{uri}/google/jwks"),
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true
            }),
        )
        .mount(&server)
        .await;
        json_at("/google/jwks", json!({"keys": [keys.rsa_jwk]}))
            .mount(&server)
            .await;
        // Apple publishes more than one key; the kid picks.
        let (_, _, mut other) = ec_key();
        other["kid"] = json!("apple-0");
        json_at("/apple/auth/keys", json!({"keys": [other, keys.apple_jwk]}))
            .mount(&server)
            .await;
        for (prov, client, authorize, token) in [
            (
                "google",
                GOOGLE_CLIENT,
                "/google/authorize",
                "/google/token",
            ),
            (
                "github",
                GITHUB_CLIENT,
                "/github/login/oauth/authorize",
                "/github/login/oauth/access_token",
            ),
            (
                "apple",
                APPLE_CLIENT,
                "/apple/auth/authorize",
                "/apple/auth/token",
            ),
        ] {
            Mock::given(method("GET"))
                .and(path(authorize))
                .respond_with(Authorize(fake.clone(), prov, client))
                .mount(&server)
                .await;
            Mock::given(method("POST"))
                .and(path(token))
                .respond_with(Token(fake.clone(), keys.clone(), prov))
                .mount(&server)
                .await;
        }
        for (p, what) in [
            ("/google/userinfo", "userinfo"),
            ("/github/api/user", "user"),
            ("/github/api/user/emails", "emails"),
        ] {
            Mock::given(method("GET"))
                .and(path(p))
                .respond_with(WhoAmI(fake.clone(), what))
                .mount(&server)
                .await;
        }
        Provider {
            server,
            fake,
            _key_dir: key_dir,
            key_path,
        }
    }

    /// Google through discovery (issuer only); GitHub and Apple with explicit endpoints.
    fn env(&self) -> Vec<(&'static str, String)> {
        let u = self.server.uri();
        vec![
            ("OUTPOST_GOOGLE_CLIENT_ID", GOOGLE_CLIENT.into()),
            ("OUTPOST_GOOGLE_CLIENT_SECRET", GOOGLE_SECRET.into()),
            ("OUTPOST_GOOGLE_ISSUER", format!("{u}/google")),
            ("OUTPOST_GITHUB_CLIENT_ID", GITHUB_CLIENT.into()),
            ("OUTPOST_GITHUB_CLIENT_SECRET", GITHUB_SECRET.into()),
            (
                "OUTPOST_GITHUB_AUTHORIZE_URL",
                format!("{u}/github/login/oauth/authorize"),
            ),
            (
                "OUTPOST_GITHUB_TOKEN_URL",
                format!("{u}/github/login/oauth/access_token"),
            ),
            ("OUTPOST_GITHUB_API_URL", format!("{u}/github/api")),
            ("OUTPOST_APPLE_CLIENT_ID", APPLE_CLIENT.into()),
            ("OUTPOST_APPLE_TEAM_ID", APPLE_TEAM.into()),
            ("OUTPOST_APPLE_KEY_ID", APPLE_KEY_ID.into()),
            (
                "OUTPOST_APPLE_PRIVATE_KEY_PATH",
                self.key_path.display().to_string(),
            ),
            ("OUTPOST_APPLE_ISSUER", format!("{u}/apple")),
            (
                "OUTPOST_APPLE_AUTHORIZE_URL",
                format!("{u}/apple/auth/authorize"),
            ),
            ("OUTPOST_APPLE_TOKEN_URL", format!("{u}/apple/auth/token")),
            ("OUTPOST_APPLE_JWKS_URL", format!("{u}/apple/auth/keys")),
        ]
    }

    fn next(&self, mode: Mode, sub: &str, email: &str, verified: bool) {
        let mut f = self.fake.lock().unwrap();
        f.mode = mode;
        f.person = Person {
            sub: sub.into(),
            email: email.into(),
            verified,
        };
    }
}

/// What the browser ends with after a sign-in attempt.
struct Outcome {
    status: u16,
    location: Option<String>,
    page: String,
    session: Option<String>,
}

fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    session_cookie(r, name).filter(|c| c.len() > name.len() + 1)
}

/// Clicks "Sign in with …", lets the provider answer, and follows the way back to the CP
/// the way a browser would: with its binding cookie, unless `other_browser`.
async fn sign_in(cp: &Cp, provider: &str, other_browser: bool) -> Outcome {
    let client = no_redirect_client();
    let r = client
        .get(format!("{}/auth/oauth/{provider}", cp.ui))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "start redirects to the provider");
    let binding = session_cookie(&r, "outpost_oauth").expect("binding cookie");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("Path=/auth/oauth/"),
        "{set}"
    );
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let r = client.get(&authorize).send().await.unwrap();
    let cookie = if other_browser {
        "outpost_oauth=someone-elses-binding".to_owned()
    } else {
        binding
    };
    let r = if provider == "apple" && r.status() == 200 {
        // Run the auto-submitting form: a cross-site POST from Apple's origin.
        let page = r.text().await.unwrap();
        let action = extract_attr(&page, "action=\"").unwrap();
        let state = extract_attr(&page, "name=\"state\" value=\"").unwrap();
        let code = extract_attr(&page, "name=\"code\" value=\"").unwrap();
        client
            .post(&action)
            .header("origin", "https://appleid.apple.com")
            .header("cookie", &cookie)
            .form(&[
                ("state", state.as_str()),
                ("code", code.as_str()),
                ("user", "{\"name\":{}}"),
            ])
            .send()
            .await
            .unwrap()
    } else {
        assert_eq!(r.status(), 302, "the provider sends the browser back");
        let back = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(back.starts_with(&cp.ui), "{back}");
        client
            .get(&back)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
    };
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let session = cookie_of(&r, "outpost_session");
    let page = r.text().await.unwrap();
    Outcome {
        status,
        location,
        page,
        session,
    }
}

fn counts(cp: &Cp) -> (i64, i64, i64) {
    let pool = cp.db();
    let mut c = pool.get().unwrap();
    (
        users::table.count().get_result(&mut c).unwrap(),
        sessions::table.count().get_result(&mut c).unwrap(),
        oauth_identities::table.count().get_result(&mut c).unwrap(),
    )
}

fn audit(cp: &Cp) -> Vec<(String, String)> {
    let pool = cp.db();
    let mut c = pool.get().unwrap();
    audit_events::table
        .order(audit_events::seq.asc())
        .select((audit_events::action, audit_events::detail))
        .load(&mut c)
        .unwrap()
}

async fn signed_in_as(cp: &Cp, session: &str) -> Browser {
    let mut b = Browser::new(&cp.ui);
    b.cookie = Some(session.to_owned());
    let r = b.get("/workspaces").await;
    assert_eq!(r.status(), 200, "the session works");
    b
}

#[tokio::test]
async fn google_creates_the_account_signs_in_again_and_unlinks() {
    let idp = Provider::start().await;
    let cp = Cp::start_with(Opts {
        env: idp.env(),
        ..Opts::default()
    });
    // The sign-in page shows the three providers that are on.
    let page = Browser::new(&cp.ui)
        .get("/signin")
        .await
        .text()
        .await
        .unwrap();
    for p in ["google", "github", "apple"] {
        assert!(
            page.contains(&format!("href=\"/auth/oauth/{p}\"")),
            "{p} button"
        );
    }

    idp.next(Mode::Good, "google-sub-1", "Ann@Example.test", true);
    let o = sign_in(&cp, "google", false).await;
    assert_eq!(o.status, 303, "{}", o.page);
    assert_eq!(o.location.as_deref(), Some("/workspaces"));
    let ann = cp
        .user_id("ann@example.test")
        .expect("account created, email normalised");
    let b = signed_in_as(&cp, &o.session.unwrap()).await;
    assert!(b
        .get("/workspaces")
        .await
        .text()
        .await
        .unwrap()
        .contains("ann@example.test"));

    // The same identity signs in to the same account, even if its email changed since.
    idp.next(Mode::Good, "google-sub-1", "ann.new@example.test", true);
    let o = sign_in(&cp, "google", false).await;
    assert_eq!(o.status, 303, "{}", o.page);
    assert!(o.session.is_some());
    assert_eq!(cp.user_id("ann.new@example.test"), None);
    let (users_n, _, ids) = counts(&cp);
    assert_eq!((users_n, ids), (1, 1));
    // A new account made by the provider is no news to anyone: no "added" email.
    assert!(crate::mail::outbox(&cp)
        .iter()
        .all(|m| !m.1.contains("sign-in added")));

    // The account page lists it; unlinking removes it, the email link remains.
    let page = b.get("/account/identities").await.text().await.unwrap();
    assert!(
        page.contains("Google") && page.contains("ann@example.test"),
        "{page}"
    );
    let id = extract_attr(&page, "name=\"id\" value=\"").unwrap();
    let r = b
        .post_csrf("/account/identities/unlink", &[("id", &id)])
        .await;
    assert_eq!(r.status(), 303);
    let page = b.get("/account/identities").await.text().await.unwrap();
    assert!(page.contains("No provider account is linked"), "{page}");
    assert!(page.contains("sign in with a link emailed to"));
    assert_eq!(counts(&cp).2, 0);
    // Someone else's identity id (or a made-up one) is not found.
    let r = b
        .post_csrf("/account/identities/unlink", &[("id", &id)])
        .await;
    assert_eq!(r.status(), 404);

    // Signing in with it again links it anew, by verified email, to the same account.
    idp.next(Mode::Good, "google-sub-1", "ann@example.test", true);
    let o = sign_in(&cp, "google", false).await;
    assert_eq!(o.status, 303, "{}", o.page);
    let pool = cp.db();
    let owner: String = oauth_identities::table
        .select(oauth_identities::user_id)
        .first(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(owner, ann);

    let actions: Vec<String> = audit(&cp)
        .into_iter()
        .map(|(a, d)| format!("{a} {d}"))
        .collect();
    for want in [
        "identity.linked google",
        "signin.oauth google",
        "identity.unlinked google",
    ] {
        assert!(actions.contains(&want.to_owned()), "{want} in {actions:?}");
    }
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");

    // Nothing the provider handed over is kept or logged: no code, access token, id_token
    // or client secret in the log, the data dir or the database; no state row left.
    let pool = cp.db();
    let left: i64 = oauth_states::table
        .count()
        .get_result(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(left, 0, "used states are deleted");
    let log = cp.log();
    assert!(log.contains("oauth sign-in"), "sign-ins are logged");
    for canary in [TOKEN_CANARY, GOOGLE_SECRET, "code="] {
        assert!(!log.contains(canary), "{canary} in the CP log");
    }
    let mut files = files_under(&cp.data_dir(), None);
    files.retain(|f| !f.starts_with(cp.data_dir().join("nodes")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for canary in [TOKEN_CANARY, GOOGLE_SECRET] {
            assert!(!contains(&bytes, canary), "{canary} in {}", f.display());
        }
    }
    if cp.db_url.starts_with("postgres") {
        let rows = pg_rows_text(&cp);
        assert!(!rows.contains(TOKEN_CANARY) && !rows.contains(GOOGLE_SECRET));
    }
}

/// RFC 9207: an answer whose `iss` names another issuer is refused in words before its code
/// is redeemed anywhere; Google's own `iss` (every good Google sign-in here carries it) and
/// GitHub's absent one are accepted.
#[tokio::test]
async fn an_answer_from_another_issuer_is_refused_before_its_code_is_used() {
    let idp = Provider::start().await;
    let cp = Cp::start_with(Opts {
        env: idp.env(),
        ..Opts::default()
    });
    idp.next(Mode::WrongIssuer, "g-mixup", "mixup@acme.test", true);
    let before = counts(&cp);
    let o = sign_in(&cp, "google", false).await;
    assert_eq!(o.status, 400, "{}", o.page);
    assert!(
        o.page.contains("another sign-in service than Google"),
        "{}",
        o.page
    );
    assert!(o.session.is_none());
    assert_eq!(counts(&cp), before, "nothing created");
    assert_eq!(cp.user_id("mixup@acme.test"), None);
    {
        let f = idp.fake.lock().unwrap();
        assert_eq!(
            f.grants.len(),
            1,
            "the code was never sent to the token endpoint"
        );
        assert!(f.refused.is_empty());
    }
    assert!(audit(&cp).contains(&("signin.failed".into(), "google:issuer_mismatch".into())));
    let log = cp.log();
    assert!(log.contains("issuer_mismatch"), "logged");
    assert!(!log.contains(TOKEN_CANARY), "the code is not logged");

    // The right issuer, and no issuer at all (GitHub), still sign in.
    idp.next(Mode::Good, "g-ok", "ok@acme.test", true);
    assert_eq!(sign_in(&cp, "google", false).await.status, 303);
    idp.next(Mode::Good, "777", "gh@acme.test", true);
    assert_eq!(sign_in(&cp, "github", false).await.status, 303);
}

#[tokio::test]
async fn github_links_to_an_existing_magic_link_account_by_verified_primary_email() {
    let idp = Provider::start().await;
    let cp = Cp::start_with(Opts {
        env: idp.env(),
        ..Opts::default()
    });
    let _ = Browser::signin(&cp, "dev@acme.test").await;
    let dev = cp.user_id("dev@acme.test").unwrap();
    let before = counts(&cp);

    idp.next(Mode::Good, "4242", "dev@acme.test", true);
    let o = sign_in(&cp, "github", false).await;
    assert_eq!(o.status, 303, "{}", o.page);
    let b = signed_in_as(&cp, &o.session.unwrap()).await;
    let after = counts(&cp);
    assert_eq!(after.0, before.0, "no new account");
    assert_eq!(after.2, 1);
    let pool = cp.db();
    let (owner, subject, email): (String, String, String) = oauth_identities::table
        .select((
            oauth_identities::user_id,
            oauth_identities::subject,
            oauth_identities::email,
        ))
        .first(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(
        (owner, subject, email),
        (dev, "4242".into(), "dev@acme.test".into())
    );
    let page = b.get("/account/identities").await.text().await.unwrap();
    assert!(page.contains("GitHub"), "{page}");
    // The owner of the account is told that GitHub can now sign in to it.
    let told =
        crate::mail::wait_mails(&cp, "GitHub sign-in added to your Outpost account", 1).await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].0, "dev@acme.test");
    assert!(
        told[0].2.contains("/account/identities\r\n"),
        "{}",
        told[0].2
    );
    assert!(!told[0].2.contains(TOKEN_CANARY));

    // A GitHub account whose primary email is not verified is refused, nothing created.
    idp.next(Mode::Good, "5151", "new@acme.test", false);
    let before = counts(&cp);
    let o = sign_in(&cp, "github", false).await;
    assert_eq!(o.status, 403);
    assert!(
        o.page.contains("GitHub has not verified an email address"),
        "{}",
        o.page
    );
    assert!(o.session.is_none());
    assert_eq!(counts(&cp), before);
    assert_eq!(cp.user_id("new@acme.test"), None);
    assert!(audit(&cp).contains(&("signin.failed".into(), "github:email_unverified".into())));

    // Closing the account deletes its identities with it.
    let r = b
        .post_csrf("/account/close", &[("confirm", "dev@acme.test")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(counts(&cp).2, 0, "identities go with the account");
}

#[tokio::test]
async fn apple_form_post_signs_in_with_an_es256_id_token_and_minted_client_secret() {
    let idp = Provider::start().await;
    let cp = Cp::start_with(Opts {
        env: idp.env(),
        ..Opts::default()
    });
    idp.next(
        Mode::Good,
        "001234.abcd.5678",
        "x7@privaterelay.appleid.test",
        true,
    );
    let o = sign_in(&cp, "apple", false).await;
    assert_eq!(o.status, 303, "{}", o.page);
    assert_eq!(o.location.as_deref(), Some("/workspaces"));
    signed_in_as(&cp, &o.session.unwrap()).await;
    assert!(cp.user_id("x7@privaterelay.appleid.test").is_some());
    assert!(
        idp.fake.lock().unwrap().refused.is_empty(),
        "client secret and PKCE accepted"
    );
    assert!(audit(&cp).contains(&("signin.oauth".into(), "apple".into())));
}

#[tokio::test]
async fn refusals_say_why_and_create_nothing() {
    let idp = Provider::start().await;
    let cp = Cp::start_with(Opts {
        env: idp.env(),
        ..Opts::default()
    });
    let cases: &[(&str, Mode, bool, bool, u16, &str, &str)] = &[
        // provider, mode, other browser, email verified, status, code, words
        (
            "google",
            Mode::Good,
            true,
            true,
            400,
            "state_mismatch",
            "does not match a sign-in started in this browser",
        ),
        (
            "apple",
            Mode::Good,
            true,
            true,
            400,
            "state_mismatch",
            "does not match a sign-in started in this browser",
        ),
        (
            "google",
            Mode::WrongNonce,
            false,
            true,
            401,
            "nonce_mismatch",
            "issued for a different sign-in",
        ),
        (
            "apple",
            Mode::WrongNonce,
            false,
            true,
            401,
            "nonce_mismatch",
            "issued for a different sign-in",
        ),
        (
            "google",
            Mode::BadSignature,
            false,
            true,
            401,
            "bad_signature",
            "not signed by any of Google",
        ),
        (
            "apple",
            Mode::BadSignature,
            false,
            true,
            401,
            "bad_signature",
            "not signed by any of Apple",
        ),
        (
            "google",
            Mode::Expired,
            false,
            true,
            401,
            "id_token_expired",
            "has expired",
        ),
        (
            "google",
            Mode::Good,
            false,
            false,
            403,
            "email_unverified",
            "Google has not verified an email address",
        ),
        (
            "google",
            Mode::Deny,
            false,
            true,
            403,
            "provider_error",
            "cancelled or not allowed (access_denied)",
        ),
    ];
    for (i, (prov, mode, other, verified, status, code, words)) in cases.iter().enumerate() {
        let email = format!("victim{i}@example.test");
        idp.next(*mode, &format!("sub-{i}"), &email, *verified);
        let before = counts(&cp);
        let o = sign_in(&cp, prov, *other).await;
        assert_eq!(o.status, *status, "{prov} {mode:?}: {}", o.page);
        assert!(o.page.contains(words), "{prov} {mode:?}: {}", o.page);
        assert!(
            o.page.contains(&format!("<code>{code}</code>")),
            "{}",
            o.page
        );
        assert!(o.page.contains("Nothing was created or changed"));
        assert!(o.session.is_none(), "{prov} {mode:?}: no session");
        assert_eq!(counts(&cp), before, "{prov} {mode:?}: nothing created");
        assert_eq!(cp.user_id(&email), None);
        assert!(
            audit(&cp).contains(&("signin.failed".into(), format!("{prov}:{code}"))),
            "{prov} {mode:?} audited"
        );
    }
    // The provider's own words (error_description) are never echoed or logged.
    assert!(!cp.log().contains("The user said no"));

    // No state at all, a forged one, and a replay of a finished sign-in.
    let client = no_redirect_client();
    let r = client
        .get(format!("{}/auth/oauth/google/callback?code=x", cp.ui))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("state_missing"));
    idp.next(Mode::Good, "sub-ok", "ok@example.test", true);
    let o = sign_in(&cp, "google", false).await;
    assert_eq!(o.status, 303);
    let r = client
        .post(format!("{}/auth/oauth/apple/callback", cp.ui))
        .header("cookie", "outpost_oauth=x")
        .form(&[("state", "forged"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("state_mismatch"));
    // An unknown provider, or one that is off, does not exist.
    let r = client
        .get(format!("{}/auth/oauth/myspace", cp.ui))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn sign_in_starts_and_callbacks_are_rate_limited_per_ip() {
    let idp = Provider::start().await;
    let cp = Cp::start_with(Opts {
        env: idp.env(),
        ..Opts::default()
    });
    let client = no_redirect_client();
    for (what, url) in [
        ("start", format!("{}/auth/oauth/github", cp.ui)),
        ("callback", format!("{}/auth/oauth/github/callback", cp.ui)),
    ] {
        let mut limited = None;
        for i in 0..30 {
            let r = client.get(&url).send().await.unwrap();
            if r.status() == 429 {
                limited = Some((i, r.headers()["retry-after"].to_str().unwrap().to_owned()));
                break;
            }
        }
        let (i, wait) = limited.unwrap_or_else(|| panic!("{what} never limited"));
        assert_eq!(i, 20, "{what}: a burst of 20 passes");
        assert!(wait.parse::<u64>().unwrap() >= 1);
    }
}

#[tokio::test]
async fn with_no_provider_configured_there_is_no_button_and_no_route() {
    let cp = Cp::start();
    let page = Browser::new(&cp.ui)
        .get("/signin")
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("/auth/oauth/"), "{page}");
    let client = no_redirect_client();
    for p in ["google", "github", "apple"] {
        let r = client
            .get(format!("{}/auth/oauth/{p}", cp.ui))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{p}");
    }
}
