//! "Email address" (`/account/email`): ask for a change; the confirmation link's page.

use super::service;
use crate::app::State;
use crate::error::AppError;
use crate::http::extract::check_origin;
use crate::http::{client_ip, html, html_with, CsrfForm, CurrentUser, PageResult};
use crate::infra::db;
use crate::notify::emails;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "account_email.html")]
struct EmailPage {
    user: CurrentUser,
    /// The address a link was sent to.
    sent: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "email_confirm.html")]
struct ConfirmPage {
    /// The token, while the button is still to be pressed.
    token: Option<String>,
    /// The address now in use, once confirmed.
    done: Option<String>,
    error: Option<String>,
}

pub(crate) async fn page(user: CurrentUser) -> PageResult {
    Ok(html(&EmailPage {
        user,
        sent: None,
        error: None,
    }))
}

#[derive(Deserialize)]
pub(crate) struct EmailForm {
    #[serde(default)]
    email: String,
}

/// Asks for the change. The answer is the same whether or not another account uses the
/// address: only that address's mailbox is told.
pub(crate) async fn submit(state: State, req: HttpRequest, f: CsrfForm<EmailForm>) -> PageResult {
    let (uid, raw, ip) = (f.user.id.clone(), f.form.email.clone(), client_ip(&req));
    let url = state.public_url.clone();
    // The request and its two emails in one transaction (the outbox sends them).
    let r = db::run(&state.db, move |conn| {
        Ok(db::transaction::<_, AppError, _>(conn, |conn| {
            let r = service::request(conn, &uid, &raw, &ip)?;
            queue_request_emails(conn, &url, &r)?;
            Ok(r)
        }))
    })
    .await?;
    let r = match r {
        Ok(r) => r,
        Err(e @ AppError::BadRequest(..)) => {
            return Ok(html_with(
                HttpResponse::BadRequest(),
                &EmailPage {
                    user: f.user,
                    sent: None,
                    error: Some(e.message()),
                },
            ))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %f.user.id, "email change asked for");
    Ok(html(&EmailPage {
        user: f.user,
        sent: Some(r.new_email),
        error: None,
    }))
}

/// The link to the new address (or, when another account has it, a notice without one)
/// and the notice to the old address.
fn queue_request_emails(
    conn: &mut crate::infra::db::DbConn,
    url: &str,
    r: &super::model::Requested,
) -> crate::error::AppResult<()> {
    let when = crate::workspaces::model::fmt_time(&db::now());
    match &r.token {
        Some(token) => emails::queue(
            conn,
            vec![r.new_email.clone()],
            &emails::EmailChangeConfirm {
                new_email: (&r.new_email).into(),
                link: format!("{url}/account/email/confirm?token={token}").into(),
            },
        )?,
        None => emails::queue(
            conn,
            vec![r.new_email.clone()],
            &emails::EmailChangeTaken {
                new_email: (&r.new_email).into(),
                link: format!("{url}/signin").into(),
            },
        )?,
    }
    emails::queue(
        conn,
        vec![r.old_email.clone()],
        &emails::EmailChangeRequested {
            new_email: (&r.new_email).into(),
            when: when.into(),
            page: format!("{url}/account/identities").into(),
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    token: String,
}

/// GET shows a button instead of changing anything, so link scanners in mail clients
/// cannot use the single-use link.
pub(crate) async fn confirm_page(q: web::Query<TokenForm>) -> HttpResponse {
    html(&ConfirmPage {
        token: Some(q.into_inner().token),
        done: None,
        error: None,
    })
}

pub(crate) async fn confirm_submit(
    state: State,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> PageResult {
    check_origin(&state, &req)?;
    let (token, ip) = (form.into_inner().token, client_ip(&req));
    let url = state.public_url.clone();
    // The change and the notice to the old address in one transaction.
    let r = db::run(&state.db, move |conn| {
        Ok(db::transaction::<_, AppError, _>(conn, |conn| {
            let changed = service::confirm(conn, &token, &ip)?;
            emails::queue(
                conn,
                vec![changed.old_email.clone()],
                &emails::EmailChanged {
                    new_email: (&changed.new_email).into(),
                    when: crate::workspaces::model::fmt_time(&db::now()).into(),
                    page: format!("{url}/signin").into(),
                },
            )?;
            Ok(changed)
        }))
    })
    .await?;
    let changed = match r {
        Ok(c) => c,
        Err(e @ (AppError::BadRequest(..) | AppError::Conflict(..))) => {
            return Ok(html_with(
                HttpResponse::build(e.status()),
                &ConfirmPage {
                    token: None,
                    done: None,
                    error: Some(e.message()),
                },
            ))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %changed.user_id, "email address changed");
    Ok(html(&ConfirmPage {
        token: None,
        done: Some(changed.new_email),
        error: None,
    }))
}
