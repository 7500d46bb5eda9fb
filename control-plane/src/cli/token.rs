//! `control-plane token create|list|revoke`: personal API tokens from the command line.
//! Creating one emails its owner, as the page does (a token made behind someone's back is
//! what the notice is for); creating and revoking are audited with the actor `cli`.

use crate::accounts::{self, NewToken, TokenRow, TokenScope};
use crate::config::Config;
use crate::error::AppError;
use crate::infra::db;

/// A pool, as creating a token sends its notice through the mail outbox, which takes one.
fn pool(config: &Config) -> anyhow::Result<db::DbPool> {
    std::fs::create_dir_all(&config.data_dir)?;
    db::connect(&config.database_url)
}

/// `control-plane token create`: creates the user if needed and returns a new token's
/// value, after emailing the owner.
pub fn create(config: &Config, email: &str, new: &NewToken) -> anyhow::Result<String> {
    let pool = pool(config)?;
    let mut conn = pool.get()?;
    let email = accounts::normalize_email(email).map_err(AppError::into_anyhow)?;
    let user = accounts::find_or_create_user(&mut conn, &email).map_err(AppError::into_anyhow)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_owned();
    // The token and its notice in one transaction: the notice is in the outbox, which the
    // control plane's worker sends (with retries) if this command cannot.
    let created = db::transaction::<_, AppError, _>(&mut conn, |conn| {
        let created = accounts::create_api_token(conn, &user, new, "cli", None)?;
        queue_notice(conn, &public_url, &email, &created.row)?;
        Ok(created)
    })
    .map_err(AppError::into_anyhow)?;
    drop(conn);
    send_now(config, pool, &public_url);
    Ok(created.value)
}

/// The "token created" notice, queued in the outbox.
fn queue_notice(
    conn: &mut db::DbConn,
    public_url: &str,
    email: &str,
    row: &TokenRow,
) -> crate::error::AppResult<()> {
    crate::notify::emails::queue(
        conn,
        vec![email.to_owned()],
        &crate::notify::emails::TokenCreated {
            name: row.name.as_str().into(),
            how: "with the control-plane command line".into(),
            scope: TokenScope::from_read_only(row.read_only).words().into(),
            expires: crate::workspaces::fmt_time(&row.expires_at).into(),
            page: format!("{public_url}/account/tokens").into(),
        },
    )
}

/// Sends what the outbox has due now, once, and waits for it: the command is over when it
/// returns, so nothing is left in the background. An email the transport does not take
/// stays queued for the control plane's worker (logged on stderr); the token is printed
/// either way.
fn send_now(config: &Config, pool: db::DbPool, public_url: &str) {
    let mailer =
        outpost_common::http::client(crate::app::USER_AGENT, std::time::Duration::from_secs(5))
            .map_err(anyhow::Error::from)
            .and_then(|http| {
                crate::infra::mail::Mailer::from_config(
                    &config.mail,
                    &config.data_dir,
                    http,
                    public_url,
                )
            });
    let mailer = match mailer {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "token notice left in the outbox");
            return;
        }
    };
    let retry = config.mail.retry;
    // On a thread of its own, so this works whether or not the caller is inside a tokio
    // runtime (the benchmark calls it from one).
    let pass = std::thread::spawn(move || -> anyhow::Result<_> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let worker = format!("cli-{}", db::new_id());
        Ok(rt.block_on(crate::notify::outbox::deliver_due(
            &pool,
            &mailer,
            &retry,
            &worker,
            db::now(),
            10,
        ))?)
    })
    .join();
    match pass {
        Ok(Ok(p)) if p.retried + p.given_up > 0 => {
            tracing::warn!("token notice not sent yet: left in the outbox, retried later")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "token notice left in the outbox"),
        Err(_) => tracing::warn!("token notice left in the outbox: the mail thread panicked"),
    }
}

/// `control-plane token list --email …`: the account's unrevoked tokens, one per line
/// (id, name, scope, created, expires, last used), never a value.
pub fn list(config: &Config, email: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = super::conn_in_data_dir(config)?;
    let email = accounts::normalize_email(email).map_err(AppError::into_anyhow)?;
    let Some(user) = crate::operator::store::account_by_email(&mut conn, &email)
        .map_err(AppError::into_anyhow)?
        .map(|(id, _)| id)
    else {
        anyhow::bail!("no account with the email {email}");
    };
    let now = db::now();
    let tokens = accounts::store::list_tokens(&mut conn, &user).map_err(AppError::into_anyhow)?;
    Ok(tokens
        .iter()
        .map(|t| {
            let fmt = crate::workspaces::fmt_time;
            format!(
                "{}\t{}\t{}\tcreated {}\t{} {}\tlast used {}",
                t.id,
                t.name,
                TokenScope::from_read_only(t.read_only).as_str(),
                fmt(&t.created_at),
                if t.expires_at <= now {
                    "expired"
                } else {
                    "expires"
                },
                fmt(&t.expires_at),
                t.last_used_at
                    .map_or_else(|| "never".to_owned(), |u| fmt(&u)),
            )
        })
        .collect())
}

/// `control-plane token revoke ID`: revokes a token by its id (from `token list`).
pub fn revoke(config: &Config, id: &str) -> anyhow::Result<String> {
    let mut conn = super::conn_in_data_dir(config)?;
    let owner = accounts::store::token_owner(&mut conn, id).map_err(AppError::into_anyhow)?;
    let Some((user, email)) = owner else {
        anyhow::bail!("no unrevoked token with the id {id}");
    };
    accounts::revoke_api_token(&mut conn, &user, id, "cli", None).map_err(AppError::into_anyhow)?;
    Ok(format!("revoked token {id} of {email}"))
}
