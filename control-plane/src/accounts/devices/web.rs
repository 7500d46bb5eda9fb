//! What every sign-in does last (magic link, provider, invitation): recognise the browser,
//! set its device cookie, and email the account when the browser is new to it.

use super::model::{DEVICE_COOKIE, DEVICE_TTL};
use super::service;
use crate::accounts::model::describe_device;
use crate::app::State;
use crate::error::AppResult;
use crate::infra::db;
use crate::notify::emails::{self, NewSignIn};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::HttpRequest;

/// How the user signed in, in words for the email: `an email link`, `Google`, …
pub type Method = &'static str;

/// Recognises the browser of a sign-in that opened `session` (the new session token),
/// emails the account if the browser is new to it, and returns the device cookie to set.
/// A failure here never fails the sign-in: it is logged and the cookie is left as it was.
pub async fn after_sign_in(
    state: &State,
    req: &HttpRequest,
    session: &str,
    method: Method,
) -> Option<Cookie<'static>> {
    match recognise(state, req, session, method).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "sign-in device check failed");
            None
        }
    }
}

async fn recognise(
    state: &State,
    req: &HttpRequest,
    session: &str,
    method: Method,
) -> AppResult<Option<Cookie<'static>>> {
    let cookie = req.cookie(DEVICE_COOKIE).map(|c| c.value().to_owned());
    let hash = outpost_crypto::token_hash(session);
    let device = describe_device(
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    let page = format!("{}/account/sessions", state.public_url);
    // The device remembered and the email announcing it in one transaction: a crash
    // loses both (the next sign-in announces it) or neither.
    let found = db::run(&state.db, move |conn| {
        db::transaction::<_, crate::error::AppError, _>(conn, |conn| {
            let Some(auth) = crate::accounts::session_user(conn, &hash)? else {
                return Ok(None);
            };
            let (user_id, email) = (auth.user_id, auth.email);
            let r = service::recognise(conn, &user_id, cookie.as_deref())?;
            if r.announce {
                emails::queue(
                    conn,
                    vec![email],
                    &NewSignIn {
                        device: device.into(),
                        method: method.into(),
                        when: crate::workspaces::model::fmt_time(&db::now()).into(),
                        page: page.into(),
                    },
                )?;
            }
            Ok(Some((user_id, r)))
        })
    })
    .await?;
    let Some((user_id, r)) = found else {
        return Ok(None);
    };
    if r.announce {
        tracing::info!(user = %user_id, "new sign-in device announced");
    }
    Ok(Some(
        Cookie::build(DEVICE_COOKIE, r.token)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(state.public_url.starts_with("https://"))
            .max_age(actix_web::cookie::time::Duration::seconds(DEVICE_TTL))
            .finish(),
    ))
}
