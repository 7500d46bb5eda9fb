//! Who may use which console route. One table, [`ROUTES`], says what every route the
//! console registers needs; [`guard`] enforces it on every request, before any handler
//! or extractor reads the request; the navigation shows a link only where the same
//! table lets the session in.
//!
//! Scopes come from the capability token the CP signs for the user's workspace role
//! (`control-plane` `workspaces::console_link`): members get `console` and `inbox`;
//! admins add `settings`, `knowledge_base` and `exports`; owners add `billing`, which
//! only CP pages use. A scope the node does not know is carried and ignored.
//!
//! Errors keep the navigation: the guard, which holds the session, turns every error page
//! a signed-in user would get (400, 403, 404, 413, 500) into one with the navigation and a
//! "Back" link ([`back_from`]); see `console::error` for why there.
//!
//! A route missing from the table is not served as a page: the guard lets the request
//! through without a session, so its [`ConsoleSession`] argument refuses it (500, logged
//! with the route pattern). `console::tests::every_console_route_declares_its_scope`
//! fails for it first — and also for a handler that takes no session at all, which
//! nothing at run time could tell from a public one.

use super::error::ErrorView;
use super::{valid_id, ConsoleError, ConsoleSession};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage as _;
use std::sync::LazyLock;

/// A scope a console session can carry; shared with the CP, which signs it into tokens.
pub use outpost_protocol::Scope;

/// What a request to a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the health check, static assets, and the sign-in handoff (whose token
    /// is checked by the handler itself).
    Public,
    /// No session: the link's HMAC signature and expiry are the authorization (export
    /// downloads, which can be handed to the contact an export is about).
    SignedLink,
    /// A session carrying this scope.
    Session(Scope),
}

/// One console route: method, pattern as registered, and what it needs.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The pattern exactly as the section registers it (`/contacts/{id}`).
    pub pattern: &'static str,
    /// What a request needs.
    pub need: Need,
}

const fn get(pattern: &'static str, need: Need) -> Route {
    Route {
        method: "GET",
        pattern,
        need,
    }
}

const fn post(pattern: &'static str, need: Need) -> Route {
    Route {
        method: "POST",
        pattern,
        need,
    }
}

const CONSOLE: Need = Need::Session(Scope::Console);
const INBOX: Need = Need::Session(Scope::Inbox);
const KNOWLEDGE_BASE: Need = Need::Session(Scope::KnowledgeBase);
const SETTINGS: Need = Need::Session(Scope::Settings);
const EXPORTS: Need = Need::Session(Scope::Exports);

/// Erasing a contact, and the record of erasures, need `settings` (admins and owners),
/// not `inbox`. An erasure deletes the contact's key, conversations, messages, notes
/// and follow-ups at once and cannot be undone; members work the inbox (reply, take
/// over, annotate) but do not decide what the workspace destroys. It sits with the
/// retention periods, also `settings`, which erase inactive contacts on a schedule:
/// whoever may set those may erase one contact by hand. Not `exports`: that scope
/// reads data out, this one destroys it.
pub const ERASURE: Need = SETTINGS;

/// Every console route and what it needs. The guard consults it on each request; the
/// route-coverage test checks it against the routes the sources register.
pub const ROUTES: &[Route] = &[
    // mod.rs and handoff.rs
    get("/healthz", Need::Public),
    get("/static/outpost.css", Need::Public),
    get("/static/htmx.min.js", Need::Public),
    get("/static/favicon.svg", Need::Public),
    get("/auth/handoff", Need::Public),
    post("/logout", CONSOLE),
    // home.rs
    get("/", CONSOLE),
    // inbox.rs: reading, replying, taking over and handing back conversations
    get("/inbox", INBOX),
    get("/inbox/list", INBOX),
    get("/inbox/{id}", INBOX),
    get("/inbox/{id}/messages", INBOX),
    get("/inbox/media/{message}", INBOX),
    post("/inbox/{id}/reply", INBOX),
    post("/inbox/{id}/template", INBOX),
    post("/inbox/{id}/takeover", INBOX),
    post("/inbox/{id}/call/takeover", INBOX),
    post("/inbox/{id}/handback", INBOX),
    post("/inbox/{id}/close", INBOX),
    // contacts.rs: the CRM
    get("/contacts", INBOX),
    get("/contacts/{id}", INBOX),
    post("/contacts/{id}", INBOX),
    post("/contacts/{id}/notes", INBOX),
    post("/contacts/{id}/followups", INBOX),
    post("/contacts/{id}/followups/{fid}/done", INBOX),
    post("/contacts/{id}/erase", ERASURE),
    get("/erasures", ERASURE),
    // kb.rs
    get("/kb", KNOWLEDGE_BASE),
    post("/kb/upload", KNOWLEDGE_BASE),
    post("/kb/sites", KNOWLEDGE_BASE),
    get("/kb/sites/{id}/row", KNOWLEDGE_BASE),
    post("/kb/sites/{id}/import", KNOWLEDGE_BASE),
    post("/kb/sites/{id}/delete", KNOWLEDGE_BASE),
    get("/kb/{id}", KNOWLEDGE_BASE),
    post("/kb/{id}/delete", KNOWLEDGE_BASE),
    // agents.rs: the agents' configuration, embed snippets and preview
    get("/agents", SETTINGS),
    get("/agents/{id}/preview", SETTINGS),
    // settings.rs: provider keys (status, set, remove)
    get("/settings", SETTINGS),
    post("/settings/secrets", SETTINGS),
    post("/settings/secrets/{kind}/delete", SETTINGS),
    post("/settings/voice", SETTINGS),
    get("/settings/telephony", SETTINGS),
    post("/settings/telephony/assign", SETTINGS),
    // retention.rs
    get("/settings/retention", SETTINGS),
    post("/settings/retention", SETTINGS),
    post("/settings/retention/preview", SETTINGS),
    post("/settings/retention/sweep", SETTINGS),
    // exports.rs
    get("/exports", EXPORTS),
    post("/exports", EXPORTS),
    get("/exports/{id}/row", EXPORTS),
    post("/exports/{id}/delete", EXPORTS),
    post("/contacts/{id}/export", EXPORTS),
    get("/exports/{id}/download", Need::SignedLink),
    // integrations.rs: node API tokens and webhook endpoints, which hand the node's data
    // to other systems: admins and owners, like the provider keys.
    get("/integrations", SETTINGS),
    post("/integrations/tokens", SETTINGS),
    post("/integrations/tokens/{id}/revoke", SETTINGS),
    post("/integrations/webhooks", SETTINGS),
    post("/integrations/webhooks/{id}/delete", SETTINGS),
    // appointments.rs: the calendar for everyone with the inbox, settings for admins,
    // and the customer's and the staff's signed links
    get("/appointments", INBOX),
    post("/appointments/settings", SETTINGS),
    post("/appointments/services", SETTINGS),
    post("/appointments/services/{id}/delete", SETTINGS),
    post("/appointments/staff", SETTINGS),
    post("/appointments/staff/{id}/delete", SETTINGS),
    post("/appointments/staff/{id}/closures", SETTINGS),
    get("/appointments/staff/{id}", SETTINGS),
    post("/appointments/staff/{id}", SETTINGS),
    post("/appointments/closures", SETTINGS),
    get("/appointments/feed/{staff}/calendar.ics", Need::SignedLink),
    get("/appointments/{id}/booking.ics", Need::SignedLink),
    get("/appointments/{id}/{action}", Need::SignedLink),
    post("/appointments/{id}/{action}", Need::SignedLink),
];

/// [`ROUTES`] with their patterns compiled once.
static MATCHERS: LazyLock<Vec<(Route, ResourceDef)>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|r| (*r, ResourceDef::new(r.pattern)))
        .collect()
});

/// What a request needs: `None` when it reaches no declared route (an unknown page, or
/// a route missing from the table: both end without a session), else the scopes to
/// check — empty for public and signed-link routes. Where two patterns can match one
/// path (`/inbox/list`, `/inbox/{id}`), every scope either needs is asked for.
pub fn scopes_for(method: &str, path: &str) -> Option<Vec<Scope>> {
    let mut found = None::<Vec<Scope>>;
    for (route, def) in MATCHERS.iter() {
        if route.method != method || !def.is_match(path) {
            continue;
        }
        let scopes = found.get_or_insert_with(Vec::new);
        if let Need::Session(s) = route.need {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    found
}

/// What the route registered as `method pattern` needs, if it is declared.
pub fn need_of(method: &str, pattern: &str) -> Option<Need> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.pattern == pattern)
        .map(|r| r.need)
}

impl ConsoleSession {
    /// Whether the session carries `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.as_str())
    }

    /// Whether this session may use the route registered as `method pattern`; pages use
    /// it to leave out links and forms that would end on the 403 page.
    pub fn may(&self, method: &str, pattern: &str) -> bool {
        match need_of(method, pattern) {
            Some(Need::Session(scope)) => self.has_scope(scope),
            Some(Need::Public | Need::SignedLink) => true,
            None => false,
        }
    }
}

/// The middleware around every console route: finds what the request needs in
/// [`ROUTES`], and for a page that needs a session loads it (401 page without one) and
/// checks its scopes (403 page naming the missing one), before the handler or any
/// extractor runs — so a refused upload or form is never read. The session it found is
/// what the page's [`ConsoleSession`] argument receives.
///
/// On the way out it gives error pages back their navigation: the page returned an error
/// (actix keeps it on the response), the guard knows the session, so it renders the same
/// status and message with [`ErrorView::with_navigation`] and a "Back" link. This is the
/// one place that has both; handlers keep returning plain [`ConsoleError`]s. A request
/// that needed no session (an unknown page) gets the navigation too when its cookie names
/// one. A 401 stays bare: there is no session to show.
pub async fn guard<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let method = req.method().as_str().to_owned();
    let path = req.match_info().as_str().to_owned();
    let needed = scopes_for(&method, &path);
    let session = match needed.filter(|n| !n.is_empty()) {
        None => None,
        Some(needed) => {
            let session = match ConsoleSession::load(req.request()).await {
                Ok(s) => s,
                Err(e) => return Ok(req.error_response(e).map_into_right_body()),
            };
            if let Some(missing) = needed.iter().find(|s| !session.has_scope(**s)) {
                // The user and the scope only: never the path or its query (docs/LOGGING.md).
                tracing::info!(
                    user = %session.user_id,
                    scope = missing.as_str(),
                    "console request refused: missing scope"
                );
                let view = ConsoleError::MissingScope(*missing).view();
                let back = back_from(&method, &path, &session, false);
                let page = view.with_navigation(Nav::for_session(&session), &back);
                return Ok(req.into_response(page).map_into_right_body());
            }
            req.extensions_mut().insert(session.clone());
            Some(session)
        }
    };
    let res = next.call(req).await?;
    let Some(view) = ErrorView::of(res.response()).filter(ErrorView::keeps_navigation) else {
        return Ok(res.map_into_left_body());
    };
    let session = match session {
        Some(s) => s,
        None => match ConsoleSession::load(res.request()).await {
            Ok(s) => s,
            Err(_) => return Ok(res.map_into_left_body()),
        },
    };
    let not_found = view.status == actix_web::http::StatusCode::NOT_FOUND;
    let back = back_from(&method, &path, &session, not_found);
    let page = view.with_navigation(Nav::for_session(&session), &back);
    let (req, _bare) = res.into_parts();
    Ok(ServiceResponse::new(req, page).map_into_right_body())
}

/// Where an error page's "Back" link goes: the page the request came from, as far as the
/// routes tell. A form posts to a path under its page (`/kb/upload` from `/kb`,
/// `/contacts/{id}/notes` from `/contacts/{id}`), so the nearest declared page above the
/// request — the request's own path for a `POST`, its parent for a `GET` — that the
/// session may open. For a 404 (`not_found`), the nearest page without an id in it, since
/// the id may be what is missing. An id segment is used only when it has the shape of one
/// ([`valid_id`]), so the link never carries arbitrary request input. Otherwise the
/// console's home.
pub fn back_from(method: &str, path: &str, session: &ConsoleSession, not_found: bool) -> String {
    let Some(pattern) = MATCHERS
        .iter()
        .find(|(r, def)| r.method == method && def.is_match(path))
        .map(|(r, _)| r.pattern)
    else {
        return "/".to_owned();
    };
    let pattern: Vec<&str> = pattern.split('/').skip(1).collect();
    let actual: Vec<&str> = path.split('/').skip(1).collect();
    if pattern.len() != actual.len() {
        return "/".to_owned();
    }
    let longest = if method == "GET" {
        pattern.len().saturating_sub(1)
    } else {
        pattern.len()
    };
    for k in (1..=longest).rev() {
        let prefix = &pattern[..k];
        let params_ok = prefix
            .iter()
            .zip(&actual)
            .all(|(p, a)| !p.starts_with('{') || (!not_found && valid_id(a)));
        if !params_ok {
            continue;
        }
        let page = format!("/{}", prefix.join("/"));
        if matches!(need_of("GET", &page), Some(Need::Session(_))) && session.may("GET", &page) {
            return format!("/{}", actual[..k].join("/"));
        }
    }
    "/".to_owned()
}

/// One link of the console's navigation.
#[derive(Debug, Clone)]
pub struct NavLink {
    /// Where it goes (a declared `GET` route).
    pub href: &'static str,
    /// What it says.
    pub label: &'static str,
}

/// The navigation every page shows, in order.
pub const NAV: [(&str, &str); 9] = [
    ("/", "Overview"),
    ("/inbox", "Inbox"),
    ("/contacts", "Contacts"),
    ("/appointments", "Appointments"),
    ("/kb", "Knowledge base"),
    ("/agents", "Agents"),
    ("/exports", "Exports"),
    ("/integrations", "Integrations"),
    ("/settings", "Settings"),
];

/// The navigation for one session: only the links it may follow (a member sees
/// Overview, Inbox and Contacts). Every page template has one, because `base.html`
/// renders it.
#[derive(Debug, Clone)]
pub struct Nav {
    /// The links, in order.
    pub links: Vec<NavLink>,
    /// Conversations waiting for the team: shown beside "Inbox" and in the page title,
    /// so staff see that a customer asked for a person.
    pub waiting: u32,
    /// The sentence saying what the form that led here did ("Saved."), if any.
    pub done: Option<&'static str>,
}

impl Nav {
    /// The links `session` may follow.
    pub fn for_session(session: &ConsoleSession) -> Self {
        Nav {
            links: NAV
                .iter()
                .filter(|(href, _)| session.may("GET", href))
                .map(|&(href, label)| NavLink { href, label })
                .collect(),
            waiting: session.waiting,
            done: session.done.map(super::flash::Done::message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_patterns_ask_for_every_scope_and_methods_are_apart() {
        assert_eq!(scopes_for("GET", "/inbox/list"), Some(vec![Scope::Inbox]));
        assert_eq!(
            scopes_for("GET", "/kb/upload"),
            Some(vec![Scope::KnowledgeBase]),
            "GET reaches /kb/{{id}}, not the POST-only upload"
        );
        assert_eq!(scopes_for("GET", "/healthz"), Some(vec![]));
        assert_eq!(scopes_for("GET", "/exports/x/download"), Some(vec![]));
        assert_eq!(
            scopes_for("POST", "/contacts/x/erase"),
            Some(vec![Scope::Settings])
        );
        assert_eq!(scopes_for("GET", "/contacts/x/erase"), None);
        assert_eq!(scopes_for("GET", "/nope"), None);
        assert_eq!(scopes_for("DELETE", "/inbox"), None);
    }

    /// Issue 13: an error shown to a signed-in user keeps the console's navigation and a
    /// "Back" link to the page the request came from (400, 403, 404, 413); the 401 page
    /// has neither, since there is no session.
    #[actix_web::test]
    async fn error_pages_keep_the_navigation_and_a_way_back() {
        use crate::web::console::inbox::tests::{app, body, post, sign_in, MEMBER};
        use crate::web::console::tests::fixture;
        use actix_web::http::StatusCode;
        use actix_web::test as at;

        const NAV: &str = r#"<nav class="tabs" aria-label="Console">"#;
        let back = |href: &str| format!(r#"<a href="{href}" id="back">← Back</a>"#);
        let f = fixture();
        let content = crate::domain::content::Content::new(f.data.store.clone(), &f.data.master);
        let id = content
            .contact_for_identity("web", "v-1", Some("Ada"))
            .expect("contact");
        let app = app!(f);
        // A member: the inbox and contacts, not the knowledge base.
        let cookie = sign_in!(app, f, MEMBER);
        let get = |uri: &str| {
            at::TestRequest::get()
                .uri(uri)
                .cookie(cookie.clone())
                .to_request()
        };
        let contact = format!("/contacts/{id}");
        let unknown = format!("/contacts/{}", uuid::Uuid::new_v4());
        let form = [
            ("name", "Ada"),
            ("email", "ada at example"),
            ("stage", "new"),
            ("score", "0"),
            ("tags", ""),
        ];
        let cases = [
            (
                "a refused form",
                post(&contact, &cookie).set_form(form).to_request(),
                StatusCode::BAD_REQUEST,
                "The email address is not valid",
                contact.clone(),
            ),
            (
                "a form from elsewhere",
                post(&format!("{contact}/notes"), &cookie)
                    .insert_header(("origin", "http://evil.localhost"))
                    .set_form([("text", "hi")])
                    .to_request(),
                StatusCode::FORBIDDEN,
                "did not come from this console",
                contact.clone(),
            ),
            (
                "a form over the size limit",
                post(&format!("{contact}/notes"), &cookie)
                    .set_form([("text", "x".repeat(70 * 1024))])
                    .to_request(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "This request is larger than the console accepts.",
                contact.clone(),
            ),
            (
                "a page of the role's scope",
                get("/kb"),
                StatusCode::FORBIDDEN,
                "does not include the knowledge base",
                "/".to_owned(),
            ),
            (
                "an unknown contact",
                get(&unknown),
                StatusCode::NOT_FOUND,
                "There is no such page on this node.",
                "/contacts".to_owned(),
            ),
            (
                "a note for an unknown contact",
                post(&format!("{unknown}/notes"), &cookie)
                    .set_form([("text", "hi")])
                    .to_request(),
                StatusCode::NOT_FOUND,
                "There is no such page on this node.",
                "/contacts".to_owned(),
            ),
            (
                "an unknown page",
                get("/no-such-page"),
                StatusCode::NOT_FOUND,
                "There is no such page on this node.",
                "/".to_owned(),
            ),
        ];
        for (what, req, status, message, to) in cases {
            let r = at::call_service(&app, req).await;
            assert_eq!(r.status(), status, "{what}");
            assert!(
                r.headers().contains_key("content-security-policy"),
                "{what}: the usual headers"
            );
            let page = body(r).await;
            assert!(page.contains(message), "{what}: {page}");
            assert!(page.contains(NAV), "{what}: navigation: {page}");
            assert!(
                page.contains(r#"<a href="/contacts">Contacts</a>"#)
                    && !page.contains(r#"href="/kb""#),
                "{what}: the member's links only: {page}"
            );
            assert!(page.contains(&back(&to)), "{what}: back to {to}: {page}");
            assert!(page.contains("Sign out"), "{what}: {page}");
        }
        assert_eq!(
            content.contact(&id).expect("get").expect("ada").email,
            None,
            "the refused form changed nothing"
        );

        // Without a session: the bare pages, no navigation to offer.
        for (uri, status) in [
            ("/inbox", StatusCode::UNAUTHORIZED),
            ("/no-such-page", StatusCode::NOT_FOUND),
        ] {
            let r = at::call_service(&app, at::TestRequest::get().uri(uri).to_request()).await;
            assert_eq!(r.status(), status, "{uri}");
            let page = body(r).await;
            assert!(
                !page.contains(NAV) && !page.contains(r#"id="back""#),
                "{page}"
            );
        }
    }

    #[test]
    fn every_route_is_declared_once_and_every_nav_link_is_a_page() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|o| o.method == r.method && o.pattern == r.pattern),
                "{} {} declared twice",
                r.method,
                r.pattern
            );
        }
        for (href, _) in NAV {
            assert!(
                matches!(need_of("GET", href), Some(Need::Session(_))),
                "nav link {href} is not a declared page"
            );
        }
    }
}
