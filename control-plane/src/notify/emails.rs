//! Every email the control plane sends, one askama template each in
//! `control-plane/templates/email/` (its `README.md` gives the convention): the wording
//! lives in the template, the struct here says which values it gets, and [`render`] turns
//! it into a subject and a body.
//!
//! A template file is the message as it reads: the first line is the subject, then a
//! blank line, then the body, one line per line of the email (a paragraph is one line).
//! The files use `\n`; [`render`] sends each line ending as `\r\n` and ends the body with
//! one. They are `.txt`, so askama escapes nothing: a `<` in a workspace name stays a `<`
//! in a plain-text email.
//!
//! Every text value is a [`Line`], whose control characters (line breaks included) are
//! spaces, so a workspace name, an email address or an operator's reason cannot start a
//! header or a paragraph; [`render`] also makes the subject one line whatever the template
//! says.
//!
//! Emails carry links and metadata only: never message content, a contact identifier (of
//! the customer's own customers) or a secret. The one link in each is the workspace page,
//! its Billing page, or a single-use sign-in or invitation link.

use std::fmt;

use askama::Template;

use crate::error::{AppError, AppResult};

/// A text value shown in an email, on one line: control characters become spaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line(String);

impl From<&str> for Line {
    fn from(s: &str) -> Self {
        Line(crate::infra::mail::one_line(s))
    }
}

impl From<&String> for Line {
    fn from(s: &String) -> Self {
        s.as_str().into()
    }
}

impl From<String> for Line {
    fn from(s: String) -> Self {
        s.as_str().into()
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Subject and body of `email`: the template's first line (kept to one line) and the lines
/// after the blank line that follows it, each ended with `\r\n`.
pub fn render<T: Template>(email: &T) -> AppResult<(String, String)> {
    let text = email
        .render()
        .map_err(|e| AppError::internal(anyhow::Error::new(e).context("email template")))?;
    let mut lines = text.lines();
    let subject = crate::infra::mail::one_line(lines.next().unwrap_or_default());
    let mut body: Vec<&str> = lines.skip_while(|l| l.is_empty()).collect();
    while body.last().is_some_and(|l| l.is_empty()) {
        body.pop();
    }
    let mut out = body.join("\r\n");
    out.push_str("\r\n");
    Ok((subject, out))
}

/// Renders `email` once and queues it for each of `recipients` in the durable outbox, on
/// `conn` (inside the transaction of the change it announces: [`super::outbox`]).
pub fn queue<T: Template>(
    conn: &mut crate::infra::db::DbConn,
    recipients: Vec<String>,
    email: &T,
) -> AppResult<()> {
    let (subject, body) = render(email)?;
    super::queue_to_each(conn, &recipients, &subject, &body)
}

/// The magic sign-in link (`accounts`).
#[derive(Template)]
#[template(path = "email/sign_in.txt")]
pub struct SignIn {
    /// The single-use link.
    pub link: Line,
}

/// A personal API token was created (`accounts`), to the account's owner: a security
/// notice, so a token made without them is noticed and revoked.
#[derive(Template)]
#[template(path = "email/token_created.txt")]
pub struct TokenCreated {
    /// The token's name.
    pub name: Line,
    /// How: "on the API tokens page" or "with the control-plane command line".
    pub how: Line,
    /// "full access" or "read-only".
    pub scope: Line,
    /// When it expires.
    pub expires: Line,
    /// The API tokens page, where it is revoked.
    pub page: Line,
}

/// An invitation to join a workspace (`members`).
#[derive(Template)]
#[template(path = "email/invitation.txt")]
pub struct Invitation {
    /// The inviting member's email address.
    pub inviter: Line,
    /// Workspace name.
    pub workspace: Line,
    /// The role offered: `owner`, `admin` or `member`.
    pub role: Line,
    /// The single-use acceptance link.
    pub link: Line,
}

/// The workspace is suspended (`suspension`), to its owners.
#[derive(Template)]
#[template(path = "email/suspended.txt")]
pub struct Suspended {
    /// Workspace name.
    pub workspace: Line,
    /// Why, as the workspace page says it (an operator's reason, or payment).
    pub why: Line,
    /// The workspace page.
    pub page: Line,
}

/// The last cause of a suspension is lifted (`suspension`), to its owners.
#[derive(Template)]
#[template(path = "email/resumed.txt")]
pub struct Resumed {
    /// Workspace name.
    pub workspace: Line,
    /// The workspace page.
    pub page: Line,
}

/// A first failed payment (`billing::service::events`), to the owners.
#[derive(Template)]
#[template(path = "email/payment_failed.txt")]
pub struct PaymentFailed {
    /// Workspace name.
    pub workspace: Line,
    /// Amount due, formatted (`12.50 EUR`).
    pub amount: Line,
    /// The invoice number, when Stripe gave one.
    pub invoice: Option<Line>,
    /// When the workspace is suspended if still unpaid, formatted.
    pub until: Line,
    /// The workspace's Billing page.
    pub billing_page: Line,
}

/// Outpost staff deleted the workspace (`operator`), to its owners.
#[derive(Template)]
#[template(path = "email/deleted_by_staff.txt")]
pub struct DeletedByStaff {
    /// Workspace name.
    pub workspace: Line,
    /// The operator's reason.
    pub reason: Line,
    /// The workspace page.
    pub page: Line,
}

/// The node reported in and every check passes (`notices::Notice::ProvisioningDone`).
#[derive(Template)]
#[template(path = "email/node_ready.txt")]
pub struct NodeReady {
    /// Workspace name.
    pub workspace: Line,
    /// The workspace page.
    pub page: Line,
}

/// The node reported in but a check fails (`notices::Notice::ProvisioningDone`).
#[derive(Template)]
#[template(path = "email/node_check_fails.txt")]
pub struct NodeCheckFails {
    /// Workspace name.
    pub workspace: Line,
    /// The workspace page.
    pub page: Line,
}

/// Setting up the node failed (`notices::Notice::ProvisioningFailed`).
#[derive(Template)]
#[template(path = "email/node_failed.txt")]
pub struct NodeFailed {
    /// Workspace name.
    pub workspace: Line,
    /// The step that failed.
    pub step: Line,
    /// Stable error code.
    pub code: Line,
    /// The code in plain words (`provisioning::explain_error`).
    pub explanation: Line,
    /// The workspace page.
    pub page: Line,
}

/// Customers wait for a person (`notices::Notice::CustomersWaiting`).
#[derive(Template)]
#[template(path = "email/customers_waiting.txt")]
pub struct CustomersWaiting {
    /// Workspace name.
    pub workspace: Line,
    /// How many wait.
    pub count: i64,
    /// The workspace page.
    pub page: Line,
}

/// An export is ready on the node (`notices::Notice::ExportReady`).
#[derive(Template)]
#[template(path = "email/export_ready.txt")]
pub struct ExportReady {
    /// Workspace name.
    pub workspace: Line,
    /// An export of one contact (otherwise of the whole workspace).
    pub contact: bool,
    /// When the node deletes it, formatted.
    pub until: Line,
    /// The workspace page.
    pub page: Line,
}

/// An owner cancelled the workspace; its node is kept for exports
/// (`notices::OwnerNotice::Cancelled`).
#[derive(Template)]
#[template(path = "email/cancelled.txt")]
pub struct Cancelled {
    /// Workspace name.
    pub workspace: Line,
    /// The owner who cancelled.
    pub by: Line,
    /// End of the export window, formatted.
    pub until: Line,
    /// Whether an owner can still reactivate it.
    pub can_reactivate: bool,
    /// The workspace page.
    pub page: Line,
}

/// An owner cancelled a workspace that had no running node
/// (`notices::OwnerNotice::Cancelled`).
#[derive(Template)]
#[template(path = "email/cancelled_no_node.txt")]
pub struct CancelledNoNode {
    /// Workspace name.
    pub workspace: Line,
    /// The owner who cancelled.
    pub by: Line,
    /// The workspace page.
    pub page: Line,
}

/// An owner undid the cancellation (`notices::OwnerNotice::Reactivated`).
#[derive(Template)]
#[template(path = "email/reactivated.txt")]
pub struct Reactivated {
    /// Workspace name.
    pub workspace: Line,
    /// The owner who reactivated it.
    pub by: Line,
    /// Another cause still keeps it suspended.
    pub still_suspended: bool,
    /// The workspace page.
    pub page: Line,
}

/// An owner deleted the workspace (`notices::OwnerNotice::Deleted`).
#[derive(Template)]
#[template(path = "email/deleted.txt")]
pub struct Deleted {
    /// Workspace name.
    pub workspace: Line,
    /// The owner who deleted it.
    pub by: Line,
    /// The workspace page.
    pub page: Line,
}

/// A sign-in from a browser the account has not used before (`accounts::devices`), to the
/// account's address. Says the device in words and the time, never the IP.
#[derive(Template)]
#[template(path = "email/new_sign_in.txt")]
pub struct NewSignIn {
    /// Browser and system in words (`Firefox on Linux`).
    pub device: Line,
    /// How: `an email link`, `Google`, …
    pub method: Line,
    /// When, formatted.
    pub when: Line,
    /// The sessions page, where a stranger's session is ended.
    pub page: Line,
}

/// A provider's sign-in was linked to an existing account (`accounts::oauth`), to the
/// account's address.
#[derive(Template)]
#[template(path = "email/method_linked.txt")]
pub struct MethodLinked {
    /// `Google`, `GitHub` or `Apple`.
    pub provider: Line,
    /// When, formatted.
    pub when: Line,
    /// The sign-in methods page.
    pub page: Line,
}

/// A member's role was changed (`members`), to that member.
#[derive(Template)]
#[template(path = "email/role_changed.txt")]
pub struct RoleChanged {
    /// Workspace name.
    pub workspace: Line,
    /// The owner who changed it.
    pub by: Line,
    /// The role before: `owner`, `admin` or `member`.
    pub before: &'static str,
    /// The new role: `owner`, `admin` or `member`.
    pub role: &'static str,
    /// The workspace page.
    pub page: Line,
}

/// The link that confirms a new address (`accounts::email_change`), to the new address.
#[derive(Template)]
#[template(path = "email/email_change_confirm.txt")]
pub struct EmailChangeConfirm {
    /// The new address.
    pub new_email: Line,
    /// The single-use confirmation link.
    pub link: Line,
}

/// A change to an address another account uses (`accounts::email_change`), to that
/// address: only its mailbox learns that it has an account.
#[derive(Template)]
#[template(path = "email/email_change_taken.txt")]
pub struct EmailChangeTaken {
    /// The address asked for.
    pub new_email: Line,
    /// The sign-in page.
    pub link: Line,
}

/// A change of address was asked for (`accounts::email_change`), to the old address.
#[derive(Template)]
#[template(path = "email/email_change_requested.txt")]
pub struct EmailChangeRequested {
    /// The address asked for.
    pub new_email: Line,
    /// When, formatted.
    pub when: Line,
    /// The sign-in methods page.
    pub page: Line,
}

/// The address was changed (`accounts::email_change`), to the old address.
#[derive(Template)]
#[template(path = "email/email_changed.txt")]
pub struct EmailChanged {
    /// The new address.
    pub new_email: Line,
    /// When, formatted.
    pub when: Line,
    /// The sign-in page.
    pub page: Line,
}

#[cfg(test)]
#[path = "emails_tests.rs"]
mod tests;
