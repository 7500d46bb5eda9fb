//! Role matrix (issue 7, architecture invariant 2): every route the control plane's UI
//! listener registers × every kind of caller — anonymous, a signed-in stranger, an
//! operator, and the workspace's member, admin and owner — gets the answer its role
//! allows. The routes and the access each needs come from the route table
//! (`control_plane::app::routes::UI`), which is also what registers them and what the
//! access guard enforces; public and node routes are `routes.rs`'s.
//!
//! Refusals are exact: anonymous → a redirect to sign-in (pages) or 401 (API);
//! non-members, including operators (who are not members) → 404, so a workspace's
//! existence is not revealed; members below the route's role → 403. An allowed caller
//! sends the very same request and must get past authorization (anything but 401, 403,
//! 404 or a redirect to sign-in). Routes that destroy something run their allowed calls
//! on a fresh copy of the fixture.

use crate::harness::*;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    /// Any signed-in user, acting on their own account.
    Account,
    /// Any member of the workspace.
    Member,
    /// Admins and the owner.
    Admin,
    /// The owner only.
    Owner,
    /// Operators (staff) only.
    Operator,
    /// An owner route that is off in this configuration (billing without Stripe keys):
    /// the owner gets 404, other members 403 from the access guard, as for any owner
    /// route. `tests/e2e/billing.rs` checks these routes with billing on.
    Off,
}

#[derive(Clone, Copy)]
struct Rule {
    method: &'static str,
    pattern: &'static str,
    access: Access,
    /// Allowed calls run on a fresh fixture (they delete, cancel, transfer or sign out).
    destructive: bool,
    /// Form fields (pages, with the CSRF token added) or JSON string fields (API).
    fields: &'static [(&'static str, &'static str)],
    /// An allowed call may answer 404 because the object it names does not exist for
    /// this caller (a receipt before deprovisioning, an identity the user never linked).
    allowed_404: bool,
    /// Signing out: allowed means the session cookie is cleared on the way to sign-in.
    signs_out: bool,
}

/// A rule whose access [`rules`] fills in from the route table.
const fn rule(method: &'static str, pattern: &'static str) -> Rule {
    Rule {
        method,
        pattern,
        access: Access::Account,
        destructive: false,
        fields: &[],
        allowed_404: false,
        signs_out: false,
    }
}

const AGENT: &[(&str, &str)] = &[
    ("name", "Matrix"),
    ("language", "en"),
    ("fallback_message", "Sorry."),
    ("open", "09:00"),
    ("close", "17:00"),
    ("provider", "retrieval"),
];

/// Stripe's flows, which answer 404 while billing is off (as here: no Stripe keys). The
/// table makes them owner routes; `tests/e2e/billing.rs` checks them with billing on.
const OFF_WITHOUT_STRIPE: &[(&str, &str)] = &[
    ("post", "/workspaces/{id}/billing/checkout"),
    ("get", "/workspaces/{id}/billing/return"),
    ("post", "/workspaces/{id}/billing/portal"),
    ("post", "/api/v1/workspaces/{id}/checkout"),
];

/// Every route of the UI listener that is not public, with the access the route table
/// (`control_plane::app::routes::UI`) declares and the extras above.
fn rules() -> Vec<Rule> {
    use control_plane::app::routes::{Access as Declared, UI};
    use control_plane::members::Role;
    UI.iter()
        .filter(|r| r.access != Declared::Public)
        .map(|r| {
            let method = crate::routes::lower(r.method.as_str());
            let off = OFF_WITHOUT_STRIPE.contains(&(method, r.path));
            let access = match r.access {
                Declared::Account => Access::Account,
                Declared::Member(_) if off => {
                    assert_eq!(r.access, Declared::Member(Role::Owner), "{}", r.path);
                    Access::Off
                }
                Declared::Member(Role::Member) => Access::Member,
                Declared::Member(Role::Admin) => Access::Admin,
                Declared::Member(Role::Owner) => Access::Owner,
                Declared::Operator => Access::Operator,
                Declared::Public | Declared::Node => unreachable!("{}", r.path),
            };
            let extra = EXTRAS
                .iter()
                .find(|e| e.method == method && e.pattern == r.path);
            Rule {
                access,
                ..extra.map_or_else(|| rule(method, r.path), |e| Rule { ..*e })
            }
        })
        .collect()
}

/// What some calls need beyond their access level (read from the route table):
/// form fields, a fresh fixture, a 404 that is still allowed.
const EXTRAS: &[Rule] = &[
    Rule {
        fields: &[("name", "Matrix Workspace")],
        ..rule("post", "/workspaces")
    },
    Rule {
        fields: &[("name", "matrix")],
        ..rule("post", "/account/tokens")
    },
    // A token or session id that is not the caller's (here, none at all) is 404.
    Rule {
        allowed_404: true,
        ..rule("post", "/account/tokens/{token}/revoke")
    },
    Rule {
        allowed_404: true,
        ..rule("delete", "/api/v1/tokens/{token}")
    },
    Rule {
        allowed_404: true,
        ..rule("post", "/account/sessions/{session}/end")
    },
    Rule {
        fields: &[("email", "matrix-new@acme.test")],
        ..rule("post", "/account/email")
    },
    // A wrong confirmation re-renders the page: the account stays open.
    Rule {
        fields: &[("confirm", "not my email")],
        ..rule("post", "/account/close")
    },
    Rule {
        fields: &[("id", "00000000-0000-0000-0000-000000000000")],
        allowed_404: true,
        ..rule("post", "/account/identities/unlink")
    },
    Rule {
        destructive: true,
        signs_out: true,
        ..rule("post", "/signout")
    },
    Rule {
        fields: &[("name", "Matrix API Workspace")],
        ..rule("post", "/api/v1/workspaces")
    },
    Rule {
        allowed_404: true,
        ..rule("get", "/workspaces/{id}/receipt")
    },
    Rule {
        fields: AGENT,
        ..rule("post", "/workspaces/{id}/agents")
    },
    Rule {
        fields: AGENT,
        ..rule("post", "/workspaces/{id}/agents/{agent}")
    },
    Rule {
        destructive: true,
        ..rule("post", "/workspaces/{id}/agents/{agent}/delete")
    },
    Rule {
        fields: &[("kind", "openai_api_key"), ("value", "not-a-key")],
        ..rule("post", "/workspaces/{id}/secrets")
    },
    Rule {
        allowed_404: true,
        ..rule("post", "/workspaces/{id}/secrets/{kind}/remove")
    },
    Rule {
        fields: AGENT,
        ..rule("post", "/api/v1/workspaces/{id}/agents")
    },
    Rule {
        fields: AGENT,
        ..rule("put", "/api/v1/workspaces/{id}/agents/{agent}")
    },
    Rule {
        fields: &[("name", "Matrix Renamed")],
        ..rule("patch", "/api/v1/workspaces/{id}")
    },
    Rule {
        fields: &[("name", "Matrix Renamed")],
        ..rule("post", "/workspaces/{id}/rename")
    },
    Rule {
        destructive: true,
        ..rule("delete", "/api/v1/workspaces/{id}/agents/{agent}")
    },
    Rule {
        fields: &[("kind", "openai_api_key"), ("value", "not-a-key")],
        ..rule("post", "/api/v1/workspaces/{id}/secrets")
    },
    Rule {
        allowed_404: true,
        ..rule("delete", "/api/v1/workspaces/{id}/secrets/{kind}")
    },
    Rule {
        fields: &[("email", "invitee@acme.test"), ("role", "member")],
        ..rule("post", "/workspaces/{id}/members/invite")
    },
    Rule {
        fields: &[("email", "api-invitee@acme.test"), ("role", "member")],
        ..rule("post", "/api/v1/workspaces/{id}/invitations")
    },
    Rule {
        destructive: true,
        ..rule("post", "/workspaces/{id}/invitations/{invitation}/revoke")
    },
    Rule {
        fields: &[("role", "admin")],
        ..rule("post", "/workspaces/{id}/members/{user}/role")
    },
    Rule {
        destructive: true,
        ..rule("post", "/workspaces/{id}/members/{user}/remove")
    },
    Rule {
        destructive: true,
        fields: &[("confirm", "yes")],
        ..rule("post", "/workspaces/{id}/members/{user}/transfer")
    },
    // Cancelling needs the ticked checkbox, deleting now the typed address: with them the
    // owner's call goes through (and each destroys its own fixture).
    Rule {
        destructive: true,
        fields: &[("confirm", "yes")],
        ..rule("post", "/workspaces/{id}/cancel")
    },
    Rule {
        destructive: true,
        fields: &[("confirm", "{slug}")],
        ..rule("post", "/workspaces/{id}/delete")
    },
    Rule {
        destructive: true,
        ..rule("delete", "/api/v1/workspaces/{id}")
    },
    Rule {
        fields: &[("plan", "starter")],
        ..rule("post", "/workspaces/{id}/billing/checkout")
    },
    Rule {
        fields: &[("plan", "starter")],
        ..rule("post", "/api/v1/workspaces/{id}/checkout")
    },
    Rule {
        fields: &[("reason", "Matrix check")],
        ..rule("post", "/operator/workspaces/{id}/suspend")
    },
    Rule {
        destructive: true,
        fields: &[("reason", "Matrix check"), ("confirm", "{slug}")],
        ..rule("post", "/operator/workspaces/{id}/deprovision")
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Caller {
    Anonymous,
    Stranger,
    Operator,
    Member,
    Admin,
    Owner,
}

const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::Stranger,
    Caller::Operator,
    Caller::Member,
    Caller::Admin,
    Caller::Owner,
];

impl Caller {
    fn email(self) -> &'static str {
        match self {
            Caller::Anonymous => "",
            Caller::Stranger => "stranger@elsewhere.test",
            Caller::Operator => "operator@outpost.test",
            Caller::Member => "member@acme.test",
            Caller::Admin => "admin@acme.test",
            Caller::Owner => "owner@acme.test",
        }
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Allowed,
    /// Refused with this status (303 = redirect to sign-in).
    Refused(u16),
}

fn expect(rule: &Rule, caller: Caller) -> Expect {
    let api = rule.pattern.starts_with("/api/");
    let rank = |c: Caller| match c {
        Caller::Member => Some(Access::Member),
        Caller::Admin => Some(Access::Admin),
        Caller::Owner => Some(Access::Owner),
        _ => None,
    };
    match (caller, rule.access) {
        (Caller::Anonymous, _) => Expect::Refused(if api { 401 } else { 303 }),
        (_, Access::Account) => Expect::Allowed,
        (Caller::Operator, Access::Operator) => Expect::Allowed,
        (_, Access::Operator) => Expect::Refused(404),
        (Caller::Owner, Access::Off) => Expect::Refused(404),
        (Caller::Member | Caller::Admin, Access::Off) => Expect::Refused(403),
        (_, Access::Off) => Expect::Refused(404),
        (Caller::Stranger | Caller::Operator, _) => Expect::Refused(404),
        (c, needed) => match rank(c) {
            Some(r) if r >= needed => Expect::Allowed,
            _ => Expect::Refused(403),
        },
    }
}

/// A workspace where every role is filled, with an agent, a pending invitation and a
/// plain member (`target`) for the member-management routes to act on.
struct Fixture {
    ws_id: String,
    slug: String,
    agent_id: String,
    invitation_id: String,
    target_id: String,
}

fn add_member(cp: &Cp, ws_id: &str, email: &str, role: &str) -> String {
    use control_plane::infra::schema::memberships as m;
    use diesel::prelude::*;
    let mut conn = cp.db().get().unwrap();
    let uid = control_plane::accounts::find_or_create_user(&mut conn, email).unwrap();
    diesel::insert_into(m::table)
        .values((
            m::workspace_id.eq(ws_id),
            m::user_id.eq(&uid),
            m::role.eq(role),
            m::created_at.eq(0_i64),
        ))
        .execute(&mut conn)
        .unwrap();
    uid
}

async fn fixture(cp: &Cp, owner: &Api, name: &str) -> Fixture {
    let ws = owner.create_workspace(name).await;
    let ws_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    let slug = ws["workspace"]["slug"].as_str().unwrap().to_owned();
    add_member(cp, &ws_id, Caller::Admin.email(), "admin");
    add_member(cp, &ws_id, Caller::Member.email(), "member");
    let target_id = add_member(cp, &ws_id, "target@acme.test", "member");
    let r = owner
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/agents"),
        )
        .json(&json_fields(AGENT))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "agent created");
    let agent_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = owner
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/workspaces/{ws_id}/invitations"),
        )
        .json(&serde_json::json!({"email": "pending@acme.test", "role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "invitation created");
    let invitation_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Fixture {
        ws_id,
        slug,
        agent_id,
        invitation_id,
        target_id,
    }
}

fn json_fields(fields: &[(&str, &str)]) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect(),
    )
}

struct Callers {
    browsers: HashMap<Caller, Browser>,
    apis: HashMap<Caller, Api>,
    anonymous: reqwest::Client,
    ui: String,
}

impl Callers {
    /// Sends `rule`'s request as `caller`.
    async fn call(&self, rule: &Rule, caller: Caller, f: &Fixture) -> Outcome {
        self.call_as(rule, caller, f, None).await
    }

    /// [`Callers::call`], with `api` instead of the caller's usual token (API tokens are
    /// rate limited per token: 60 at once, 120 a minute).
    async fn call_as(
        &self,
        rule: &Rule,
        caller: Caller,
        f: &Fixture,
        token: Option<&Api>,
    ) -> Outcome {
        let path = rule
            .pattern
            .replace("{id}", &f.ws_id)
            .replace("{agent}", &f.agent_id)
            .replace("{invitation}", &f.invitation_id)
            .replace("{user}", &f.target_id)
            .replace("{kind}", "openai_api_key");
        let fields: Vec<(&str, &str)> = rule
            .fields
            .iter()
            .map(|(k, v)| (*k, if *v == "{slug}" { f.slug.as_str() } else { *v }))
            .collect();
        let method = reqwest::Method::from_bytes(rule.method.to_uppercase().as_bytes()).unwrap();
        let api = rule.pattern.starts_with("/api/");
        let r = match (caller, api) {
            (Caller::Anonymous, _) => {
                let mut fields = fields.clone();
                fields.push(("csrf", "none"));
                self.anonymous
                    .request(method, format!("{}{path}", self.ui))
                    .header("origin", &self.ui)
                    .form(&fields)
                    .send()
                    .await
                    .unwrap()
            }
            (c, true) => {
                let mut r = token.unwrap_or(&self.apis[&c]).req(method.clone(), &path);
                if method != reqwest::Method::GET {
                    r = r.json(&json_fields(&fields));
                }
                r.send().await.unwrap()
            }
            (c, false) if method == reqwest::Method::GET => self.browsers[&c].get(&path).await,
            (c, false) => self.browsers[&c].post_csrf(&path, &fields).await,
        };
        let to_signin = r
            .headers()
            .get("location")
            .is_some_and(|l| l.to_str().unwrap().starts_with("/signin"));
        let cleared_session = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("outpost_session=;"));
        Outcome {
            status: r.status().as_u16(),
            to_signin,
            cleared_session,
        }
    }
}

struct Outcome {
    status: u16,
    to_signin: bool,
    cleared_session: bool,
}

fn check(rule: &Rule, caller: Caller, o: Outcome) {
    let what = format!("{} {} as {caller:?}", rule.method, rule.pattern);
    let (status, to_signin) = (o.status, o.to_signin);
    match expect(rule, caller) {
        Expect::Allowed if rule.signs_out => assert!(
            status == 303 && o.cleared_session,
            "{what}: expected the session to be cleared, got {status}"
        ),
        Expect::Refused(_) if rule.signs_out => assert!(
            !o.cleared_session && to_signin,
            "{what}: a caller without a session is sent to sign-in"
        ),
        Expect::Refused(303) => assert!(
            status == 303 && to_signin,
            "{what}: expected a redirect to sign-in, got {status}"
        ),
        Expect::Refused(s) => assert_eq!(status, s, "{what}: refused"),
        Expect::Allowed => {
            let refused =
                status == 401 || status == 403 || (status == 404 && !rule.allowed_404) || to_signin;
            assert!(!refused, "{what}: expected to be allowed, got {status}");
        }
    }
}

#[tokio::test]
async fn every_route_answers_each_role_as_it_should() {
    // Every extra names a route of the table that is not public.
    let rules = rules();
    for e in EXTRAS {
        assert!(
            rules
                .iter()
                .any(|r| r.method == e.method && r.pattern == e.pattern),
            "{} {} has extras but is not a protected route of the table",
            e.method,
            e.pattern
        );
    }

    let cp = Cp::start_with(Opts {
        provisioner: "manual",
        ..Opts::default()
    });
    let mut browsers = HashMap::new();
    let mut apis = HashMap::new();
    for c in CALLERS.into_iter().skip(1) {
        browsers.insert(c, Browser::signin(&cp, c.email()).await);
        apis.insert(c, Api::new(&cp, c.email()));
    }
    {
        use control_plane::infra::schema::users;
        use diesel::prelude::*;
        let mut conn = cp.db().get().unwrap();
        diesel::update(users::table.filter(users::email.eq(Caller::Operator.email())))
            .set(users::is_operator.eq(true))
            .execute(&mut conn)
            .unwrap();
    }
    let main = fixture(&cp, &apis[&Caller::Owner], "Acme Dental").await;
    let callers = Callers {
        browsers,
        apis,
        anonymous: no_redirect_client(),
        ui: cp.ui.clone(),
    };

    // Refusals first, on the shared fixture: none of them may change anything.
    let mut refusals = 0;
    for rule in &rules {
        for caller in CALLERS {
            if expect(rule, caller) != Expect::Allowed {
                check(rule, caller, callers.call(rule, caller, &main).await);
                refusals += 1;
            }
        }
    }
    // Then the allowed calls; destructive ones each get their own fixture, and a
    // sign-out its own session.
    let mut allowed = 0;
    let mut copies = 0;
    for rule in rules.iter().filter(|r| !r.destructive) {
        for caller in CALLERS {
            if expect(rule, caller) == Expect::Allowed {
                check(rule, caller, callers.call(rule, caller, &main).await);
                allowed += 1;
            }
        }
    }
    for rule in rules.iter().filter(|r| r.destructive) {
        for caller in CALLERS {
            if expect(rule, caller) != Expect::Allowed {
                continue;
            }
            copies += 1;
            // Fresh tokens: each copy makes a few API calls of its own.
            let owner_api = Api::new(&cp, Caller::Owner.email());
            let caller_api = Api::new(&cp, caller.email());
            let f = fixture(&cp, &owner_api, &format!("Matrix copy {copies}")).await;
            if rule.access == Access::Account {
                // Signing out ends the session: use a fresh one of the same user.
                let fresh = Browser::signin(&cp, caller.email()).await;
                let own = Callers {
                    browsers: HashMap::from([(caller, fresh)]),
                    apis: HashMap::new(),
                    anonymous: no_redirect_client(),
                    ui: cp.ui.clone(),
                };
                check(rule, caller, own.call(rule, caller, &f).await);
            } else {
                check(
                    rule,
                    caller,
                    callers.call_as(rule, caller, &f, Some(&caller_api)).await,
                );
            }
            allowed += 1;
        }
    }
    assert!(refusals >= 140, "{refusals} refusals checked");
    assert!(allowed >= 60, "{allowed} allowed calls checked");
}

#[test]
fn expectations_follow_the_role_order() {
    use Caller as C;
    let owner_page = Rule {
        access: Access::Owner,
        ..rule("post", "/workspaces/{id}/delete")
    };
    let admin_api = Rule {
        access: Access::Admin,
        ..rule("get", "/api/v1/workspaces/{id}/secrets")
    };
    let staff = Rule {
        access: Access::Operator,
        ..rule("get", "/operator")
    };
    assert_eq!(expect(&owner_page, C::Anonymous), Expect::Refused(303));
    assert_eq!(expect(&admin_api, C::Anonymous), Expect::Refused(401));
    assert_eq!(expect(&owner_page, C::Stranger), Expect::Refused(404));
    assert_eq!(expect(&owner_page, C::Operator), Expect::Refused(404));
    assert_eq!(expect(&owner_page, C::Admin), Expect::Refused(403));
    assert_eq!(expect(&owner_page, C::Owner), Expect::Allowed);
    assert_eq!(expect(&admin_api, C::Member), Expect::Refused(403));
    assert_eq!(expect(&admin_api, C::Admin), Expect::Allowed);
    assert_eq!(expect(&staff, C::Owner), Expect::Refused(404));
    assert_eq!(expect(&staff, C::Operator), Expect::Allowed);
}
