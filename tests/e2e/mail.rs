//! Mail through the real binary: the sign-in link through a real transport (a local fake
//! of Resend's API), an error page when it refuses, and start-up refusing a half-configured
//! transport.

use crate::harness::*;

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
