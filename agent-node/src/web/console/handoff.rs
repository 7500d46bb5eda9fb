//! Sign-in by capability-token handoff, and sign-out.
//!
//! The CP signs `{sub, ws, node, scopes, exp = now + 2 min, jti}` with Ed25519; the node
//! verifies it with the key from enrollment, checks it names this node and workspace,
//! burns the `jti` (a replay finds it burned) and opens its own session.
//!
//! The session cookie is `SameSite=Strict`, so no other site can make the browser use it.
//! That is also why the handoff cannot simply redirect to `/`: the navigation began on the
//! control plane, another site, and a browser does not send a Strict cookie on any request
//! of a redirect chain that started cross-site. So the handoff answers with a small page
//! of the node's own (it stores the cookie: a top-level navigation may set one) that moves
//! on to `/` by itself. That second navigation starts on the node, is same-site, and
//! carries the cookie. The page's `no-store` and `no-referrer` keep the token out of the
//! cache and out of the next request.

use super::error::MessagePage;
use super::session::{removal_cookie, session_cookie, WriteSession, SESSION_TTL_SECS};
use super::{ConsoleError, ConsoleState, CLOCK_SKEW_SECS};
use crate::platform::store::{self, Session};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

/// Scope a token must carry to open the console.
const CONSOLE_SCOPE: &str = "console";

#[derive(serde::Deserialize)]
struct HandoffQuery {
    token: Option<String>,
}

/// The same-site step of the sign-in (see the module docs).
#[derive(askama::Template)]
#[template(path = "handoff.html")]
struct Landing<'a> {
    workspace: &'a str,
}

/// `GET /auth/handoff?token=…`: a page that sets the session cookie and moves on to `/`,
/// or 401.
pub async fn handoff(
    state: web::Data<ConsoleState>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let refuse = |reason: &'static str| {
        // The reason is a fixed word; the token itself is never logged.
        tracing::info!(reason, "console sign-in refused");
        ConsoleError::Unauthorized
    };
    let token = web::Query::<HandoffQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
        .ok_or_else(|| refuse("missing_token"))?;
    let now = store::now();
    let claims = state
        .verifier
        .verify(&token, now, CLOCK_SKEW_SECS)
        .map_err(|e| {
            refuse(match e {
                outpost_crypto::CryptoError::Expired => "expired",
                outpost_crypto::CryptoError::BadSignature => "bad_signature",
                _ => "malformed",
            })
        })?;
    if claims.node != state.node_id.as_str() || claims.ws != state.workspace.id {
        return Err(refuse("wrong_node"));
    }
    if !claims.scopes.iter().any(|s| s == CONSOLE_SCOPE) {
        return Err(refuse("missing_scope"));
    }
    let cookie_value = outpost_crypto::random_token();
    let token_hash = outpost_crypto::token_hash(&cookie_value);
    let session = Session {
        user_id: claims.sub.clone(),
        scopes: claims.scopes.clone(),
        expires_at: now + SESSION_TTL_SECS,
    };
    // Burned until the token could no longer verify, skew included.
    let jti_expires_at = claims.exp.saturating_add(CLOCK_SKEW_SECS);
    let st = state.clone();
    let jti = claims.jti.clone();
    let fresh = web::block(move || {
        st.store
            .sign_in(&jti, jti_expires_at, &token_hash, &session)
    })
    .await??;
    if !fresh {
        return Err(refuse("replayed"));
    }
    tracing::info!(user = %claims.sub, "console sign-in");
    let mut resp = super::render(&Landing {
        workspace: &state.workspace.name,
    })?;
    let headers = resp.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp.add_cookie(&session_cookie(cookie_value, state.secure_cookies))
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("setting the cookie: {e}")))?;
    Ok(resp)
}

/// `POST /logout`: ends the session. Like every console write it must come from the
/// console's own pages ([`WriteSession`]): another site cannot sign a user out.
pub async fn logout(
    state: web::Data<ConsoleState>,
    session: WriteSession,
) -> Result<HttpResponse, ConsoleError> {
    let st = state.clone();
    let hash = session.token_hash().to_owned();
    web::block(move || st.store.delete_session(&hash)).await??;
    tracing::info!(user = %session.user_id, "console sign-out");
    let mut resp = MessagePage {
        title: "Signed out",
        message: "You are signed out of this console. Open it again from the control plane.",
    }
    .respond(StatusCode::OK);
    resp.add_cookie(&removal_cookie(state.secure_cookies))
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("setting the cookie: {e}")))?;
    Ok(resp)
}
