//! Suspension has no pages of its own (the operator console and billing start and lift
//! causes): this builds its [`Context`] from the app state, for the callers that hold it.

use super::service::{self, Context};
use crate::app::AppState;
use crate::error::AppResult;
use crate::infra::db::DbConn;

impl AppState {
    /// Where suspension emails go out from and the long-poll wake-ups.
    pub fn suspension(&self) -> Context<'_> {
        Context {
            notifier: self.notifier(),
            command_notify: &self.command_notify,
        }
    }
}

/// [`service::suspend`] with the pieces taken from the app state.
pub fn suspend(
    conn: &mut DbConn,
    st: &AppState,
    ws_id: &str,
    code: &str,
    reason: &str,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<bool> {
    service::suspend(conn, &st.suspension(), ws_id, code, reason, actor, ip)
}

/// [`service::resume`] with the pieces taken from the app state.
pub fn resume(
    conn: &mut DbConn,
    st: &AppState,
    ws_id: &str,
    code: &str,
    actor: &str,
    ip: Option<&str>,
) -> AppResult<bool> {
    service::resume(conn, &st.suspension(), ws_id, code, actor, ip)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_owners_are_told() {
        assert_eq!(
            super::super::model::NOTIFIED_ROLES,
            [crate::workspaces::ROLE_OWNER]
        );
    }
}
