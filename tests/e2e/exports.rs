//! Issue 6 — exports through the real binaries: an owner exports the workspace from the
//! node console, downloads it with the signed link (no session, as a contact would),
//! and every file verifies against `manifest.json`. Altered links and links presented
//! to another workspace's node are refused; the CP learns only id, size and times.

use crate::harness::*;
use std::io::Read as _;

/// `href` of the first download link on the node's Exports page, once there is one.
async fn download_link(node: &NodeConsole) -> String {
    wait_for("the export to finish", 60, || async {
        let page = node.get("/exports").await.text().await.unwrap();
        page.split("href=\"")
            .find_map(|p| p.split('"').next().filter(|l| l.contains("/download?")))
            .map(|l| l.replace("&amp;", "&"))
    })
    .await
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_workspace_export_downloads_with_its_link_and_verifies_against_the_manifest() {
    let cp = Cp::start();
    let (browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@export.test", "Export Shop").await;
    let agent = create_agent(
        &api,
        &node,
        &ws_id,
        crate::agents::agent_body("Ava", "retrieval", "", ""),
    )
    .await;
    let canary_msg = format!("EXPORT-CANARY-{}", uuid::Uuid::new_v4().simple());
    let canary_kb = format!("KBEXPORT{}", uuid::Uuid::new_v4().simple());
    let r = node
        .upload(
            "/kb/upload",
            "returns.md",
            format!("# Returns\n\nReturns are free within 30 days. Code {canary_kb}.").as_bytes(),
        )
        .await;
    assert_eq!(r.status(), 303, "knowledge-base upload");
    let mut visitor = Visitor::new(&node, &agent, Some("https://shop.example"));
    visitor.begin().await;
    visitor
        .say(&format!("Can I return shoes? {canary_msg}"))
        .await;

    // Wrong link lifetimes are refused in words; 24 h is the default choice
    let r = node.post("/exports", &[("ttl_hours", "720")]).await;
    assert_eq!(r.status(), 400);
    let r = node.post("/exports", &[("ttl_hours", "24")]).await;
    assert_eq!(r.status(), 303);
    let link = download_link(&node).await;
    let path = link
        .strip_prefix(&node.base)
        .unwrap_or_else(|| panic!("the link points at the node itself: {link}"))
        .to_owned();

    // The link alone downloads it: no session cookie
    let r = node
        .client
        .get(format!("{}{path}", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"outpost-export-export-shop-workspace-"));
    let bytes = r.bytes().await.unwrap().to_vec();
    let zip_sha = sha256_hex(&bytes);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let mut manifest = String::new();
    zip.by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut manifest)
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["format"], "outpost-export/1");
    assert_eq!(manifest["workspace_id"], ws_id.as_str());
    let mut all = String::new();
    for f in manifest["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let mut body = Vec::new();
        zip.by_name(name).unwrap().read_to_end(&mut body).unwrap();
        assert_eq!(
            sha256_hex(&body),
            f["sha256"],
            "{name} matches the manifest"
        );
        assert_eq!(body.len() as u64, f["bytes"].as_u64().unwrap(), "{name}");
        all.push_str(&String::from_utf8(body).unwrap());
    }
    assert!(
        all.contains(&canary_msg),
        "the visitor's message is in the export"
    );
    assert!(
        all.contains(&canary_kb),
        "the knowledge base is in the export"
    );
    let page = node.get("/exports").await.text().await.unwrap();
    assert!(
        page.contains(&zip_sha),
        "the console shows the zip's SHA-256"
    );

    // Altered links are refused: another signature, a later expiry, no signature
    let forged = path.replace("sig=", "sig=x");
    let later = {
        let (head, rest) = path.split_once("expires=").unwrap();
        let (exp, tail) = rest.split_once('&').unwrap();
        format!(
            "{head}expires={}&{tail}",
            exp.parse::<i64>().unwrap() + 86_400
        )
    };
    let unsigned = path.split('?').next().unwrap().to_owned();
    for p in [&forged, &later, &unsigned] {
        let r = node
            .client
            .get(format!("{}{p}", node.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{p}");
    }

    // Another workspace's node does not honour this node's link
    let (_b2, _api2, _ws2, other) =
        workspace_with_node(&cp, "other@export.test", "Other Shop").await;
    let r = other
        .client
        .get(format!("{}{path}", other.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a link from another node is refused");

    // The CP learns metadata only: the export is listed, the link is nowhere
    let export = wait_for("the node to report its export", 30, || async {
        let (_, v) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
        let e = v["exports"].get(0)?.clone();
        (e["state"] == "ready").then_some(e)
    })
    .await;
    assert!(export["size_bytes"].as_i64().unwrap() > 0);
    let sig = path.split("sig=").nth(1).unwrap();
    let cp_page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!cp_page.contains("/download?") && !cp_page.contains(sig));
    let log = cp.log();
    for secret in [sig, canary_msg.as_str(), canary_kb.as_str()] {
        assert!(!log.contains(secret), "the CP log never carries {secret}");
    }

    // Deleting it at once: the same link is gone (410), not forged
    let id = path.split('/').nth(2).unwrap().to_owned();
    let r = node.post(&format!("/exports/{id}/delete"), &[]).await;
    assert_eq!(r.status(), 303);
    let r = node
        .client
        .get(format!("{}{path}", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
}
