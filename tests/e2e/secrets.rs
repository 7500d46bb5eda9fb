//! Secrets that never rest in the control plane (issue 5): validated with the provider
//! (a local fake), sealed to the node, delivered, used by the agent, removable; a
//! canary value appears in no CP table, file or log line and only sealed on the node.

use crate::agents::{agent_body, contains, fake, files_under, openai_stream, pg_rows_text};
use crate::harness::*;

const CANARY: &str = "sk-canary-5ecret-91f377aa";

#[tokio::test]
async fn a_secret_is_validated_sealed_delivered_used_and_never_kept_by_the_cp() {
    let openai = fake(
        "/v1/chat/completions",
        "text/event-stream",
        openai_stream(&["Delivered ", "key works."]),
    )
    .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/v1/models"))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {CANARY}").as_str(),
        ))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_string("{\"object\":\"list\",\"data\":[]}"),
        )
        .mount(&openai)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/v1/models"))
        .respond_with(
            wiremock::ResponseTemplate::new(401)
                .set_body_string("{\"error\":{\"code\":\"invalid_api_key\"}}"),
        )
        .mount(&openai)
        .await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cp = Cp::start_with(Opts {
        env: vec![
            // The fakes are on this machine.
            ("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into()),
            ("OUTPOST_OPENAI_BASE_URL", format!("{}/v1", openai.uri())),
            (
                "OUTPOST_NODE_OPENAI_BASE_URL",
                format!("{}/v1", openai.uri()),
            ),
            (
                "OUTPOST_ANTHROPIC_BASE_URL",
                format!("http://127.0.0.1:{down}/v1"),
            ),
        ],
        ..Opts::default()
    });
    let (browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    let page = format!("/workspaces/{ws_id}/secrets");

    // A key the provider rejects: a clear message, nothing stored.
    let r = browser
        .post_csrf(
            &page,
            &[("kind", "openai_api_key"), ("value", "sk-wrong-0000")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("rejected it: it is invalid or has been revoked. Nothing was saved."),
        "{body}"
    );
    assert!(!body.contains("sk-wrong-0000"));
    assert!(!body.contains("id=\"secrets\""), "nothing stored");
    // A provider that cannot be reached: said in words, nothing stored.
    let r = browser
        .post_csrf(
            &page,
            &[("kind", "anthropic_api_key"), ("value", "sk-ant-x")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("We could not reach the provider; check the address and try again later. Nothing was saved."));

    // The right key: accepted, sealed, delivered.
    let r = browser
        .post_csrf(&page, &[("kind", "openai_api_key"), ("value", CANARY)])
        .await;
    // Back to the page (a reload never sends the key again), with the notice.
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(back, format!("{page}?added=openai_api_key"));
    let body = browser.get(&back).await.text().await.unwrap();
    assert!(
        body.contains("OpenAI API key accepted and sealed"),
        "{body}"
    );
    assert!(body.contains("…77aa") && !body.contains(CANARY));
    wait_for("the node to store the key", 30, || async {
        let p = browser.get(&page).await.text().await.unwrap();
        p.contains("delivered to your node").then_some(())
    })
    .await;
    let settings = node.get("/settings").await.text().await.unwrap();
    assert!(
        settings.contains("…77aa") && settings.contains("delivered by the control plane"),
        "{settings}"
    );

    // The agent uses the delivered key.
    let agent = create_agent(
        &api,
        &node,
        &ws_id,
        agent_body("Gpt", "openai", "gpt-test", ""),
    )
    .await;
    let mut v = Visitor::new(&node, &agent, Some("https://shop.example"));
    let a = v.say("Hello").await;
    assert_eq!(a.text(), "Delivered key works.", "{a:?}");
    let chat = openai
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/v1/chat/completions")
        .expect("chat request");
    assert_eq!(
        chat.headers["authorization"],
        format!("Bearer {CANARY}").as_str()
    );

    // The CP kept no copy: database, data directory, log.
    let node_root = cp.data_dir().join("nodes");
    for f in files_under(&cp.data_dir(), Some(&node_root))
        .iter()
        .chain([cp.log_path()].iter())
    {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !contains(&bytes, CANARY),
            "canary secret in CP file {}",
            f.display()
        );
    }
    if cp.db_url.starts_with("postgres") {
        assert!(
            !pg_rows_text(&cp).contains(CANARY),
            "canary secret in a CP table"
        );
    }
    // The node has it only sealed.
    let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
    let node_dir = cp.node_dir(d["node"]["id"].as_str().unwrap());
    for f in files_under(&node_dir, None) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, CANARY),
            "canary secret readable in node file {}",
            f.display()
        );
    }

    // The same through the API: metadata only.
    let (status, list) = api
        .get_json(&format!("/api/v1/workspaces/{ws_id}/secrets"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["secrets"][0]["kind"], "openai_api_key");
    assert_eq!(list["secrets"][0]["last4"], "77aa");
    assert_eq!(list["secrets"][0]["status"], "delivered");
    assert!(!list.to_string().contains(CANARY));
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/secrets"),
        )
        .json(&serde_json::json!({"kind": "openai_api_key", "value": "sk-wrong-0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["code"], "secret_invalid");

    // Remove: gone from the node and from the CP's list.
    let r = browser
        .post_csrf(&format!("{page}/openai_api_key/remove"), &[])
        .await;
    assert_eq!(r.status(), 303);
    wait_for("the key to be removed", 30, || async {
        let p = browser.get(&page).await.text().await.unwrap();
        (!p.contains("…77aa")).then_some(())
    })
    .await;
    let settings = node.get("/settings").await.text().await.unwrap();
    assert!(!settings.contains("…77aa"));
}

#[tokio::test]
async fn channel_credentials_are_checked_with_telegram_and_the_graph_api() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let telegram = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/bot123456:good-token/getMe"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"ok":true,"result":{"id":123456,"is_bot":true,"first_name":"Acme","username":"acme_bot"}}"#,
        ))
        .mount(&telegram)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#),
        )
        .mount(&telegram)
        .await;
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v21.0/1098765"))
        .and(query_param("fields", "id"))
        .and(header("authorization", "Bearer EAAG-good"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"id":"1098765"}"#))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string(
            r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}"#,
        ))
        .mount(&graph)
        .await;
    let cp = Cp::start_with(Opts {
        env: vec![
            ("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into()),
            ("OUTPOST_TELEGRAM_BASE_URL", telegram.uri()),
            ("OUTPOST_GRAPH_BASE_URL", format!("{}/v21.0", graph.uri())),
        ],
        ..Opts::default()
    });
    let (browser, _api, ws_id, _node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    let page = format!("/workspaces/{ws_id}/secrets");
    let post = |form: Vec<(&'static str, &'static str)>| {
        let b = &browser;
        let p = page.clone();
        async move { b.post_csrf(&p, &form).await }
    };
    let r = post(vec![
        ("kind", "telegram_bot_token"),
        ("value", "123456:revoked"),
    ])
    .await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("invalid or has been revoked"));
    let r = post(vec![
        ("kind", "telegram_bot_token"),
        ("value", "123456:good-token"),
    ])
    .await;
    assert_eq!(r.status(), 303, "accepted: back to the page");
    let r = post(vec![
        ("kind", "whatsapp_access_token"),
        ("value", "EAAG-good"),
    ])
    .await;
    assert_eq!(
        r.status(),
        400,
        "the phone number id is needed to check the token"
    );
    assert!(r.text().await.unwrap().contains("phone number id"));
    let r = post(vec![
        ("kind", "whatsapp_access_token"),
        ("value", "EAAG-bad"),
        ("phone_number_id", "1098765"),
    ])
    .await;
    assert_eq!(r.status(), 400);
    let r = post(vec![
        ("kind", "whatsapp_access_token"),
        ("value", "EAAG-good"),
        ("phone_number_id", "1098765"),
    ])
    .await;
    assert_eq!(r.status(), 303, "accepted: back to the page");
    let listing = browser.get(&page).await.text().await.unwrap();
    assert!(listing.contains("Telegram bot token") && listing.contains("WhatsApp access token"));
    assert!(!listing.contains("good-token") && !listing.contains("EAAG-good"));
    // The phone number id the token was checked with goes to the node with it: the node
    // sends from that number.
    assert!(
        listing.contains("WhatsApp phone number id"),
        "saved with the token: {listing}"
    );
    wait_for("all three delivered", 30, || async {
        let p = browser.get(&page).await.text().await.unwrap();
        (p.matches("delivered to your node").count() == 3).then_some(())
    })
    .await;
}

/// A timeout, a refused connection and a failed TLS handshake get the same words: the
/// answer does not tell an open port from a closed one (issue 20).
#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_is_reported_and_nothing_is_stored() {
    let slow = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_delay(std::time::Duration::from_secs(15))
                .set_body_string("{\"data\":[]}"),
        )
        .mount(&slow)
        .await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cp = Cp::start_with(Opts {
        env: vec![
            ("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into()),
            ("OUTPOST_ANTHROPIC_BASE_URL", format!("{}/v1", slow.uri())),
            // Closed.
            (
                "OUTPOST_OPENAI_BASE_URL",
                format!("http://127.0.0.1:{down}/v1"),
            ),
            // Open, but not TLS: the handshake fails.
            (
                "OUTPOST_TELEGRAM_BASE_URL",
                format!("https://{}", slow.address()),
            ),
        ],
        ..Opts::default()
    });
    let (browser, _api, ws_id, _node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    let page = format!("/workspaces/{ws_id}/secrets");
    let r = browser
        .post_csrf(
            &page,
            &[("kind", "anthropic_api_key"), ("value", "sk-ant-slow-0001")],
        )
        .await;
    const SAME_WORDS: &str = "We could not reach the provider; check the address and try again later. Nothing was saved.";
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains(SAME_WORDS), "timeout: {body}");
    for (kind, value) in [
        ("openai_api_key", "sk-closed-port-0002"),
        ("telegram_bot_token", "123456:tls-failure"),
    ] {
        let r = browser
            .post_csrf(&page, &[("kind", kind), ("value", value)])
            .await;
        assert_eq!(r.status(), 400);
        let body = r.text().await.unwrap();
        assert!(body.contains(SAME_WORDS), "{kind}: {body}");
        assert!(!body.contains(value), "the value is never echoed");
    }
    assert!(!browser
        .get(&page)
        .await
        .text()
        .await
        .unwrap()
        .contains("id=\"secrets\""));
    assert!(!cp.log().contains("sk-ant-slow-0001"));
}
