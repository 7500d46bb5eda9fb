//! The web-chat widget: a small vanilla-JS file (`/widget.js`, no build step) that a
//! business pastes into its pages, and the JSON API it talks to on this node. The
//! browser talks to the node directly, so conversations never pass through the CP.
//!
//! API (all under `/widget/v1/{agent}`; the visitor token travels as a bearer token):
//! - `POST session` `{visitor?}` → `{visitor, agent, greeting, messages}`: resumes a
//!   known visitor's conversation; stores nothing for a new one.
//! - `POST messages` `{text}` → `text/event-stream`: a `visitor` event with a new
//!   visitor's token (first message only), `delta` events (the answer as it is
//!   produced) and one final `done`, `queued` or `error` event. A `done` of the guided
//!   booking flow carries `quick_replies` (texts the widget offers as buttons).
//! - `GET messages?after=N` → messages after id N (human replies, reloads).
//!
//! CORS: a request whose `Origin` is not one of the agent's configured websites (or the
//! node's own console) is refused with 403 and gets no CORS headers. Visitors are rate
//! limited (per visitor token and per client address).

pub mod refused;

use crate::domain::content::{Author, ContentError, Message};
use crate::engine::agent::{Outcome, Runtime};
use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use outpost_common::rate_limit::KeyedLimiter;
use outpost_protocol::AgentConfig;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest message a visitor may send, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Largest widget request body, bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Messages returned by one poll.
const PAGE: usize = 100;

/// What the widget handlers share.
pub struct WidgetState {
    /// The agent runtime.
    pub runtime: Arc<Runtime>,
    /// The node's own origin (its console may preview the widget).
    pub own_origin: String,
    /// Messages per visitor: burst 8, 20 per minute.
    pub per_visitor: KeyedLimiter,
    /// New sessions and polls per client address: burst 30, 60 per minute.
    pub per_address: KeyedLimiter,
    /// Websites refused in the last 24 hours (the console shows them to the owner).
    pub refused: refused::RefusedOrigins,
}

impl WidgetState {
    /// The state with the default limits.
    pub fn new(runtime: Arc<Runtime>, own_origin: String) -> Self {
        Self {
            runtime,
            own_origin,
            per_visitor: KeyedLimiter::new(8, 20),
            per_address: KeyedLimiter::new(30, 60),
            refused: refused::RefusedOrigins::default(),
        }
    }
}

/// A refused widget request: a status, a stable code and a sentence for the visitor.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    fn bad(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong. Please try again in a moment.",
        )
    }

    /// The node's disk is full: nothing can be stored, so nothing is accepted. A 503
    /// with words the widget shows, rather than a 500 that says nothing.
    fn storage_full() -> Self {
        Self {
            retry_after: Some(Duration::from_secs(60)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_full",
                STORAGE_FULL_WORDS,
            )
        }
    }

    fn limited(wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "You are sending messages too quickly. Please wait a moment.",
            )
        }
    }
}

/// What a visitor reads while the node's storage is full.
const STORAGE_FULL_WORDS: &str =
    "This chat cannot take messages right now: the business's server is out of storage. Please try again later.";

impl From<crate::engine::agent::AgentError> for Refusal {
    fn from(e: crate::engine::agent::AgentError) -> Self {
        if e.is_full() {
            tracing::warn!("widget request refused: the node's storage is full");
            return Self::storage_full();
        }
        tracing::error!(error = %e, "widget request failed");
        Self::internal()
    }
}

/// Refuses a new message up front while the storage is full (a write failed for want of
/// space and a probe finds no room yet): the answer would not be stored either.
async fn refuse_when_full(st: &WidgetState) -> Result<(), Refusal> {
    if !st.runtime.store().seems_full() {
        return Ok(());
    }
    let rt = st.runtime.clone();
    match web::block(move || rt.store().probe_space()).await {
        Ok(Ok(false)) => Err(Refusal::storage_full()),
        _ => Ok(()),
    }
}

impl From<crate::domain::content::ContentError> for Refusal {
    fn from(e: crate::domain::content::ContentError) -> Self {
        Self::from(crate::engine::agent::AgentError::from(e))
    }
}

#[derive(Serialize)]
struct ErrorJson {
    error: &'static str,
    message: &'static str,
}

/// Adds the CORS headers for an allowed origin.
fn cors(mut b: HttpResponseBuilder, origin: Option<&str>) -> HttpResponseBuilder {
    if let Some(o) = origin {
        b.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o))
            .insert_header((header::VARY, "Origin"));
    }
    b
}

fn refuse(r: &Refusal, origin: Option<&str>) -> HttpResponse {
    let mut b = cors(HttpResponse::build(r.status), origin);
    if let Some(w) = r.retry_after {
        b.insert_header((header::RETRY_AFTER, w.as_secs().max(1).to_string()));
    }
    b.json(ErrorJson {
        error: r.code,
        message: r.message,
    })
}

/// Checks the agent exists and the request's `Origin` may use it. Requests without an
/// `Origin` (not from a browser page) pass; CORS protects browsers, not the API.
async fn gate(
    st: &WidgetState,
    req: &HttpRequest,
    agent_id: &str,
) -> Result<(AgentConfig, Option<String>), (Refusal, Option<String>)> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(|o| o.to_ascii_lowercase());
    let (rt, id) = (st.runtime.clone(), agent_id.to_owned());
    let found = web::block(move || rt.agent(&id))
        .await
        .map_err(|_| (Refusal::internal(), None))?
        .map_err(|e| (Refusal::from(e), None))?;
    let Some(agent) = found else {
        return Err((
            Refusal::new(
                StatusCode::NOT_FOUND,
                "unknown_agent",
                "This chat is not available.",
            ),
            None,
        ));
    };
    match origin {
        None => Ok((agent, None)),
        Some(o) if o == st.own_origin || agent.allowed_origins.contains(&o) => Ok((agent, Some(o))),
        Some(o) => {
            st.refused.record(&agent.id, &o);
            Err((
                Refusal::new(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "This website is not allowed to use this chat.",
                ),
                None,
            ))
        }
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .map(str::to_owned)
}

/// The caller's address as a rate-limit key: IPv4 itself, IPv6 by its /64.
fn client_key(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| outpost_common::rate_limit::address_key(a.ip()))
        .unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "This message is too long.",
        ));
    }
    serde_json::from_slice(body).map_err(|_| {
        Refusal::bad(
            "malformed_json",
            "The request is not valid JSON of the expected shape.",
        )
    })
}

/// A message as the widget shows it.
#[derive(Serialize)]
struct MessageJson {
    id: i64,
    from: &'static str,
    text: String,
    at: i64,
}

impl From<&Message> for MessageJson {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id,
            from: match m.author {
                Author::Contact => "visitor",
                Author::Agent => "agent",
                Author::Human => "human",
                Author::System => "system",
            },
            text: m.body.clone(),
            at: m.created_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    #[serde(default)]
    visitor: Option<String>,
}

#[derive(Serialize)]
struct SessionJson {
    /// The visitor token when it is known; `null` for a new visitor (nothing is stored
    /// for a page view: the visitor and contact are created with the first message).
    visitor: Option<String>,
    agent: String,
    greeting: String,
    messages: Vec<MessageJson>,
}

/// The contact behind a visitor token for this agent, if the token is known.
fn known_visitor(
    rt: &Runtime,
    token: &str,
    agent_id: &str,
) -> Result<Option<String>, ContentError> {
    rt.content().visitor_contact(token, agent_id)
}

/// The visitor's latest conversation with this agent on `channel` (never creates one).
fn latest_conversation(
    rt: &Runtime,
    contact: &str,
    agent_id: &str,
    channel: &'static str,
) -> Result<Option<String>, ContentError> {
    Ok(rt
        .content()
        .contact_conversations(contact, 20)?
        .into_iter()
        .find(|c| c.agent_id == agent_id && c.channel == channel)
        .map(|c| c.id))
}

/// The channel of a chat from `origin`: the console's own "Try it here" page holds test
/// conversations ([`crate::domain::content::TEST_CHANNEL`]), every website a `web` one.
fn channel_for(st: &WidgetState, origin: Option<&str>) -> &'static str {
    if origin == Some(st.own_origin.as_str()) {
        crate::domain::content::TEST_CHANNEL
    } else {
        "web"
    }
}

async fn session(
    st: web::Data<WidgetState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let (agent, origin) = match gate(&st, &req, &path).await {
        Ok(x) => x,
        Err((r, o)) => return refuse(&r, o.as_deref()),
    };
    let result = async {
        st.per_address
            .check(&client_key(&req))
            .map_err(Refusal::limited)?;
        let b: SessionBody = if body.is_empty() {
            SessionBody { visitor: None }
        } else {
            parse(&body)?
        };
        let (rt, agent_id) = (st.runtime.clone(), agent.id.clone());
        let channel = channel_for(&st, origin.as_deref());
        let (visitor, messages) = web::block(move || {
            let Some(token) = b.visitor.filter(|t| !t.is_empty() && t.len() <= 128) else {
                return Ok((None, vec![]));
            };
            let Some(contact) = known_visitor(&rt, &token, &agent_id)? else {
                // Unknown (or another agent's) token: a new visitor, created on the
                // first message.
                return Ok((None, vec![]));
            };
            let messages = match latest_conversation(&rt, &contact, &agent_id, channel)? {
                Some(conv) => rt.content().recent_messages(&conv, PAGE)?,
                None => vec![],
            };
            Ok::<_, ContentError>((Some(token), messages))
        })
        .await
        .map_err(|_| Refusal::internal())??;
        Ok::<_, Refusal>(SessionJson {
            visitor,
            agent: agent.name.clone(),
            greeting: agent.greeting.clone(),
            messages: messages.iter().map(MessageJson::from).collect(),
        })
    }
    .await;
    match result {
        Ok(s) => cors(HttpResponse::Ok(), origin.as_deref()).json(s),
        Err(r) => refuse(&r, origin.as_deref()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    text: String,
}

fn unknown_visitor() -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "unknown_visitor",
        "This chat session has ended. Reload the page to start again.",
    )
}

fn sse(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

async fn send_message(
    st: web::Data<WidgetState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let (agent, origin) = match gate(&st, &req, &path).await {
        Ok(x) => x,
        Err((r, o)) => return refuse(&r, o.as_deref()),
    };
    let prepared = async {
        let b: MessageBody = parse(&body)?;
        refuse_when_full(&st).await?;
        let text = b.text.trim().to_owned();
        if text.is_empty() {
            return Err(Refusal::bad("empty_message", "Write a message first."));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(Refusal::bad(
                "message_too_long",
                "This message is too long (2,000 characters at most).",
            ));
        }
        let token = bearer(&req);
        let (rt, agent_id) = (st.runtime.clone(), agent.id.clone());
        let tok = token.clone();
        let known = web::block(move || match tok {
            Some(t) => known_visitor(&rt, &t, &agent_id),
            None => Ok(None),
        })
        .await
        .map_err(|_| Refusal::internal())??;
        let (token, contact, new_token) = match (token, known) {
            (Some(t), Some(contact)) => (t, contact, None),
            // A token we do not know is refused rather than silently replaced: the
            // widget starts over after a reload.
            (Some(_), None) => return Err(unknown_visitor()),
            (None, _) => {
                st.per_address
                    .check(&client_key(&req))
                    .map_err(Refusal::limited)?;
                let (rt, agent_id) = (st.runtime.clone(), agent.id.clone());
                let (t, contact) = web::block(move || rt.content().create_visitor(&agent_id))
                    .await
                    .map_err(|_| Refusal::internal())??;
                (t.clone(), contact, Some(t))
            }
        };
        st.per_visitor
            .check(&outpost_crypto::token_hash(&token))
            .map_err(Refusal::limited)?;
        let (rt, agent_id) = (st.runtime.clone(), agent.id.clone());
        let channel = channel_for(&st, origin.as_deref());
        let conv = web::block(move || {
            rt.content()
                .current_conversation(&contact, &agent_id, channel)
                .map(|c| c.id)
        })
        .await
        .map_err(|_| Refusal::internal())??;
        Ok((text, conv, new_token))
    }
    .await;
    let (text, conv, new_token) = match prepared {
        Ok(x) => x,
        Err(r) => return refuse(&r, origin.as_deref()),
    };

    // The answer streams to the visitor while it is produced; the runtime keeps going
    // (and stores the answer) even if the visitor disconnects.
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
    if let Some(t) = new_token {
        let _ = out_tx.try_send(sse("visitor", &serde_json::json!({ "visitor": t })));
    }
    let (delta_tx, mut delta_rx) = mpsc::channel::<String>(64);
    let rt = st.runtime.clone();
    let forward_tx = out_tx.clone();
    let forward = tokio::spawn(async move {
        while let Some(d) = delta_rx.recv().await {
            let _ = forward_tx
                .send(sse("delta", &serde_json::json!({ "text": d })))
                .await;
        }
    });
    tokio::spawn(async move {
        let outcome = rt.respond(&agent, &conv, &text, delta_tx).await;
        // Every delta is out before the final event.
        let _ = forward.await;
        let last = match outcome {
            Ok(Outcome::Answered(m)) => sse("done", &serde_json::json!(MessageJson::from(&m))),
            Ok(Outcome::Guided(m, quick)) => {
                let mut v = serde_json::json!(MessageJson::from(&m));
                v["quick_replies"] = serde_json::json!(quick);
                sse("done", &v)
            }
            Ok(Outcome::Fallback(m, reason)) => {
                let mut v = serde_json::json!(MessageJson::from(&m));
                v["fallback"] = serde_json::Value::from(reason);
                sse("done", &v)
            }
            Ok(Outcome::HumanHandling) => sse(
                "queued",
                &serde_json::json!({"message": "A member of the team will reply here."}),
            ),
            Ok(Outcome::Suspended) => sse(
                "queued",
                &serde_json::json!({"message": "This chat is paused. Your message was received."}),
            ),
            Err(e) if e.is_full() => {
                tracing::warn!("answering a widget message failed: the node's storage is full");
                sse(
                    "error",
                    &serde_json::json!({"error": "storage_full", "message": STORAGE_FULL_WORDS}),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "answering a widget message failed");
                sse(
                    "error",
                    &serde_json::json!({"error": "internal", "message": "Something went wrong. Please try again."}),
                )
            }
        };
        let _ = out_tx.send(last).await;
    });
    let stream = futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    cors(HttpResponse::Ok(), origin.as_deref())
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

#[derive(Deserialize)]
struct AfterQuery {
    #[serde(default)]
    after: i64,
}

async fn poll_messages(
    st: web::Data<WidgetState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: Result<web::Query<AfterQuery>, actix_web::Error>,
) -> HttpResponse {
    let (agent, origin) = match gate(&st, &req, &path).await {
        Ok(x) => x,
        Err((r, o)) => return refuse(&r, o.as_deref()),
    };
    let result = async {
        let after = query
            .map_err(|_| Refusal::bad("bad_query", "`after` must be a message id."))?
            .after;
        st.per_address
            .check(&client_key(&req))
            .map_err(Refusal::limited)?;
        let token = bearer(&req).ok_or_else(unknown_visitor)?;
        let (rt, agent_id) = (st.runtime.clone(), agent.id.clone());
        let channel = channel_for(&st, origin.as_deref());
        let messages = web::block(move || {
            let Some(contact) = known_visitor(&rt, &token, &agent_id)? else {
                return Ok(None);
            };
            match latest_conversation(&rt, &contact, &agent_id, channel)? {
                Some(conv) => rt.content().messages_after(&conv, after, PAGE).map(Some),
                None => Ok(Some(vec![])),
            }
        })
        .await
        .map_err(|_| Refusal::internal())??
        .ok_or_else(unknown_visitor)?;
        Ok::<_, Refusal>(messages)
    }
    .await;
    match result {
        Ok(m) => cors(HttpResponse::Ok(), origin.as_deref()).json(serde_json::json!({
            "messages": m.iter().map(MessageJson::from).collect::<Vec<_>>()
        })),
        Err(r) => refuse(&r, origin.as_deref()),
    }
}

async fn preflight(
    st: web::Data<WidgetState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    match gate(&st, &req, &path.0).await {
        Ok((_, origin)) => cors(HttpResponse::NoContent(), origin.as_deref())
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .finish(),
        Err((r, o)) => refuse(&r, o.as_deref()),
    }
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header(("Cross-Origin-Resource-Policy", "cross-origin"))
        .body(include_str!("../../../static/widget.js"))
}

/// The widget routes (public: visitors have no console session).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/widget.js", web::get().to(script))
        .route("/widget/v1/{agent}/session", web::post().to(session))
        .route("/widget/v1/{agent}/messages", web::post().to(send_message))
        .route("/widget/v1/{agent}/messages", web::get().to(poll_messages))
        .route(
            "/widget/v1/{agent}/{rest:.*}",
            web::method(actix_web::http::Method::OPTIONS).to(preflight),
        );
}
