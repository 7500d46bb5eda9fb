//! Members, roles and invitations through the real control plane and node: an owner
//! invites by email, the invitee joins through the link, roles decide what the CP allows
//! and which scopes the node console gets, removals and lower roles end node-console
//! sessions, ownership moves by transfer, and every step lands in the owners' audit log.

use crate::harness::*;

/// The newest invitation link in the dev outbox for `email` (emails are sent in the
/// background, so this waits a little for the file).
async fn invitation_link(cp: &Cp, email: &str) -> String {
    wait_for("the invitation email", 10, || async {
        cp.outbox_find(email, "/invitations/accept?token=")
    })
    .await
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_owned()
}

/// Follows an invitation link as a fresh browser: the GET shows what is offered, the
/// POST joins and signs in.
async fn accept(cp: &Cp, link: &str) -> (reqwest::StatusCode, String, Browser) {
    let mut b = Browser::new(&cp.ui);
    let page = b.client.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the link shows the invitation");
    let r = b
        .post("/invitations/accept", &[("token", &token_of(link))])
        .await;
    let status = r.status();
    if status == 303 {
        b.cookie = session_cookie(&r, "outpost_session");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        (status, loc, b)
    } else {
        let body = r.text().await.unwrap();
        (status, body, b)
    }
}

#[tokio::test]
async fn invited_members_get_their_role_and_lose_access_when_removed() {
    let cp = Cp::start();
    let (owner, _owner_api, ws_id, _) =
        workspace_with_node(&cp, "olivia@acme.test", "Acme Dental").await;

    // The owner invites a member and an admin from the members page.
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/invite"),
            &[("email", "Carol@Acme.test"), ("role", "member")],
        )
        .await;
    // Back to the members page (reloading it sends nothing again), the address not in the URL.
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(back, format!("/workspaces/{ws_id}/members?invited=1"));
    let page = owner.get(&back).await.text().await.unwrap();
    assert!(page.contains("Invitation sent"), "{page}");
    owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/invite"),
            &[("email", "dave@acme.test"), ("role", "admin")],
        )
        .await;
    let page = owner
        .get(&format!("/workspaces/{ws_id}/members"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("carol@acme.test") && page.contains("Pending invitations"));

    // The invitee follows the link: the page says what they join and as what.
    let link = invitation_link(&cp, "carol@acme.test").await;
    let shown = no_redirect_client()
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("Acme Dental") && shown.contains("member"));
    let (status, location, carol) = accept(&cp, &link).await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/workspaces/{ws_id}"));
    let ws_page = carol.get(&location).await.text().await.unwrap();
    assert!(ws_page.contains("Acme Dental"));

    // The same link again: refused in words, nothing changes.
    let again = carol
        .post("/invitations/accept", &[("token", &token_of(&link))])
        .await;
    assert_eq!(again.status(), 410);
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("already been accepted"));

    let (_, _, dave) = accept(&cp, &invitation_link(&cp, "dave@acme.test").await).await;

    // What each role may do on the control plane.
    let carol_invites = carol
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/invite"),
            &[("email", "eve@acme.test"), ("role", "member")],
        )
        .await;
    assert_eq!(carol_invites.status(), 403);
    assert!(carol_invites
        .text()
        .await
        .unwrap()
        .contains("Only the owner of this workspace"));
    assert_eq!(
        carol
            .get(&format!("/workspaces/{ws_id}/audit"))
            .await
            .status(),
        403
    );
    assert_eq!(
        carol
            .get(&format!("/workspaces/{ws_id}/agents/new"))
            .await
            .status(),
        403,
        "members do not configure agents"
    );
    assert_eq!(
        dave.get(&format!("/workspaces/{ws_id}/agents/new"))
            .await
            .status(),
        200,
        "admins do"
    );
    assert_eq!(
        dave.post_csrf(
            &format!("/workspaces/{ws_id}/members/invite"),
            &[("email", "eve@acme.test"), ("role", "member")],
        )
        .await
        .status(),
        403,
        "admins do not manage members"
    );

    // The node console gets the role's scopes: a member has no exports, an admin has.
    let carol_console = NodeConsole::open(&carol, &ws_id).await;
    assert_eq!(carol_console.get("/exports").await.status(), 403);
    let dave_console = NodeConsole::open(&dave, &ws_id).await;
    assert_eq!(dave_console.get("/exports").await.status(), 200);

    // Removing Carol: the CP forgets her membership at once and the node ends her
    // console session when the command arrives.
    let carol_id = cp.user_id("carol@acme.test").unwrap();
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/{carol_id}/remove"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        carol.get(&format!("/workspaces/{ws_id}")).await.status(),
        404
    );
    wait_for("the node to end Carol's console session", 30, || async {
        (carol_console.get("/").await.status() != 200).then_some(())
    })
    .await;

    // Dave down to member: his admin session ends too; a new one carries inbox only.
    let dave_id = cp.user_id("dave@acme.test").unwrap();
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/{dave_id}/role"),
            &[("role", "member")],
        )
        .await;
    assert_eq!(r.status(), 303);
    wait_for("the node to end Dave's admin session", 30, || async {
        (dave_console.get("/exports").await.status() != 200).then_some(())
    })
    .await;
    let dave_console = NodeConsole::open(&dave, &ws_id).await;
    assert_eq!(dave_console.get("/exports").await.status(), 403);

    // Transfer needs the confirmation box, then Dave owns and Olivia is an admin.
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/{dave_id}/transfer"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Tick the box"));
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/members/{dave_id}/transfer"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let members = dave
        .get(&format!("/workspaces/{ws_id}/members"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        members.contains("Send invitation"),
        "Dave now manages members"
    );
    assert_eq!(
        owner
            .post_csrf(
                &format!("/workspaces/{ws_id}/members/invite"),
                &[("email", "eve@acme.test"), ("role", "member")],
            )
            .await
            .status(),
        403,
        "Olivia is an admin now"
    );
    assert_eq!(
        owner
            .get(&format!("/workspaces/{ws_id}/audit"))
            .await
            .status(),
        403
    );

    // The new owner reads the whole story in the audit log, and the chain verifies.
    let log = dave
        .get(&format!("/workspaces/{ws_id}/audit"))
        .await
        .text()
        .await
        .unwrap();
    for action in [
        "member.invited",
        "member.joined",
        "member.removed",
        "member.role_changed",
        "member.ownership_transferred",
        "console.opened",
    ] {
        assert!(log.contains(action), "audit log shows {action}");
    }
    assert!(
        log.contains("olivia@acme.test"),
        "actors are shown by email"
    );
    let (ok, out) = cp.audit_verify();
    assert!(ok, "audit verify: {out}");
}

#[tokio::test]
async fn invitation_links_expire_work_once_and_can_be_withdrawn() {
    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let owner = Browser::signin(&cp, "owner@acme.test").await;
    let api = Api::new(&cp, "owner@acme.test");
    let ws = api.create_workspace("Acme Dental").await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let invite = |email: &'static str, role: &'static str| {
        api.req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/invitations"),
        )
        .json(&serde_json::json!({"email": email, "role": role}))
        .send()
    };

    // The API answers with the invitation, never its token: the link goes only by email.
    let r = invite("x@acme.test", "member").await.unwrap();
    assert_eq!(r.status(), 201);
    let body = r.text().await.unwrap();
    let link = invitation_link(&cp, "x@acme.test").await;
    assert!(!body.contains(&token_of(&link)));

    // Expired (moved back in time in the database): 410 in words, no membership.
    {
        use control_plane::infra::schema::invitations;
        use diesel::prelude::*;
        let mut conn = cp.db().get().unwrap();
        diesel::update(invitations::table.filter(invitations::email.eq("x@acme.test")))
            .set(invitations::expires_at.eq(1))
            .execute(&mut conn)
            .unwrap();
    }
    let b = Browser::new(&cp.ui);
    let r = b.client.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("expired"));
    let r = b
        .post("/invitations/accept", &[("token", &token_of(&link))])
        .await;
    assert_eq!(r.status(), 410);
    assert!(session_cookie(&r, "outpost_session").is_none());

    // Withdrawn from the members page.
    invite("y@acme.test", "admin").await.unwrap();
    let link = invitation_link(&cp, "y@acme.test").await;
    let (_, list) = api
        .get_json(&format!("/api/v1/workspaces/{ws_id}/members"))
        .await;
    let inv_id = list["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "y@acme.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = owner
        .post_csrf(
            &format!("/workspaces/{ws_id}/invitations/{inv_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = b.client.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("withdrawn"));

    // Sending again replaces the earlier link; only the newest works.
    invite("z@acme.test", "member").await.unwrap();
    let first = invitation_link(&cp, "z@acme.test").await;
    invite("z@acme.test", "member").await.unwrap();
    let second = wait_for("the second email", 10, || {
        let cp = &cp;
        let first = first.clone();
        async move {
            let l = invitation_link(cp, "z@acme.test").await;
            (l != first).then_some(l)
        }
    })
    .await;
    assert_eq!(b.client.get(&first).send().await.unwrap().status(), 410);
    let (status, _, _) = accept(&cp, &second).await;
    assert_eq!(status, 303);

    // A made-up token; an existing member; a role that cannot be given.
    let r = b
        .client
        .get(format!("{}/invitations/accept?token=forged", cp.ui))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("not valid"));
    let r = invite("z@acme.test", "member").await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "already_member"
    );
    let r = invite("w@acme.test", "owner").await.unwrap();
    assert_eq!(r.status(), 400);

    // 20 invitations an hour per workspace, then 429 with Retry-After.
    let mut sent = 4;
    let limited = loop {
        let email: &'static str = Box::leak(format!("bulk{sent}@acme.test").into_boxed_str());
        let r = invite(email, "member").await.unwrap();
        if r.status() == 429 {
            break r;
        }
        assert_eq!(r.status(), 201);
        sent += 1;
        assert!(sent <= 20, "the limit applies");
    };
    assert_eq!(sent, 20);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 3600);

    // Invitations and joins are audited with ids only (no token).
    let details: Vec<(String, String)> = {
        use control_plane::infra::schema::audit_events as a;
        use diesel::prelude::*;
        let mut conn = cp.db().get().unwrap();
        a::table
            .filter(a::action.like("member.%"))
            .select((a::action, a::detail))
            .load(&mut conn)
            .unwrap()
    };
    assert!(details
        .iter()
        .any(|(a, _)| a == "member.invitation_revoked"));
    assert!(details
        .iter()
        .any(|(a, d)| a == "member.invitation_refused" && d == "expired"));
    assert!(!details.iter().any(|(_, d)| d.contains(&token_of(&second))));
}
