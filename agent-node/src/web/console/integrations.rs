//! Console pages: Integrations — the node API tokens (`domain::api_tokens`) and the
//! outbound webhook endpoints with their delivery log (`domain::webhooks`). A token and
//! an endpoint's signing secret are shown once, on the page the form returns, and never
//! again: the node keeps a keyed hash of the token and the secret sealed.

use super::access::Nav;
use super::flash::{see_other_done, Done};
use super::{
    human_time, render, valid_id, ConsoleError, ConsoleSession, ConsoleState, WriteSession,
};
use crate::domain::api_tokens::{ApiScope, ApiTokens, TokenError, TokenInfo};
use crate::domain::webhooks::{Delivery, Endpoint, Event, WebhookError, Webhooks};
use actix_web::{web, HttpResponse};
use askama::Template;

/// Delivery-log rows shown.
pub const LOG_ROWS: usize = 50;

/// What a token row shows.
struct TokenRow {
    info: TokenInfo,
    scopes: String,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
}

/// What a delivery row shows.
struct DeliveryRow {
    d: Delivery,
    at: String,
    next: String,
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct IntegrationsPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    tokens: Vec<TokenRow>,
    endpoints: Vec<Endpoint>,
    deliveries: Vec<DeliveryRow>,
    scopes: Vec<(&'static str, &'static str)>,
    events: Vec<&'static str>,
    /// A token just made: its name and the token, shown this once.
    new_token: Option<(String, String)>,
    /// An endpoint just added: its URL and signing secret, shown this once.
    new_secret: Option<(String, String)>,
    api_url: String,
}

fn tokens(state: &ConsoleState) -> ApiTokens {
    ApiTokens::new(state.store.clone(), &state.master)
}

fn webhooks(state: &ConsoleState) -> Webhooks {
    Webhooks::new(state.store.clone(), &state.master)
}

fn events_label(e: &Endpoint) -> String {
    e.events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn added(e: &Endpoint) -> String {
    human_time(e.created_at)
}

async fn build(
    state: &web::Data<ConsoleState>,
    session: &ConsoleSession,
    new_token: Option<(String, String)>,
    new_secret: Option<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (t, w) = (tokens(state), webhooks(state));
    let (list, endpoints, log) =
        web::block(move || Ok::<_, anyhow::Error>((t.list()?, w.endpoints()?, w.log(LOG_ROWS)?)))
            .await??;
    let now = crate::platform::store::now();
    let tokens = list
        .into_iter()
        .map(|info| TokenRow {
            scopes: info
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            created: human_time(info.created_at),
            expires: info.expires_at.map_or("never".to_owned(), human_time),
            last_used: info.last_used_at.map_or("never".to_owned(), human_time),
            state: if info.revoked_at.is_some() {
                "revoked"
            } else if info.active(now) {
                "active"
            } else {
                "expired"
            },
            info,
        })
        .collect();
    let deliveries = log
        .into_iter()
        .map(|d| DeliveryRow {
            at: human_time(d.created_at),
            next: if d.status == "pending" {
                human_time(d.next_attempt_at)
            } else {
                String::new()
            },
            d,
        })
        .collect();
    render(&IntegrationsPage {
        nav: Nav::for_session(session),
        tokens,
        endpoints,
        deliveries,
        scopes: ApiScope::ALL
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        events: Event::ALL.iter().map(|e| e.as_str()).collect(),
        new_token,
        new_secret,
        api_url: format!("{}/api/v1", state.origin),
    })
}

async fn page(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    build(&state, &session, None, None).await
}

fn bad(e: TokenError) -> ConsoleError {
    match e {
        TokenError::Invalid(m) => ConsoleError::BadRequest(m.into()),
        TokenError::Store(s) => s.into(),
    }
}

/// `POST /integrations/tokens` (`name`, `expires_days` — 0 for never — and one field
/// per scope): shows the token once.
async fn create_token(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let name = field("name").to_owned();
    let scopes: Vec<ApiScope> = form
        .iter()
        .filter(|(n, _)| n == "scope")
        .filter_map(|(_, v)| ApiScope::parse(v))
        .collect();
    let days: i64 = field("expires_days")
        .parse()
        .ok()
        .filter(|d| (0..=365).contains(d))
        .ok_or_else(|| ConsoleError::BadRequest("Choose when the token expires.".into()))?;
    let expires_at = (days > 0).then(|| crate::platform::store::now() + days * 86_400);
    let t = tokens(&state);
    let actor = session.user_id.clone();
    let (info, token) = web::block(move || t.create(&name, &scopes, expires_at, &actor))
        .await?
        .map_err(bad)?;
    tracing::info!(user = %session.user_id, token = %info.id, "node API token created");
    build(&state, &session, Some((info.name, token)), None).await
}

async fn revoke_token(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let t = tokens(&state);
    let tid = id.clone();
    if !web::block(move || t.revoke(&tid)).await?.map_err(bad)? {
        return Err(ConsoleError::NotFound);
    }
    tracing::info!(user = %session.user_id, token = %id, "node API token revoked");
    Ok(see_other_done("/integrations", Done::Saved))
}

/// `POST /integrations/webhooks` (`url` and one `event` field per event): shows the
/// signing secret once.
async fn add_endpoint(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    let url = form
        .iter()
        .find(|(n, _)| n == "url")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let events: Vec<Event> = form
        .iter()
        .filter(|(n, _)| n == "event")
        .filter_map(|(_, v)| Event::parse(v))
        .collect();
    let w = webhooks(&state);
    let policy = state.outbound;
    let actor = session.user_id.clone();
    let (endpoint, secret) = web::block(move || w.add_endpoint(&url, &events, policy, &actor))
        .await?
        .map_err(|e| match e {
            WebhookError::Invalid(m) => ConsoleError::BadRequest(m),
            WebhookError::Store(s) => s.into(),
            other => ConsoleError::Internal(other.into()),
        })?;
    tracing::info!(user = %session.user_id, endpoint = %endpoint.id, "webhook endpoint added");
    build(&state, &session, None, Some((endpoint.url, secret))).await
}

async fn remove_endpoint(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let w = webhooks(&state);
    let eid = id.clone();
    let removed = web::block(move || w.remove_endpoint(&eid))
        .await?
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    if !removed {
        return Err(ConsoleError::NotFound);
    }
    tracing::info!(user = %session.user_id, endpoint = %id, "webhook endpoint removed");
    Ok(see_other_done("/integrations", Done::Deleted))
}

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/integrations", web::get().to(page))
        .route("/integrations/tokens", web::post().to(create_token))
        .route(
            "/integrations/tokens/{id}/revoke",
            web::post().to(revoke_token),
        )
        .route("/integrations/webhooks", web::post().to(add_endpoint))
        .route(
            "/integrations/webhooks/{id}/delete",
            web::post().to(remove_endpoint),
        );
}

#[cfg(test)]
mod tests {
    use crate::web::console::inbox::tests::{body, post};
    use crate::web::console::tests::{fixture, sign_in, ADMIN, MEMBER};
    use crate::web::console::{routes, security_headers};
    use actix_web::{http::StatusCode, test as at, App};

    #[actix_web::test]
    async fn a_token_is_shown_once_and_revoked_and_an_endpoint_must_be_public() {
        let f = fixture();
        let app = at::init_service(
            App::new()
                .app_data(f.data.clone())
                .wrap(security_headers())
                .configure(crate::web::api::routes)
                .configure(routes),
        )
        .await;
        let cookie = sign_in!(app, f, ADMIN);
        let r = at::call_service(
            &app,
            post("/integrations/tokens", &cookie)
                .set_form([
                    ("name", "CRM sync"),
                    ("expires_days", "90"),
                    ("scope", "contacts:read"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = body(r).await;
        let token = page
            .split("id=\"new-token\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .expect("the token, shown once")
            .to_owned();
        assert!(token.starts_with("onat_"), "{token}");
        let again = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/integrations")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        let again = body(again).await;
        assert!(
            again.contains("CRM sync") && !again.contains(&token),
            "never again"
        );

        let api = |token: &str| {
            at::TestRequest::get()
                .uri("/api/v1/contacts")
                .insert_header(("authorization", format!("Bearer {token}")))
                .to_request()
        };
        assert_eq!(
            at::call_service(&app, api(&token)).await.status(),
            StatusCode::OK
        );
        let id = crate::domain::api_tokens::ApiTokens::new(f.data.store.clone(), &f.data.master)
            .list()
            .expect("list")[0]
            .id
            .clone();
        let r = at::call_service(
            &app,
            post(&format!("/integrations/tokens/{id}/revoke"), &cookie).to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            at::call_service(&app, api(&token)).await.status(),
            StatusCode::UNAUTHORIZED
        );

        // Webhooks: a private address is refused with a message; a public one shows its secret once.
        let r = at::call_service(
            &app,
            post("/integrations/webhooks", &cookie)
                .set_form([
                    ("url", "https://10.1.2.3/hook"),
                    ("event", "message.created"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(body(r).await.contains("private network"));
        let r = at::call_service(
            &app,
            post("/integrations/webhooks", &cookie)
                .set_form([
                    ("url", "https://hooks.example.com/outpost"),
                    ("event", "message.created"),
                    ("event", "contact.updated"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = body(r).await;
        assert!(page.contains("whsec_"), "the secret, once");
        assert!(page.contains("message.created, contact.updated"));

        // Members (no settings scope) do not get the page.
        let member_cookie = sign_in!(app, f, MEMBER);
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/integrations")
                .cookie(member_cookie)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
}
