//! `control-plane operator add|remove|list`: who is Outpost staff. The change and its
//! audit event are one transaction.

use crate::audit::{self, Entry};
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::infra::db::{self, DbConn};
use crate::operator::store;

fn app_err(e: AppError) -> anyhow::Error {
    e.into_anyhow()
}

fn cli_audit(conn: &mut DbConn, action: &str, user_id: &str) -> AppResult<()> {
    audit::record(
        conn,
        &Entry {
            actor: Some("cli"),
            action,
            object_type: "user",
            object_id: user_id,
            detail: "",
            ..Default::default()
        },
    )
}

/// `control-plane operator add`: creates the account if needed and makes it an operator.
/// Returns what it did, in words.
pub fn add(config: &Config, email: &str) -> anyhow::Result<String> {
    let mut conn = super::conn_in_data_dir(config)?;
    let email = crate::accounts::normalize_email(email).map_err(app_err)?;
    let existed = store::account_by_email(&mut conn, &email)
        .map_err(app_err)?
        .map(|(_, is_operator)| is_operator);
    if existed == Some(true) {
        return Ok(format!("{email} is already an operator; nothing changed"));
    }
    db::transaction(&mut conn, |conn| {
        let id = crate::accounts::find_or_create_user(conn, &email)?;
        store::set_operator(conn, &id, true)?;
        cli_audit(conn, "operator.added", &id)
    })
    .map_err(app_err)?;
    Ok(match existed {
        Some(_) => format!("{email} is now an operator"),
        None => format!(
            "{email} is now an operator (new account; they sign in with a link sent to that address)"
        ),
    })
}

/// `control-plane operator remove`. `Ok(Err(..))` when there is no such operator.
pub fn remove(config: &Config, email: &str) -> anyhow::Result<Result<String, String>> {
    let mut conn = super::conn_in_data_dir(config)?;
    let email = crate::accounts::normalize_email(email).map_err(app_err)?;
    let found = store::account_by_email(&mut conn, &email).map_err(app_err)?;
    match found {
        None => Ok(Err(format!("no account with the email {email}"))),
        Some((_, false)) => Ok(Err(format!("{email} is not an operator; nothing changed"))),
        Some((id, true)) => {
            db::transaction(&mut conn, |conn| {
                store::set_operator(conn, &id, false)?;
                cli_audit(conn, "operator.removed", &id)
            })
            .map_err(app_err)?;
            Ok(Ok(format!(
                "{email} is no longer an operator (at once, also in open sessions)"
            )))
        }
    }
}

/// `control-plane operator list`: `(email, user id)` of every operator.
pub fn list(config: &Config) -> anyhow::Result<Vec<(String, String)>> {
    let mut conn = super::conn_in_data_dir(config)?;
    store::operators(&mut conn).map_err(app_err)
}
