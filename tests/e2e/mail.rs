//! Notification emails through the real binary and its default mailer, the dev outbox:
//! provisioning done (a real local node), export ready and provisioning failed (the test
//! plays the node, or lets it time out). Each is sent once, to owners and admins only,
//! and holds the workspace page link and nothing else.

use crate::gateway::{bundle_for, report_with, try_enroll};
use crate::harness::*;
use diesel::prelude::*;
use outpost_protocol::*;

/// Every email in the dev outbox: (recipient, subject, body).
pub(crate) fn outbox(cp: &Cp) -> Vec<(String, String, String)> {
    cp.settle_outbox();
    let mut files: Vec<_> = std::fs::read_dir(cp.data_dir().join("outbox"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let field = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap()
                    .to_owned()
            };
            (field("To: "), field("Subject: "), body.to_owned())
        })
        .collect()
}

pub(crate) fn with_subject(cp: &Cp, subject: &str) -> Vec<(String, String, String)> {
    outbox(cp).into_iter().filter(|m| m.1 == subject).collect()
}

/// Waits for at least `n` emails with `subject` (each recipient's is written on its own).
pub(crate) async fn wait_mails(cp: &Cp, subject: &str, n: usize) -> Vec<(String, String, String)> {
    wait_for(subject, 60, || async {
        let got = with_subject(cp, subject);
        (got.len() >= n).then_some(got)
    })
    .await
}

fn last_seq(cp: &Cp, node_id: &str) -> i64 {
    use control_plane::infra::schema::nodes::dsl as n;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    n::nodes
        .find(node_id)
        .select(n::last_seq)
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap_or(0)
}

/// Adds `email` to the workspace with `role` (as an accepted invitation would).
pub(crate) fn add_member(cp: &Cp, ws_id: &str, email: &str, role: &str) {
    use control_plane::infra::schema::memberships::dsl as m;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    let user = control_plane::accounts::find_or_create_user(&mut conn, email).unwrap();
    diesel::insert_into(m::memberships)
        .values((
            m::workspace_id.eq(ws_id),
            m::user_id.eq(&user),
            m::role.eq(role),
            m::created_at.eq(0_i64),
        ))
        .execute(&mut conn)
        .unwrap();
}

#[tokio::test]
async fn the_owner_is_emailed_once_when_a_new_workspace_node_is_ready() {
    let cp = Cp::start();
    let api = Api::new(&cp, "owner@acme.test");
    let ws = api.create_workspace("Acme Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let node_id = ws["node"]["id"].as_str().unwrap().to_owned();
    api.wait_node_state(&ws_id, "healthy", 90).await;

    let subject = "Outpost: Acme Dental is ready";
    let mails = wait_mails(&cp, subject, 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (to, _, body) = &mails[0];
    assert_eq!(to, "owner@acme.test");
    // Exactly what happened and the workspace page: no token, key, certificate, node
    // address or anything else.
    assert_eq!(
        body,
        &format!(
            "The node of your workspace Acme Dental is set up and has reported in: your agents \
             can answer now.\r\n\r\nOpen the workspace:\r\n{}/workspaces/{ws_id}\r\n\r\n",
            cp.ui
        )
    );
    assert!(!body.contains(&api.token));

    // Later reports of the same node announce nothing more.
    let seen = last_seq(&cp, &node_id);
    wait_for("three more reports", 60, || async {
        (last_seq(&cp, &node_id) >= seen + 3).then_some(())
    })
    .await;
    assert_eq!(with_subject(&cp, subject).len(), 1);
    assert!(!cp.log().contains("email not sent"));
}

#[tokio::test]
async fn owners_and_admins_are_emailed_once_when_an_export_is_ready_with_no_link() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    let (ws, bundle) = bundle_for(&cp, &api, "Acme Dental").await;
    add_member(&cp, &ws, "admin@acme.test", "admin");
    add_member(&cp, &ws, "agent@acme.test", "member");
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let export = |id: &uuid::Uuid, scope: &str, state: &str| ExportMeta {
        id: id.to_string(),
        scope: scope.into(),
        state: state.into(),
        size_bytes: if state == "ready" { 2048 } else { 0 },
        created_at: now - 60,
        expires_at: now - 60 + 24 * 3600,
    };
    let (whole, contact) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let report = |seq: i64, exports: Vec<ExportMeta>| {
        let (node, cp) = (&node, &cp);
        async move {
            let r = report_with(node, cp, seq, exports, vec![]).await;
            assert_eq!(r.status(), 200);
        }
    };
    // The first report ends provisioning; the export is still running.
    report(1, vec![export(&whole, "workspace", "running")]).await;
    let ready = wait_mails(&cp, "Outpost: Acme Dental is ready", 2).await;
    let mut to: Vec<&str> = ready.iter().map(|m| m.0.as_str()).collect();
    to.sort();
    assert_eq!(
        to,
        ["admin@acme.test", "owner@acme.test"],
        "members are not told"
    );

    // running → ready; then an older report arriving late, and a later one saying ready
    // again.
    report(3, vec![export(&whole, "workspace", "ready")]).await;
    report(2, vec![export(&whole, "workspace", "ready")]).await;
    report(4, vec![export(&whole, "workspace", "ready")]).await;
    // A contact export the CP first hears of when it is already ready.
    report(5, vec![export(&contact, "contact", "ready")]).await;
    report(6, vec![export(&contact, "contact", "ready")]).await;

    let subject = "Outpost: an export of Acme Dental is ready";
    let mails = wait_mails(&cp, subject, 4).await;
    assert_eq!(mails.len(), 4, "one per export and recipient: {mails:?}");
    let page = format!("{}/workspaces/{ws}", cp.ui);
    for (to, _, body) in &mails {
        assert!(to == "owner@acme.test" || to == "admin@acme.test");
        assert!(body.contains(&page), "{body}");
        assert_eq!(
            body.matches("://").count(),
            1,
            "the page is the only link: {body}"
        );
        assert!(!body.contains(&whole.to_string()) && !body.contains(&contact.to_string()));
    }
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.2.starts_with("An export of one contact"))
            .count(),
        2
    );
    assert!(!outbox(&cp).iter().any(|m| m.0 == "agent@acme.test"));
}

#[tokio::test]
async fn owners_are_emailed_once_when_setting_up_a_node_fails() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        enroll_timeout_secs: 2,
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    // Nobody starts the node, so it never enrolls.
    let (ws, bundle) = bundle_for(&cp, &api, "Acme Dental").await;
    api.wait_node_state(&ws, "failed", 60).await;
    let subject = "Outpost: setting up Acme Dental failed";
    let mails = wait_mails(&cp, subject, 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (to, _, body) = &mails[0];
    assert_eq!(to, "owner@acme.test");
    assert!(body.contains("(enroll_timeout)"), "{body}");
    assert!(body.contains("never enrolled"), "{body}");
    assert!(body.contains(&format!("{}/workspaces/{ws}", cp.ui)));
    assert_eq!(body.matches("://").count(), 1, "{body}");
    assert!(!body.contains(&bundle.token));
}

/// The sign-in link through a real transport (Resend's API, played by a local fake): it
/// arrives and signs in; when the provider refuses, the sign-in page says so instead of
/// pretending, and the log names provider and status only.
#[tokio::test]
async fn sign_in_through_resend_and_an_error_page_when_it_refuses() {
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let resend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(header("authorization", "Bearer re_e2e_KEYCANARY"))
        .and(body_partial_json(serde_json::json!({
            "from": "Outpost <noreply@outpost.test>",
            "to": ["ok@acme.test"],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "e-1"})))
        .mount(&resend)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_json(serde_json::json!({
            "statusCode": 422, "name": "validation_error",
            "message": "refused@acme.test is not allowed",
        })))
        .mount(&resend)
        .await;
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        env: vec![
            ("OUTPOST_MAIL_TRANSPORT", "resend".into()),
            ("OUTPOST_MAIL_FROM", "Outpost <noreply@outpost.test>".into()),
            ("OUTPOST_MAIL_RESEND_API_KEY", "re_e2e_KEYCANARY".into()),
            ("OUTPOST_MAIL_RESEND_BASE_URL", resend.uri()),
        ],
        ..Opts::default()
    });

    let mut b = Browser::new(&cp.ui);
    let page = b.post("/signin", &[("email", "ok@acme.test")]).await;
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("We sent a sign-in link"));
    let sent = resend.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["subject"], "Your Outpost sign-in link");
    let text = body["text"].as_str().unwrap();
    let token = text
        .split_whitespace()
        .find_map(|w| w.split("/auth/verify?token=").nth(1))
        .unwrap()
        .to_owned();
    let r = b.post("/auth/verify", &[("token", &token)]).await;
    assert_eq!(r.status(), 303, "the emailed link signs in");
    b.cookie = session_cookie(&r, "outpost_session");
    assert!(b.cookie.is_some());

    let page = Browser::new(&cp.ui)
        .post("/signin", &[("email", "refused@acme.test")])
        .await;
    assert_eq!(page.status(), 503);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("We could not send the sign-in email"),
        "{html}"
    );
    assert!(!html.contains("We sent a sign-in link"));

    let log = cp.log();
    assert!(log.contains("sign-in email not sent"), "{log}");
    assert!(log.contains("http_422"), "{log}");
    for leak in [
        "refused@acme.test",
        "ok@acme.test",
        "re_e2e_KEYCANARY",
        "not allowed",
        token.as_str(),
    ] {
        assert!(!log.contains(leak), "{leak} in the CP log");
    }
    assert!(!cp.data_dir().join("outbox").exists(), "no dev outbox");
}

#[test]
fn start_up_refuses_a_half_configured_transport_and_names_the_missing_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .arg("serve")
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env("OUTPOST_MAIL_TRANSPORT", "ses")
        .env("OUTPOST_MAIL_FROM", "noreply@outpost.test")
        .env("OUTPOST_MAIL_SES_REGION", "eu-west-1")
        .env("OUTPOST_MAIL_SES_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ses_secret_access_key") && err.contains("OUTPOST_MAIL_SES_SECRET_ACCESS_KEY"),
        "{err}"
    );
}
