//! Personal API tokens (issue 20, part 2): a name, an expiry (90 days by default, a year
//! at most), an optional read-only scope, "last used" kept to the minute; listed and
//! revoked on the page, over the API and with the CLI; revoked and expired tokens are
//! told apart; unknown tokens are limited per client address; creating one emails the
//! owner.

use crate::harness::*;
use diesel::prelude::*;
use reqwest::Method;
use std::process::Command;

/// `control-plane <args> --data-dir … --database-url …`: (success, stdout, stderr).
fn cli(cp: &Cp, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_control-plane"))
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
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn api_with(cp: &Cp, token: &str) -> Api {
    Api {
        base: cp.ui.clone(),
        token: token.to_owned(),
        client: no_redirect_client(),
    }
}

async fn status_and_code(r: reqwest::RequestBuilder) -> (u16, String) {
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (s, v["code"].as_str().unwrap_or_default().to_owned())
}

/// `(expires_at, last_used_at)` of the token named `name`.
fn token_times(cp: &Cp, name: &str) -> (i64, Option<i64>) {
    use control_plane::infra::schema::api_tokens as t;
    let mut conn = cp.db().get().unwrap();
    t::table
        .filter(t::name.eq(name))
        .select((t::expires_at, t::last_used_at))
        .first(&mut conn)
        .unwrap()
}

fn set_last_used(cp: &Cp, name: &str, last_used_at: i64) {
    use control_plane::infra::schema::api_tokens as t;
    let mut conn = cp.db().get().unwrap();
    diesel::update(t::table.filter(t::name.eq(name)))
        .set(t::last_used_at.eq(last_used_at))
        .execute(&mut conn)
        .unwrap();
}

/// Makes the token with this value expire now.
fn expire(cp: &Cp, value: &str) {
    use control_plane::infra::schema::api_tokens as t;
    let mut conn = cp.db().get().unwrap();
    diesel::update(t::table.filter(t::token_hash.eq(outpost_crypto::token_hash(value))))
        .set(t::expires_at.eq(now() - 1))
        .execute(&mut conn)
        .unwrap();
}

fn now() -> i64 {
    control_plane::infra::db::now()
}

/// Made on the page: read-only and 30 days, shown once, emailed to the owner; a
/// read-only token reads but cannot write; the API lists the caller's own tokens only
/// and revokes them; revoked and expired tokens are refused with their own codes; a
/// lifetime over a year is refused in words.
#[tokio::test]
async fn tokens_expire_can_be_read_only_and_are_revoked_over_http() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let alice = Browser::signin(&cp, "alice@example.test").await;
    let page = alice
        .post_csrf(
            "/account/tokens",
            &[("name", "dashboard"), ("days", "30"), ("read_only", "1")],
        )
        .await
        .text()
        .await
        .unwrap();
    let marker = "<pre id=\"new-token\">";
    let start = page.find(marker).expect("the new token is shown") + marker.len();
    let value = page[start..].split('<').next().unwrap().to_owned();
    assert!(value.starts_with("op_"), "{value}");
    assert!(page.contains("read-only"), "{page}");
    // Shown once: the list shows name, scope, dates, never the value.
    let list = alice.get("/account/tokens").await.text().await.unwrap();
    assert!(list.contains("dashboard") && !list.contains(&value));
    let (expires, _) = token_times(&cp, "dashboard");
    assert!((expires - (now() + 30 * 86_400)).abs() < 120, "30 days");

    // The owner is told, with the page to revoke it at, and never the value.
    let link = cp
        .outbox_find("alice@example.test", "/account/tokens")
        .expect("a token-created email");
    assert!(link.ends_with("/account/tokens"), "{link}");
    let outbox = std::fs::read_dir(cp.data_dir().join("outbox")).unwrap();
    for f in outbox {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(!text.contains(&value), "an email carries the token");
    }

    // Read-only: GET yes, anything else 403 token_read_only.
    let ro = api_with(&cp, &value);
    let (s, _) = ro.get_json("/api/v1/workspaces").await;
    assert_eq!(s, 200);
    let (s, code) = status_and_code(
        ro.req(Method::POST, "/api/v1/workspaces")
            .json(&serde_json::json!({"name": "Nope"})),
    )
    .await;
    assert_eq!((s, code.as_str()), (403, "token_read_only"));

    // Over a year is refused, in words; no token is made.
    let page = alice
        .post_csrf("/account/tokens", &[("name", "forever"), ("days", "400")])
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("at most one year"), "{page}");
    assert!(!page.contains("new-token"));

    // The API lists the caller's tokens only, and revokes only theirs.
    let full = Api::new(&cp, "alice@example.test");
    let bob = Api::new(&cp, "bob@example.test");
    let (s, v) = full.get_json("/api/v1/tokens").await;
    assert_eq!(s, 200);
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{v}");
    let ro_json = tokens.iter().find(|t| t["name"] == "dashboard").unwrap();
    assert_eq!(ro_json["scope"], "read_only");
    assert_eq!(ro_json["expires_at"], expires);
    assert!(ro_json["last_used_at"].is_i64(), "used above: {ro_json}");
    let cli_json = tokens.iter().find(|t| t["name"] == "cli").unwrap();
    assert_eq!(cli_json["scope"], "full");
    assert!(!v.to_string().contains(&value) && !v.to_string().contains(&full.token));
    let ro_id = ro_json["id"].as_str().unwrap().to_owned();
    let (_, bobs) = bob.get_json("/api/v1/tokens").await;
    assert_eq!(bobs["tokens"].as_array().unwrap().len(), 1, "{bobs}");
    for id in [ro_id.as_str(), "00000000-0000-0000-0000-000000000000"] {
        let (s, code) =
            status_and_code(bob.req(Method::DELETE, &format!("/api/v1/tokens/{id}"))).await;
        assert_eq!((s, code.as_str()), (404, "not_found"), "{id}");
    }
    assert_eq!(
        ro.get_json("/api/v1/workspaces").await.0,
        200,
        "still works"
    );
    let r = full
        .req(Method::DELETE, &format!("/api/v1/tokens/{ro_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, code) = status_and_code(ro.req(Method::GET, "/api/v1/workspaces")).await;
    assert_eq!((s, code.as_str()), (401, "token_revoked"));
    let (_, v) = full.get_json("/api/v1/tokens").await;
    assert_eq!(v["tokens"].as_array().unwrap().len(), 1, "{v}");
    let (s, _) =
        status_and_code(full.req(Method::DELETE, &format!("/api/v1/tokens/{ro_id}"))).await;
    assert_eq!(s, 404, "revoked already");

    // Expired: its own code, as JSON like every API error.
    expire(&cp, &full.token);
    let r = full
        .req(Method::GET, "/api/v1/tokens")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "token_expired", "{v}");

    // Revoking on the page: the button posts with the CSRF token.
    let again = Api::new(&cp, "alice@example.test");
    let list = alice.get("/account/tokens").await.text().await.unwrap();
    let (_, v) = bob.get_json("/api/v1/tokens").await;
    let bob_id = v["tokens"][0]["id"].as_str().unwrap().to_owned();
    let r = alice
        .post_csrf(&format!("/account/tokens/{bob_id}/revoke"), &[])
        .await;
    assert_eq!(r.status(), 404, "not Alice's");
    let again_id = {
        let (_, v) = again.get_json("/api/v1/tokens").await;
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["expired"] == false)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        alice
            .get("/account/tokens")
            .await
            .text()
            .await
            .unwrap()
            .contains(&format!("/account/tokens/{again_id}/revoke")),
        "{list}"
    );
    let r = alice
        .post_csrf(&format!("/account/tokens/{again_id}/revoke"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let (s, code) = status_and_code(again.req(Method::GET, "/api/v1/workspaces")).await;
    assert_eq!((s, code.as_str()), (401, "token_revoked"));
    assert_eq!(bob.get_json("/api/v1/workspaces").await.0, 200);

    // Audited, without the value or its hash.
    use control_plane::infra::schema::audit_events::dsl as a;
    let mut conn = cp.db().get().unwrap();
    let events: Vec<(String, String)> = a::audit_events
        .filter(a::action.like("api_token.%"))
        .select((a::action, a::detail))
        .load(&mut conn)
        .unwrap();
    let count = |x: &str| events.iter().filter(|(e, _)| e == x).count();
    assert_eq!(count("api_token.created"), 4, "{events:?}");
    assert_eq!(count("api_token.revoked"), 2, "{events:?}");
    assert!(
        events.iter().any(|(_, d)| d == "read_only 30d"),
        "{events:?}"
    );
    let hash = outpost_crypto::token_hash(&value);
    assert!(!events
        .iter()
        .any(|(_, d)| d.contains(&value) || d.contains(&hash[..16])));
}

/// "Last used" is written at most once a minute per token, not on every request.
#[tokio::test]
async fn last_used_is_written_at_most_once_a_minute() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let api = Api::new(&cp, "alice@example.test");
    assert_eq!(token_times(&cp, "cli").1, None, "never used");
    assert_eq!(api.get_json("/api/v1/workspaces").await.0, 200);
    assert!(token_times(&cp, "cli").1.is_some_and(|t| now() - t < 60));

    let recent = now() - 30;
    set_last_used(&cp, "cli", recent);
    for _ in 0..3 {
        assert_eq!(api.get_json("/api/v1/workspaces").await.0, 200);
    }
    assert_eq!(
        token_times(&cp, "cli").1,
        Some(recent),
        "no write within the minute"
    );

    set_last_used(&cp, "cli", now() - 120);
    assert_eq!(api.get_json("/api/v1/workspaces").await.0, 200);
    let t = token_times(&cp, "cli").1.unwrap();
    assert!(now() - t < 60, "written again after a minute");
}

/// Guessing tokens from one address: each guess is a new token, so the per-token limit
/// never trips; the per-address count of unknown tokens does, with Retry-After. Valid
/// tokens from the same address keep working.
#[tokio::test]
async fn unknown_tokens_are_rate_limited_per_client_address() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let valid = Api::new(&cp, "alice@example.test");
    let mut statuses = Vec::new();
    for i in 0..15 {
        let guess = api_with(&cp, &format!("op_guess{i:02}"));
        let r = guess
            .req(Method::GET, "/api/v1/workspaces")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        if s == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(wait >= 1, "{wait}");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["code"], "rate_limited");
        } else {
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["code"], "invalid_api_token");
        }
        statuses.push(s);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(valid.get_json("/api/v1/workspaces").await.0, 200);
}

/// The CLI makes, lists and revokes tokens: a scope and a lifetime on creation (a year
/// at most), a list without values, a revoke by id that the API then honours.
#[tokio::test]
async fn the_cli_lists_and_revokes_tokens() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let (ok, _, err) = cli(
        &cp,
        &[
            "token",
            "create",
            "--email",
            "ops@example.test",
            "--days",
            "400",
        ],
    );
    assert!(!ok);
    assert!(err.contains("at most one year"), "{err}");

    let (ok, out, err) = cli(
        &cp,
        &[
            "token",
            "create",
            "--email",
            "ops@example.test",
            "--name",
            "deploy",
            "--days",
            "30",
            "--read-only",
        ],
    );
    assert!(ok, "{err}");
    let value = out.trim().to_owned();
    assert!(value.starts_with("op_"));
    assert!(
        cp.outbox_find("ops@example.test", "/account/tokens")
            .is_some(),
        "the owner is emailed"
    );

    let (ok, out, err) = cli(&cp, &["token", "list", "--email", "ops@example.test"]);
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.contains("deploy")).expect(&out);
    assert!(
        line.contains("read_only") && line.contains("expires"),
        "{line}"
    );
    assert!(!out.contains(&value));
    let id = line.split('\t').next().unwrap().to_owned();

    let api = api_with(&cp, &value);
    assert_eq!(api.get_json("/api/v1/workspaces").await.0, 200);
    let (ok, out, err) = cli(&cp, &["token", "revoke", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (s, code) = status_and_code(api.req(Method::GET, "/api/v1/workspaces")).await;
    assert_eq!((s, code.as_str()), (401, "token_revoked"));
    let (_, out, _) = cli(&cp, &["token", "list", "--email", "ops@example.test"]);
    assert!(!out.contains("deploy"), "{out}");
    let (ok, _, err) = cli(&cp, &["token", "revoke", &id]);
    assert!(!ok, "revoked twice: {err}");
}
