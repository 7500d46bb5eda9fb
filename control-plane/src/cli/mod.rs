//! The commands beside `serve`: API tokens, the audit chain, operators, the OVH check. Each opens the
//! database itself; a failure is returned with its cause, which `main` prints and logs.

mod operator;
mod token;
mod upgrade;

pub use operator::{add as operator_add, list as operator_list, remove as operator_remove};
pub use token::{create as token_create, list as token_list, revoke as token_revoke};
pub use upgrade::{
    halt_or_resume as upgrade_halt_or_resume, keygen as release_keygen, sign as release_sign,
    start as upgrade_start, status as upgrade_status,
};

use crate::config::Config;
use crate::infra::db::{self, DbConn};

/// One connection to the database in the data directory, made if missing (a command that
/// may be the first to run, such as `operator add` before `serve`).
fn conn_in_data_dir(config: &Config) -> anyhow::Result<DbConn> {
    std::fs::create_dir_all(&config.data_dir)?;
    db::connect_one(&config.database_url)
}

/// `control-plane audit verify`: walks the hash chain. `Ok(Ok(events))` when intact,
/// `Ok(Err(description))` naming the first event that does not verify.
pub fn audit_verify(config: &Config) -> anyhow::Result<Result<i64, String>> {
    let mut conn = db::connect_one(&config.database_url)?;
    let total = crate::audit::count(&mut conn).map_err(crate::error::AppError::into_anyhow)?;
    match crate::audit::verify(&mut conn).map_err(crate::error::AppError::into_anyhow)? {
        None => Ok(Ok(total)),
        Some(seq) => Ok(Err(format!(
            "audit log tampered: event #{seq} does not match the chain (edited, or an earlier event was removed)"
        ))),
    }
}

/// `control-plane ovh check`: the OVH credentials are accepted, and the project's regions
/// and the configured regions' flavors. Lines to print.
pub fn ovh_check(config: &Config) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        config.cloud.is_some(),
        "OVHcloud is not configured: set the OUTPOST_OVH_*, OUTPOST_CLOUDFLARE_*, OUTPOST_NODES_DOMAIN and OUTPOST_NODE_RELEASE_* options"
    );
    let http = outpost_common::http::client(
        crate::app::state::USER_AGENT,
        std::time::Duration::from_secs(10),
    )?;
    let ovh = crate::provisioning::Ovh::new(config, http)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(ovh.check())?)
}
