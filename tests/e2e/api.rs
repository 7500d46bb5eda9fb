//! The JSON API and the pages refuse bad input clearly and hide other people's workspaces.

use crate::harness::*;
use reqwest::Method;

#[tokio::test]
async fn bad_input_auth_and_membership() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let alice = Api::new(&cp, "alice@example.test");
    let mallory = Api::new(&cp, "mallory@example.test");
    let ws = alice.create_workspace("Alice Bakery").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap();
    assert_eq!(ws["workspace"]["slug"], "alice-bakery");

    // Malformed JSON → 400 with a stable code; over 1 MiB → 413; bad slug → 400.
    let r = alice
        .req(Method::POST, "/api/v1/workspaces")
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "malformed_json"
    );
    let big = serde_json::json!({"name": "x".repeat(1024 * 1024 + 1)}).to_string();
    let r = alice
        .req(Method::POST, "/api/v1/workspaces")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = alice
        .req(Method::POST, "/api/v1/workspaces")
        .json(&serde_json::json!({"name": "X", "slug": "-bad-"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_slug"
    );

    // No token / wrong token → 401.
    let anon = no_redirect_client();
    let r = anon
        .get(format!("{}/api/v1/workspaces", cp.ui))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = anon
        .get(format!("{}/api/v1/workspaces", cp.ui))
        .bearer_auth("op_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_api_token"
    );

    // A query string that cannot be read gets the documented JSON error, like a body
    // (issue 20: it was actix's plain text), and changes nothing.
    let r = alice
        .req(
            Method::DELETE,
            &format!("/api/v1/workspaces/{ws_id}?immediately=maybe"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "malformed_query", "{body}");
    assert!(body["message"].as_str().unwrap().contains("query string"));

    // A non-member gets 404 on the API and on every page of the workspace.
    assert_eq!(
        mallory
            .get_json(&format!("/api/v1/workspaces/{ws_id}"))
            .await
            .0,
        404
    );
    let r = mallory
        .req(Method::DELETE, &format!("/api/v1/workspaces/{ws_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        mallory.get_json("/api/v1/workspaces").await.1["workspaces"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let m = Browser::signin(&cp, "mallory@example.test").await;
    for path in ["", "/node-status", "/receipt"] {
        assert_eq!(
            m.get(&format!("/workspaces/{ws_id}{path}")).await.status(),
            404,
            "GET {path}"
        );
    }
    for path in ["/console", "/delete", "/cancel"] {
        assert_eq!(
            m.post_csrf(&format!("/workspaces/{ws_id}{path}"), &[])
                .await
                .status(),
            404,
            "POST {path}"
        );
    }
    assert_eq!(
        alice
            .get_json(&format!("/api/v1/workspaces/{ws_id}"))
            .await
            .1["workspace"]["deleted_at"],
        serde_json::Value::Null
    );

    // Pages without a session redirect to sign-in; forms without CSRF or from another origin are refused.
    let r = anon
        .get(format!("{}/workspaces", cp.ui))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // A non-member is refused by the access guard before the form is read; a signed-in
    // user's form with a wrong CSRF token is refused.
    assert_eq!(
        m.post(&format!("/workspaces/{ws_id}/delete"), &[("csrf", "wrong")])
            .await
            .status(),
        404
    );
    assert_eq!(
        m.post("/account/tokens", &[("csrf", "wrong"), ("name", "x")])
            .await
            .status(),
        403
    );
    let csrf = m.csrf().await;
    let r = m
        .client
        .post(format!("{}/workspaces", cp.ui))
        .header("cookie", m.cookie.clone().unwrap())
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "Evil")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = m
        .client
        .post(format!("{}/workspaces", cp.ui))
        .header("cookie", m.cookie.clone().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &cp.ui)
        .body("%%%")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "an unreadable form carries no valid CSRF token"
    );

    // Responses carry a CSP without inline script.
    let csp = r
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
}

#[tokio::test]
async fn magic_links_are_single_use_expire_and_are_rate_limited() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let b = Browser::new(&cp.ui);
    assert_eq!(
        b.post("/signin", &[("email", "not-an-email")])
            .await
            .status(),
        400
    );
    b.post("/signin", &[("email", "Carol@Example.test")]).await;
    let link = cp.outbox_link("carol@example.test");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    assert!(
        cp.log().contains("dev outbox: sign-in link"),
        "dev mode logs the link"
    );
    assert_eq!(
        b.post("/auth/verify", &[("token", &token)]).await.status(),
        303
    );
    assert_eq!(
        b.post("/auth/verify", &[("token", &token)]).await.status(),
        401,
        "single use"
    );

    // An expired link is refused.
    b.post("/signin", &[("email", "carol@example.test")]).await;
    let token2 = cp
        .outbox_link("carol@example.test")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    {
        use control_plane::infra::schema::magic_links::dsl as m;
        use diesel::prelude::*;
        let pool = cp.db();
        let mut conn = pool.get().unwrap();
        diesel::update(m::magic_links)
            .set(m::expires_at.eq(1))
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(
        b.post("/auth/verify", &[("token", &token2)]).await.status(),
        401
    );

    // Five links per address per 15 minutes; the sixth gets 429 with Retry-After.
    for _ in 0..3 {
        assert_eq!(
            b.post("/signin", &[("email", "carol@example.test")])
                .await
                .status(),
            200
        );
    }
    let r = b.post("/signin", &[("email", "carol@example.test")]).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Stored hashed: the raw token is nowhere in the database.
    use control_plane::infra::schema::magic_links::dsl as m;
    use diesel::prelude::*;
    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    let hashes: Vec<String> = m::magic_links
        .select(m::token_hash)
        .load(&mut conn)
        .unwrap();
    assert!(hashes.iter().all(|h| h != &token && h.len() == 64));
}

#[tokio::test]
async fn audit_verify_names_the_edited_or_removed_event() {
    use control_plane::infra::schema::audit_events::dsl as a;
    use diesel::prelude::*;
    let cp = Cp::start();
    let _browser = Browser::signin(&cp, "owner@acme.test").await;
    let api = Api::new(&cp, "owner@acme.test");
    api.create_workspace("Acme Dental").await;
    let (ok, out) = cp.audit_verify();
    assert!(ok, "{out}");
    assert!(out.starts_with("audit log intact:"), "{out}");

    let pool = cp.db();
    let mut conn = pool.get().unwrap();
    let seqs: Vec<i64> = a::audit_events
        .select(a::seq)
        .order(a::seq.asc())
        .load(&mut conn)
        .unwrap();
    assert!(seqs.len() >= 3, "sign-in, token, workspace: {seqs:?}");
    // Edit one field of the second event.
    diesel::update(a::audit_events.filter(a::seq.eq(seqs[1])))
        .set(a::ip.eq(Some("203.0.113.9")))
        .execute(&mut conn)
        .unwrap();
    let (ok, out) = cp.audit_verify();
    assert!(!ok);
    assert!(out.contains(&format!("event #{}", seqs[1])), "{out}");
    // Removing an event breaks the chain at the next one.
    diesel::delete(a::audit_events.filter(a::seq.le(seqs[1])))
        .execute(&mut conn)
        .unwrap();
    let (ok, out) = cp.audit_verify();
    assert!(!ok);
    assert!(out.contains(&format!("event #{}", seqs[2])), "{out}");
}

#[tokio::test]
async fn a_user_sees_everything_the_control_plane_stores_about_them_and_nothing_else() {
    let cp = Cp::start();
    let me = Browser::signin(&cp, "me@acme.test").await;
    let api = Api::new(&cp, "me@acme.test");
    let ws = api.create_workspace("Acme Dental").await;
    let other = Api::new(&cp, "other@elsewhere.test");
    other.create_workspace("Other Clinic").await;

    let r = me.get("/account/data.json").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["account"]["email"], "me@acme.test");
    assert_eq!(doc["api_tokens"][0]["name"], "cli");
    assert!(
        doc["api_tokens"][0].get("token_hash").is_none(),
        "no credential material"
    );
    assert!(!doc["sessions"].as_array().unwrap().is_empty());
    let spaces = doc["workspaces"].as_array().unwrap();
    assert_eq!(spaces.len(), 1, "only my workspaces");
    assert_eq!(spaces[0]["workspace"]["id"], ws["workspace"]["id"]);
    assert_eq!(spaces[0]["your_role"], "owner");
    assert!(spaces[0]["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "workspace.created"));
    let text = doc.to_string();
    assert!(!text.contains("Other Clinic") && !text.contains("other@elsewhere.test"));
    let page = me.get("/account/data").await.text().await.unwrap();
    assert!(
        page.contains("What the control plane knows about you") && page.contains("me@acme.test")
    );
}

#[tokio::test]
async fn the_api_rate_limits_each_token_with_retry_after() {
    let cp = Cp::start();
    let api = Api::new(&cp, "busy@acme.test");
    let mut limited = None;
    for _ in 0..80 {
        let r = api
            .req(reqwest::Method::GET, "/api/v1/workspaces")
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let r = limited.expect("429 within 80 quick requests (burst 60)");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Another token is not affected.
    let other = Api::new(&cp, "calm@acme.test");
    assert_eq!(other.get_json("/api/v1/workspaces").await.0, 200);
}

/// `GET /api/v1/workspaces` and the `/workspaces` page come a page at a time (issue 18:
/// a user in 1,000 workspaces got all of them on every request): following `next` visits
/// every workspace once, active before cancelled; a cursor that is not one is a 400.
#[tokio::test]
async fn the_workspace_list_comes_a_page_at_a_time() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let alice = Api::new(&cp, "alice@example.test");
    let mut ids = vec![];
    for i in 0..51 {
        let ws = alice.create_workspace(&format!("Shop {i}")).await;
        ids.push(ws["workspace"]["id"].as_str().unwrap().to_owned());
    }
    let cancelled = ids[3].clone();
    let r = alice
        .req(Method::DELETE, &format!("/api/v1/workspaces/{cancelled}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // The API, 20 a page: 20, 20, 11, and `next` only while more remain.
    let mut seen: Vec<(String, bool)> = vec![];
    let mut created: Vec<i64> = vec![];
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/workspaces?limit=20&after={a}"),
            None => "/api/v1/workspaces?limit=20".to_owned(),
        };
        let (status, body) = alice.get_json(&path).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        for w in body["workspaces"].as_array().unwrap() {
            seen.push((
                w["id"].as_str().unwrap().to_owned(),
                w["deleted_at"].is_null(),
            ));
            created.push(w["created_at"].as_i64().unwrap());
        }
        match body["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 51, "every workspace once");
    let mut unique: Vec<&String> = seen.iter().map(|(id, _)| id).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 51);
    assert_eq!(
        seen.last().unwrap(),
        &(cancelled.clone(), false),
        "cancelled last"
    );
    // Newest first among the active ones (created in the same second: either order).
    assert!(
        created[..50].windows(2).all(|w| w[0] >= w[1]),
        "{created:?}"
    );

    // Without `limit`, 50 a page; bad cursors and limits are refused in words.
    let (_, first) = alice.get_json("/api/v1/workspaces").await;
    assert_eq!(first["workspaces"].as_array().unwrap().len(), 50);
    let next = first["next"].as_str().unwrap().to_owned();
    for (q, code) in [
        ("after=a.1.x'--", "invalid_cursor"),
        ("after=zzz", "invalid_cursor"),
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
    ] {
        let (status, body) = alice.get_json(&format!("/api/v1/workspaces?{q}")).await;
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{q}");
    }

    // The OpenAPI document says how to page.
    let (_, doc) = alice.get_json("/api/v1/openapi.json").await;
    let params: Vec<&str> = doc["paths"]["/api/v1/workspaces"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["after", "limit"]);
    assert!(doc["components"]["schemas"]["WorkspaceList"]["properties"]["next"].is_object());

    // The page: 50 rows and a link to the next page, which holds the 51st.
    let b = Browser::signin(&cp, "alice@example.test").await;
    let html = b.get("/workspaces").await.text().await.unwrap();
    assert_eq!(html.matches("<a href=\"/workspaces/").count(), 50);
    let link = format!("/workspaces?after={next}");
    assert!(html.contains(&format!("href=\"{link}\"")), "next link");
    let html = b.get(&link).await.text().await.unwrap();
    assert_eq!(html.matches("<a href=\"/workspaces/").count(), 1);
    assert!(html.contains(&format!("/workspaces/{cancelled}\"")));
    assert!(html.contains("First page") && !html.contains("Next page"));
}
