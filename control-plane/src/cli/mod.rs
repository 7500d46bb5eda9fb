//! The commands beside `serve`: API tokens, the audit chain, operators. Each opens the
//! database itself; a failure is returned with its cause, which `main` prints and logs.

mod operator;

pub use operator::{add as operator_add, list as operator_list, remove as operator_remove};

use crate::accounts;
use crate::config::Config;
use crate::infra::db;

/// `control-plane token create`: creates the user if needed and prints a new token.
pub fn token_create(config: &Config, email: &str, name: &str) -> anyhow::Result<String> {
    std::fs::create_dir_all(&config.data_dir)?;
    let pool = db::connect(&config.database_url)?;
    let mut conn = pool.get()?;
    let email = accounts::normalize_email(email).map_err(crate::error::AppError::into_anyhow)?;
    let user = accounts::find_or_create_user(&mut conn, &email)
        .map_err(crate::error::AppError::into_anyhow)?;
    accounts::create_api_token(&mut conn, &user, name).map_err(crate::error::AppError::into_anyhow)
}

/// `control-plane audit verify`: walks the hash chain. `Ok(Ok(events))` when intact,
/// `Ok(Err(description))` naming the first event that does not verify.
pub fn audit_verify(config: &Config) -> anyhow::Result<Result<i64, String>> {
    let pool = db::connect(&config.database_url)?;
    let mut conn = pool.get()?;
    let total = crate::audit::count(&mut conn).map_err(crate::error::AppError::into_anyhow)?;
    match crate::audit::verify(&mut conn).map_err(crate::error::AppError::into_anyhow)? {
        None => Ok(Ok(total)),
        Some(seq) => Ok(Err(format!(
            "audit log tampered: event #{seq} does not match the chain (edited, or an earlier event was removed)"
        ))),
    }
}
