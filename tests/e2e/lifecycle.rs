//! Data lifecycle on the control plane (issue 6): a cancelled workspace keeps its node,
//! suspended, for exports during the post-termination window, then the node is
//! deprovisioned with a verified receipt; export metadata and retention-sweep counts a
//! node reports are shown without any download link; closing an account.

use crate::gateway::{bundle_for, try_enroll};
use crate::harness::*;
use diesel::prelude::*;
use outpost_protocol::*;

fn audit_actions(cp: &Cp) -> Vec<(String, String, Option<String>)> {
    use control_plane::infra::schema::audit_events::dsl as a;
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
    // The export taken during the window was destroyed with the node: none is shown ready.
    let exports = card_in(&page, "exports");
    assert!(
        exports.contains(
            "The node was destroyed, and its exports with it: there is nothing left to download."
        ),
        "{exports}"
    );
    assert!(!exports.contains("<td>ready</td>"), "{exports}");
    assert_eq!(d["exports"][0]["state"], "destroyed", "{d}");

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

/// The owners' view of a workspace page, and its JSON.
async fn page_of(browser: &Browser, ws: &str) -> String {
    browser
        .get(&format!("/workspaces/{ws}"))
        .await
        .text()
        .await
        .unwrap()
}

/// The part of `page` from the element with `id` to the end of its card.
fn card_in<'a>(page: &'a str, id: &str) -> &'a str {
    let from = page
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no #{id} in {page}"));
    from.split("\n</div>").next().unwrap()
}

#[tokio::test]
async fn cancel_and_delete_now_need_a_confirmation_and_the_owners_are_emailed() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    let browser = Browser::signin(&cp, "owner@acme.test").await;
    let (ws, bundle) = bundle_for(&cp, &api, "Acme Dental").await;
    crate::mail::add_member(&cp, &ws, "co-owner@acme.test", "owner");
    crate::mail::add_member(&cp, &ws, "admin@acme.test", "admin");
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    node.takes_initial_config(&cp).await;
    let path = format!("/api/v1/workspaces/{ws}");

    // The page asks for both confirmations, in the browser already.
    let page = page_of(&browser, &ws).await;
    let cancel = card_in(&page, "cancel");
    assert!(
        cancel.contains(
            "<input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> I understand that my channels stop now"
        ),
        "{cancel}"
    );
    assert!(card_in(&page, "cancel-workspace").contains("Until then an owner can reactivate it."));
    let delete = card_in(&page, "delete-now");
    assert!(
        delete.contains("Type the address <code>acme-dental</code> to confirm"),
        "{delete}"
    );
    assert!(
        delete.contains("name=\"confirm\" type=\"text\" required pattern=\"acme-dental\""),
        "{delete}"
    );

    // Without the checkbox the server refuses too: 400, the reason on the page, nothing
    // cancelled and nothing sent to the node.
    for form in [vec![], vec![("confirm", "on")]] {
        let r = browser
            .post_csrf(&format!("/workspaces/{ws}/cancel"), &form)
            .await;
        assert_eq!(r.status(), 400, "{form:?}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("Nothing was cancelled. Tick “I understand that my channels stop now”"),
            "{text}"
        );
        assert!(
            text.contains("id=\"cancel-workspace\""),
            "the page itself: {text}"
        );
    }
    // Without the typed address (or with another one), "Delete workspace and destroy its
    // node now" is refused the same way.
    for typed in ["", "acme", "acme-dental-2", "other-clinic"] {
        let r = browser
            .post_csrf(&format!("/workspaces/{ws}/delete"), &[("confirm", typed)])
            .await;
        assert_eq!(r.status(), 400, "{typed:?}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("Nothing was deleted. To delete the workspace and destroy its node now, type its address “acme-dental” exactly"),
            "{text}"
        );
    }
    // The API's immediate deletion needs the same address.
    for q in ["?immediately=true", "?immediately=true&confirm=acme"] {
        let r = api
            .req(reqwest::Method::DELETE, &format!("{path}{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let code = r.json::<serde_json::Value>().await.unwrap()["code"].clone();
        assert!(
            code == "confirmation_required" || code == "confirmation_mismatch",
            "{code}"
        );
    }
    let d = api.get_json(&path).await.1;
    assert_eq!(d["workspace"]["deleted_at"], serde_json::Value::Null, "{d}");
    assert_eq!(d["node"]["state"], "enrolling", "untouched: {d}");
    assert!(
        node.commands(&cp).await.is_empty(),
        "nothing sent to the node"
    );
    assert!(crate::mail::outbox(&cp)
        .iter()
        .all(|m| !m.1.contains("cancelled") && !m.1.contains("deleted")));

    // Cancel, ticked: the node is sent `suspend` (reason `cancelled`) and is shown
    // suspended once it acknowledges.
    let r = browser
        .post_csrf(&format!("/workspaces/{ws}/cancel"), &[("confirm", "yes")])
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
    // Both owners are told, the admin is not; the email links the page and says until
    // when the exports stay and that it can be undone.
    let mails = crate::mail::wait_mails(&cp, "Outpost: Acme Dental is cancelled", 2).await;
    let mut to: Vec<&str> = mails.iter().map(|m| m.0.as_str()).collect();
    to.sort();
    assert_eq!(to, ["co-owner@acme.test", "owner@acme.test"]);
    let body = &mails[0].2;
    assert!(body.contains("was cancelled by owner@acme.test"), "{body}");
    assert!(
        body.contains("An owner can reactivate the workspace"),
        "{body}"
    );
    assert!(
        body.contains(&format!("{}/workspaces/{ws}\r\n", cp.ui)),
        "{body}"
    );
    assert_eq!(body.matches("://").count(), 1, "{body}");
    // Reports from a suspended node keep it suspended; the export the owner takes during
    // the window is listed, ready on the node.
    let export = ExportMeta {
        id: uuid::Uuid::new_v4().to_string(),
        scope: "workspace".into(),
        state: "ready".into(),
        size_bytes: 2048,
        created_at: now - 60,
        expires_at: now + 24 * 3600,
    };
    let r = crate::gateway::report_with(&node, &cp, 1, vec![export], vec![]).await;
    assert_eq!(r.status(), 200);
    let d = api.get_json(&path).await.1;
    assert_eq!(d["node"]["state"], "suspended");
    assert_eq!(d["exports"][0]["state"], "ready");
    assert!(card_in(&page_of(&browser, &ws).await, "exports")
        .contains("<td>workspace</td><td>ready</td>"));

    // The Cancelled card's "Delete now" asks for the address too.
    let page = page_of(&browser, &ws).await;
    let window = card_in(&page, "export-window");
    assert!(window.contains(">Reactivate</button>"), "{window}");
    assert!(
        window.contains("required pattern=\"acme-dental\"")
            && window.contains(">Delete now</button>"),
        "{window}"
    );
    let r = browser
        .post_csrf(&format!("/workspaces/{ws}/delete"), &[("confirm", "acme")])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Nothing was deleted."));
    assert!(node.commands(&cp).await.is_empty());
    assert_eq!(
        api.get_json(&path).await.1["workspace"]["deprovision_after"],
        until
    );

    // "Delete now" with the address ends the window: deprovision at once.
    let r = browser
        .post_csrf(
            &format!("/workspaces/{ws}/delete"),
            &[("confirm", " acme-dental ")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let cmds = node.commands(&cp).await;
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(cmds[0].kind, CommandKind::Deprovision);
    let d = api.wait_node_state(&ws, "deprovisioning", 10).await;
    assert_eq!(d["workspace"]["deprovision_after"], serde_json::Value::Null);
    let page = page_of(&browser, &ws).await;
    assert!(!page.contains("stays available for exports"));
    assert!(!page.contains("/reactivate\""), "too late to reactivate");
    // The export went with the node: no row offers it as ready any more.
    let exports = card_in(&page, "exports");
    assert!(
        exports.contains(
            "The node is being destroyed, and its exports with it: there is nothing left to download."
        ),
        "{exports}"
    );
    assert!(!exports.contains("<td>ready</td>") && !exports.contains("open the node console"));
    assert_eq!(d["exports"][0]["state"], "destroyed", "{d}");
    let mails = crate::mail::wait_mails(&cp, "Outpost: Acme Dental is deleted", 2).await;
    assert!(mails
        .iter()
        .all(|m| m.2.contains("was deleted by owner@acme.test") && m.0 != "admin@acme.test"));
    // Deleted: reactivating is refused, in words.
    let r = browser
        .post_csrf(&format!("/workspaces/{ws}/reactivate"), &[])
        .await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("it can no longer be reactivated"));
    let names: Vec<String> = audit_actions(&cp).into_iter().map(|a| a.0).collect();
    assert!(names.contains(&"workspace.cancelled".to_owned()));
    assert!(names.contains(&"workspace.deleted".to_owned()));
    assert!(!names.contains(&"workspace.reactivated".to_owned()));
}

#[tokio::test]
async fn reactivating_in_the_window_resumes_the_node_but_not_other_suspensions() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@acme.test");
    let browser = Browser::signin(&cp, "owner@acme.test").await;
    let (ws, bundle) = bundle_for(&cp, &api, "Acme Dental").await;
    crate::mail::add_member(&cp, &ws, "admin@acme.test", "admin");
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    node.takes_initial_config(&cp).await;
    let path = format!("/api/v1/workspaces/{ws}");
    let ok = CommandAck {
        ok: true,
        error_code: None,
        receipt: None,
    };
    let cancel = || async {
        let r = browser
            .post_csrf(&format!("/workspaces/{ws}/cancel"), &[("confirm", "yes")])
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
        assert_eq!(node.ack(&cp, &cmds[0].id, &ok).await.status(), 200);
    };

    cancel().await;
    api.wait_node_state(&ws, "suspended", 10).await;
    // Only owners may reactivate.
    let admin = Browser::signin(&cp, "admin@acme.test").await;
    let r = admin
        .post_csrf(&format!("/workspaces/{ws}/reactivate"), &[])
        .await;
    assert_eq!(r.status(), 403);
    assert!(!page_of(&admin, &ws).await.contains("/reactivate\""));

    // Reactivate: the cancellation is lifted, the node is sent `resume` and comes back.
    let r = browser
        .post_csrf(&format!("/workspaces/{ws}/reactivate"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let cmds = node.commands(&cp).await;
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(cmds[0].kind, CommandKind::Resume);
    assert_eq!(node.ack(&cp, &cmds[0].id, &ok).await.status(), 200);
    let d = api.wait_node_state(&ws, "healthy", 10).await;
    assert_eq!(d["workspace"]["deleted_at"], serde_json::Value::Null, "{d}");
    assert_eq!(d["workspace"]["deprovision_after"], serde_json::Value::Null);
    assert_eq!(d["export_window_until"], serde_json::Value::Null);
    let page = page_of(&browser, &ws).await;
    assert!(!page.contains("id=\"export-window\""), "{page}");
    assert!(!page.contains("id=\"suspended\""));
    assert!(page.contains("id=\"cancel-workspace\"") && page.contains("id=\"agents\""));
    let mails = crate::mail::wait_mails(&cp, "Outpost: Acme Dental is reactivated", 1).await;
    assert_eq!(mails.len(), 1, "owners only: {mails:?}");
    assert_eq!(mails[0].0, "owner@acme.test");
    assert!(mails[0]
        .2
        .contains("Its agents answer on every channel again."));
    // Reactivating twice changes nothing (API as well).
    let r = api
        .req(reqwest::Method::POST, &format!("{path}/reactivate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(node.commands(&cp).await.is_empty());

    // An operator suspends the workspace; the owner cancels and reactivates: the
    // operator's suspension stays, so no `resume` reaches the node.
    {
        use control_plane::infra::schema::users;
        let ops = Browser::signin(&cp, "ops@outpost.test").await;
        let mut conn = cp.db().get().unwrap();
        diesel::update(users::table.filter(users::email.eq("ops@outpost.test")))
            .set(users::is_operator.eq(true))
            .execute(&mut conn)
            .unwrap();
        let r = ops
            .post_csrf(
                &format!("/operator/workspaces/{ws}/suspend"),
                &[("reason", "Spam complaints")],
            )
            .await;
        assert_eq!(r.status(), 303);
    }
    let cmds = node.commands(&cp).await;
    assert_eq!(
        cmds[0].kind,
        CommandKind::Suspend {
            reason_code: "operator".into()
        }
    );
    assert_eq!(node.ack(&cp, &cmds[0].id, &ok).await.status(), 200);
    api.wait_node_state(&ws, "suspended", 10).await;
    cancel().await;
    let r = api
        .req(reqwest::Method::POST, &format!("{path}/reactivate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: serde_json::Value = r.json().await.unwrap();
    assert_eq!(d["workspace"]["deleted_at"], serde_json::Value::Null, "{d}");
    assert_eq!(d["suspensions"][0]["code"], "operator", "{d}");
    assert!(node.commands(&cp).await.is_empty(), "still suspended");
    assert_eq!(api.get_json(&path).await.1["node"]["state"], "suspended");
    let page = page_of(&browser, &ws).await;
    assert!(card_in(&page, "suspended").contains("Spam complaints"));
    let mails = crate::mail::wait_mails(&cp, "Outpost: Acme Dental is reactivated", 2).await;
    assert!(mails[1].2.contains("still suspended"), "{mails:?}");

    let details: Vec<String> = audit_actions(&cp)
        .into_iter()
        .filter(|a| a.0 == "workspace.reactivated")
        .map(|a| a.1)
        .collect();
    assert_eq!(details, ["resumed", "still_suspended=operator"]);
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
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
        epoch: None,
        produced_at: now,
        version: "test".into(),
        uptime_s: 1,
        checks: vec![],
        counts: vec![],
        disk_used_bytes: 1,
        queue_depth: 0,
        exports,
        retention_sweeps: sweeps,
        waiting_conversations: 0,
        ai_counts: vec![],
        booking_counts: vec![],
        call_counts: vec![],
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
    use control_plane::infra::schema::node_exports::dsl as e;
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
            &format!("/api/v1/workspaces/{ws_id}?immediately=true&confirm=leaver-clinic"),
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
    use control_plane::infra::schema::{api_tokens, magic_links, memberships, sessions, users};
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
