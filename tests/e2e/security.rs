//! Security emails and account changes (issue 20, part 2), through the real binary and its
//! dev outbox: a sign-in from a browser the account has not used before is announced (the
//! first sign-in is not), a role change is told to the member it concerns, and every email
//! holds words and one link, never an IP, a token or a device cookie.

use crate::harness::*;
use crate::mail::{add_member, outbox, wait_mails, with_subject};
use control_plane::infra::schema::known_devices;
use diesel::prelude::*;

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const NEW_SIGN_IN: &str = "New sign-in to your Outpost account";

/// Signs in by email link from a browser with `user_agent` that holds the device cookie
/// `device` (a `name=value` pair), if any; returns the session and device cookies set.
pub(crate) async fn signin_from(
    cp: &Cp,
    email: &str,
    user_agent: &str,
    device: Option<&str>,
) -> (String, Option<String>, String) {
    let b = Browser::new(&cp.ui);
    let before = cp.outbox_find(email, "/auth/verify?token=");
    let r = b.post("/signin", &[("email", email)]).await;
    assert_eq!(r.status(), 200);
    let link = wait_for("the sign-in link", 10, || async {
        cp.outbox_find(email, "/auth/verify?token=")
            .filter(|l| Some(l) != before.as_ref())
    })
    .await;
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let mut req = b
        .client
        .post(format!("{}/auth/verify", cp.ui))
        .header("origin", &cp.ui)
        .header("user-agent", user_agent)
        .form(&[("token", token.as_str())]);
    if let Some(d) = device {
        req = req.header("cookie", d);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 303, "sign-in redirects");
    let set_device = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("outpost_device="))
        .unwrap_or_default();
    (
        session_cookie(&r, "outpost_session").unwrap(),
        session_cookie(&r, "outpost_device"),
        set_device,
    )
}

fn device_rows(cp: &Cp) -> Vec<String> {
    let pool = cp.db();
    let mut c = pool.get().unwrap();
    known_devices::table
        .select(known_devices::token_hash)
        .load(&mut c)
        .unwrap()
}

#[tokio::test]
async fn a_sign_in_from_a_new_browser_is_announced_but_the_first_and_known_ones_are_not() {
    let cp = Cp::start();
    let email = "dev@acme.test";

    // The sign-up: a device cookie, no alarm.
    let (_, device, set) = signin_from(&cp, email, FIREFOX_LINUX, None).await;
    let device = device.expect("a device cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain http here: no Secure flag");
    let value = device.split_once('=').unwrap().1.to_owned();
    let rows = device_rows(&cp);
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0], value, "stored hashed");
    assert_eq!(rows[0], outpost_crypto::token_hash(&value));

    // The same browser again: known, nothing sent; it keeps its token.
    let (_, again, _) = signin_from(&cp, email, FIREFOX_LINUX, Some(&device)).await;
    assert_eq!(again.as_deref(), Some(device.as_str()));

    // Another browser: announced once, in words.
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let (_, other, _) = signin_from(&cp, email, chrome, None).await;
    let other = other.unwrap();
    assert_ne!(other, device);
    let mails = wait_mails(&cp, NEW_SIGN_IN, 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (to, _, body) = &mails[0];
    assert_eq!(to, email);
    assert!(body.contains("Chrome on Windows"), "{body}");
    assert!(body.contains("with an email link"), "{body}");
    assert!(body.contains("/account/sessions"), "{body}");
    // The client's address is 127.0.0.1 here, as is the CP's own in the link: only the
    // link may hold it.
    let words: String = body.lines().filter(|l| !l.contains("://")).collect();
    for secret in [
        value.as_str(),
        other.split_once('=').unwrap().1,
        "127.0.0.1",
    ] {
        assert!(!words.contains(secret), "{secret} in {body}");
    }
    // A cookie someone made up is not a device of ours: a new token replaces it.
    let (_, forged, _) =
        signin_from(&cp, email, FIREFOX_LINUX, Some("outpost_device=made-up")).await;
    assert!(forged.is_some_and(|f| f != "outpost_device=made-up"));
    wait_mails(&cp, NEW_SIGN_IN, 2).await;
    assert_eq!(device_rows(&cp).len(), 3);
    assert!(!cp.log().contains(&value), "the device token is not logged");

    // Another account on a browser already known to the first is new to that account,
    // but its first sign-in still raises no alarm.
    signin_from(&cp, "ops@acme.test", FIREFOX_LINUX, Some(&device)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(outbox(&cp)
        .iter()
        .all(|m| !(m.0 == "ops@acme.test" && m.1 == NEW_SIGN_IN)));
    assert_eq!(with_subject(&cp, NEW_SIGN_IN).len(), 2);
}

#[tokio::test]
async fn a_member_whose_role_changes_is_told_who_changed_it_and_the_new_role() {
    let cp = Cp::start();
    let owner = Browser::signin(&cp, "olivia@acme.test").await;
    let api = Api::new(&cp, "olivia@acme.test");
    let ws = api.create_workspace("Acme Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    add_member(&cp, &ws_id, "dave@acme.test", "member");
    let dave = cp.user_id("dave@acme.test").unwrap();

    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/{dave}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let subject = "Outpost: your role in Acme Dental is now admin";
    let mails = wait_mails(&cp, subject, 1).await;
    let (to, _, body) = &mails[0];
    assert_eq!(to, "dave@acme.test");
    assert!(
        body.contains("olivia@acme.test changed your role in the workspace Acme Dental on Outpost from member to admin."),
        "{body}"
    );
    assert!(body.contains(&format!("/workspaces/{ws_id}\r\n")), "{body}");

    // The same role again changes nothing and says nothing.
    owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/{dave}/role"),
            &[("role", "admin")],
        )
        .await;
    // Ownership moves to Dave: he is told; Olivia did it herself.
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/{dave}/transfer"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let owner_mails = wait_mails(&cp, "Outpost: your role in Acme Dental is now owner", 1).await;
    assert_eq!(owner_mails.len(), 1);
    assert_eq!(owner_mails[0].0, "dave@acme.test");
    assert!(owner_mails[0].2.contains("from admin to owner"));
    assert_eq!(with_subject(&cp, subject).len(), 1);
}

#[tokio::test]
async fn owners_rename_a_workspace_and_its_address_stays() {
    use control_plane::infra::schema::audit_events;
    let cp = Cp::start();
    let owner = Browser::signin(&cp, "olivia@acme.test").await;
    let api = Api::new(&cp, "olivia@acme.test");
    let ws = api.create_workspace("Acme Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let slug = ws["workspace"]["slug"].as_str().unwrap().to_owned();
    add_member(&cp, &ws_id, "dave@acme.test", "admin");

    // The page: the form says the address stays.
    let page = owner
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"rename\""), "{page}");
    assert!(
        page.contains(&format!("The address <code>{slug}</code> stays the same")),
        "{page}"
    );
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/rename"),
            &[("name", "  Acme Dental & Implants  ")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let page = owner
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<h1>Acme Dental &amp; Implants</h1>"),
        "{page}"
    );
    // A name the rule refuses: the page says why, nothing changes.
    let r = owner
        .post_csrf(&format!("/workspaces/{ws_id}/rename"), &[("name", "   ")])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("must not be empty"));

    // The API: PATCH with the new name; the slug is the same.
    let r = api
        .req(
            reqwest::Method::PATCH,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .json(&serde_json::json!({"name": "Acme Smiles"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["workspace"]["name"], "Acme Smiles");
    assert_eq!(v["workspace"]["slug"], slug.as_str());
    let r = api
        .req(
            reqwest::Method::PATCH,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .json(&serde_json::json!({"name": "x".repeat(81)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_name", "{v}");
    let (_, got) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
    assert_eq!(got["workspace"]["name"], "Acme Smiles");
    assert_eq!(got["workspace"]["slug"], slug.as_str());

    // Admins may not rename.
    let admin = Api::new(&cp, "dave@acme.test");
    let r = admin
        .req(
            reqwest::Method::PATCH,
            &format!("/api/v1/workspaces/{ws_id}"),
        )
        .json(&serde_json::json!({"name": "Dave's"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Audited, without the names (customer-written text does not go into the audit log).
    let pool = cp.db();
    let details: Vec<String> = audit_events::table
        .filter(audit_events::action.eq("workspace.renamed"))
        .select(audit_events::detail)
        .load(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(details, ["", ""]);
}

#[tokio::test]
async fn the_email_address_changes_only_through_a_link_sent_to_the_new_one() {
    use control_plane::infra::schema::{audit_events, email_changes};
    let cp = Cp::start();
    let b = Browser::signin(&cp, "dev@acme.test").await;
    let _ = Browser::signin(&cp, "taken@acme.test").await;
    let dev = cp.user_id("dev@acme.test").unwrap();

    let page = b.get("/account/email").await.text().await.unwrap();
    assert!(page.contains("id=\"change-email\""), "{page}");
    let r = b
        .post_csrf("/account/email", &[("email", " New@Acme.test ")])
        .await;
    assert_eq!(r.status(), 200);
    let sent = r.text().await.unwrap();
    assert!(
        sent.contains("We sent a confirmation link to <strong>new@acme.test</strong>"),
        "{sent}"
    );
    let told = wait_mails(
        &cp,
        "Outpost: a change of your account's address was asked for",
        1,
    )
    .await;
    assert_eq!(told[0].0, "dev@acme.test");
    assert!(told[0].2.contains("new@acme.test"));
    let link = wait_for("the confirmation link", 10, || async {
        cp.outbox_find("new@acme.test", "/account/email/confirm?token=")
    })
    .await;
    assert!(
        !told[0].2.contains(&link),
        "the old address never gets the link"
    );
    assert_eq!(
        cp.user_id("dev@acme.test").as_deref(),
        Some(dev.as_str()),
        "not yet"
    );

    // Opening the link only shows a button (mail scanners); pressing it changes the address.
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let r = b.client.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cp.user_id("new@acme.test"), None);
    let r = b.post("/account/email/confirm", &[("token", &token)]).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("uses <strong>new@acme.test</strong>"));
    assert_eq!(cp.user_id("new@acme.test").as_deref(), Some(dev.as_str()));
    assert_eq!(cp.user_id("dev@acme.test"), None);
    let done = wait_mails(&cp, "Outpost: your account's address was changed", 1).await;
    assert_eq!(done[0].0, "dev@acme.test");
    assert!(done[0].2.contains("new@acme.test"));
    // The session goes on, under the new address.
    let home = b.get("/workspaces").await.text().await.unwrap();
    assert!(home.contains("new@acme.test"), "{home}");
    // Single use.
    let r = b.post("/account/email/confirm", &[("token", &token)]).await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("invalid, expired or already used"));

    // An address another account uses: the same answer here; only that mailbox is told.
    let r = b
        .post_csrf("/account/email", &[("email", "taken@acme.test")])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("We sent a confirmation link to <strong>taken@acme.test</strong>"));
    let taken = wait_mails(
        &cp,
        "Your address was not added to another Outpost account",
        1,
    )
    .await;
    assert_eq!(taken[0].0, "taken@acme.test");
    assert!(cp
        .outbox_find("taken@acme.test", "/account/email/confirm?token=")
        .is_none());

    // Expiring: a link past its 30 minutes does nothing.
    b.post_csrf("/account/email", &[("email", "later@acme.test")])
        .await;
    let link = wait_for("the second link", 10, || async {
        cp.outbox_find("later@acme.test", "/account/email/confirm?token=")
    })
    .await;
    let pool = cp.db();
    diesel::update(email_changes::table)
        .set(email_changes::expires_at.eq(1_i64))
        .execute(&mut pool.get().unwrap())
        .unwrap();
    let r = b
        .post(
            "/account/email/confirm",
            &[("token", link.split("token=").nth(1).unwrap())],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(cp.user_id("later@acme.test"), None);

    // A bad address is refused on the page.
    let r = b
        .post_csrf("/account/email", &[("email", "not an address")])
        .await;
    assert_eq!(r.status(), 400);

    // Audited, without the addresses.
    let events: Vec<(String, String)> = audit_events::table
        .filter(audit_events::action.like("account.email%"))
        .select((audit_events::action, audit_events::detail))
        .load(&mut pool.get().unwrap())
        .unwrap();
    assert!(events.contains(&("account.email_changed".into(), String::new())));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.0 == "account.email_change_requested")
            .count(),
        3
    );
    assert!(events.iter().all(|e| e.1.is_empty()));

    // "Your data" lists the changes asked for and the browsers, nothing about a browser.
    let doc: serde_json::Value = b.get("/account/data.json").await.json().await.unwrap();
    // Three asked for: the one used, the taken address (a row like any request, so it
    // counts against the hourly limit; its link was never sent), the one left to expire.
    let changes = doc["email_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{doc}");
    assert_eq!(changes[0]["new_email"], "new@acme.test");
    assert!(changes[0]["used_at"].is_i64());
    let browsers = doc["known_browsers"].as_array().unwrap();
    assert_eq!(browsers.len(), 1, "{doc}");
    assert!(browsers[0].get("token_hash").is_none());
}
