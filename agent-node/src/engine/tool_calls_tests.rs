//! Booking through a model's tool calls, with OpenAI and Anthropic played by local fakes
//! that stream tool calls in each provider's own wire format (OpenAI `delta.tool_calls`
//! pieces, Anthropic `tool_use` blocks with `input_json_delta`) and read the results
//! back from the request the way the provider receives them.

use crate::domain::appointments::{
    slots::Window, BookRequest, BookingDetails, BookingStatus, Settings,
};
use crate::domain::secrets::{SecretSource, SecretStore};
use crate::engine::agent::{Outcome, Runtime};
use crate::engine::llm::{LlmHealth, ProviderUrls, Providers, Timeouts};
use crate::platform::keys::MasterKey;
use crate::platform::store::Store;
use outpost_common::outbound::Policy;
use outpost_crypto::Secret;
use outpost_protocol::{AgentConfig, ModelChoice, ProviderKind, SecretKind};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    OpenAi,
    Anthropic,
}

/// What the fake model does next.
enum Act {
    Call(&'static str, Value),
    Say(String),
}

/// A model that books the first time `find_slots` offers, and when told a time was
/// taken, the first of the other times. `meanwhile` runs when it picks a time from
/// `find_slots`, before it asks to book (another customer getting there first).
struct FakeModel {
    wire: Wire,
    results: Arc<Mutex<Vec<Value>>>,
    meanwhile: Option<Box<dyn Fn(i64) + Send + Sync>>,
}

impl FakeModel {
    /// The last tool result in the request, as the provider's format carries it.
    fn last_result(&self, body: &Value) -> Option<Value> {
        let last = body["messages"].as_array()?.last()?;
        let text = match self.wire {
            Wire::OpenAi if last["role"] == "tool" => last["content"].as_str()?,
            Wire::Anthropic if last["content"][0]["type"] == "tool_result" => {
                last["content"][0]["content"].as_str()?
            }
            _ => return None,
        };
        serde_json::from_str(text).ok()
    }

    /// Whether every tool result answers a call of the assistant turn just before it,
    /// by id, as both APIs require.
    fn results_answer_calls(&self, body: &Value) -> bool {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let mut called: Vec<String> = Vec::new();
        for m in &messages {
            match (self.wire, m["role"].as_str()) {
                (Wire::OpenAi, Some("assistant")) => {
                    called = m["tool_calls"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| {
                            c["type"] == "function" && c["function"]["arguments"].is_string()
                        })
                        .filter_map(|c| c["id"].as_str().map(str::to_owned))
                        .collect();
                }
                (Wire::OpenAi, Some("tool"))
                    if !called.iter().any(|id| m["tool_call_id"] == id.as_str()) =>
                {
                    return false;
                }
                (Wire::Anthropic, Some("assistant")) => {
                    called = m["content"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|b| b["type"] == "tool_use" && b["input"].is_object())
                        .filter_map(|b| b["id"].as_str().map(str::to_owned))
                        .collect();
                }
                (Wire::Anthropic, Some("user")) => {
                    for b in m["content"].as_array().into_iter().flatten() {
                        if b["type"] == "tool_result"
                            && !called.iter().any(|id| b["tool_use_id"] == id.as_str())
                        {
                            return false;
                        }
                    }
                }
                _ => {}
            }
        }
        true
    }

    fn decide(&self, result: Option<Value>) -> Act {
        let Some(r) = result else {
            return Act::Call("find_slots", json!({"service": "Check-up"}));
        };
        self.results.lock().expect("lock").push(r.clone());
        let book = |at: &Value| {
            Act::Call(
                "book",
                json!({"service": "Check-up", "starts_at": at, "name": "Ada Lovelace",
                       "email": "ada@example.com"}),
            )
        };
        if r["slots"].is_array() {
            let at = r["slots"][0]["starts_at"].clone();
            if let Some(f) = &self.meanwhile {
                f(at.as_i64().expect("starts_at"));
            }
            return book(&at);
        }
        if r["error"] == "taken" {
            return book(&r["other_slots"][0]["starts_at"]);
        }
        if r["ok"] == true {
            return Act::Say(format!(
                "Done! {}",
                r["confirmation"].as_str().unwrap_or("")
            ));
        }
        Act::Say("Sorry, that did not work.".into())
    }

    fn encode(&self, act: &Act, round: usize) -> String {
        let mut out = String::new();
        let mut data = |event: &str, v: Value| match self.wire {
            Wire::OpenAi => out.push_str(&format!("data: {v}\n\n")),
            Wire::Anthropic => out.push_str(&format!("event: {event}\ndata: {v}\n\n")),
        };
        match (self.wire, act) {
            (Wire::OpenAi, Act::Call(name, args)) => {
                let args = args.to_string();
                let (a, b) = args.split_at(args.len() / 2);
                let id = format!("call_{round}");
                data(
                    "",
                    json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null,
                    "tool_calls": [{"index": 0, "id": id, "type": "function",
                                    "function": {"name": name, "arguments": ""}}]}}]}),
                );
                for piece in [a, b] {
                    data(
                        "",
                        json!({"choices": [{"index": 0, "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}]}),
                    );
                }
                data(
                    "",
                    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                );
                data(
                    "",
                    json!({"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9}}),
                );
                out.push_str("data: [DONE]\n\n");
            }
            (Wire::OpenAi, Act::Say(text)) => {
                data(
                    "",
                    json!({"choices": [{"index": 0, "delta": {"content": text}}]}),
                );
                data(
                    "",
                    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                );
                out.push_str("data: [DONE]\n\n");
            }
            (Wire::Anthropic, act) => {
                data(
                    "message_start",
                    json!({"type": "message_start",
                    "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}}),
                );
                let stop = match act {
                    Act::Call(name, args) => {
                        data(
                            "content_block_start",
                            json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}),
                        );
                        data(
                            "content_block_delta",
                            json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": "Let me check."}}),
                        );
                        data(
                            "content_block_stop",
                            json!({"type": "content_block_stop", "index": 0}),
                        );
                        let args = args.to_string();
                        let (a, b) = args.split_at(args.len() / 2);
                        data(
                            "content_block_start",
                            json!({"type": "content_block_start", "index": 1,
                            "content_block": {"type": "tool_use", "id": format!("toolu_{round}"),
                                              "name": name, "input": {}}}),
                        );
                        for piece in ["", a, b] {
                            data(
                                "content_block_delta",
                                json!({"type": "content_block_delta", "index": 1,
                                "delta": {"type": "input_json_delta", "partial_json": piece}}),
                            );
                        }
                        data(
                            "content_block_stop",
                            json!({"type": "content_block_stop", "index": 1}),
                        );
                        "tool_use"
                    }
                    Act::Say(text) => {
                        data(
                            "content_block_start",
                            json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}),
                        );
                        data(
                            "content_block_delta",
                            json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": text}}),
                        );
                        data(
                            "content_block_stop",
                            json!({"type": "content_block_stop", "index": 0}),
                        );
                        "end_turn"
                    }
                };
                data(
                    "message_delta",
                    json!({"type": "message_delta",
                    "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}}),
                );
                data("message_stop", json!({"type": "message_stop"}));
            }
        }
        out
    }
}

impl Respond for FakeModel {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).expect("json");
        let tools: Vec<&str> = body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| match self.wire {
                        Wire::OpenAi => t["function"]["name"].as_str(),
                        Wire::Anthropic => t["name"].as_str(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if tools != ["find_slots", "book", "reschedule", "cancel"] {
            return ResponseTemplate::new(400).set_body_string("tools missing");
        }
        if !self.results_answer_calls(&body) {
            return ResponseTemplate::new(400).set_body_string("tool result without its call");
        }
        let round = body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
        let act = self.decide(self.last_result(&body));
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(self.encode(&act, round))
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    _server: MockServer,
    rt: Arc<Runtime>,
    agent: AgentConfig,
    results: Arc<Mutex<Vec<Value>>>,
}

async fn fx(wire: Wire, someone_else_first: bool) -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let master = Arc::new(MasterKey::from_bytes([5; 32]));
    let secrets = SecretStore::new(store.clone(), master.clone());
    for kind in [SecretKind::OpenaiApiKey, SecretKind::AnthropicApiKey] {
        secrets
            .put(kind, &Secret::new("sk-test".into()), SecretSource::Console)
            .expect("key");
    }
    let server = MockServer::start().await;
    let providers = Providers::with_policy(
        ProviderUrls {
            openai: format!("{}/v1", server.uri()),
            anthropic: format!("{}/v1", server.uri()),
        },
        secrets,
        Timeouts::default(),
        Policy::new(true),
    )
    .expect("providers");
    let rt = Arc::new(Runtime::new(
        store,
        &master,
        providers,
        Arc::new(LlmHealth::default()),
    ));
    let book = rt.appointments();
    book.save_settings(&Settings {
        time_zone: "Europe/Paris".into(),
        step_minutes: 60,
        notice_minutes: 60,
        horizon_days: 14,
    })
    .expect("settings");
    let windows: Vec<Window> = (1..=7)
        .map(|weekday| Window {
            weekday,
            start_minute: 0,
            end_minute: 1440,
        })
        .collect();
    book.set_hours("", &windows).expect("hours");
    book.add_service("Check-up", 30, "€60").expect("service");
    let results = Arc::new(Mutex::new(Vec::new()));
    let meanwhile: Option<Box<dyn Fn(i64) + Send + Sync>> = if someone_else_first {
        let (book, content) = (book.clone(), rt.content().clone());
        Some(Box::new(move |starts_at| {
            let other = content
                .contact_for_identity("web", "someone-else", None)
                .expect("contact");
            let service = book.services().expect("services")[0].id.clone();
            book.book(
                &BookRequest {
                    service_id: service,
                    staff_id: None,
                    starts_at,
                    contact_id: other,
                    conversation_id: None,
                    details: BookingDetails {
                        name: "Other".into(),
                        ..Default::default()
                    },
                },
                crate::platform::store::now(),
            )
            .expect("the other customer wins");
        }))
    } else {
        None
    };
    let route = match wire {
        Wire::OpenAi => "/v1/chat/completions",
        Wire::Anthropic => "/v1/messages",
    };
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(FakeModel {
            wire,
            results: results.clone(),
            meanwhile,
        })
        .mount(&server)
        .await;
    let agent = AgentConfig {
        id: "a1".into(),
        name: "Ava".into(),
        greeting: String::new(),
        instructions: String::new(),
        language: "en".into(),
        fallback_message: "FALLBACK".into(),
        business_hours: Default::default(),
        model: ModelChoice {
            provider: match wire {
                Wire::OpenAi => ProviderKind::Openai,
                Wire::Anthropic => ProviderKind::Anthropic,
            },
            model: "test-model".into(),
            base_url: String::new(),
        },
        allowed_origins: vec![],
        channels: vec![],
    };
    Fx {
        _dir: dir,
        _server: server,
        rt,
        agent,
        results,
    }
}

/// A visitor asks to book; the outcome, what the widget received, and the contact.
async fn ask(f: &Fx) -> (Outcome, String, String) {
    let content = f.rt.content();
    let contact = content
        .contact_for_identity("web", "ada", None)
        .expect("contact");
    let conv = content
        .current_conversation(&contact, "a1", "web")
        .expect("conversation");
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let collect = async {
        let mut s = String::new();
        while let Some(d) = rx.recv().await {
            s.push_str(&d);
        }
        s
    };
    let (outcome, seen) = tokio::join!(
        f.rt.respond(&f.agent, &conv.id, "Can I book a check-up?", tx),
        collect
    );
    (outcome.expect("respond"), seen, contact)
}

async fn books_through(wire: Wire) {
    let f = fx(wire, false).await;
    let (outcome, seen, contact) = ask(&f).await;
    let Outcome::Answered(msg) = outcome else {
        panic!("{wire:?}: expected a model answer, got {outcome:?}");
    };
    assert_eq!(msg.body, seen, "the stored answer is what the visitor read");
    assert!(
        msg.body.contains("Done! Booked: Check-up on "),
        "{}",
        msg.body
    );
    assert!(msg.body.contains("(Paris time)"), "{}", msg.body);
    let results = f.results.lock().expect("lock").clone();
    assert_eq!(results.len(), 2, "find_slots then book: {results:?}");
    let offered = results[0]["slots"][0]["starts_at"].as_i64().expect("slot");
    assert_eq!(results[1]["ok"], true, "{results:?}");
    let bookings =
        f.rt.appointments()
            .contact_bookings(&contact)
            .expect("list");
    assert_eq!(bookings.len(), 1);
    let b = &bookings[0];
    assert_eq!(
        (b.starts_at, b.status, b.service_name.as_str()),
        (offered, BookingStatus::Booked, "Check-up")
    );
    assert_eq!(b.details.name, "Ada Lovelace");
    assert_eq!(b.details.email, "ada@example.com");
    // The guided flow did not start: the model handled it.
    assert!(f
        .rt
        .appointments()
        .flow(b.conversation_id.as_deref().expect("conversation"))
        .expect("flow")
        .is_none());
    // Three requests reached the model, and each is counted.
    let counts = crate::domain::ai_usage::since(f.rt.store(), 0).expect("counts");
    assert_eq!(
        counts.iter().map(|c| c.requests).sum::<i64>(),
        3,
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_visitor_books_through_openai_tool_calls() {
    books_through(Wire::OpenAi).await;
}

#[tokio::test]
async fn a_visitor_books_through_anthropic_tool_use() {
    books_through(Wire::Anthropic).await;
}

#[tokio::test]
async fn a_time_taken_meanwhile_is_told_to_the_model_with_other_times() {
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        let f = fx(wire, true).await;
        let (outcome, _, contact) = ask(&f).await;
        assert!(matches!(outcome, Outcome::Answered(_)), "{outcome:?}");
        let results = f.results.lock().expect("lock").clone();
        assert_eq!(
            results.len(),
            3,
            "find_slots, book (taken), book: {results:?}"
        );
        let first = results[0]["slots"][0]["starts_at"].as_i64().expect("slot");
        assert_eq!(results[1]["ok"], false);
        assert_eq!(results[1]["error"], "taken");
        assert_eq!(results[1]["message"], "That time is no longer available.");
        let other = results[1]["other_slots"][0]["starts_at"]
            .as_i64()
            .expect("other times offered");
        assert_ne!(other, first);
        assert!(results[1]["other_slots"][0]["label"].is_string());
        assert_eq!(results[2]["ok"], true);
        let mine =
            f.rt.appointments()
                .contact_bookings(&contact)
                .expect("list");
        assert_eq!(mine.len(), 1, "{wire:?}");
        assert_eq!(mine[0].starts_at, other, "{wire:?}");
    }
}
