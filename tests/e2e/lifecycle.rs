//! Data lifecycle on the control plane (issue 6): a cancelled workspace keeps its node,
//! suspended, for exports during the post-termination window, then the node is
//! deprovisioned with a verified receipt; export metadata and retention-sweep counts a
//! node reports are shown without any download link; closing an account.

use crate::gateway::{bundle_for, try_enroll};
use crate::harness::*;
use diesel::prelude::*;
use outpost_protocol::*;

fn audit_actions(cp: &Cp) -> Vec<(String, String, Option<String>)> {
    use control_plane::schema::audit_events::dsl as a;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    a::audit_events
        .order(a::seq.asc())
        .select((a::action, a::detail, a::ip))
        .load(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn a_cancelled_workspace_keeps_its_suspended_node_for_exports_then_it_is_destroyed() {
    let window = 25;
    let cp = Cp::start_with(Opts {
        env: vec![("OUTPOST_EXPORT_WINDOW_SECS", window.to_string())],
        ..Opts::default()
    });
    let (browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    let agent = create_agent(
        &api,
        &node,
        &ws_id,
        crate::agents::agent_body("Ava", "retrieval", "", ""),
    )
    .await;
    let mut visitor = Visitor::new(&node, &agent, Some("https://shop.example"));
    visitor.begin().await;
    assert_eq!(
        visitor.say("Hello?").await.event,
        "done",
        "answers while live"
    );
    let page = browser.get(&format!("/workspaces/{ws_id}")).await;
    let page = page.text().await.unwrap();
    assert!(page.contains("stays available for exports for 25 seconds"));

    // A member who is not an owner cannot cancel (there are no invitations yet, so a
    // stranger stands in: 404, the workspace is not even visible to them).
    let stranger = Api::new(&cp, "stranger@elsewhere.test");
    let r = stranger
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Cancel: the answer says when the node will be deprovisioned.
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let d: serde_json::Value = r.json().await.unwrap();
    let until = d["deprovision_after"].as_i64().expect("deprovision_after");
    assert!(
        (before + window..=before + window + 5).contains(&until),
        "{d}"
    );
    assert_eq!(d["export_window_until"], until);

    // The node acknowledges the suspension: channels stop, the console still opens.
    api.wait_node_state(&ws_id, "suspended", 15).await;
    let a = visitor.say("Anyone there?").await;
    assert_eq!(a.event, "queued", "a suspended node answers no one: {a:?}");
    let console = NodeConsole::open(&browser, &ws_id).await;
    let home = console.get("/").await;
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("Suspended"));
    // Exporting still works on the suspended node, and the CP learns of it from the
    // node's own reports: metadata only.
    let r = console.post("/exports", &[("ttl_hours", "24")]).await;
    assert_eq!(r.status(), 303, "export started on the suspended node");
    let path = format!("/api/v1/workspaces/{ws_id}");
    let export = wait_for("the node to report its finished export", 20, || async {
        let (_, v) = api.get_json(&path).await;
        let e = v["exports"].get(0)?.clone();
        (e["state"] == "ready").then_some(e)
    })
    .await;
    assert_eq!(export["scope"], "workspace");
    assert!(export["size_bytes"].as_i64().unwrap() > 0);
    let page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Cancelled — your node stays available for exports until"),
        "{page}"
    );
    assert!(page.contains(">Delete now</button>") && page.contains("Open node console"));
    let card = page.split("id=\"exports\"").nth(1).unwrap();
    let card = card.split("</div>").next().unwrap();
    assert!(card.contains("<td>workspace</td><td>ready</td>"), "{card}");
    assert!(
        !card.contains("href") && !card.contains("/download"),
        "{card}"
    );
    assert!(
        !page.contains("/cancel\""),
        "no second cancellation offered"
    );
    // Cancelling again changes nothing.
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["deprovision_after"],
        until
    );
    // The address stays taken while the node still answers at it.
    let r = api
        .req(reqwest::Method::POST, "/api/v1/workspaces")
        .json(&serde_json::json!({"name": "Acme Dental"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // When the window ends the sweeper deprovisions the node; its receipt verifies.
    let d = api.wait_node_state(&ws_id, "destroyed", 90).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(now >= until, "not destroyed before the window ended");
    let receipt: serde_json::Value =
        serde_json::from_str(d["node"]["receipt_body"].as_str().unwrap()).unwrap();
    assert_eq!(receipt["format"], "outpost-destruction-receipt/1");
    assert!(d["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["detail"] == "destruction receipt verified"));
    assert_eq!(d["export_window_until"], serde_json::Value::Null);
    let node_id = d["node"]["id"].as_str().unwrap();
    wait_for("node directory removed", 30, || async {
        (!cp.node_dir(node_id).exists()).then_some(())
    })
    .await;
    let page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("stays available for exports until"));
    assert!(page.contains("id=\"receipt\""));

    let actions = audit_actions(&cp);
    let names: Vec<&str> = actions.iter().map(|a| a.0.as_str()).collect();
    let cancelled = names.iter().position(|a| *a == "workspace.cancelled");
    let ended = names
        .iter()
        .position(|a| *a == "workspace.export_window_ended");
    let destroyed = names.iter().position(|a| *a == "node.destroyed");
    assert!(
        cancelled < ended && ended < destroyed && cancelled.is_some(),
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|a| **a == "workspace.cancelled")
            .count(),
        1,
        "cancelling twice records once"
    );
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
}

#[tokio::test]
async fn delete_now_during_the_window_and_owners_only() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    let browser = Browser::signin(&cp, "owner@acme.test").await;
    let (ws, bundle) = bundle_for(&cp, &api, "Acme Dental").await;
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    node.takes_initial_config(&cp).await;

    // Cancel from the page: the node is sent `suspend` (reason `cancelled`) and is shown
    // suspended once it acknowledges.
    let r = browser
        .post_csrf(&format!("/workspaces/{ws}/cancel"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let cmds = node.commands(&cp).await;
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(
        cmds[0].kind,
        CommandKind::Suspend {
            reason_code: "cancelled".into()
        }
    );
    let ok = CommandAck {
        ok: true,
        error_code: None,
        receipt: None,
    };
    assert_eq!(node.ack(&cp, &cmds[0].id, &ok).await.status(), 200);
    let d = api.wait_node_state(&ws, "suspended", 10).await;
    let until = d["workspace"]["deprovision_after"].as_i64().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        until - now > 29 * 24 * 3600,
        "the default window is 30 days"
    );
    // Reports from a suspended node keep it suspended.
    let r = crate::gateway::report_with(&node, &cp, 1, vec![], vec![]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        api.get_json(&format!("/api/v1/workspaces/{ws}")).await.1["node"]["state"],
        "suspended"
    );

    // "Delete now" ends the window: deprovision at once.
    let r = browser
        .post_csrf(&format!("/workspaces/{ws}/delete"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let cmds = node.commands(&cp).await;
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(cmds[0].kind, CommandKind::Deprovision);
    let d = api.wait_node_state(&ws, "deprovisioning", 10).await;
    assert_eq!(d["workspace"]["deprovision_after"], serde_json::Value::Null);
    let page = browser.get(&format!("/workspaces/{ws}")).await;
    let page = page.text().await.unwrap();
    assert!(!page.contains("stays available for exports"));
    let names: Vec<String> = audit_actions(&cp).into_iter().map(|a| a.0).collect();
    assert!(names.contains(&"workspace.cancelled".to_owned()));
    assert!(names.contains(&"workspace.deleted".to_owned()));
}

#[tokio::test]
async fn export_metadata_and_sweep_counts_show_without_any_link() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    let browser = Browser::signin(&cp, "owner@acme.test").await;
    let (ws, bundle) = bundle_for(&cp, &api, "Acme Dental").await;
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    node.takes_initial_config(&cp).await;

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (whole, one) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let export = |id: &uuid::Uuid, scope: &str, state: &str, size: i64| ExportMeta {
        id: id.to_string(),
        scope: scope.into(),
        state: state.into(),
        size_bytes: size,
        created_at: now - 60,
        expires_at: now - 60 + 24 * 3600,
    };
    let exports = vec![
        export(&whole, "workspace", "ready", 3 * 1024 * 1024 / 2),
        export(&one, "contact", "running", 0),
        // Garbage is dropped quietly; the report still counts.
        export(&uuid::Uuid::new_v4(), "everything", "ready", 1),
        ExportMeta {
            id: "../../etc/passwd".into(),
            ..export(&whole, "workspace", "ready", 1)
        },
        export(&uuid::Uuid::new_v4(), "workspace", "ready", -5),
        ExportMeta {
            expires_at: now + 365 * 24 * 3600,
            ..export(&uuid::Uuid::new_v4(), "workspace", "ready", 1)
        },
    ];
    let sweeps = vec![
        RetentionSweep {
            at: now - 30,
            messages_deleted: 1204,
            contacts_erased: 3,
            exports_deleted: 2,
        },
        RetentionSweep {
            at: now - 20,
            messages_deleted: -1,
            contacts_erased: 0,
            exports_deleted: 0,
        },
    ];
    // A node that (wrongly) sent a download link would not get it stored: the field is
    // not part of the protocol and is never read.
    let mut body = serde_json::to_value(Report {
        seq: 1,
        produced_at: now,
        version: "test".into(),
        uptime_s: 1,
        checks: vec![],
        counts: vec![],
        disk_used_bytes: 1,
        queue_depth: 0,
        exports,
        retention_sweeps: sweeps,
    })
    .unwrap();
    body["exports"][0]["url"] = "https://acme.example/exports/dl?sig=LINKCANARY".into();
    let r = node
        .client
        .post(format!("{}/v1/node/report", cp.gateway))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<ReportAck>().await.unwrap().accepted);

    let d = api.wait_node_state(&ws, "healthy", 10).await;
    let listed = d["exports"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let by_id = |id: &uuid::Uuid| {
        listed
            .iter()
            .find(|e| e["id"] == id.to_string())
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(&whole)["state"], "ready");
    assert_eq!(by_id(&whole)["size_bytes"], 3 * 1024 * 1024 / 2);
    assert_eq!(by_id(&one)["scope"], "contact");
    assert_eq!(d["last_retention_sweep"]["messages_deleted"], 1204);
    assert_eq!(d["last_retention_sweep"]["at"], now - 30);

    let page = browser
        .get(&format!("/workspaces/{ws}"))
        .await
        .text()
        .await
        .unwrap();
    let card = page.split("id=\"exports\"").nth(1).unwrap();
    let card = card.split("</div>").next().unwrap();
    assert!(card.contains("Downloads are served only by your node"));
    assert!(card.contains("open the node console"));
    assert!(card.contains("<td>workspace</td><td>ready</td><td>1.5 MiB</td>"));
    assert!(card.contains("<td>contact</td><td>running</td>"));
    assert!(!card.contains("<a ") && !card.contains("href"), "{card}");
    assert!(card.contains(
        "deleted 1204 messages, erased 3 inactive contacts and deleted 2 expired exports"
    ));
    assert!(!page.contains("LINKCANARY") && !page.contains("everything"));
    assert!(!d.to_string().contains("LINKCANARY"));
    let mine = browser.get("/account/data.json").await;
    let mine: serde_json::Value = mine.json().await.unwrap();
    assert_eq!(
        mine["workspaces"][0]["exports"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        mine["workspaces"][0]["retention_sweeps"][0]["messages_deleted"],
        1204
    );

    // The first sighting of each export is audited once, with its scope only.
    let created = |cp: &Cp| -> Vec<String> {
        audit_actions(cp)
            .into_iter()
            .filter(|a| a.0 == "export.created")
            .map(|a| a.1)
            .collect()
    };
    let mut scopes = created(&cp);
    scopes.sort();
    assert_eq!(scopes, vec!["contact", "workspace"]);

    // A later report moves the state on and adds nothing to the audit log; a replay of an
    // older report cannot move it back.
    let mut later = vec![export(&whole, "workspace", "expired", 3 * 1024 * 1024 / 2)];
    later.push(export(&one, "contact", "ready", 2048));
    let r = crate::gateway::report_with(&node, &cp, 3, later, vec![]).await;
    assert!(r.json::<ReportAck>().await.unwrap().accepted);
    let stale = vec![export(&whole, "workspace", "running", 0)];
    let r = crate::gateway::report_with(&node, &cp, 2, stale, vec![]).await;
    assert!(r.json::<ReportAck>().await.unwrap().accepted);
    let d = api.get_json(&format!("/api/v1/workspaces/{ws}")).await.1;
    let listed = d["exports"].as_array().unwrap();
    let state_of = |id: &uuid::Uuid| {
        listed.iter().find(|e| e["id"] == id.to_string()).unwrap()["state"].clone()
    };
    assert_eq!(state_of(&whole), "expired");
    assert_eq!(state_of(&one), "ready");
    assert_eq!(created(&cp).len(), 2);

    // Nothing but the metadata is in the database.
    use control_plane::schema::node_exports::dsl as e;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    let rows: Vec<(String, String, String)> = e::node_exports
        .select((e::export_id, e::scope, e::state))
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| uuid::Uuid::parse_str(&r.0).is_ok() && !r.0.contains("LINKCANARY")));
}

#[tokio::test]
async fn closing_an_account_deletes_it_once_no_workspace_depends_on_it() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let browser = Browser::signin(&cp, "leaver@acme.test").await;
    let api = Api::new(&cp, "leaver@acme.test");
    let (ws_id, bundle) = bundle_for(&cp, &api, "Leaver Clinic").await;
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    node.takes_initial_config(&cp).await;

    // A wrong confirmation, then the sole owner of a live workspace: refused, in words.
    let r = browser
        .post_csrf("/account/close", &[("confirm", "someone@else.test")])
        .await;
    assert_eq!(r.status(), 400);
    let r = browser
        .post_csrf("/account/close", &[("confirm", "leaver@acme.test")])
        .await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You are the only owner of Leaver Clinic"));
    // A cancelled workspace still in its export window also holds the account open.
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = browser
        .post_csrf("/account/close", &[("confirm", "leaver@acme.test")])
        .await;
    assert_eq!(r.status(), 409);
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}?immediately=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let r = browser
        .post_csrf("/account/close", &[("confirm", "Leaver@Acme.test")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/signin");
    // The session and the API token no longer work.
    let r = browser.get("/workspaces").await;
    assert_eq!(r.status(), 303);
    assert_eq!(api.get_json("/api/v1/workspaces").await.0, 401);

    // Nothing about the account is left but the user id in the audit log.
    use control_plane::schema::{api_tokens, magic_links, memberships, sessions, users};
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    let n: i64 = users::table
        .filter(users::email.eq("leaver@acme.test"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(n, 0);
    for (table, n) in [
        (
            "sessions",
            sessions::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
        ),
        (
            "api_tokens",
            api_tokens::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
        ),
        (
            "magic_links",
            magic_links::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
        ),
        (
            "memberships",
            memberships::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
        ),
    ] {
        assert_eq!(n, 0, "{table}");
    }
    let closed: Vec<_> = audit_actions(&cp)
        .into_iter()
        .filter(|a| a.0 == "account.closed")
        .collect();
    assert_eq!(closed, vec![("account.closed".into(), String::new(), None)]);
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
}
