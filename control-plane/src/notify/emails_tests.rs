//! Every email renders: one-line subjects, CRLF bodies, the links each must carry.
#![allow(clippy::unwrap_used)]

use super::*;

const PAGE: &str = "https://cp.test/workspaces/ws-1";
const SIGN_IN: &str = "https://cp.test/auth/verify?token=T0KEN";
const INVITE: &str = "https://cp.test/invitations/accept?token=T0KEN";
const BILLING: &str = "https://cp.test/workspaces/ws-1/billing";
const TOKENS: &str = "https://cp.test/account/tokens";
const METHODS: &str = "https://cp.test/account/identities";
const SESSIONS: &str = "https://cp.test/account/sessions";
const CONFIRM: &str = "https://cp.test/account/email/confirm?token=T0KEN";
const SIGNIN: &str = "https://cp.test/signin";

/// Every email, by template file, rendered for a workspace named `name` (and an
/// operator's reason and a member's address that are `name` too), with the one link it
/// must carry.
fn every_email(name: &str) -> Vec<(&'static str, (String, String), &'static str)> {
    let l = |s: &str| Line::from(s);
    let r = |t: AppResult<(String, String)>| t.unwrap();
    vec![
        ("sign_in", r(render(&SignIn { link: l(SIGN_IN) })), SIGN_IN),
        (
            "invitation",
            r(render(&Invitation {
                inviter: l(name),
                workspace: l(name),
                role: l("admin"),
                link: l(INVITE),
            })),
            INVITE,
        ),
        (
            "suspended",
            r(render(&Suspended {
                workspace: l(name),
                why: l(name),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "resumed",
            r(render(&Resumed {
                workspace: l(name),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "payment_failed",
            r(render(&PaymentFailed {
                workspace: l(name),
                amount: l("12.50 EUR"),
                invoice: Some(l(name)),
                until: l("18 Nov 2026, 11:06 UTC"),
                billing_page: l(BILLING),
            })),
            BILLING,
        ),
        (
            "deleted_by_staff",
            r(render(&DeletedByStaff {
                workspace: l(name),
                reason: l(name),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "node_ready",
            r(render(&NodeReady {
                workspace: l(name),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "node_check_fails",
            r(render(&NodeCheckFails {
                workspace: l(name),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "node_failed",
            r(render(&NodeFailed {
                workspace: l(name),
                step: l("booting"),
                code: l("enroll_timeout"),
                explanation: l(crate::provisioning::explain_error("enroll_timeout")),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "customers_waiting",
            r(render(&CustomersWaiting {
                workspace: l(name),
                count: 1,
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "export_ready",
            r(render(&ExportReady {
                workspace: l(name),
                contact: false,
                until: l("2026-11-18 11:06 UTC"),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "cancelled",
            r(render(&Cancelled {
                workspace: l(name),
                by: l(name),
                until: l("2026-11-18 11:06 UTC"),
                can_reactivate: true,
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "cancelled_no_node",
            r(render(&CancelledNoNode {
                workspace: l(name),
                by: l(name),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "reactivated",
            r(render(&Reactivated {
                workspace: l(name),
                by: l(name),
                still_suspended: false,
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "token_created",
            r(render(&TokenCreated {
                name: l(name),
                how: l("on the API tokens page"),
                scope: l("read-only"),
                expires: l("2027-03-02 11:06 UTC"),
                page: l(TOKENS),
            })),
            TOKENS,
        ),
        (
            "deleted",
            r(render(&Deleted {
                workspace: l(name),
                by: l(name),
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "new_sign_in",
            r(render(&NewSignIn {
                device: l(name),
                method: l("an email link"),
                when: l("18 Nov 2026, 11:06 UTC"),
                page: l(SESSIONS),
            })),
            SESSIONS,
        ),
        (
            "method_linked",
            r(render(&MethodLinked {
                provider: l(name),
                when: l("18 Nov 2026, 11:06 UTC"),
                page: l(METHODS),
            })),
            METHODS,
        ),
        (
            "role_changed",
            r(render(&RoleChanged {
                workspace: l(name),
                by: l(name),
                before: "member",
                role: "admin",
                page: l(PAGE),
            })),
            PAGE,
        ),
        (
            "email_change_confirm",
            r(render(&EmailChangeConfirm {
                new_email: l(name),
                link: l(CONFIRM),
            })),
            CONFIRM,
        ),
        (
            "email_change_taken",
            r(render(&EmailChangeTaken {
                new_email: l(name),
                link: l(SIGNIN),
            })),
            SIGNIN,
        ),
        (
            "email_change_requested",
            r(render(&EmailChangeRequested {
                new_email: l(name),
                when: l("18 Nov 2026, 11:06 UTC"),
                page: l(METHODS),
            })),
            METHODS,
        ),
        (
            "email_changed",
            r(render(&EmailChanged {
                new_email: l(name),
                when: l("18 Nov 2026, 11:06 UTC"),
                page: l(SIGNIN),
            })),
            SIGNIN,
        ),
    ]
}

/// Emails about the account itself: their subject names no workspace.
const ACCOUNT_EMAILS: &[&str] = &[
    "sign_in",
    "new_sign_in",
    "email_change_confirm",
    "email_change_taken",
    "email_change_requested",
    "email_changed",
];

#[test]
fn every_template_renders_a_one_line_subject_and_a_crlf_body_with_its_one_link() {
    for (file, (subject, body), link) in every_email("Acme <Dental> & Co") {
        assert!(!subject.is_empty() && subject.contains("Outpost"), "{file}");
        if !ACCOUNT_EMAILS.contains(&file) {
            assert!(subject.contains("Acme <Dental> & Co"), "{file}: {subject}");
        }
        for text in [&subject, &body] {
            assert!(
                !text.contains("{{") && !text.contains("{%"),
                "{file}: {text}"
            );
            assert!(!text.contains("&lt;") && !text.contains("&amp;"), "{file}");
            assert!(!text.contains("  "), "{file}: a double space: {text:?}");
        }
        assert!(body.contains("Acme <Dental> & Co") || file == "sign_in");
        // Lines end with CRLF, the last one too; paragraphs are one blank line apart.
        assert!(
            body.ends_with("\r\n") && !body.ends_with("\r\n\r\n"),
            "{file}"
        );
        assert!(!body.replace("\r\n", "").contains(['\r', '\n']), "{file}");
        assert!(!body.contains("\r\n\r\n\r\n"), "{file}");
        // The link, on a line of its own, and no other link.
        assert!(body.split("\r\n").any(|l| l == link), "{file}: {body}");
        assert_eq!(body.matches("://").count(), 1, "{file}: {body}");
    }
}

#[test]
fn a_value_with_line_breaks_cannot_add_a_header_or_a_line() {
    let hostile = "Acme\r\nBcc: eve@evil.test\n\nDear";
    for (file, (subject, body), _) in every_email(hostile) {
        assert!(!subject.contains(['\r', '\n']), "{file}: {subject:?}");
        assert!(
            !body.contains("\r\nBcc:") && !body.contains("\r\nDear"),
            "{file}: {body:?}"
        );
    }
    // A value never holds a line break of its own.
    assert!(!Line::from(hostile).to_string().contains(['\r', '\n']));
}

#[test]
fn the_table_holds_every_template_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/email");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".txt").map(str::to_owned))
        .collect();
    files.sort();
    let mut table: Vec<&str> = every_email("Acme").into_iter().map(|e| e.0).collect();
    table.sort();
    assert_eq!(files, table);
    for f in &files {
        let src = std::fs::read_to_string(dir.join(format!("{f}.txt"))).unwrap();
        assert!(
            !src.contains('\r'),
            "{f}.txt: write \\n, render sends \\r\\n"
        );
        let mut lines = src.lines();
        assert!(lines.next().is_some_and(|s| !s.is_empty()), "{f}: subject");
        assert_eq!(
            lines.next(),
            Some(""),
            "{f}.txt: a blank line after the subject"
        );
    }
}

#[test]
fn wording_that_depends_on_the_values() {
    let l = |s: &str| Line::from(s);
    let waiting = |count| {
        render(&CustomersWaiting {
            workspace: l("Acme"),
            count,
            page: l(PAGE),
        })
        .unwrap()
    };
    assert_eq!(
        waiting(1).0,
        "Outpost: A customer is waiting for your team at Acme"
    );
    assert_eq!(
        waiting(3).0,
        "Outpost: 3 customers are waiting for your team at Acme"
    );
    let failed = |invoice: Option<Line>| {
        render(&PaymentFailed {
            workspace: l("Acme"),
            amount: l("12.50 EUR"),
            invoice,
            until: l("then"),
            billing_page: l(BILLING),
        })
        .unwrap()
        .1
    };
    assert!(failed(Some(l("INV-7"))).contains("12.50 EUR for INV-7 of"));
    assert!(failed(None).contains("12.50 EUR for your latest invoice of"));
}
