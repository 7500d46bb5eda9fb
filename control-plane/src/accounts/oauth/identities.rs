//! Identities at providers and the accounts they sign in to. A known (provider, subject)
//! signs in its linked account; a new one needs a verified email and links to the account
//! with that email, or creates it. The account page lists identities and unlinks them:
//! the magic link always remains, so unlinking the last one never locks anyone out.

use super::{Provider, Refusal};
use crate::app::State;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult};
use crate::http::PageResult;
use crate::http::{CsrfForm, CurrentUser};
use crate::infra::db::{self, DbConn};
use crate::infra::schema::oauth_identities as oi;
use actix_web::http::header;
use actix_web::HttpResponse;
use askama::Template;
use diesel::prelude::*;
use serde::Deserialize;

/// An identity as listed on the account page.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct IdentityRow {
    /// Identity id.
    pub id: String,
    /// `google`, `github`, `apple`.
    pub provider: String,
    /// The provider's subject id.
    pub subject: String,
    /// Email when it was linked.
    pub email: String,
    /// Linked, unix seconds.
    pub created_at: i64,
    /// Last sign-in with it, unix seconds.
    pub last_used_at: i64,
}

impl IdentityRow {
    /// Provider name for people.
    pub fn label(&self) -> &'static str {
        Provider::parse(&self.provider).map_or("Unknown provider", Provider::label)
    }
}

/// The identities of `user_id`, oldest first.
pub fn list(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<IdentityRow>> {
    Ok(oi::table
        .filter(oi::user_id.eq(user_id))
        .order(oi::created_at.asc())
        .select((
            oi::id,
            oi::provider,
            oi::subject,
            oi::email,
            oi::created_at,
            oi::last_used_at,
        ))
        .load(conn)?)
}

/// Signs in with a verified provider identity and returns (user id, session token).
/// Nothing is written when it refuses.
pub fn sign_in(
    conn: &mut DbConn,
    provider: Provider,
    subject: &str,
    verified_email: Option<&str>,
    ip: &str,
) -> AppResult<Result<(String, String), Refusal>> {
    let now = db::now();
    let done = crate::infra::db::transaction::<_, AppError, _>(conn, |conn| {
        let known: Option<String> = oi::table
            .filter(oi::provider.eq(provider.as_str()))
            .filter(oi::subject.eq(subject))
            .select(oi::user_id)
            .first(conn)
            .optional()?;
        let (user_id, linked) = match known {
            Some(uid) => {
                diesel::update(
                    oi::table
                        .filter(oi::provider.eq(provider.as_str()))
                        .filter(oi::subject.eq(subject)),
                )
                .set(oi::last_used_at.eq(now))
                .execute(conn)?;
                (uid, None)
            }
            None => {
                let Some(email) =
                    verified_email.and_then(|e| crate::accounts::normalize_email(e).ok())
                else {
                    return Ok(Err(Refusal::EmailUnverified));
                };
                let uid = crate::accounts::find_or_create_user(conn, &email)?;
                let id = db::new_id();
                diesel::insert_into(oi::table)
                    .values((
                        oi::id.eq(&id),
                        oi::provider.eq(provider.as_str()),
                        oi::subject.eq(subject),
                        oi::user_id.eq(&uid),
                        oi::email.eq(&email),
                        oi::created_at.eq(now),
                        oi::last_used_at.eq(now),
                    ))
                    .execute(conn)?;
                (uid, Some(id))
            }
        };
        let session = crate::accounts::start_session(conn, &user_id)?;
        Ok(Ok((user_id, linked, session)))
    })?;
    let (user_id, linked, session) = match done {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    // Recorded after the commit, as the magic link does: the audit chain has its own
    // retrying transaction.
    if let Some(id) = &linked {
        audit::record(
            conn,
            &Entry {
                actor: Some(&user_id),
                action: "identity.linked",
                object_type: "oauth_identity",
                object_id: id,
                ip: Some(ip),
                detail: provider.as_str(),
                ..Default::default()
            },
        )?;
    }
    audit::record(
        conn,
        &Entry {
            actor: Some(&user_id),
            action: "signin.oauth",
            object_type: "user",
            object_id: &user_id,
            ip: Some(ip),
            detail: provider.as_str(),
            ..Default::default()
        },
    )?;
    Ok(Ok((user_id, session)))
}

/// Removes one of `user_id`'s identities; `NotFound` if it is not theirs.
pub fn unlink(conn: &mut DbConn, user_id: &str, id: &str, ip: &str) -> AppResult<()> {
    let provider: String = oi::table
        .filter(oi::id.eq(id))
        .filter(oi::user_id.eq(user_id))
        .select(oi::provider)
        .first(conn)?;
    diesel::delete(
        oi::table
            .filter(oi::id.eq(id))
            .filter(oi::user_id.eq(user_id)),
    )
    .execute(conn)?;
    audit::record(
        conn,
        &Entry {
            actor: Some(user_id),
            action: "identity.unlinked",
            object_type: "oauth_identity",
            object_id: id,
            ip: Some(ip),
            detail: &provider,
            ..Default::default()
        },
    )
}

/// The identities of `user_id` as "what the control plane knows about me" shows them.
pub fn for_user_json(conn: &mut DbConn, user_id: &str) -> AppResult<serde_json::Value> {
    Ok(serde_json::json!(list(conn, user_id)?
        .iter()
        .map(|i| serde_json::json!({"provider": i.provider, "subject": i.subject,
            "email_when_linked": i.email, "linked_at": i.created_at, "last_used_at": i.last_used_at}))
        .collect::<Vec<_>>()))
}

#[derive(Template)]
#[template(path = "identities.html")]
struct IdentitiesPage {
    user: CurrentUser,
    identities: Vec<IdentityRow>,
    enabled: Vec<Provider>,
}

pub(crate) async fn page(state: State, user: CurrentUser) -> PageResult {
    let uid = user.id.clone();
    let identities = db::run(&state.db, move |conn| list(conn, &uid)).await?;
    Ok(crate::http::html(&IdentitiesPage {
        user,
        identities,
        enabled: state.oauth.enabled(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct UnlinkForm {
    id: String,
}

pub(crate) async fn unlink_submit(
    state: State,
    req: actix_web::HttpRequest,
    f: CsrfForm<UnlinkForm>,
) -> PageResult {
    let (uid, id, ip) = (
        f.user.id.clone(),
        f.form.id.clone(),
        crate::http::client_ip(&req),
    );
    db::run(&state.db, move |conn| unlink(conn, &uid, &id, &ip)).await?;
    tracing::info!(user = %f.user.id, "oauth identity unlinked");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account/identities"))
        .finish())
}
