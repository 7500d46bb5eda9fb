//! The outbound-URL policy end to end (issue 20, part 1): what the control plane and the
//! node call on a customer's behalf. The CP validated an OpenAI-compatible key by calling
//! any `base_url` (loopback included) and followed redirects; the agent endpoint rule was
//! bypassed by `user@host` URLs and private https addresses. Now: public https only,
//! names checked on the address connected to, no redirects, and local providers only
//! behind `--allow-local-providers`.

use crate::agents::{agent_body, fake, openai_stream};
use crate::harness::*;

/// Every bypass string of the issue, and numeric and IPv6 spellings of private
/// addresses: refused with or without the switch.
const BYPASSES: [&str; 12] = [
    "http://127.0.0.1@169.254.169.254/v1",
    "http://127.0.0.1:80@10.0.0.5/v1",
    "http://[::1]@10.0.0.5/v1",
    "http://127.attacker.example/v1",
    "https://169.254.169.254/v1",
    "https://10.0.0.5/v1",
    "https://2852039166/v1",
    "https://0xa9.0xfe.0xa9.0xfe/v1",
    "https://012.0.0.5/v1",
    "https://[::ffff:169.254.169.254]/v1",
    "https://[64:ff9b::a00:5]/v1",
    "https://[fd00::1]/v1",
];

async fn add_compatible_key(api: &Api, ws_id: &str, base_url: &str, key: &str) -> (u16, String) {
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/secrets"),
        )
        .json(&serde_json::json!({
            "kind": "openai_compatible_api_key",
            "value": key,
            "base_url": base_url,
        }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn create_agent_status(api: &Api, ws_id: &str, base_url: &str) -> (u16, String) {
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/agents"),
        )
        .json(&agent_body("Local", "openai_compatible", "llama", base_url))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// With the switch on (so the first hop, a loopback fake, is allowed): validation does
/// not follow a redirect, and private addresses stay refused, for keys and agents.
#[tokio::test]
async fn validation_follows_no_redirect_and_private_addresses_are_refused() {
    const KEY: &str = "sk-compatible-canary-7781";
    // Where the redirect points: another listener on this machine, which the policy
    // would allow with the switch on, so only "no redirects" keeps it untouched.
    let inner = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("{\"data\":[]}"))
        .mount(&inner)
        .await;
    let redirector = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/v1/models"))
        .respond_with(wiremock::ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/latest/meta-data/iam", inner.uri()).as_str(),
        ))
        .mount(&redirector)
        .await;
    let cp = Cp::start_with(Opts {
        env: vec![("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into())],
        ..Opts::default()
    });
    let (browser, api, ws_id, _node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;

    let (status, body) =
        add_compatible_key(&api, &ws_id, &format!("{}/v1", redirector.uri()), KEY).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("redirect, which is not followed"), "{body}");
    assert!(!body.contains(KEY));
    assert_eq!(redirector.received_requests().await.unwrap().len(), 1);
    assert!(
        inner.received_requests().await.unwrap().is_empty(),
        "the redirect was not followed"
    );

    for url in BYPASSES {
        let (status, body) = add_compatible_key(&api, &ws_id, url, KEY).await;
        assert_eq!(status, 400, "{url}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "url_not_allowed", "{url}: {body}");
        assert!(!body.contains(KEY));
        let (status, body) = create_agent_status(&api, &ws_id, url).await;
        assert_eq!(status, 400, "agent {url}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "url_not_allowed", "agent {url}: {body}");
    }
    // In words, on the page too.
    let r = browser
        .post_csrf(
            &format!("/workspaces/{ws_id}/secrets"),
            &[
                ("kind", "openai_compatible_api_key"),
                ("value", KEY),
                ("base_url", "https://169.254.169.254/v1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("This address points to a private network"),
        "{page}"
    );
    assert!(!page.contains(KEY));
    assert!(!cp.log().contains(KEY));
}

/// Without the switch: a CP configured with a provider on this machine does not start
/// (saying why); a customer's loopback endpoint is refused, for keys and agents; the
/// node does not call a loopback provider and reports why.
#[tokio::test]
async fn without_the_switch_local_providers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .arg("serve")
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env_remove("OUTPOST_ALLOW_LOCAL_PROVIDERS")
        .env("OUTPOST_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Started after all (it prints its UI address): stop it and fail, rather than hang.
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    if std::io::BufRead::lines(stdout).any(|l| l.is_ok_and(|l| l.trim().starts_with("UI:"))) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the control plane started with a provider on 127.0.0.1 and no switch");
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("openai_base_url") && err.contains("--allow-local-providers"),
        "{err}"
    );

    let openai = fake(
        "/v1/chat/completions",
        "text/event-stream",
        openai_stream(&["Should ", "not happen."]),
    )
    .await;
    let cp = Cp::start_with(Opts {
        env: vec![(
            "OUTPOST_NODE_OPENAI_BASE_URL",
            format!("{}/v1", openai.uri()),
        )],
        ..Opts::default()
    });
    let (_browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    for url in [
        format!("{}/v1", openai.uri()),
        "http://2130706433/v1".to_owned(),
        "http://0x7f.1/v1".to_owned(),
        "http://017700000001/v1".to_owned(),
        "http://[::ffff:127.0.0.1]/v1".to_owned(),
        "http://localhost:11434/v1".to_owned(),
        "https://localhost/v1".to_owned(),
        "https://127.0.0.1/v1".to_owned(),
        "http://[::1]:11434/v1".to_owned(),
    ] {
        let (status, body) = add_compatible_key(&api, &ws_id, &url, "sk-x-0001").await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body.contains("url_not_allowed"), "{url}: {body}");
        let (status, body) = create_agent_status(&api, &ws_id, &url).await;
        assert_eq!(status, 400, "agent {url}: {body}");
        assert!(body.contains("url_not_allowed"), "agent {url}: {body}");
    }

    // The node got the CP's setting: its loopback "OpenAI" is refused, not called.
    let r = node
        .post(
            "/settings/secrets",
            &[("kind", "openai_api_key"), ("value", "sk-node-0003")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let gpt = create_agent(
        &api,
        &node,
        &ws_id,
        agent_body("Gpt", "openai", "gpt-test", ""),
    )
    .await;
    let mut v = Visitor::new(&node, &gpt, Some("https://shop.example"));
    v.begin().await;
    let a = v.say("When do you open?").await;
    assert_eq!(
        a.text(),
        "Sorry, I don't know that yet. Our team will get back to you."
    );
    assert!(openai.received_requests().await.unwrap().is_empty());
    let llm = wait_for("a failing llm check at the CP", 30, || async {
        let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
        let checks: serde_json::Value =
            serde_json::from_str(d["node"]["checks_json"].as_str().unwrap_or("[]")).unwrap();
        let llm = checks
            .as_array()?
            .iter()
            .find(|c| c["name"] == "llm")?
            .clone();
        (llm["ok"] == false).then_some(llm)
    })
    .await;
    assert_eq!(llm["detail_code"], "url_not_allowed");
}
