//! Notification emails to a workspace's owners and admins: its node is set up, setting it
//! up failed, an export is ready ([`Notice`]); and to its owners when one of them cancels,
//! reactivates or deletes the workspace ([`OwnerNotice`]). Each says what happened and
//! links to the workspace page in the control plane, and nothing else: no message content,
//! no contact identifier, no secret, and no export link (that lives only on the node, which
//! serves the download).
//!
//! Callers queue a notice only for a transition that actually happened (a conditional
//! update that moved the row, a row newly inserted), in the transaction that stores it, so
//! each is sent once and never for a change that was rolled back ([`super::outbox`]).

use super::emails::{self, render, Line};
use super::Notifier;
use crate::error::AppResult;
use crate::infra::db::DbConn;
use crate::members::model::{ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER};

/// Who is told: the roles that manage the node and its exports.
pub const RECIPIENT_ROLES: &[&str] = &[ROLE_OWNER, ROLE_ADMIN];

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
    /// More conversations than before wait for the team: a customer asked for a person.
    CustomersWaiting {
        /// Node id.
        node_id: String,
        /// How many wait now.
        count: i64,
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
            | Notice::CustomersWaiting { node_id, .. }
            | Notice::ExportReady { node_id, .. } => node_id,
        }
    }

    /// Who is told: owners and admins, and for waiting customers every member too (members
    /// answer the inbox).
    fn recipient_roles(&self) -> &'static [&'static str] {
        match self {
            Notice::CustomersWaiting { .. } => &[ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER],
            _ => RECIPIENT_ROLES,
        }
    }

    /// Subject and body for a workspace named `ws_name`, whose page is `page` (the
    /// templates are in `templates/email/`, see [`super::emails`]).
    pub fn compose(&self, ws_name: &str, page: &str) -> AppResult<(String, String)> {
        let (workspace, page) = (Line::from(ws_name), Line::from(page));
        match self {
            Notice::ProvisioningDone {
                checks_ok: true, ..
            } => render(&emails::NodeReady { workspace, page }),
            Notice::ProvisioningDone {
                checks_ok: false, ..
            } => render(&emails::NodeCheckFails { workspace, page }),
            Notice::ProvisioningFailed { step, code, .. } => render(&emails::NodeFailed {
                workspace,
                step: step.into(),
                code: code.into(),
                explanation: crate::provisioning::model::explain_error(code).into(),
                page,
            }),
            Notice::CustomersWaiting { count, .. } => render(&emails::CustomersWaiting {
                workspace,
                count: *count,
                page,
            }),
            Notice::ExportReady {
                scope, expires_at, ..
            } => render(&emails::ExportReady {
                workspace,
                contact: scope == "contact",
                until: fmt_utc(*expires_at).into(),
                page,
            }),
        }
    }
}

/// A time in emails: `2026-11-18 11:06 UTC`.
fn fmt_utc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// What an owner did to a whole workspace. Every owner is told, the one who did it too:
/// an owner who did not expect it learns at once, while the cancellation can still be
/// undone or the exports taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerNotice {
    /// Cancelled: the channels stopped.
    Cancelled {
        /// The owner who cancelled (their email address).
        by: String,
        /// The node is kept for exports until then (unix seconds); `None`: the node had
        /// nothing to export and is destroyed at once.
        until: Option<i64>,
        /// Whether an owner can reactivate it until then (not when cancelling also
        /// cancelled its paid subscription).
        can_reactivate: bool,
    },
    /// The cancellation was undone during the export window.
    Reactivated {
        /// The owner who reactivated it.
        by: String,
        /// Another cause (an unpaid invoice, Outpost staff) still keeps it suspended.
        still_suspended: bool,
    },
    /// Deleted now: the node is being destroyed.
    Deleted {
        /// The owner who deleted it.
        by: String,
    },
}

impl OwnerNotice {
    /// Subject and body for a workspace named `ws_name`, whose page is `page` (the
    /// templates are in `templates/email/`, see [`super::emails`]).
    pub fn compose(&self, ws_name: &str, page: &str) -> AppResult<(String, String)> {
        let (workspace, page) = (Line::from(ws_name), Line::from(page));
        match self {
            OwnerNotice::Cancelled {
                by,
                until: Some(until),
                can_reactivate,
            } => render(&emails::Cancelled {
                workspace,
                by: by.into(),
                until: fmt_utc(*until).into(),
                can_reactivate: *can_reactivate,
                page,
            }),
            OwnerNotice::Cancelled {
                by, until: None, ..
            } => render(&emails::CancelledNoNode {
                workspace,
                by: by.into(),
                page,
            }),
            OwnerNotice::Reactivated {
                by,
                still_suspended,
            } => render(&emails::Reactivated {
                workspace,
                by: by.into(),
                still_suspended: *still_suspended,
                page,
            }),
            OwnerNotice::Deleted { by } => render(&emails::Deleted {
                workspace,
                by: by.into(),
                page,
            }),
        }
    }
}

/// Queues `notice` for the owners of workspace `ws_id` (named `ws_name`). Call it in the
/// transaction of the change, once per change.
pub fn send_to_owners(
    conn: &mut DbConn,
    to: &Notifier<'_>,
    ws_id: &str,
    ws_name: &str,
    notice: &OwnerNotice,
) -> crate::error::AppResult<()> {
    let page = format!("{}/workspaces/{ws_id}", to.public_url);
    let (subject, body) = notice.compose(ws_name, &page)?;
    let owners = super::addresses_of(conn, ws_id, &[ROLE_OWNER])?;
    super::queue_to_each(conn, &owners, &subject, &body)
}

/// Queues each notice for the owners and admins of its node's workspace
/// ([`super::queue_to_each`]), in the caller's transaction. A lookup that fails is logged
/// and skipped (a missing email must not undo the transition); failing to queue fails.
pub fn send(conn: &mut DbConn, via: &Notifier<'_>, notices: &[Notice]) -> AppResult<()> {
    for n in notices {
        let node_id = n.node_id();
        let r = super::store::workspace_of_node(conn, node_id).and_then(|(ws_id, ws_name)| {
            let to = super::addresses_of(conn, &ws_id, n.recipient_roles())?;
            let page = format!("{}/workspaces/{ws_id}", via.public_url);
            Ok((to, n.compose(&ws_name, &page)?))
        });
        let (recipients, (subject, body)) = match r {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(node = node_id, error = %e, "notification not sent: lookup failed");
                continue;
            }
        };
        super::queue_to_each(conn, &recipients, &subject, &body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
            Notice::CustomersWaiting {
                node_id: "n".into(),
                count: 2,
            },
        ];
        for n in &notices {
            let (subject, body) = n.compose("Acme Dental", PAGE).unwrap();
            assert!(subject.starts_with("Outpost: ") && subject.contains("Acme Dental"));
            assert!(body.contains(PAGE), "{body}");
            // One link, the workspace page: nothing that signs in, downloads or names a
            // contact.
            assert_eq!(body.matches("://").count(), 1, "{body}");
            assert!(!body.contains("token") && !body.contains("sig="), "{body}");
        }
        let (_, failed) = notices[2].compose("Acme Dental", PAGE).unwrap();
        assert!(failed.contains("never enrolled"), "{failed}");
        let (_, export) = notices[3].compose("Acme Dental", PAGE).unwrap();
        assert!(export.contains("An export of one contact"), "{export}");
        assert!(export.contains("2026-11-18 11:06 UTC"), "{export}");
        let (subject, waiting) = notices[4].compose("Acme Dental", PAGE).unwrap();
        assert_eq!(
            subject,
            "Outpost: 2 customers are waiting for your team at Acme Dental"
        );
        assert!(waiting.contains("only counts them"), "{waiting}");
        assert_eq!(
            notices[4].recipient_roles(),
            [ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER],
            "members answer the inbox: they are told too"
        );
    }

    #[test]
    fn owner_notices_say_who_and_what_and_link_the_workspace_page_only() {
        let by = "alice@acme.test".to_owned();
        let notices = [
            OwnerNotice::Cancelled {
                by: by.clone(),
                until: Some(1_795_000_000),
                can_reactivate: true,
            },
            OwnerNotice::Cancelled {
                by: by.clone(),
                until: Some(1_795_000_000),
                can_reactivate: false,
            },
            OwnerNotice::Cancelled {
                by: by.clone(),
                until: None,
                can_reactivate: false,
            },
            OwnerNotice::Reactivated {
                by: by.clone(),
                still_suspended: false,
            },
            OwnerNotice::Reactivated {
                by: by.clone(),
                still_suspended: true,
            },
            OwnerNotice::Deleted { by },
        ];
        for n in &notices {
            let (subject, body) = n.compose("Acme Dental", PAGE).unwrap();
            assert!(subject.starts_with("Outpost: Acme Dental is "), "{subject}");
            assert!(
                body.contains(PAGE) && body.contains("alice@acme.test"),
                "{body}"
            );
            assert_eq!(body.matches("://").count(), 1, "{body}");
            assert!(!body.contains("token") && !body.contains("sig="), "{body}");
        }
        let (_, cancelled) = notices[0].compose("Acme Dental", PAGE).unwrap();
        assert!(
            cancelled.contains("until 2026-11-18 11:06 UTC"),
            "{cancelled}"
        );
        assert!(cancelled.contains("can reactivate"), "{cancelled}");
        let (_, paid) = notices[1].compose("Acme Dental", PAGE).unwrap();
        assert!(paid.contains("cannot be reactivated"), "{paid}");
        let (_, still) = notices[4].compose("Acme Dental", PAGE).unwrap();
        assert!(still.contains("still suspended"), "{still}");
        let (subject, _) = notices[5]
            .compose("Acme\r\nBcc: x@evil.test", PAGE)
            .unwrap();
        assert!(!subject.contains('\r') && !subject.contains('\n'));
    }

    #[test]
    fn a_workspace_name_cannot_break_the_subject() {
        let (subject, _) = Notice::ProvisioningDone {
            node_id: "n".into(),
            checks_ok: true,
        }
        .compose("Acme\r\nBcc: x@evil.test", PAGE)
        .unwrap();
        assert!(!subject.contains('\r') && !subject.contains('\n'));
    }
}
