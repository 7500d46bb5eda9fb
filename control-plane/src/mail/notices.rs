//! Notification emails to a workspace's owners and admins: its node is set up, setting it
//! up failed, an export is ready. Each says what happened and links to the workspace page
//! in the control plane, and nothing else: no message content, no contact identifier, no
//! secret, and no export link (that lives only on the node, which serves the download).
//!
//! Callers send a notice only for a transition that actually happened (a conditional
//! update that moved the row, a row newly inserted), after it is stored, so each fires
//! once.

use crate::app::State;
use crate::db::DbConn;

/// Who is told: the roles that manage the node and its exports.
pub const RECIPIENT_ROLES: &[&str] = &[crate::workspaces::ROLE_OWNER, "admin"];

/// Something that happened to a workspace's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The node's first report after enrollment: it is up.
    ProvisioningDone {
        /// Node id.
        node_id: String,
        /// Whether every check passed (otherwise the page says which fails).
        checks_ok: bool,
    },
    /// The node moved to `failed`.
    ProvisioningFailed {
        /// Node id.
        node_id: String,
        /// The step that failed (`booting`, `enrolling`, …).
        step: String,
        /// Stable error code.
        code: String,
    },
    /// An export reached `ready` on the node.
    ExportReady {
        /// Node id.
        node_id: String,
        /// `workspace` or `contact`.
        scope: String,
        /// When the node deletes it (unix seconds).
        expires_at: i64,
    },
}

impl Notice {
    fn node_id(&self) -> &str {
        match self {
            Notice::ProvisioningDone { node_id, .. }
            | Notice::ProvisioningFailed { node_id, .. }
            | Notice::ExportReady { node_id, .. } => node_id,
        }
    }

    /// Subject and body for a workspace named `ws_name`, whose page is `page`.
    pub fn compose(&self, ws_name: &str, page: &str) -> (String, String) {
        let name = super::one_line(ws_name);
        match self {
            Notice::ProvisioningDone {
                checks_ok: true, ..
            } => (
                format!("Outpost: {name} is ready"),
                format!(
                    "The node of your workspace {name} is set up and has reported in: \
                     your agents can answer now.\r\n\r\nOpen the workspace:\r\n{page}\r\n"
                ),
            ),
            Notice::ProvisioningDone {
                checks_ok: false, ..
            } => (
                format!("Outpost: {name} is running; a check needs attention"),
                format!(
                    "The node of your workspace {name} is set up and has reported in, \
                     but one of its checks fails. The workspace page says which and why:\
                     \r\n{page}\r\n"
                ),
            ),
            Notice::ProvisioningFailed { step, code, .. } => (
                format!("Outpost: setting up {name} failed"),
                format!(
                    "Setting up the node of your workspace {name} failed at the step \
                     \"{step}\" ({code}).\r\n\r\n{}\r\n\r\nThe workspace page shows what \
                     happened:\r\n{page}\r\n",
                    crate::provisioning::explain_error(code)
                ),
            ),
            Notice::ExportReady {
                scope, expires_at, ..
            } => {
                let what = if scope == "contact" {
                    "An export of one contact"
                } else {
                    "A whole-workspace export"
                };
                let until = time::OffsetDateTime::from_unix_timestamp(*expires_at)
                    .ok()
                    .and_then(|t| {
                        t.format(time::macros::format_description!(
                            "[year]-[month]-[day] [hour]:[minute] UTC"
                        ))
                        .ok()
                    })
                    .unwrap_or_default();
                (
                    format!("Outpost: an export of {name} is ready"),
                    format!(
                        "{what} of your workspace {name} is ready on its node until \
                         {until}.\r\n\r\nDownload it from the node console (Exports); open \
                         the console from the workspace page:\r\n{page}\r\n\r\nThe download \
                         link exists only on your node: the control plane never sees it.\r\n"
                    ),
                )
            }
        }
    }
}

/// Emails each notice to the owners and admins of its node's workspace, in the background
/// ([`super::send_later`]). A lookup that fails is logged and skipped: the transition is
/// already stored, and a missing email must not undo it.
pub fn send(conn: &mut DbConn, st: &State, notices: &[Notice]) {
    for n in notices {
        let node_id = n.node_id();
        let r = crate::provisioning::workspace_info(conn, node_id).and_then(|ws| {
            let to = super::addresses_of(conn, &ws.id, RECIPIENT_ROLES)?;
            Ok((ws, to))
        });
        let (ws, recipients) = match r {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(node = node_id, error = %e, "notification not sent: lookup failed");
                continue;
            }
        };
        let page = format!("{}/workspaces/{}", st.public_url, ws.id);
        let (subject, body) = n.compose(&ws.name, &page);
        for to in recipients {
            super::send_later(
                st,
                super::Email {
                    to,
                    subject: subject.clone(),
                    body: body.clone(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "https://cp.test/workspaces/ws-1";

    #[test]
    fn each_notice_says_what_happened_and_links_the_workspace_page_only() {
        let notices = [
            Notice::ProvisioningDone {
                node_id: "n".into(),
                checks_ok: true,
            },
            Notice::ProvisioningDone {
                node_id: "n".into(),
                checks_ok: false,
            },
            Notice::ProvisioningFailed {
                node_id: "n".into(),
                step: "booting".into(),
                code: "enroll_timeout".into(),
            },
            Notice::ExportReady {
                node_id: "n".into(),
                scope: "contact".into(),
                expires_at: 1_795_000_000,
            },
        ];
        for n in &notices {
            let (subject, body) = n.compose("Acme Dental", PAGE);
            assert!(subject.starts_with("Outpost: ") && subject.contains("Acme Dental"));
            assert!(body.contains(PAGE), "{body}");
            // One link, the workspace page: nothing that signs in, downloads or names a
            // contact.
            assert_eq!(body.matches("://").count(), 1, "{body}");
            assert!(!body.contains("token") && !body.contains("sig="), "{body}");
        }
        let (_, failed) = notices[2].compose("Acme Dental", PAGE);
        assert!(failed.contains("never enrolled"), "{failed}");
        let (_, export) = notices[3].compose("Acme Dental", PAGE);
        assert!(export.contains("An export of one contact"), "{export}");
        assert!(export.contains("2026-11-18 11:06 UTC"), "{export}");
    }

    #[test]
    fn a_workspace_name_cannot_break_the_subject() {
        let (subject, _) = Notice::ProvisioningDone {
            node_id: "n".into(),
            checks_ok: true,
        }
        .compose("Acme\r\nBcc: x@evil.test", PAGE);
        assert!(!subject.contains('\r') && !subject.contains('\n'));
    }
}
