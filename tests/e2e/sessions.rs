//! Sessions (issue 20, part 2): the account's sessions listed with the device in words,
//! a coarse network (never the address) and when each was last seen; one ended, or all
//! others; and signing out or ending sessions on the CP also ends the user's node
//! console sessions, through the node's command channel.

use crate::harness::*;
use diesel::prelude::*;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A page request with a `User-Agent`, as a real browser sends; its status.
async fn visit(b: &Browser, path: &str, ua: &str) -> u16 {
    b.client
        .get(format!("{}{path}", b.base))
        .header("cookie", b.cookie.as_deref().unwrap())
        .header("user-agent", ua)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The "end" form's session id on the row of the sessions page that mentions `needle`.
fn session_id(page: &str, needle: &str) -> String {
    let row = page
        .split("<tr")
        .find(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle}: {page}"));
    extract_attr(row, "action=\"/account/sessions/")
        .unwrap()
        .trim_end_matches("/end")
        .to_owned()
}

fn now() -> i64 {
    control_plane::infra::db::now()
}

/// `(last_seen_at, place)` of every session of the account, by device.
fn sessions_of(cp: &Cp, email: &str) -> Vec<(String, Option<i64>, String)> {
    use control_plane::infra::schema::sessions as s;
    let user = cp.user_id(email).unwrap();
    let mut conn = cp.db().get().unwrap();
    s::table
        .filter(s::user_id.eq(user))
        .select((s::device, s::last_seen_at, s::place))
        .load(&mut conn)
        .unwrap()
}

fn set_last_seen(cp: &Cp, device: &str, at: i64) {
    use control_plane::infra::schema::sessions as s;
    let mut conn = cp.db().get().unwrap();
    diesel::update(s::table.filter(s::device.eq(device)))
        .set(s::last_seen_at.eq(at))
        .execute(&mut conn)
        .unwrap();
}

#[tokio::test]
async fn sessions_are_listed_and_ended_one_at_a_time_or_all_others() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let laptop = Browser::signin(&cp, "alice@example.test").await;
    let office = Browser::signin(&cp, "alice@example.test").await;
    let phone = Browser::signin(&cp, "alice@example.test").await;
    let bob = Browser::signin(&cp, "bob@example.test").await;
    assert_eq!(visit(&laptop, "/workspaces", FIREFOX).await, 200);
    assert_eq!(visit(&office, "/workspaces", CHROME).await, 200);

    // Listed: the device in words, the /24 (never the address), this browser marked.
    let page = laptop.get("/account/sessions").await.text().await.unwrap();
    assert!(page.contains("Firefox on Linux"), "{page}");
    assert!(page.contains("Chrome on Windows"), "{page}");
    assert!(page.contains("127.0.0.0/24"), "{page}");
    assert!(!page.contains("127.0.0.1"), "a full address on the page");
    assert!(
        page.split("<tr")
            .find(|r| r.contains("Firefox on Linux"))
            .unwrap()
            .contains("(this browser)"),
        "{page}"
    );
    assert!(
        page.contains("name=\"csrf\""),
        "every form carries the CSRF token"
    );
    for (_, _, place) in sessions_of(&cp, "alice@example.test") {
        assert!(place.is_empty() || place.ends_with("/24"), "{place}");
    }

    // "Last seen" is written at most once a minute.
    let recent = now() - 30;
    set_last_seen(&cp, "Firefox on Linux", recent);
    assert_eq!(visit(&laptop, "/workspaces", FIREFOX).await, 200);
    let seen = |cp: &Cp| {
        sessions_of(cp, "alice@example.test")
            .into_iter()
            .find(|s| s.0 == "Firefox on Linux")
            .unwrap()
            .1
    };
    assert_eq!(seen(&cp), Some(recent), "no write within the minute");
    set_last_seen(&cp, "Firefox on Linux", now() - 120);
    assert_eq!(visit(&laptop, "/workspaces", FIREFOX).await, 200);
    assert!(
        seen(&cp).is_some_and(|t| now() - t < 60),
        "written after a minute"
    );

    // Someone else's session is not found; ending one of mine signs that browser out.
    let office_id = session_id(&page, "Chrome on Windows");
    let r = bob
        .post_csrf(&format!("/account/sessions/{office_id}/end"), &[])
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(visit(&office, "/workspaces", CHROME).await, 200, "still in");
    let r = laptop
        .post_csrf(&format!("/account/sessions/{office_id}/end"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account/sessions");
    assert_eq!(visit(&office, "/workspaces", CHROME).await, 303, "ended");
    assert_eq!(visit(&laptop, "/workspaces", FIREFOX).await, 200);

    // A form without the CSRF token changes nothing.
    let r = laptop.post("/account/sessions/end-others", &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(phone.get("/workspaces").await.status(), 200);

    // All others: the phone goes, this browser and Bob stay.
    let r = laptop.post_csrf("/account/sessions/end-others", &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("1 other session ended."));
    assert_eq!(phone.get("/workspaces").await.status(), 303);
    assert_eq!(laptop.get("/workspaces").await.status(), 200);
    assert_eq!(bob.get("/workspaces").await.status(), 200);
    assert_eq!(sessions_of(&cp, "alice@example.test").len(), 1);

    // Ending this browser's own session from the list is signing out.
    let page = laptop.get("/account/sessions").await.text().await.unwrap();
    let own = session_id(&page, "(this browser)");
    let r = laptop
        .post_csrf(&format!("/account/sessions/{own}/end"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/signin");
    assert_eq!(laptop.get("/workspaces").await.status(), 303);

    // Audited.
    use control_plane::infra::schema::audit_events::dsl as a;
    let mut conn = cp.db().get().unwrap();
    let actions: Vec<String> = a::audit_events
        .filter(a::action.like("session.%"))
        .select(a::action)
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        actions,
        ["session.ended", "session.ended_others", "session.ended"]
    );
}

/// Signing out of the CP ends the user's console session on the workspace's node (the
/// CP queues `end_console_sessions` on the node's command channel); so does ending the
/// CP session of another browser, or all others.
#[tokio::test]
async fn signing_out_or_ending_a_session_ends_the_node_console_session() {
    let cp = Cp::start();
    let (browser, _api, ws_id, console) =
        workspace_with_node(&cp, "owner@example.test", "Acme Dental").await;
    assert_eq!(console.get("/").await.status(), 200);
    let r = browser.post_csrf("/signout", &[]).await;
    assert_eq!(r.status(), 303);
    wait_for("the node to refuse the console session", 30, || async {
        (console.get("/").await.status() == 401).then_some(())
    })
    .await;

    // From another browser: end all others, and the console opened elsewhere ends.
    let desk = Browser::signin(&cp, "owner@example.test").await;
    let home = Browser::signin(&cp, "owner@example.test").await;
    let console = NodeConsole::open(&home, &ws_id).await;
    assert_eq!(console.get("/").await.status(), 200);
    let r = desk.post_csrf("/account/sessions/end-others", &[]).await;
    assert_eq!(r.status(), 200);
    wait_for("the node to end the console opened at home", 30, || async {
        (console.get("/").await.status() == 401).then_some(())
    })
    .await;
    assert_eq!(home.get("/workspaces").await.status(), 303);
}
