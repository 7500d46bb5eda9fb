//! Stripe billing end to end (issue 7): the real control plane against a local fake Stripe
//! (wiremock on 127.0.0.1 answering Stripe's JSON to Stripe's form-encoded requests, which
//! the tests read back), and webhooks signed exactly as Stripe signs them
//! (`Stripe-Signature: t=…,v1=hex(HMAC-SHA256(secret, "t.body"))`, computed here with ring,
//! independently of the CP's own code).

use crate::harness::*;
use diesel::prelude::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET_KEY: &str = "sk_test_outpost_fake_key";
const WEBHOOK_SECRET: &str = "whsec_outpost_test_secret";
const OWNER: &str = "owner@acme.test";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Fake Stripe with the calls that need no per-test data: creating a Checkout Session and a
/// portal session, cancelling a subscription.
async fn fake_stripe() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
            "status": "open", "payment_status": "unpaid",
            "url": "https://checkout.stripe.com/c/pay/cs_test_1"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "bps_test_1", "object": "billing_portal.session",
            "url": "https://billing.stripe.com/p/session/test_1"
        })))
        .mount(&server)
        .await;
    server
}

/// A completed, paid Checkout Session for `ws` as `GET /v1/checkout/sessions/{id}` returns it.
fn paid_session(ws: &str) -> Value {
    paid_session_for(ws, "sub_test_1")
}

fn paid_session_for(ws: &str, sub: &str) -> Value {
    json!({
        "id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
        "status": "complete", "payment_status": "paid",
        "client_reference_id": ws, "metadata": {"workspace_id": ws},
        "customer": "cus_test_1", "subscription": sub,
        "customer_details": {"email": OWNER, "name": "Ada Lovelace", "address": {"country": "FR"}},
        "url": null
    })
}

async fn mount_session(server: &MockServer, ws: &str) {
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(paid_session(ws)))
        .mount(server)
        .await;
}

fn subscription(ws: &str, status: &str) -> Value {
    json!({
        "id": "sub_test_1", "object": "subscription", "status": status,
        "customer": "cus_test_1", "metadata": {"workspace_id": ws},
        "items": {"object": "list", "data": [{
            "id": "si_1", "object": "subscription_item", "current_period_end": 1_900_000_000_i64,
            "price": {"id": "price_starter", "object": "price"}
        }]}
    })
}

fn invoice(id: &str, ws: &str, status: &str, amount: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": "cus_test_1", "number": format!("OUT-{id}"),
        "amount_due": amount, "amount_paid": if status == "paid" { amount } else { 0 },
        "currency": "eur", "status": status, "created": now() - 60,
        "hosted_invoice_url": format!("https://invoice.stripe.com/i/{id}"),
        "customer_email": OWNER, "customer_name": "Ada Lovelace",
        "parent": {"type": "subscription_details", "subscription_details": {
            "subscription": "sub_test_1", "metadata": {"workspace_id": ws}}}
    })
}

fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "created": created,
        "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind, "data": {"object": object}
    })
    .to_string()
}

/// `Stripe-Signature` for `body` at `t` with `secret`, as Stripe computes it.
fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

async fn post_webhook(cp: &Cp, signature: Option<&str>, body: &str) -> (u16, Value) {
    let mut r = no_redirect_client()
        .post(format!("{}/stripe/webhook", cp.ui))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned());
    if let Some(s) = signature {
        r = r.header("Stripe-Signature", s);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Delivers `body` signed with the right secret, now.
async fn deliver(cp: &Cp, body: &str) -> (u16, Value) {
    post_webhook(
        cp,
        Some(&stripe_signature(WEBHOOK_SECRET, now(), body)),
        body,
    )
    .await
}

fn billing_cp(stripe: &MockServer, provisioner: &'static str, grace_secs: i64) -> Cp {
    Cp::start_with(Opts {
        provisioner,
        env: vec![
            ("OUTPOST_STRIPE_SECRET_KEY", SECRET_KEY.into()),
            ("OUTPOST_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            (
                "OUTPOST_STRIPE_PRICES",
                "starter=price_starter,pro=price_pro".into(),
            ),
            ("OUTPOST_STRIPE_API_BASE", stripe.uri()),
            ("OUTPOST_BILLING_GRACE_SECS", grace_secs.to_string()),
        ],
        ..Opts::default()
    })
}

/// Form fields of the requests the fake received on `path`.
async fn requests_to(
    server: &MockServer,
    m: &str,
    p: &str,
) -> Vec<(Vec<(String, String)>, String)> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .map(|r| {
            let auth = r
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (serde_urlencoded::from_bytes(&r.body).unwrap(), auth)
        })
        .collect()
}

fn field<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn count_nodes(cp: &Cp, ws: &str) -> i64 {
    use control_plane::infra::schema::nodes::dsl as n;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    n::nodes
        .filter(n::workspace_id.eq(ws))
        .count()
        .get_result(&mut conn)
        .unwrap()
}

fn count_provision_jobs(cp: &Cp) -> i64 {
    use control_plane::infra::schema::jobs::dsl as j;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    j::jobs
        .filter(j::kind.eq("provision"))
        .count()
        .get_result(&mut conn)
        .unwrap()
}

fn audit_count(cp: &Cp, action: &str) -> usize {
    use control_plane::infra::schema::audit_events::dsl as a;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    a::audit_events
        .filter(a::action.eq(action))
        .count()
        .get_result::<i64>(&mut conn)
        .unwrap() as usize
}

fn account(cp: &Cp, ws: &str) -> (Option<String>, Option<String>, Option<i64>) {
    use control_plane::infra::schema::billing_accounts::dsl as b;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    b::billing_accounts
        .find(ws)
        .select((
            b::stripe_customer_id,
            b::subscription_status,
            b::activated_at,
        ))
        .first(&mut conn)
        .unwrap()
}

fn invoice_row(cp: &Cp, id: &str) -> (String, Option<i64>) {
    use control_plane::infra::schema::invoices::dsl as i;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    i::invoices
        .find(id)
        .select((i::status, i::first_failed_at))
        .first(&mut conn)
        .unwrap()
}

fn stripe_event_count(cp: &Cp) -> i64 {
    use control_plane::infra::schema::stripe_events::dsl as e;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    e::stripe_events.count().get_result(&mut conn).unwrap()
}

fn commands_of(cp: &Cp, node: &str) -> Vec<String> {
    use control_plane::infra::schema::commands::dsl as c;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    c::commands
        .filter(c::node_id.eq(node))
        .order(c::created_at_ms.asc())
        .select(c::kind)
        .load(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn without_stripe_keys_billing_is_off_and_nodes_come_at_once() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, OWNER);
    let browser = Browser::signin(&cp, OWNER).await;
    let ws = api.create_workspace("Acme Dental").await;
    let id = ws["workspace"]["id"].as_str().unwrap();
    assert_eq!(ws["node"]["state"], "requested", "{ws}");
    assert_eq!(ws["billing"], Value::Null);
    assert!(ws.get("checkout_url").is_none());
    assert_eq!(count_nodes(&cp, id), 1);

    let page = browser.get(&format!("/workspaces/{id}/billing")).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Billing is off"), "{page}");
    assert!(!browser
        .get(&format!("/workspaces/{id}"))
        .await
        .text()
        .await
        .unwrap()
        .contains("Waiting for payment"));
    for p in ["checkout", "portal"] {
        let r = browser
            .post_csrf(
                &format!("/workspaces/{id}/billing/{p}"),
                &[("plan", "starter")],
            )
            .await;
        assert_eq!(r.status(), 404, "{p} with billing off");
    }
    let body = event("evt_1", "invoice.paid", now(), json!({}));
    let (status, _) = deliver(&cp, &body).await;
    assert_eq!(status, 404, "no webhook endpoint with billing off");
}

#[tokio::test]
async fn a_partial_stripe_configuration_refuses_to_start_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env("OUTPOST_STRIPE_SECRET_KEY", "sk_test_canary_partial")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OUTPOST_STRIPE_WEBHOOK_SECRET"), "{err}");
    assert!(err.contains("OUTPOST_STRIPE_PRICES"), "{err}");
    assert!(
        !err.contains("canary"),
        "the key itself is never printed: {err}"
    );
}

#[tokio::test]
async fn webhooks_are_verified_deduplicated_and_applied_in_order() {
    let stripe = fake_stripe().await;
    let cp = billing_cp(&stripe, "manual", 3600);
    let api = Api::new(&cp, OWNER);
    let browser = Browser::signin(&cp, OWNER).await;

    // Creating through the API answers with the Checkout URL and makes no node.
    let r = api
        .req(reqwest::Method::POST, "/api/v1/workspaces")
        .json(&json!({"name": "Acme Dental", "plan": "pro"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ws: Value = r.json().await.unwrap();
    let id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ws["checkout_url"],
        "https://checkout.stripe.com/c/pay/cs_test_1"
    );
    assert_eq!(ws["node"], Value::Null);
    assert_eq!(ws["billing"]["waiting_for_payment"], true);
    assert_eq!(count_nodes(&cp, &id), 0);
    let sent = requests_to(&stripe, "POST", "/v1/checkout/sessions").await;
    assert_eq!(sent.len(), 1);
    let (form, auth) = &sent[0];
    assert_eq!(auth, &format!("Bearer {SECRET_KEY}"));
    assert_eq!(field(form, "mode"), Some("subscription"));
    assert_eq!(field(form, "line_items[0][price]"), Some("price_pro"));
    assert_eq!(field(form, "client_reference_id"), Some(id.as_str()));
    assert_eq!(field(form, "metadata[workspace_id]"), Some(id.as_str()));
    assert_eq!(field(form, "customer_email"), Some(OWNER));

    // Unsigned, wrongly signed, stale and future deliveries: 400 and nothing recorded.
    let completed = event(
        "evt_checkout",
        "checkout.session.completed",
        now(),
        paid_session(&id),
    );
    let (s, v) = post_webhook(&cp, None, &completed).await;
    assert_eq!(s, 400, "{v}");
    let wrong = stripe_signature("whsec_someone_else", now(), &completed);
    assert_eq!(post_webhook(&cp, Some(&wrong), &completed).await.0, 400);
    let stale = stripe_signature(WEBHOOK_SECRET, now() - 301 - 30, &completed);
    let (s, v) = post_webhook(&cp, Some(&stale), &completed).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("signature_outside_tolerance"))
    );
    let future = stripe_signature(WEBHOOK_SECRET, now() + 400, &completed);
    assert_eq!(post_webhook(&cp, Some(&future), &completed).await.0, 400);
    let altered = completed.replace("cus_test_1", "cus_attacker");
    let good_sig = stripe_signature(WEBHOOK_SECRET, now(), &completed);
    assert_eq!(post_webhook(&cp, Some(&good_sig), &altered).await.0, 400);
    assert_eq!(stripe_event_count(&cp), 0);
    assert_eq!(count_nodes(&cp, &id), 0);
    assert_eq!(account(&cp, &id).2, None, "not activated");

    // A valid one: activated, one node; the duplicate is acknowledged and changes nothing.
    // A rolled secret (two v1 values) verifies on either.
    let t = now();
    let rolled = format!(
        "{},v1={}",
        stripe_signature(WEBHOOK_SECRET, t, &completed),
        "00".repeat(32)
    );
    let (s, v) = post_webhook(&cp, Some(&rolled), &completed).await;
    assert_eq!((s, v["duplicate"].as_bool()), (200, Some(false)), "{v}");
    assert_eq!(count_nodes(&cp, &id), 1);
    let (s, v) = deliver(&cp, &completed).await;
    assert_eq!((s, v["duplicate"].as_bool()), (200, Some(true)), "{v}");
    // The return page racing the webhook (another event id, same session) adds nothing.
    mount_session(&stripe, &id).await;
    let r = browser
        .get(&format!(
            "/workspaces/{id}/billing/return?session_id=cs_test_1"
        ))
        .await;
    assert_eq!(r.status(), 303);
    let again = event(
        "evt_checkout_async",
        "checkout.session.async_payment_succeeded",
        now(),
        paid_session(&id),
    );
    assert_eq!(deliver(&cp, &again).await.0, 200);
    assert_eq!(count_nodes(&cp, &id), 1, "one node");
    assert_eq!(count_provision_jobs(&cp), 1, "one provisioning job");
    assert_eq!(audit_count(&cp, "billing.activated"), 1);
    let (customer, status, activated) = account(&cp, &id);
    assert_eq!(customer.as_deref(), Some("cus_test_1"));
    assert_eq!(status.as_deref(), Some("active"));
    assert!(activated.is_some());

    // Subscription events out of order: the newer past_due stays over the older active.
    let base = now() + 10;
    let newer = event(
        "evt_sub_2",
        "customer.subscription.updated",
        base + 5,
        subscription(&id, "past_due"),
    );
    let older = event(
        "evt_sub_1",
        "customer.subscription.updated",
        base,
        subscription(&id, "active"),
    );
    assert_eq!(deliver(&cp, &newer).await.0, 200);
    assert_eq!(deliver(&cp, &older).await.0, 200);
    assert_eq!(account(&cp, &id).1.as_deref(), Some("past_due"));
    // The same second with another status: the CP asks Stripe for the subscription as it
    // is now, and stores that.
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_test_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(&id, "active")))
        .mount(&stripe)
        .await;
    let tie = event(
        "evt_sub_3",
        "customer.subscription.updated",
        base + 5,
        subscription(&id, "unpaid"),
    );
    assert_eq!(deliver(&cp, &tie).await.0, 200);
    assert_eq!(account(&cp, &id).1.as_deref(), Some("active"));
    assert_eq!(
        requests_to(&stripe, "GET", "/v1/subscriptions/sub_test_1")
            .await
            .len(),
        1
    );

    // Invoice events out of order: paid first, then a late payment_failed for the same
    // invoice. It stays paid and nothing is owed.
    let paid = event(
        "evt_in_paid",
        "invoice.paid",
        base + 20,
        invoice("in_1", &id, "paid", 2900),
    );
    let failed = event(
        "evt_in_failed",
        "invoice.payment_failed",
        base + 15,
        invoice("in_1", &id, "open", 2900),
    );
    assert_eq!(deliver(&cp, &paid).await.0, 200);
    assert_eq!(deliver(&cp, &failed).await.0, 200);
    assert_eq!(invoice_row(&cp, "in_1"), ("paid".into(), None));
    let (_, v) = api
        .get_json(&format!("/api/v1/workspaces/{id}/billing"))
        .await;
    assert_eq!(v["grace_until"], Value::Null, "{v}");
    assert_eq!(v["invoices"][0]["status"], "paid");
    assert_eq!(audit_count(&cp, "billing.invoice_paid"), 1);
    assert_eq!(audit_count(&cp, "billing.payment_failed"), 0);

    // What the CP stored of the objects: ids, statuses and amounts; never the customer's
    // name that Stripe's objects carry (in every file of the CP's data directory, the
    // SQLite database and its WAL included, every PostgreSQL row, and the log).
    let (_, v) = api
        .get_json(&format!("/api/v1/workspaces/{id}/billing"))
        .await;
    assert_eq!(v["invoices"][0]["number"], "OUT-in_1", "{v}");
    let name = "Ada Lovelace";
    for f in crate::agents::files_under(&cp.data_dir(), None) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!crate::agents::contains(&bytes, name), "{}", f.display());
    }
    if cp.db_url.starts_with("postgres") {
        assert!(!crate::agents::pg_rows_text(&cp).contains(name));
    }
    assert!(!cp.log().contains(name));

    // Members other than owners cannot see billing; strangers do not see the workspace.
    let member = Browser::signin(&cp, "member@acme.test").await;
    {
        use control_plane::infra::schema::{memberships, users};
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        let uid: String = users::table
            .filter(users::email.eq("member@acme.test"))
            .select(users::id)
            .first(&mut conn)
            .unwrap();
        diesel::insert_into(memberships::table)
            .values((
                memberships::workspace_id.eq(&id),
                memberships::user_id.eq(&uid),
                memberships::role.eq("member"),
                memberships::created_at.eq(now()),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(
        member
            .get(&format!("/workspaces/{id}/billing"))
            .await
            .status(),
        403
    );
    assert_eq!(
        member
            .post_csrf(&format!("/workspaces/{id}/billing/portal"), &[])
            .await
            .status(),
        403
    );
    // "Your data" shows the owners what billing stores; other members see none of it.
    let mine: Value = browser
        .get("/account/data.json")
        .await
        .json()
        .await
        .unwrap();
    let billing = &mine["workspaces"][0]["billing"];
    assert_eq!(
        billing["account"]["stripe_customer_id"], "cus_test_1",
        "{mine}"
    );
    assert_eq!(billing["invoices"][0]["id"], "in_1");
    let theirs: Value = member.get("/account/data.json").await.json().await.unwrap();
    assert_eq!(theirs["workspaces"][0]["billing"], Value::Null, "{theirs}");
    let stranger = Browser::signin(&cp, "stranger@elsewhere.test").await;
    assert_eq!(
        stranger
            .get(&format!("/workspaces/{id}/billing"))
            .await
            .status(),
        404
    );

    // Events the CP has no use for, or cannot read, are acknowledged and recorded.
    for (n, kind, object) in [
        (
            1,
            "invoice.upcoming",
            json!({"object": "invoice", "amount_due": 5}),
        ),
        (
            2,
            "invoice.finalized",
            json!({"object": "invoice", "no_id": true}),
        ),
        (
            3,
            "customer.updated",
            json!({"id": "cus_test_1", "object": "customer"}),
        ),
    ] {
        let (s, v) = deliver(&cp, &event(&format!("evt_misc_{n}"), kind, now(), object)).await;
        assert_eq!(s, 200, "{kind}: {v}");
    }

    // The subscription ends (cancelled in the portal): the workspace is suspended until an
    // owner subscribes again; the new Checkout reuses the Stripe customer.
    let ended = event(
        "evt_sub_deleted",
        "customer.subscription.deleted",
        base + 30,
        subscription(&id, "canceled"),
    );
    assert_eq!(deliver(&cp, &ended).await.0, 200);
    let (_, d) = api.get_json(&format!("/api/v1/workspaces/{id}")).await;
    assert_eq!(d["suspensions"][0]["code"], "payment", "{d}");
    assert_eq!(d["billing"]["ended"], true);
    let page = browser
        .get(&format!("/workspaces/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Subscription ended"), "{page}");
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{id}/checkout"),
        )
        .json(&json!({"plan": "starter"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sent = requests_to(&stripe, "POST", "/v1/checkout/sessions").await;
    let (form, _) = sent.last().unwrap();
    assert_eq!(field(form, "customer"), Some("cus_test_1"));
    assert_eq!(field(form, "customer_email"), None);
    assert_eq!(field(form, "line_items[0][price]"), Some("price_starter"));
    let again = event(
        "evt_checkout_2",
        "checkout.session.completed",
        base + 40,
        paid_session_for(&id, "sub_test_2"),
    );
    assert_eq!(deliver(&cp, &again).await.0, 200);
    let (_, d) = api.get_json(&format!("/api/v1/workspaces/{id}")).await;
    assert_eq!(d["suspensions"], json!([]), "{d}");
    assert_eq!(d["billing"]["status"], "active");
    assert_eq!(
        count_nodes(&cp, &id),
        1,
        "subscribing again makes no second node"
    );
    // A late event of the old subscription changes nothing.
    let late = event(
        "evt_sub_old",
        "customer.subscription.updated",
        base + 50,
        subscription(&id, "past_due"),
    );
    assert_eq!(deliver(&cp, &late).await.0, 200);
    assert_eq!(account(&cp, &id).1.as_deref(), Some("active"));

    // Closing the workspace cancels its subscription at Stripe (once).
    Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_test_2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "sub_test_2", "object": "subscription", "status": "canceled",
            "customer": "cus_test_1"
        })))
        .mount(&stripe)
        .await;
    let r = api
        .req(reqwest::Method::DELETE, &format!("/api/v1/workspaces/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Any event wakes the billing sweeper (otherwise it runs every 30 s).
    deliver(
        &cp,
        &event(
            "evt_nudge",
            "customer.updated",
            now(),
            json!({"id": "cus_test_1"}),
        ),
    )
    .await;
    wait_for("the subscription cancelled at Stripe", 40, || async {
        (audit_count(&cp, "billing.subscription_cancelled") == 1).then_some(())
    })
    .await;
    assert_eq!(
        requests_to(&stripe, "DELETE", "/v1/subscriptions/sub_test_2")
            .await
            .len(),
        1
    );
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
}

#[tokio::test]
async fn checkout_then_node_then_payment_failure_suspends_and_payment_resumes() {
    let stripe = fake_stripe().await;
    let grace = 3;
    let cp = billing_cp(&stripe, "local", grace);
    let browser = Browser::signin(&cp, OWNER).await;
    let api = Api::new(&cp, OWNER);

    // Create from the page: no node, the workspace waits for payment.
    let r = browser
        .post_csrf("/workspaces", &[("name", "Acme Dental"), ("slug", "")])
        .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let id = loc.trim_start_matches("/workspaces/").to_owned();
    let page = browser.get(&loc).await.text().await.unwrap();
    assert!(page.contains("Waiting for payment"), "{page}");
    assert!(page.contains("Pay for starter with Stripe"));
    assert_eq!(count_nodes(&cp, &id), 0, "no node before payment");

    // Choose a plan → Stripe Checkout.
    let r = browser
        .post_csrf(
            &format!("/workspaces/{id}/billing/checkout"),
            &[("plan", "starter")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "https://checkout.stripe.com/c/pay/cs_test_1"
    );
    let sent = requests_to(&stripe, "POST", "/v1/checkout/sessions").await;
    let (form, _) = sent.last().unwrap();
    assert_eq!(field(form, "line_items[0][price]"), Some("price_starter"));
    assert_eq!(field(form, "client_reference_id"), Some(id.as_str()));
    assert_eq!(field(form, "customer_email"), Some(OWNER));
    assert_eq!(
        field(form, "success_url"),
        Some(
            format!(
                "{}/workspaces/{id}/billing/return?session_id={{CHECKOUT_SESSION_ID}}",
                cp.ui
            )
            .as_str()
        )
    );
    assert_eq!(
        field(form, "cancel_url"),
        Some(format!("{}/workspaces/{id}", cp.ui).as_str())
    );
    assert_eq!(count_nodes(&cp, &id), 0, "still no node before payment");

    // Back from Stripe: paid, so the node is requested and comes up.
    mount_session(&stripe, &id).await;
    let r = browser
        .get(&format!(
            "/workspaces/{id}/billing/return?session_id=cs_test_1"
        ))
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap(), loc);
    let (s, _) = deliver(
        &cp,
        &event(
            "evt_1",
            "checkout.session.completed",
            now(),
            paid_session(&id),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let d = api.wait_node_state(&id, "healthy", 90).await;
    assert_eq!(count_nodes(&cp, &id), 1);
    assert_eq!(d["workspace"]["plan"], "starter");
    let node_id = d["node"]["id"].as_str().unwrap().to_owned();
    assert!(!browser
        .get(&loc)
        .await
        .text()
        .await
        .unwrap()
        .contains("Waiting for payment"));

    // The first invoice is paid; the billing page lists it and opens the portal.
    let (s, _) = deliver(
        &cp,
        &event(
            "evt_2",
            "invoice.paid",
            now(),
            invoice("in_1", &id, "paid", 900),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let page = browser
        .get(&format!("/workspaces/{id}/billing"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("OUT-in_1") && page.contains("9.00 EUR"),
        "{page}"
    );
    assert!(page.contains("https://invoice.stripe.com/i/in_1"));
    assert!(
        page.contains("id=\"subscription-status\">active<"),
        "{page}"
    );
    let r = browser
        .post_csrf(&format!("/workspaces/{id}/billing/portal"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "https://billing.stripe.com/p/session/test_1"
    );
    let sent = requests_to(&stripe, "POST", "/v1/billing_portal/sessions").await;
    assert_eq!(field(&sent[0].0, "customer"), Some("cus_test_1"));
    assert_eq!(
        field(&sent[0].0, "return_url"),
        Some(format!("{}/workspaces/{id}/billing", cp.ui).as_str())
    );

    // The next invoice fails: the owners are told, the grace period runs, then the
    // workspace is suspended and the page says why.
    let (s, _) = deliver(
        &cp,
        &event(
            "evt_3",
            "invoice.payment_failed",
            now(),
            invoice("in_2", &id, "open", 900),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let page = browser
        .get(&format!("/workspaces/{id}/billing"))
        .await
        .text()
        .await
        .unwrap();
    // (Or already suspended, if this machine is slower than the 3 s grace period.)
    assert!(
        page.contains("A payment failed") || page.contains("suspended for an unpaid invoice"),
        "{page}"
    );
    let mail = wait_for("the payment-failed email", 10, || async {
        let dir = cp.data_dir().join("outbox");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .find(|t| t.contains("payment failed for Acme Dental"))
    })
    .await;
    assert!(
        mail.contains(&format!("To: {OWNER}")) && mail.contains("9.00 EUR"),
        "{mail}"
    );
    let path = format!("/api/v1/workspaces/{id}");
    let d = wait_for("the payment suspension", 30, || async {
        let (_, v) = api.get_json(&path).await;
        (v["suspensions"][0]["code"] == "payment").then_some(v)
    })
    .await;
    assert_eq!(d["suspensions"].as_array().unwrap().len(), 1);
    api.wait_node_state(&id, "suspended", 30).await;
    assert!(commands_of(&cp, &node_id).contains(&"suspend".to_owned()));
    let page = browser.get(&loc).await.text().await.unwrap();
    assert!(
        page.contains("an invoice is unpaid past its grace period"),
        "{page}"
    );
    assert_eq!(audit_count(&cp, "billing.payment_failed"), 1);

    // Paying resumes it.
    let (s, _) = deliver(
        &cp,
        &event(
            "evt_4",
            "invoice.paid",
            now(),
            invoice("in_2", &id, "paid", 900),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let d = wait_for("the suspension lifted", 30, || async {
        let (_, v) = api.get_json(&path).await;
        v["suspensions"].as_array()?.is_empty().then_some(v)
    })
    .await;
    assert_eq!(d["billing"]["grace_until"], Value::Null);
    api.wait_node_state(&id, "healthy", 30).await;
    assert_eq!(
        commands_of(&cp, &node_id)
            .iter()
            .filter(|k| *k == "resume")
            .count(),
        1
    );
    assert_eq!(audit_count(&cp, "billing.invoice_paid"), 2);
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
    // The secret key and webhook secret never reach the log.
    let log = cp.log();
    assert!(!log.contains(SECRET_KEY) && !log.contains(WEBHOOK_SECRET));
}

/// The owner's workspace page links the Billing page, next to Members and the audit log
/// (issue 13); cancelling a paid workspace cancels its subscription, so it cannot be
/// reactivated: the page says so instead of offering the button, and the server refuses.
#[tokio::test]
async fn a_paid_workspace_links_billing_and_cannot_be_reactivated_once_cancelled() {
    let stripe = fake_stripe().await;
    let cp = billing_cp(&stripe, "manual", 3600);
    let api = Api::new(&cp, OWNER);
    let browser = Browser::signin(&cp, OWNER).await;
    let r = api
        .req(reqwest::Method::POST, "/api/v1/workspaces")
        .json(&json!({"name": "Acme Dental", "plan": "starter"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["workspace"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = |page: &str| -> String {
        page.split("<dt>Your role</dt>")
            .nth(1)
            .unwrap()
            .split("</dd>")
            .next()
            .unwrap()
            .to_owned()
    };
    let billing_link = format!("<a href=\"/workspaces/{id}/billing\">Billing</a>");
    let page = browser
        .get(&format!("/workspaces/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(header(&page).contains(&billing_link), "{page}");
    // Paid: the node is requested; the test enrolls it.
    let paid = event(
        "evt_checkout",
        "checkout.session.completed",
        now(),
        paid_session(&id),
    );
    assert_eq!(deliver(&cp, &paid).await.0, 200);
    let (_, d) = api.get_json(&format!("/api/v1/workspaces/{id}")).await;
    let node_id = d["node"]["id"].as_str().unwrap().to_owned();
    let bootstrap = cp.node_dir(&node_id).join("data/bootstrap.json");
    let bundle = wait_for("bootstrap bundle", 30, || async {
        let text = std::fs::read_to_string(&bootstrap).ok()?;
        serde_json::from_str::<outpost_protocol::BootstrapBundle>(&text).ok()
    })
    .await;
    let node = crate::gateway::try_enroll(&cp, &bundle, &bundle.token)
        .await
        .1
        .unwrap();
    node.takes_initial_config(&cp).await;
    let page = browser
        .get(&format!("/workspaces/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(header(&page).contains(&billing_link), "{page}");
    assert!(
        page.contains(
            "Your subscription is cancelled too, so a cancelled workspace cannot be reactivated."
        ),
        "warned before cancelling: {page}"
    );
    // Other members see no Billing link (the page is the owners').
    let member = "member@acme.test";
    {
        use control_plane::infra::schema::memberships as m;
        let mut conn = cp.db().get().unwrap();
        let uid = control_plane::accounts::find_or_create_user(&mut conn, member).unwrap();
        diesel::insert_into(m::table)
            .values((
                m::workspace_id.eq(&id),
                m::user_id.eq(&uid),
                m::role.eq("member"),
                m::created_at.eq(0_i64),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    let other = Browser::signin(&cp, member).await;
    let page = other
        .get(&format!("/workspaces/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains(&format!("/workspaces/{id}/billing\"")),
        "{page}"
    );

    let r = browser
        .post_csrf(&format!("/workspaces/{id}/cancel"), &[("confirm", "yes")])
        .await;
    assert_eq!(r.status(), 303);
    let page = browser
        .get(&format!("/workspaces/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"reactivate-refused\""), "{page}");
    assert!(!page.contains(">Reactivate</button>"), "{page}");
    let r = browser
        .post_csrf(&format!("/workspaces/{id}/reactivate"), &[])
        .await;
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("cancelling it also cancelled its subscription at Stripe")
            && text.contains("subscribe from its Billing page"),
        "{text}"
    );
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{id}/reactivate"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "subscription_cancelled"
    );
    let (_, d) = api.get_json(&format!("/api/v1/workspaces/{id}")).await;
    assert!(
        d["workspace"]["deleted_at"].is_i64(),
        "still cancelled: {d}"
    );
    let cmds = node.commands(&cp).await;
    assert!(
        cmds.iter()
            .all(|c| c.kind != outpost_protocol::CommandKind::Resume),
        "{cmds:?}"
    );
    assert_eq!(audit_count(&cp, "workspace.reactivated"), 0);
    let mails = crate::mail::wait_mails(&cp, "Outpost: Acme Dental is cancelled", 1).await;
    assert!(
        mails[0]
            .2
            .contains("Its subscription is cancelled too, so it cannot be reactivated."),
        "{mails:?}"
    );
}
