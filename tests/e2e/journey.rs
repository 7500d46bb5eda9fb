//! The user journey of the walking skeleton: sign in, create a workspace, watch its node
//! come up, open the node console through a capability token, delete the workspace and
//! get the destruction receipt.

use crate::harness::*;

#[tokio::test]
async fn user_journey_from_sign_in_to_destruction_receipt() {
    let cp = Cp::start();
    let browser = Browser::signin(&cp, "owner@acme.test").await;

    // Create "Acme Dental" through the page; the slug is derived.
    let r = browser
        .post_csrf("/workspaces", &[("name", "Acme Dental"), ("slug", "")])
        .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let ws_id = loc.trim_start_matches("/workspaces/").to_owned();
    let page = browser.get(&loc).await.text().await.unwrap();
    assert!(page.contains("Acme Dental") && page.contains("acme-dental"));
    assert!(
        page.contains("hx-get=\"/workspaces/"),
        "status polls live with htmx"
    );

    // A second workspace with the same slug is refused with a clear message.
    let r = browser
        .post_csrf("/workspaces", &[("name", "Acme Dental"), ("slug", "")])
        .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("already taken"));

    // The node goes requested → provisioning → booting → enrolling → healthy.
    let api = Api::new(&cp, "owner@acme.test");
    let d = api.wait_node_state(&ws_id, "healthy", 90).await;
    let node = &d["node"];
    let node_id = node["id"].as_str().unwrap().to_owned();
    assert_eq!(node["region"], "local");
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    assert!(node["last_report_at"].as_i64().is_some() && node["uptime_s"].as_i64().is_some());
    let details: Vec<String> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    for step in [
        "requested → provisioning",
        "provisioning → booting",
        "booting → enrolling",
        "enrolling → healthy",
    ] {
        assert!(
            details.iter().any(|d| d == step),
            "timeline has {step}: {details:?}"
        );
    }
    let partial = browser
        .get(&format!("/workspaces/{ws_id}/node-status"))
        .await
        .text()
        .await
        .unwrap();
    assert!(partial.contains("id=\"node-state\">healthy<"), "{partial}");

    // Open the node console: the CP hands a capability token to the node, which serves
    // its own page on its own port.
    let r = browser
        .post_csrf(&format!("/workspaces/{ws_id}/console"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let handoff = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        handoff.starts_with("http://acme-dental.localhost:"),
        "{handoff}"
    );
    let port: u16 = handoff
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    ring_default();
    let node_http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("acme-dental.localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let r = node_http.get(&handoff).send().await.unwrap();
    assert_eq!(r.status(), 200, "valid token accepted");
    let cookie = session_cookie(&r, "outpost_node_session").expect("node session cookie");
    let console = format!("http://acme-dental.localhost:{port}/");
    let r = node_http
        .get(&console)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Acme Dental") && body.contains(&node_id),
        "node console shows its workspace"
    );
    // Replayed token and missing session are refused.
    assert_eq!(node_http.get(&handoff).send().await.unwrap().status(), 401);
    assert_eq!(node_http.get(&console).send().await.unwrap().status(), 401);

    // Delete the workspace now (no export window; cancellation with a window is
    // `lifecycle.rs`): the node destroys itself and sends a signed receipt.
    let node_dir = cp.node_dir(&node_id);
    assert!(node_dir.join("data").exists());
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}?immediately=true&confirm=acme-dental"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let d = api.wait_node_state(&ws_id, "destroyed", 90).await;
    let receipt: serde_json::Value =
        serde_json::from_str(d["node"]["receipt_body"].as_str().unwrap()).unwrap();
    assert_eq!(receipt["format"], "outpost-destruction-receipt/1");
    assert_eq!(receipt["node_id"], node_id);
    assert!(receipt["destroyed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "master_key"));
    wait_for("node directory removed", 30, || async {
        (!node_dir.exists()).then_some(())
    })
    .await;
    let page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("destroyed") && page.contains("id=\"receipt\""));
    let r = browser.get(&format!("/workspaces/{ws_id}/receipt")).await;
    assert_eq!(r.status(), 200);
    // The console is gone with the node.
    assert!(
        node_http.get(&console).send().await.is_err(),
        "node process stopped"
    );

    // The audit chain is intact and recorded the journey.
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    assert_eq!(control_plane::audit::verify(&mut conn).unwrap(), None);
    let log = cp.log();
    assert!(!log.contains("outpost_node_session="), "no cookies in logs");
}
