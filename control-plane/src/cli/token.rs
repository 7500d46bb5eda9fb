//! `control-plane token create|list|revoke`: personal API tokens from the command line.
//! Creating one emails its owner, as the page does (a token made behind someone's back is
//! what the notice is for); creating and revoking are audited with the actor `cli`.

use crate::accounts::{self, NewToken, TokenRow, TokenScope};
use crate::config::Config;
use crate::error::AppError;
use crate::infra::db;

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
    let created = accounts::create_api_token(&mut conn, &user, new, "cli", None)
        .map_err(AppError::into_anyhow)?;
    notify(config, &email, &created.row)?;
    Ok(created.value)
}

/// Sends the "token created" notice and waits for it: the command is over when it
/// returns, so nothing may be left in the background. A mail failure is logged and the
/// token is still printed (it exists; the operator was told on stderr).
fn notify(config: &Config, email: &str, row: &TokenRow) -> anyhow::Result<()> {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_owned();
    let http =
        outpost_common::http::client(crate::app::USER_AGENT, std::time::Duration::from_secs(5))?;
    let mailer =
        crate::infra::mail::Mailer::from_config(&config.mail, &config.data_dir, http, &public_url)?;
    let (subject, body) = crate::notify::emails::render(&crate::notify::emails::TokenCreated {
        name: row.name.as_str().into(),
        how: "with the control-plane command line".into(),
        scope: TokenScope::from_read_only(row.read_only).words().into(),
        expires: crate::workspaces::fmt_time(&row.expires_at).into(),
        page: format!("{public_url}/account/tokens").into(),
    })
    .map_err(AppError::into_anyhow)?;
    let email = crate::infra::mail::Email {
        to: email.to_owned(),
        subject,
        body,
    };
    // On a thread of its own, so this works whether or not the caller is inside a tokio
    // runtime (the benchmark calls it from one).
    let sent = std::thread::spawn(move || -> anyhow::Result<_> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(rt.block_on(mailer.send(&email)))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the mail thread panicked"))??;
    if let Err(e) = sent {
        tracing::warn!(transport = e.transport, kind = %e.kind.code(), "token notice not sent");
    }
    Ok(())
}

/// `control-plane token list --email …`: the account's unrevoked tokens, one per line
/// (id, name, scope, created, expires, last used), never a value.
pub fn list(config: &Config, email: &str) -> anyhow::Result<Vec<String>> {
    let pool = pool(config)?;
    let mut conn = pool.get()?;
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
    let pool = pool(config)?;
    let mut conn = pool.get()?;
    let owner = accounts::store::token_owner(&mut conn, id).map_err(AppError::into_anyhow)?;
    let Some((user, email)) = owner else {
        anyhow::bail!("no unrevoked token with the id {id}");
    };
    accounts::revoke_api_token(&mut conn, &user, id, "cli", None).map_err(AppError::into_anyhow)?;
    Ok(format!("revoked token {id} of {email}"))
}
