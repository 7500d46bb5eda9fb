//! Console sessions: a random cookie (`outpost_node_session`) whose SHA-256 is stored in
//! `node.db` with the user id, scopes and a 12-hour expiry. [`ConsoleSession`] is the
//! extractor every console page takes; the access guard (`console::access`) loads it and
//! checks its scopes before the page runs.

use super::{ConsoleError, ConsoleState};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest};
use std::future::{ready, Future, Ready};
use std::pin::Pin;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "outpost_node_session";
/// Session lifetime, seconds.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

/// A signed-in console user whose scopes cover the page. Taking it as a handler argument
/// is what makes a page require a session: the access guard has already answered a
/// request without a valid one with the 401 page, and one whose role lacks the route's
/// scope with the 403 page.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// CP user id.
    pub user_id: String,
    /// Scopes from the capability token (the user's workspace role).
    pub scopes: Vec<String>,
    /// Conversations waiting for the team when the request came in (the navigation's
    /// unread count).
    pub waiting: u32,
    /// What the form that led here did ([`super::flash`]).
    pub done: Option<super::flash::Done>,
    token_hash: String,
}

impl ConsoleSession {
    /// Hash of the session cookie (the session's key in the database).
    pub(crate) fn token_hash(&self) -> &str {
        &self.token_hash
    }

    /// The session the request's cookie names, or `Unauthorized`. The access guard
    /// calls it; pages take the session the guard found.
    pub(crate) fn load(
        req: &HttpRequest,
    ) -> impl Future<Output = Result<ConsoleSession, ConsoleError>> + 'static {
        // Our tokens are 43 characters; anything much longer is not one of ours.
        let token = req
            .cookie(SESSION_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty() && v.len() <= 128);
        let state = req.app_data::<web::Data<ConsoleState>>().cloned();
        let done = super::flash::Done::from_query(req.query_string());
        async move {
            let token = token.ok_or(ConsoleError::Unauthorized)?;
            let state = state
                .ok_or_else(|| ConsoleError::Internal(anyhow::anyhow!("console state missing")))?;
            let token_hash = outpost_crypto::token_hash(&token);
            let store = state.store.clone();
            let hash = token_hash.clone();
            let found = web::block(move || {
                let Some(session) = store.session(&hash)? else {
                    return Ok(None);
                };
                let waiting = crate::domain::content::waiting_count(&store)?;
                Ok::<_, crate::platform::store::StoreError>(Some((session, waiting)))
            })
            .await??;
            let (session, waiting) = found.ok_or(ConsoleError::Unauthorized)?;
            Ok(ConsoleSession {
                user_id: session.user_id,
                scopes: session.scopes,
                waiting,
                done,
                token_hash,
            })
        }
    }
}

impl FromRequest for ConsoleSession {
    type Error = ConsoleError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = req.extensions().get::<ConsoleSession>().cloned();
        ready(found.ok_or_else(|| {
            // Only a route missing from `access::ROUTES` gets here: the guard let it
            // through as an unknown page. Refuse it rather than serve it without a check.
            tracing::error!(
                route = req.match_pattern().unwrap_or_default(),
                "console route not declared in access::ROUTES; refused"
            );
            ConsoleError::Internal(anyhow::anyhow!("console route without a declared scope"))
        }))
    }
}

/// A signed-in console user making a state-changing request (every console `POST`).
/// SameSite=Strict keeps other *sites* from sending the cookie, but another workspace's
/// node can be the same site (`other.localhost`, or a sibling under one nodes domain), so
/// this extractor is the lock that matters: the request must come from this node's own
/// pages ([`same_origin`]).
#[derive(Debug, Clone)]
pub struct WriteSession(pub ConsoleSession);

impl std::ops::Deref for WriteSession {
    type Target = ConsoleSession;
    fn deref(&self) -> &ConsoleSession {
        &self.0
    }
}

/// Whether a request comes from this console's own pages, the way Go's
/// `CrossOriginProtection` decides it. A browser that sends `Sec-Fetch-Site` (every current
/// one) says where the request comes from: `same-origin` passes, and so does `none` (the
/// user typed or bookmarked it; no page made it); `same-site` and `cross-site` do not.
/// Without that header, the `Origin`, when present, must be this node's: `Origin: null`
/// (what a `no-referrer` page makes a browser send) is refused, since nothing tells it
/// apart from a sandboxed page elsewhere. Without either header the request is not from a
/// browser page, so there is no confused browser to protect.
pub fn same_origin(req: &HttpRequest, origin: &str) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    headers
        .get(actix_web::http::header::ORIGIN)
        .is_none_or(|o| o.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(origin)))
}

impl FromRequest for WriteSession {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let allowed = req
            .app_data::<web::Data<ConsoleState>>()
            .is_some_and(|s| same_origin(req, &s.origin));
        let session = ConsoleSession::from_request(req, payload);
        Box::pin(async move {
            let session = session.await?;
            if !allowed {
                tracing::info!("console write refused: foreign origin");
                return Err(ConsoleError::Forbidden);
            }
            Ok(WriteSession(session))
        })
    }
}

/// The cookie carrying a new session.
pub fn session_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .max_age(CookieDuration::seconds(SESSION_TTL_SECS))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut c = session_cookie(String::new(), secure);
    c.make_removal();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::console::access::Scope;
    use crate::web::console::tests::fixture;
    use actix_web::test::TestRequest;

    async fn extract(req: TestRequest) -> Result<ConsoleSession, ConsoleError> {
        ConsoleSession::load(&req.to_http_request()).await
    }

    /// What browsers send on the console's own form posts, and what another site (or
    /// another workspace's node, which can be the same site) sends.
    #[test]
    fn writes_pass_from_the_consoles_own_pages_only() {
        const ORIGIN: &str = "http://acme-dental.localhost:40123";
        let req = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::post().uri("/inbox/x/reply");
            for h in headers {
                r = r.insert_header(*h);
            }
            r.to_http_request()
        };
        // Chrome on a page served with `Referrer-Policy: no-referrer` (the defect of
        // issue 13): `Origin: null`, but it says the request is same-origin.
        assert!(same_origin(
            &req(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            ORIGIN
        ));
        assert!(same_origin(
            &req(&[("origin", ORIGIN), ("sec-fetch-site", "same-origin")]),
            ORIGIN
        ));
        assert!(same_origin(&req(&[("sec-fetch-site", "none")]), ORIGIN));
        // Another node under the same site, and any other site.
        for site in ["same-site", "cross-site"] {
            assert!(
                !same_origin(
                    &req(&[
                        ("origin", "http://other.localhost:40123"),
                        ("sec-fetch-site", site)
                    ]),
                    ORIGIN
                ),
                "{site}"
            );
        }
        // A browser without Fetch Metadata: the Origin decides; `null` is not ours.
        assert!(same_origin(&req(&[("origin", ORIGIN)]), ORIGIN));
        assert!(same_origin(
            &req(&[("origin", "HTTP://Acme-Dental.localhost:40123")]),
            ORIGIN
        ));
        assert!(!same_origin(&req(&[("origin", "null")]), ORIGIN));
        assert!(!same_origin(
            &req(&[("origin", "http://evil.localhost")]),
            ORIGIN
        ));
        // Not a browser page at all (curl, a script with the cookie).
        assert!(same_origin(&req(&[]), ORIGIN));
    }

    #[actix_web::test]
    async fn loading_refuses_missing_unknown_and_expired_cookies() {
        let f = fixture();
        let with_state = || TestRequest::default().app_data(f.data.clone());

        let missing = extract(with_state()).await;
        assert!(matches!(missing, Err(ConsoleError::Unauthorized)));

        let unknown = extract(
            with_state().cookie(Cookie::new(SESSION_COOKIE, outpost_crypto::random_token())),
        )
        .await;
        assert!(matches!(unknown, Err(ConsoleError::Unauthorized)));

        let oversized =
            extract(with_state().cookie(Cookie::new(SESSION_COOKIE, "x".repeat(500)))).await;
        assert!(matches!(oversized, Err(ConsoleError::Unauthorized)));

        // a stored session is found by its cookie, an expired one is not
        let good = outpost_crypto::random_token();
        let old = outpost_crypto::random_token();
        let session = |expires_at| crate::platform::store::Session {
            user_id: "u1".into(),
            scopes: vec!["console".into()],
            expires_at,
        };
        let now = crate::platform::store::now();
        assert!(f
            .data
            .store
            .sign_in(
                "j1",
                now + 60,
                &outpost_crypto::token_hash(&good),
                &session(now + 60)
            )
            .expect("sign in"));
        assert!(f
            .data
            .store
            .sign_in(
                "j2",
                now + 60,
                &outpost_crypto::token_hash(&old),
                &session(now - 1)
            )
            .expect("sign in"));
        let found = extract(with_state().cookie(Cookie::new(SESSION_COOKIE, good)))
            .await
            .expect("valid session");
        assert_eq!(found.user_id, "u1");
        assert!(found.has_scope(Scope::Console) && !found.has_scope(Scope::Settings));
        let expired = extract(with_state().cookie(Cookie::new(SESSION_COOKIE, old))).await;
        assert!(matches!(expired, Err(ConsoleError::Unauthorized)));
    }
}
