//! The durable mail outbox (issue 18, defect 8) through the real binary and its dev outbox.
//! The transport is down when a change happens (a file stands where the outbox directory
//! goes, as a full or read-only disk would make it fail), so the email cannot go out then:
//! it must arrive once the transport is back, once, whether the control plane keeps running
//! (a retry with backoff) or is killed with SIGKILL and started again.

use crate::harness::*;
use crate::mail::with_subject;

const INVITEE: &str = "new@acme.test";
const INVITATION: &str = "You are invited to Acme Dental on Outpost";
const TOKEN_NOTICE: &str = "Outpost: a new API token \"cli\" was created for your account";

/// The dev outbox cannot be written: a file where its directory goes.
fn transport_down(cp: &Cp) {
    let dir = cp.data_dir().join("outbox");
    if dir.is_dir() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::write(&dir, "the transport is down").unwrap();
}

fn transport_up(cp: &Cp) {
    std::fs::remove_file(cp.data_dir().join("outbox")).unwrap();
}

/// Starts a CP whose mail goes nowhere, and makes two changes worth an email while it is
/// so: an API token is created (by the command line) and a member is invited (by the API).
/// Returns once the CP has tried and failed to send the invitation.
async fn changes_while_mail_is_down() -> Cp {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        // Retries a second apart, doubling: the test does not wait out the default 30 s.
        env: vec![("OUTPOST_MAIL_RETRY_SECS", "1".into())],
        ..Opts::default()
    });
    transport_down(&cp);
    let api = Api::new(&cp, "owner@acme.test");
    let ws = api.create_workspace("Acme Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/invitations"),
        )
        .json(&serde_json::json!({"email": INVITEE, "role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    wait_for("a failed attempt at sending the invitation", 30, || async {
        cp.log().contains("email not sent").then_some(())
    })
    .await;
    cp
}

/// Each email arrived exactly once, and keeps arriving once: nothing more is due.
fn arrived_once(cp: &Cp) {
    let invitations = with_subject(cp, INVITATION);
    assert_eq!(invitations.len(), 1, "{invitations:?}");
    assert_eq!(invitations[0].0, INVITEE);
    assert!(invitations[0].2.contains("/invitations/accept?token="));
    let notices = with_subject(cp, TOKEN_NOTICE);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "owner@acme.test");
}

/// Waits for both emails. Read without settling: an email that failed waits for its
/// retry (not due yet), which settling does not wait for.
async fn wait_both(cp: &Cp) {
    wait_for("the invitation and the token notice", 90, || async {
        let dir = cp.data_dir().join("outbox");
        let texts: Vec<String> = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter_map(|f| std::fs::read_to_string(f.path()).ok())
            .collect();
        let has = |s: &str| {
            texts
                .iter()
                .any(|t| t.contains(&format!("Subject: {s}\r\n")))
        };
        (has(INVITATION) && has(TOKEN_NOTICE)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_email_the_transport_refused_is_retried_and_arrives_once() {
    let cp = changes_while_mail_is_down().await;
    transport_up(&cp);
    wait_both(&cp).await;
    arrived_once(&cp);
}

#[tokio::test]
async fn an_email_queued_while_mail_was_down_arrives_once_after_a_kill_and_restart() {
    let mut cp = changes_while_mail_is_down().await;
    // SIGKILL between the change and the send: nothing in the process survives.
    cp.kill();
    transport_up(&cp);
    cp.restart();
    wait_both(&cp).await;
    arrived_once(&cp);
}
