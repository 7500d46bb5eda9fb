//! Input rules (issue 20, parts 3 and 4): names follow one rule (`outpost_common::Name`)
//! over the API and the forms; a NUL byte in any text is a 400, never a 500 (PostgreSQL
//! cannot store one), even in a node's report; a destroyed workspace's customer-written
//! text is deleted with it. Run on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

use crate::agents::{agent_body, contains, files_under, pg_rows_text};
use crate::gateway::{bundle_for, try_enroll};
use crate::harness::*;
use diesel::prelude::*;

fn manual() -> Cp {
    Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    })
}

fn workspace_names(cp: &Cp) -> Vec<String> {
    use control_plane::infra::schema::workspaces;
    let mut conn = cp.db().get().unwrap();
    workspaces::table
        .select(workspaces::name)
        .load(&mut conn)
        .unwrap()
}

fn agent_names(cp: &Cp) -> Vec<String> {
    use control_plane::infra::schema::agents;
    let mut conn = cp.db().get().unwrap();
    agents::table.select(agents::name).load(&mut conn).unwrap()
}

/// The names of the issue: a NUL byte, and a right-to-left override with a zero-width
/// space. Each is refused with a 400 and a sentence naming the rule; nothing is stored.
const BAD_NAMES: [(&str, &str, &str); 4] = [
    ("a\u{0}b", "invalid_text", "NUL"),
    ("\u{202e}abc\u{200b}", "invalid_name", "direction"),
    ("abc\u{200b}", "invalid_name", "zero-width"),
    ("two\nlines", "invalid_name", "control characters"),
];

#[tokio::test]
async fn names_with_nul_bidi_or_zero_width_characters_are_refused_over_the_api_and_the_forms() {
    let cp = manual();
    let owner = Browser::signin(&cp, "owner@acme.test").await;
    let api = Api::new(&cp, "owner@acme.test");
    let ws = api.create_workspace("Acme Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();

    for (bad, code, words) in BAD_NAMES {
        // Workspaces, over the API…
        let r = api
            .req(reqwest::Method::POST, "/api/v1/workspaces")
            .json(&serde_json::json!({ "name": bad }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "workspace {bad:?} over the API");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], code, "{bad:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains(words), "{v}");
        // …and the form.
        let r = owner.post_csrf("/workspaces", &[("name", bad)]).await;
        assert_eq!(r.status(), 400, "workspace {bad:?} over the form");
        assert!(r.text().await.unwrap().contains(words));

        // Agents, over the API…
        let mut body = agent_body(bad, "retrieval", "", "");
        body["name"] = serde_json::json!(bad);
        let r = api
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/workspaces/{ws_id}/agents"),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "agent {bad:?} over the API");
        let v: serde_json::Value = r.json().await.unwrap();
        // An agent's refusals keep the agent's code, as every other agent field's.
        let agent_code = if code == "invalid_name" {
            "invalid_agent"
        } else {
            code
        };
        assert_eq!(v["code"], agent_code, "{bad:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains(words), "{v}");
        // …and the form.
        let form = agent_form(bad);
        let r = owner
            .post_form(&format!("/workspaces/{ws_id}/agents"), &form)
            .await;
        assert_eq!(r.status(), 400, "agent {bad:?} over the form");
        assert!(r.text().await.unwrap().contains(words));
    }
    assert_eq!(workspace_names(&cp), ["Acme Dental"], "nothing else stored");
    assert!(agent_names(&cp).is_empty(), "no agent stored");

    // A good name is stored NFC and trimmed, and limits count characters, not bytes.
    let long = "é".repeat(80);
    let r = api
        .req(reqwest::Method::POST, "/api/v1/workspaces")
        .json(&serde_json::json!({ "name": format!("  Cafe\u{301} {}  ", &long[..2 * 70]) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(workspace_names(&cp).contains(&format!("Café {}", "é".repeat(70))));
    let r = owner
        .post_form(&format!("/workspaces/{ws_id}/agents"), &agent_form(&long))
        .await;
    assert_eq!(
        r.status(),
        303,
        "80 two-byte characters fit the 80-character limit"
    );
    assert_eq!(agent_names(&cp), [long]);
}

fn agent_form(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", name.to_owned()),
        ("greeting", "Hello!".into()),
        ("instructions", "Be brief.".into()),
        ("language", "en".into()),
        ("fallback_message", "Sorry, we will get back to you.".into()),
        ("day0", "on".into()),
        ("open", "09:00".into()),
        ("close", "17:00".into()),
        ("time_zone", "Europe/Paris".into()),
        ("provider", "retrieval".into()),
        ("model", "".into()),
        ("base_url", "".into()),
        ("allowed_origins", "https://shop.example".into()),
    ]
}

trait PostForm {
    async fn post_form(&self, path: &str, form: &[(&'static str, String)]) -> reqwest::Response;
}

impl PostForm for Browser {
    async fn post_form(&self, path: &str, form: &[(&'static str, String)]) -> reqwest::Response {
        let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Browser::post_csrf(self, path, &f).await
    }
}

#[tokio::test]
async fn a_nul_byte_in_any_text_is_a_400_never_a_500_and_does_not_wedge_a_nodes_reports() {
    let cp = manual();
    let owner = Browser::signin(&cp, "owner@acme.test").await;
    let api = Api::new(&cp, "owner@acme.test");
    let (ws_id, bundle) = bundle_for(&cp, &api, "Acme Dental").await;

    // The API: a body, a query string, a path.
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            format!("/api/v1/workspaces/{ws_id}/invitations"),
            Some(serde_json::json!({"email": "x\u{0}@acme.test", "role": "member"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/workspaces/{ws_id}?immediately=true&confirm=a%00b"),
            None,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/workspaces/a%00b".into(),
            None,
        ),
    ] {
        let mut r = api.req(method.clone(), &path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 400, "{method} {path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "invalid_text", "{method} {path}");
    }
    // Whatever type the body declares (actix's JSON extractor takes any `*/json`), and no
    // hiding it in a compressed body, which the extractors would decompress.
    let invite = format!("/api/v1/workspaces/{ws_id}/invitations");
    let r = api
        .req(reqwest::Method::POST, &invite)
        .header("content-type", "text/json")
        .body(r#"{"email": "x\u0000@acme.test", "role": "member"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "text/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_text");
    let r = api
        .req(reqwest::Method::POST, &invite)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "gzip");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "unsupported_content_type");
    // A page: the error page, in words.
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/invite"),
            &[("email", "x\u{0}@acme.test"), ("role", "member")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("NUL"));

    // A node whose report carries a NUL (here in `version`) gets a 400, which it drops
    // and moves on from; the next report is taken.
    let token = bundle.token.clone();
    let (status, node) = try_enroll(&cp, &bundle, &token).await;
    assert_eq!(status, 200);
    let node = node.unwrap();
    let report = |seq: i64, version: &str| {
        serde_json::json!({
            "seq": seq, "produced_at": 0, "version": version, "uptime_s": seq,
            "checks": [{"name": "storage\u{0}", "ok": true}], "counts": [],
            "disk_used_bytes": 1, "queue_depth": 0
        })
    };
    let r = node
        .client
        .post(format!("{}/v1/node/report", cp.gateway))
        .json(&report(1, "1.0\u{0}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a report with a NUL is refused, not a 500");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_text");
    let mut ok = report(2, "1.0");
    ok["checks"] = serde_json::json!([]);
    let r = node
        .client
        .post(format!("{}/v1/node/report", cp.gateway))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the next report goes through");
    assert!(!cp.log().contains("internal error"), "no 500 anywhere");
}

#[tokio::test]
async fn a_destroyed_workspaces_customer_written_text_is_deleted_with_it() {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let canary = |what: &str| format!("forget{what}{}", &tag[..12]);
    let (name, greeting, instructions, fallback) = (
        canary("name"),
        canary("greeting"),
        canary("instructions"),
        canary("fallback"),
    );
    let invitee = format!("{}@acme.test", canary("invitee"));
    let reason = canary("reason");
    let fingerprint = canary("fingerprint");
    let canaries = [
        &name,
        &greeting,
        &instructions,
        &fallback,
        &invitee,
        &reason,
        &fingerprint,
    ];

    let cp = manual();
    let owner = Browser::signin(&cp, "owner@acme.test").await;
    let api = Api::new(&cp, "owner@acme.test");
    let (ws_id, bundle) = bundle_for(&cp, &api, "Forgetful Dental").await;
    let (_, node) = try_enroll(&cp, &bundle, &bundle.token.clone()).await;
    let node = node.unwrap();
    node.takes_initial_config(&cp).await;

    // An agent (its configuration command stays queued: the node does not take it), an
    // invitation, a suspension with a reason, a secret's metadata.
    let mut body = agent_body(&name, "retrieval", "", "");
    body["greeting"] = serde_json::json!(greeting);
    body["instructions"] = serde_json::json!(instructions);
    body["fallback_message"] = serde_json::json!(fallback);
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/agents"),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/invitations"),
        )
        .json(&serde_json::json!({"email": invitee, "role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ops = crate::operator::operator(&cp, "staff@outpost.test").await;
    let r = ops
        .post_csrf(
            &format!("/operator/workspaces/{ws_id}/suspend"),
            &[("reason", &reason)],
        )
        .await;
    assert!(r.status().is_redirection(), "suspended: {}", r.status());
    {
        // Secret metadata as `secrets::store` keeps it (the validation against a provider
        // is `tests/e2e/secrets.rs`'s business).
        use control_plane::infra::schema::workspace_secrets as s;
        let mut conn = cp.db().get().unwrap();
        diesel::insert_into(s::table)
            .values((
                s::workspace_id.eq(&ws_id),
                s::kind.eq("openai"),
                s::fingerprint.eq(&fingerprint),
                s::last4.eq("WXYZ"),
                s::status.eq("delivered"),
                s::updated_at.eq(1),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    let everything = rows_and_files(&cp);
    for c in canaries {
        assert!(contains(everything.as_bytes(), c), "{c} is stored before");
    }

    // Delete now.
    let slug = {
        let (_, v) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
        v["workspace"]["slug"].as_str().unwrap().to_owned()
    };
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}?immediately=true&confirm={slug}"),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "deleted: {}", r.status());

    // None of the text is left: in no row, and (SQLite) in no byte of the database files.
    {
        let mut conn = cp.db().get().unwrap();
        use control_plane::infra::schema::{
            agents, invitations, workspace_secrets, workspace_suspensions,
        };
        let n: i64 = agents::table
            .filter(agents::workspace_id.eq(&ws_id))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(n, 0, "agents deleted");
        let n: i64 = invitations::table
            .filter(invitations::workspace_id.eq(&ws_id))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(n, 0, "invitations deleted");
        let n: i64 = workspace_secrets::table
            .filter(workspace_secrets::workspace_id.eq(&ws_id))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(n, 0, "secret metadata deleted");
        let reasons: Vec<String> = workspace_suspensions::table
            .filter(workspace_suspensions::workspace_id.eq(&ws_id))
            .select(workspace_suspensions::reason)
            .load(&mut conn)
            .unwrap();
        assert!(reasons.iter().all(String::is_empty), "{reasons:?}");
    }
    // The emails announcing these changes (the suspension's reason, the invitation) are
    // sent by the outbox worker a moment later; once sent, their bodies are emptied, and
    // the invitee's address goes with the workspace.
    cp.settle_outbox();
    let everything = rows_and_files(&cp);
    for c in canaries {
        assert!(!contains(everything.as_bytes(), c), "{c} is still stored");
    }
    // What the retention schedule keeps: the audit trail of what happened.
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
    drop(owner);
}

/// Every row (PostgreSQL) or every byte of the CP's database files (SQLite: main file
/// and WAL, where deleted rows would linger without `secure_delete`), as one text.
fn rows_and_files(cp: &Cp) -> String {
    if cp.db_url.starts_with("postgres") {
        return pg_rows_text(cp);
    }
    {
        // Move the WAL into the main file so freed pages are where we look, as a
        // checkpoint would in time; then read both.
        let mut conn = cp.db().get().unwrap();
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .ok();
    }
    let mut all = vec![];
    for f in files_under(&cp.data_dir(), Some(&cp.data_dir().join("nodes"))) {
        let name = f.to_string_lossy().into_owned();
        if name.contains("sqlite") {
            all.extend(std::fs::read(&f).unwrap_or_default());
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}
