//! The operator console (issue 7). Staff made operators by the real binary's
//! `operator add` see every workspace's metadata and none of its content; they suspend and
//! resume a workspace whose real node stops and starts answering, retry a refused
//! enrollment with a new bootstrap token, and force deprovisioning. Everyone else gets 404.

use crate::gateway::{bundle_for, try_enroll};
use crate::harness::*;
use diesel::prelude::*;
use outpost_protocol::*;
use std::process::{Child, Command, Stdio};

/// `control-plane operator …` against the CP's database: (exit success, stdout).
fn operator_cli(cp: &Cp, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .arg("operator")
        .args(args)
        .arg("--data-dir")
        .arg(cp.data_dir())
        .args(["--database-url", &cp.db_url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Makes `email` an operator through the CLI and signs them in.
pub(crate) async fn operator(cp: &Cp, email: &str) -> Browser {
    let (ok, out) = operator_cli(cp, &["add", "--email", email]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{email} is now an operator")),
        "{out}"
    );
    Browser::signin(cp, email).await
}

/// `(action, actor, ip, detail)` of every audit event.
pub(crate) type AuditLine = (String, Option<String>, Option<String>, String);

pub(crate) fn audit(cp: &Cp) -> Vec<AuditLine> {
    use control_plane::infra::schema::audit_events::dsl as a;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    a::audit_events
        .order(a::seq.asc())
        .select((a::action, a::actor, a::ip, a::detail))
        .load(&mut conn)
        .unwrap()
}

fn outbox_text(cp: &Cp) -> String {
    cp.settle_outbox();
    std::fs::read_dir(cp.data_dir().join("outbox"))
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

async fn page(b: &Browser, path: &str) -> (u16, String) {
    let r = b.get(path).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(b: &Browser, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = b.post_csrf(path, form).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn operators_see_metadata_only_and_suspend_resume_and_destroy_a_real_node() {
    let cp = Cp::start();
    let (owner, api, ws_id, console) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    let other = Api::new(&cp, "baker@beta.test");
    other.create_workspace("Beta Bakery").await;
    let agent = create_agent(
        &api,
        &console,
        &ws_id,
        crate::agents::agent_body("Ava", "retrieval", "", ""),
    )
    .await;
    // A visitor's message with a canary: it lives on the node only.
    let canary = format!("OPCANARY{}", uuid::Uuid::new_v4().simple());
    let mut visitor = Visitor::new(&console, &agent, Some("https://shop.example"));
    visitor.begin().await;
    let a = visitor
        .say(&format!("Please deliver order {canary} tomorrow"))
        .await;
    assert_eq!(a.event, "done", "answers while live: {a:?}");

    // Not an operator: the console does not exist for them, and no action lands.
    let ops_paths = [
        "/operator".to_owned(),
        format!("/operator/workspaces/{ws_id}"),
    ];
    for p in &ops_paths {
        assert_eq!(page(&owner, p).await.0, 404, "{p} for a customer");
    }
    let (status, _) = post(
        &owner,
        &format!("/operator/workspaces/{ws_id}/suspend"),
        &[("reason", "mine now")],
    )
    .await;
    assert_eq!(status, 404);
    let (_, mine) = page(&owner, "/workspaces").await;
    assert!(!mine.contains("Operator console"), "no link for customers");

    // The real binary makes an operator; adding twice changes nothing.
    let ops = operator(&cp, "ops@outpost.test").await;
    let (ok, out) = operator_cli(&cp, &["add", "--email", "ops@outpost.test"]);
    assert!(ok && out.contains("already an operator"), "{out}");
    let (ok, out) = operator_cli(&cp, &["list"]);
    assert!(ok && out.contains("ops@outpost.test"), "{out}");
    let ops_id = cp.user_id("ops@outpost.test").unwrap();

    // Every workspace, with its node's state; searchable by address.
    let (_, home) = page(&ops, "/workspaces").await;
    assert!(home.contains("href=\"/operator\">Operator console</a>"));
    let (status, list) = page(&ops, "/operator").await;
    assert_eq!(status, 200);
    assert!(
        list.contains("acme-dental") && list.contains("beta-bakery"),
        "{list}"
    );
    assert!(list.contains("state-healthy"), "{list}");
    let (_, found) = page(&ops, "/operator?q=BETA").await;
    assert!(
        found.contains("beta-bakery") && !found.contains("acme-dental"),
        "{found}"
    );
    let (status, detail) = page(&ops, &format!("/operator/workspaces/{ws_id}")).await;
    assert_eq!(status, 200);
    assert!(detail.contains("id=\"node-state\">healthy<"), "{detail}");
    assert!(detail.contains("1 owner"), "{detail}");
    // An operator is no member: no workspace page, no node console, no capability token.
    assert_eq!(page(&ops, &format!("/workspaces/{ws_id}")).await.0, 404);
    let r = ops
        .post_csrf(&format!("/workspaces/{ws_id}/console"), &[])
        .await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("location").is_none());
    assert!(!detail.contains("/console\"") && !detail.contains("handoff"));
    // Only failed nodes are retried.
    let (status, body) = post(&ops, &format!("/operator/workspaces/{ws_id}/retry"), &[]).await;
    assert_eq!(status, 409);
    assert!(body.contains("The node is healthy, not failed"), "{body}");

    // A suspension needs a reason the owners can read.
    let suspend = format!("/operator/workspaces/{ws_id}/suspend");
    let (status, body) = post(&ops, &suspend, &[("reason", "   ")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("Give the reason"), "{body}");
    let (status, _) = post(&ops, &suspend, &[("reason", "Reported  for\nspam")]).await;
    assert_eq!(status, 303);
    // The node acknowledges: it is suspended and answers no one.
    api.wait_node_state(&ws_id, "suspended", 30).await;
    let a = visitor.say("Anyone there?").await;
    assert_eq!(a.event, "queued", "a suspended node does not answer: {a:?}");
    let (_, ws_page) = page(&owner, &format!("/workspaces/{ws_id}")).await;
    assert!(
        ws_page.contains("Suspended by Outpost staff: Reported for spam"),
        "{ws_page}"
    );
    let node_home = console.get("/").await.text().await.unwrap();
    assert!(
        node_home.contains("Suspended by Outpost staff"),
        "the node says why in words: {node_home}"
    );
    assert!(
        outbox_text(&cp).contains("Reported for spam"),
        "owners emailed"
    );
    let (status, body) = post(&ops, &suspend, &[("reason", "again")]).await;
    assert_eq!(status, 409);
    assert!(body.contains("already suspended"), "{body}");

    // Resume: the node answers again.
    let resume = format!("/operator/workspaces/{ws_id}/resume");
    assert_eq!(post(&ops, &resume, &[]).await.0, 303);
    api.wait_node_state(&ws_id, "healthy", 30).await;
    let a = visitor.say("Back?").await;
    assert_eq!(a.event, "done", "answers after resume: {a:?}");
    let (status, body) = post(&ops, &resume, &[]).await;
    assert_eq!(status, 409);
    assert!(body.contains("not suspended by an operator"), "{body}");

    // The history is on the operator's page; no content anywhere on it.
    let (_, detail) = page(&ops, &format!("/operator/workspaces/{ws_id}")).await;
    assert!(detail.contains("Reported for spam") && detail.contains(&ops_id));
    let (_, list) = page(&ops, "/operator").await;
    for p in [&detail, &list] {
        assert!(!p.contains(&canary), "no content on operator pages");
    }

    // Force deprovision: a reason and the typed address, then the node is destroyed.
    let force = format!("/operator/workspaces/{ws_id}/deprovision");
    let (status, body) = post(&ops, &force, &[("reason", "Fraud"), ("confirm", "acme")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("To confirm, type the workspace"), "{body}");
    let (status, _) = post(&ops, &force, &[("reason", ""), ("confirm", "acme-dental")]).await;
    assert_eq!(status, 400);
    let (status, _) = post(
        &ops,
        &force,
        &[
            ("reason", "Fraudulent payments"),
            ("confirm", "acme-dental"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let d = api.wait_node_state(&ws_id, "destroyed", 60).await;
    assert!(d["node"]["receipt_body"].is_string(), "{d}");
    assert!(d["workspace"]["deleted_at"].is_i64(), "{d}");
    assert!(outbox_text(&cp).contains("Fraudulent payments"));
    let (_, detail) = page(&ops, &format!("/operator/workspaces/{ws_id}")).await;
    assert!(detail.contains("id=\"node-state\">destroyed<"));
    assert!(!detail.contains("id=\"force-deprovision\"") && !detail.contains(&canary));
    let (status, _) = post(
        &ops,
        &force,
        &[("reason", "again"), ("confirm", "acme-dental")],
    )
    .await;
    assert_eq!(status, 409);

    // Audited with the operator's id and IP; the chain verifies.
    let events = audit(&cp);
    let by = |action: &str| {
        events
            .iter()
            .filter(|e| e.0 == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(by("operator.added").len(), 1);
    assert_eq!(by("operator.added")[0].1.as_deref(), Some("cli"));
    for action in [
        "workspace.suspended",
        "workspace.resumed",
        "operator.force_deprovision",
    ] {
        let e = by(action);
        assert_eq!(e.len(), 1, "{action}: {e:?}");
        assert_eq!(e[0].1.as_deref(), Some(ops_id.as_str()), "{action}");
        assert_eq!(e[0].2.as_deref(), Some("127.0.0.1"), "{action}");
    }
    assert_eq!(by("workspace.suspended")[0].3, "operator");
    assert!(
        events
            .iter()
            .all(|e| !e.3.contains("spam") && !e.3.contains("Fraud")),
        "no free text in the audit log"
    );
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");

    // Removing the role takes effect at once, in the open session too.
    let (ok, out) = operator_cli(&cp, &["remove", "--email", "ops@outpost.test"]);
    assert!(ok && out.contains("no longer an operator"), "{out}");
    assert_eq!(page(&ops, "/operator").await.0, 404);
    let (ok, out) = operator_cli(&cp, &["remove", "--email", "ops@outpost.test"]);
    assert!(!ok && out.contains("not an operator"), "{out}");
    assert_eq!(
        audit(&cp)
            .iter()
            .filter(|e| e.0 == "operator.removed")
            .count(),
        1
    );
}

/// A `control-plane node run` started by the test (the `manual` provisioner starts none),
/// killed when dropped.
struct NodeProcess(Child);

impl NodeProcess {
    fn start(cp: &Cp, node_id: &str) -> NodeProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cp.dir.path().join(format!("node-{node_id}.log")))
            .unwrap();
        NodeProcess(
            Command::new(env!("CARGO_BIN_EXE_control-plane"))
                .args(["node", "run", "--data-dir"])
                .arg(cp.node_dir(node_id).join("data"))
                .env_remove("DATABASE_URL")
                .env("OUTPOST_NODE_MAX_BACKOFF_SECS", "2")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    async fn exited(&mut self) {
        let child = &mut self.0;
        wait_for("the node process to exit", 30, || {
            let done = child.try_wait().unwrap().is_some();
            async move { done.then_some(()) }
        })
        .await;
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn retrying_a_refused_enrollment_gives_the_node_a_new_token_and_it_enrolls() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@retry.test");
    let (ws_id, bundle) = bundle_for(&cp, &api, "Retry Clinic").await;
    let node_id = bundle.node_id.0.clone();
    // The bundle sat too long: its token expired before the node first started.
    {
        use control_plane::infra::schema::bootstrap_tokens::dsl as t;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        diesel::update(t::bootstrap_tokens.filter(t::node_id.eq(&node_id)))
            .set(t::expires_at.eq(0_i64))
            .execute(&mut conn)
            .unwrap();
    }
    let mut first = NodeProcess::start(&cp, &node_id);
    let d = api.wait_node_state(&ws_id, "failed", 60).await;
    assert_eq!(d["node"]["failed_step"], "enrolling", "{d}");
    assert_eq!(d["node"]["error_code"], "enroll_refused", "{d}");
    first.exited().await;

    let ops = operator(&cp, "ops@outpost.test").await;
    let detail_path = format!("/operator/workspaces/{ws_id}");
    let (_, detail) = page(&ops, &detail_path).await;
    assert!(
        detail.contains("Failed at enrolling: The control plane refused the node"),
        "{detail}"
    );
    assert!(detail.contains("id=\"retry\""));
    let (_, list) = page(&ops, "/operator").await;
    assert!(
        list.contains("enrolling: <code>enroll_refused</code>"),
        "{list}"
    );

    let (status, _) = post(&ops, &format!("/operator/workspaces/{ws_id}/retry"), &[]).await;
    assert_eq!(status, 303);
    // Provisioning runs again and writes a new single-use token.
    let path = cp.node_dir(&node_id).join("data/bootstrap.json");
    let renewed = wait_for("a new bootstrap token", 30, || async {
        let text = std::fs::read_to_string(&path).ok()?;
        let b: BootstrapBundle = serde_json::from_str(&text).ok()?;
        (b.token != bundle.token).then_some(b)
    })
    .await;
    assert_eq!(renewed.node_id.0, node_id);
    assert_eq!(
        renewed.listen_addr, bundle.listen_addr,
        "same node, same address"
    );
    let (status, _) = try_enroll(&cp, &bundle, &bundle.token).await;
    assert_eq!(status, 401, "the old token stays refused");
    let _second = NodeProcess::start(&cp, &node_id);
    let d = api.wait_node_state(&ws_id, "healthy", 60).await;
    assert!(d["node"]["enrolled_at"].is_i64());
    let (status, body) = post(&ops, &format!("/operator/workspaces/{ws_id}/retry"), &[]).await;
    assert_eq!(status, 409);
    assert!(body.contains("not failed"), "{body}");

    let (_, detail) = page(&ops, &detail_path).await;
    assert!(
        detail.contains("enrolling: enroll_refused retried"),
        "{detail}"
    );
    let retries: Vec<_> = audit(&cp)
        .into_iter()
        .filter(|e| e.0 == "operator.retry")
        .collect();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0].3, "enrolling:enroll_refused -> provisioning");
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_node_that_enrolls_while_suspended_is_suspended_and_payment_outlasts_the_operator() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "owner@late.test");
    let owner = Browser::signin(&cp, "owner@late.test").await;
    let (ws_id, bundle) = bundle_for(&cp, &api, "Late Node").await;
    let ops = operator(&cp, "ops@outpost.test").await;

    // Suspended while its node is still booting: nothing to send yet.
    let (status, _) = post(
        &ops,
        &format!("/operator/workspaces/{ws_id}/suspend"),
        &[("reason", "Terms review")],
    )
    .await;
    assert_eq!(status, 303);
    let node = try_enroll(&cp, &bundle, &bundle.token).await.1.unwrap();
    // The node that enrolls now is told at once, beside its configuration.
    let cmds = node.commands(&cp).await;
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert!(cmds
        .iter()
        .any(|c| matches!(c.kind, CommandKind::ApplyConfig { .. })));
    assert!(cmds.iter().any(|c| c.kind
        == CommandKind::Suspend {
            reason_code: "operator".into()
        }));
    let ok = CommandAck {
        ok: true,
        error_code: None,
        receipt: None,
    };
    for c in &cmds {
        assert_eq!(node.ack(&cp, &c.id, &ok).await.status(), 200);
    }
    api.wait_node_state(&ws_id, "suspended", 10).await;

    // An unpaid invoice suspends it too; lifting the operator's cause leaves it suspended.
    {
        use control_plane::infra::schema::workspace_suspensions::dsl as s;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        diesel::insert_into(s::workspace_suspensions)
            .values((
                s::id.eq(uuid::Uuid::new_v4().to_string()),
                s::workspace_id.eq(&ws_id),
                s::code.eq("payment"),
                s::reason.eq(""),
                s::actor.eq("system"),
                s::created_at.eq(time::OffsetDateTime::now_utc().unix_timestamp()),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    let (status, _) = post(&ops, &format!("/operator/workspaces/{ws_id}/resume"), &[]).await;
    assert_eq!(status, 303);
    assert!(
        node.commands(&cp).await.is_empty(),
        "no resume while unpaid"
    );
    let d = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await.1;
    assert_eq!(d["node"]["state"], "suspended");
    let (_, ws_page) = page(&owner, &format!("/workspaces/{ws_id}")).await;
    assert!(ws_page.contains("an invoice is unpaid"), "{ws_page}");
    assert!(!ws_page.contains("Terms review"));
    let (_, detail) = page(&ops, &format!("/operator/workspaces/{ws_id}")).await;
    assert!(detail.contains("Terms review") && detail.contains("payment"));
    let lifted: Vec<_> = audit(&cp)
        .into_iter()
        .filter(|e| e.0 == "workspace.suspension_lifted")
        .collect();
    assert_eq!(lifted.len(), 1, "{lifted:?}");
}
