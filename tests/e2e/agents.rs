//! The agent engine end to end: an agent configured in the CP answers a web-chat visitor
//! on the node from the node's knowledge base (no key needed), through OpenAI- and
//! Anthropic-speaking local fakes, falls back when the provider is down (and the CP sees
//! a failing `llm` check), stays quiet while a human has the conversation, and none of
//! the content ever reaches the CP.

use crate::harness::*;

const HOURS_DOC: &str = "# Opening hours\n\nAcme Dental is open Monday to Friday from 8am to 6pm. \
On Saturdays we open from 9am to 1pm for emergencies only.\n\n# Parking\n\nFree parking is \
available behind the building on Elm Street.\n";

/// Acme Dental's owner signs in and gets a healthy node with the agent Ava (retrieval)
/// applied and `kb` uploaded to its knowledge base as `clinic.md`; the pieces.
pub async fn node_answering_from(cp: &Cp, kb: &str) -> (Browser, Api, String, NodeConsole) {
    let (browser, api, ws_id, node) =
        workspace_with_node(cp, "owner@acme.test", "Acme Dental").await;
    create_agent(&api, &node, &ws_id, agent_body("Ava", "retrieval", "", "")).await;
    let r = node.upload("/kb/upload", "clinic.md", kb.as_bytes()).await;
    assert_eq!(r.status(), 303, "upload accepted");
    (browser, api, ws_id, node)
}

pub fn agent_body(name: &str, provider: &str, model: &str, base_url: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "greeting": "Hello! Ask me anything about Acme Dental.",
        "instructions": "Be warm and brief.",
        "language": "en",
        "fallback_message": "Sorry, I don't know that yet. Our team will get back to you.",
        // open every day all day, so the fallback has no "team is away" suffix
        "days": [true, true, true, true, true, true, true],
        "open": "00:00",
        "close": "24:00",
        "time_zone": "Europe/Paris",
        "provider": provider,
        "model": model,
        "base_url": base_url,
        "allowed_origins": ["https://shop.example"]
    })
}

/// The conversation ids linked from the inbox page.
pub async fn conversation_ids(node: &NodeConsole) -> Vec<String> {
    let page = node.get("/inbox?status=all").await.text().await.unwrap();
    let mut ids = vec![];
    for part in page.split("/inbox/").skip(1) {
        let id: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if id.len() >= 16 && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test]
async fn widget_answers_from_the_knowledge_base_and_pauses_for_a_human() {
    let cp = Cp::start();
    let (browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;

    // The agent is created in the CP; the node receives it with apply_config.
    let agent = create_agent(&api, &node, &ws_id, agent_body("Ava", "retrieval", "", "")).await;
    let page = browser
        .get(&format!("/workspaces/{ws_id}/agents/{agent}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("/widget.js\" data-outpost-agent=\"{agent}\""))
            || page.contains(&format!(
                "/widget.js&quot; data-outpost-agent=&quot;{agent}&quot;"
            )),
        "the CP shows the embed snippet"
    );
    // The page form validates with a message naming the field, and creates on success.
    let bad = browser
        .post_csrf(
            &format!("/workspaces/{ws_id}/agents"),
            &[
                ("name", "Bob"),
                ("language", "english"),
                ("fallback_message", "Sorry."),
                ("open", "09:00"),
                ("close", "17:00"),
                ("time_zone", "Europe/Paris"),
                ("provider", "retrieval"),
            ],
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("language tag"));
    // The time zone is an IANA name the database knows; a bare offset is refused.
    let bad = browser
        .post_csrf(
            &format!("/workspaces/{ws_id}/agents"),
            &[
                ("name", "Bob"),
                ("language", "en"),
                ("fallback_message", "Sorry."),
                ("open", "09:00"),
                ("close", "17:00"),
                ("time_zone", "UTC+01:00"),
                ("provider", "retrieval"),
            ],
        )
        .await;
    assert_eq!(bad.status(), 400);
    let page = bad.text().await.unwrap();
    assert!(
        page.contains("The time zone must be one from the list"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"Europe/Paris\">"),
        "the form lists the zones"
    );
    let ok = browser
        .post_csrf(
            &format!("/workspaces/{ws_id}/agents"),
            &[
                ("name", "Bob"),
                ("language", "en"),
                ("fallback_message", "Sorry."),
                ("day0", "on"),
                ("open", "09:00"),
                ("close", "17:00"),
                ("time_zone", "europe/paris"),
                ("provider", "retrieval"),
                ("allowed_origins", "https://bob.example\r\n"),
            ],
        )
        .await;
    assert_eq!(ok.status(), 303);
    let (_, list) = api
        .get_json(&format!("/api/v1/workspaces/{ws_id}/agents"))
        .await;
    let bob = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Bob")
        .unwrap()
        .clone();
    assert_eq!(
        bob["business_hours"]["days"],
        serde_json::json!([true, false, false, false, false, false, false])
    );
    assert_eq!(
        bob["allowed_origins"],
        serde_json::json!(["https://bob.example"])
    );
    assert_eq!(bob["business_hours"]["time_zone"], "Europe/Paris");
    // Owners read the hours in words, in the business's own time.
    let ws_page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        ws_page.contains("Mon 09:00–17:00 (Paris time)"),
        "the agent list names the zone"
    );
    assert!(!ws_page.contains("UTC+"), "no bare offsets");
    // Someone else's workspace: 404, as for every workspace route.
    let stranger = Api::new(&cp, "stranger@elsewhere.test");
    let (status, _) = stranger
        .get_json(&format!("/api/v1/workspaces/{ws_id}/agents"))
        .await;
    assert_eq!(status, 404);

    let agents_page = node.get("/agents").await.text().await.unwrap();
    assert!(agents_page.contains("Ava") && agents_page.contains(&agent));
    assert!(
        agents_page.contains("Mon–Sun 00:00–24:00 (Paris time)"),
        "the node console names the zone"
    );
    assert!(!agents_page.contains("UTC+"), "no bare offsets");

    // The widget script is served by the node, cacheable, and needs no build step.
    let r = node
        .client
        .get(format!("{}/widget.js", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(r.text().await.unwrap().contains("data-outpost-agent"));

    // Upload the hours document to the knowledge base.
    let r = node
        .upload("/kb/upload", "hours.md", HOURS_DOC.as_bytes())
        .await;
    assert_eq!(r.status(), 303, "upload accepted");
    let kb = node.get("/kb?q=parking").await.text().await.unwrap();
    assert!(
        kb.contains("hours.md") && kb.contains("Elm Street"),
        "indexed and searchable"
    );

    // CORS: the configured website may chat; another one may not.
    let stranger = Visitor::new(&node, &agent, Some("https://evil.example"));
    let r = stranger.start().await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = node
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/widget/v1/{agent}/messages", node.base),
        )
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );

    let mut visitor = Visitor::new(&node, &agent, Some("https://shop.example"));
    let r = visitor.start().await;
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let s: serde_json::Value = r.json().await.unwrap();
    assert_eq!(s["agent"], "Ava");
    assert_eq!(s["greeting"], "Hello! Ask me anything about Acme Dental.");
    assert!(s["visitor"].is_null(), "a page view stores nothing");
    assert!(
        conversation_ids(&node).await.is_empty(),
        "no empty conversations"
    );

    // With no key, the retrieval responder quotes the knowledge base.
    let a = visitor.say("When are you open on Saturdays?").await;
    assert_eq!(a.event, "done", "{a:?}");
    assert!(
        !visitor.token.is_empty(),
        "the first message returns the visitor token"
    );
    // A returning visitor resumes the conversation.
    let s: serde_json::Value = visitor.start().await.json().await.unwrap();
    assert_eq!(s["visitor"], visitor.token.as_str());
    assert_eq!(s["messages"].as_array().unwrap().len(), 2);
    assert!(!a.deltas.is_empty(), "the answer streams");
    assert_eq!(a.deltas.concat(), a.text());
    assert_eq!(
        a.text(),
        "On Saturdays we open from 9am to 1pm for emergencies only.",
        "the sentence that answers, without the file name or the heading"
    );

    // Nothing matches: the fallback message.
    let a = visitor.say("Do you sell mountain bikes?").await;
    assert_eq!(a.event, "done");
    assert_eq!(a.data["fallback"], "no_match");
    assert_eq!(
        a.text(),
        "Sorry, I don't know that yet. Our team will get back to you."
    );

    // Malformed payloads are refused with a clear error and store nothing.
    for (body, code) in [
        ("{not json", "malformed_json"),
        ("{\"text\": 42}", "malformed_json"),
        ("{\"text\": \"hi\", \"extra\": 1}", "malformed_json"),
        ("{\"text\": \"   \"}", "empty_message"),
    ] {
        let r = visitor.post_raw(body).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], code, "{body}");
    }
    let long = serde_json::json!({ "text": "a".repeat(2001) }).to_string();
    assert_eq!(visitor.post_raw(&long).await.status(), 400);
    let mut forged = Visitor::new(&node, &agent, Some("https://shop.example"));
    forged.token = "not-a-visitor-token".into();
    assert_eq!(forged.post_raw("{\"text\": \"hi\"}").await.status(), 401);
    let r = forged.req_get("/messages?after=0").await;
    assert_eq!(r.status(), 401);
    let nobody = Visitor::new(&node, "no-such-agent", None);
    assert_eq!(nobody.post_raw("{\"text\": \"hi\"}").await.status(), 404);
    let history = visitor.messages_after(0).await;
    assert_eq!(
        history.len(),
        4,
        "two questions and two answers: {history:?}"
    );

    // Human takeover from the inbox: the agent stays quiet, the human answers.
    let convs = conversation_ids(&node).await;
    assert_eq!(convs.len(), 1, "{convs:?}");
    let conv = &convs[0];
    let transcript = node
        .get(&format!("/inbox/{conv}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(transcript.contains("When are you open on Saturdays?"));
    let r = node.post(&format!("/inbox/{conv}/takeover"), &[]).await;
    assert_eq!(r.status(), 303);
    let last = history.last().unwrap()["id"].as_i64().unwrap();
    let a = visitor.say("Where can I park?").await;
    assert_eq!(
        a.event, "queued",
        "no automatic answer while a human has it: {a:?}"
    );
    assert!(a.deltas.is_empty());
    let r = node
        .post(
            &format!("/inbox/{conv}/reply"),
            &[("text", "Hi, Sam here: behind the building.")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let new: Vec<_> = visitor.messages_after(last).await;
    assert!(
        new.iter()
            .any(|m| m["from"] == "human" && m["text"] == "Hi, Sam here: behind the building."),
        "the visitor sees the human reply: {new:?}"
    );
    assert!(
        !new.iter().any(|m| m["from"] == "agent"),
        "the agent said nothing: {new:?}"
    );

    // Handed back: the agent answers again.
    let r = node.post(&format!("/inbox/{conv}/handback"), &[]).await;
    assert_eq!(r.status(), 303);
    let a = visitor.say("Is there parking?").await;
    assert_eq!(a.event, "done");
    assert!(a.text().contains("Elm Street"), "{}", a.text());

    // The CP sees counts per channel and hour, nothing else.
    let usage = wait_for("web counts in a report", 30, || async {
        let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
        let web: Vec<_> = d["usage"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["channel"] == "web")
            .cloned()
            .collect();
        let inbound: i64 = web.iter().map(|u| u["inbound"].as_i64().unwrap()).sum();
        (inbound >= 4).then_some(web)
    })
    .await;
    let outbound: i64 = usage.iter().map(|u| u["outbound"].as_i64().unwrap()).sum();
    assert_eq!(
        outbound, 4,
        "three agent answers and one human reply: {usage:?}"
    );
    let conversations: i64 = usage
        .iter()
        .map(|u| u["conversations"].as_i64().unwrap())
        .sum();
    assert_eq!(conversations, 1);
    let page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Messages per hour"));
    assert!(!page.contains("Saturdays"), "no content on the CP page");

    // Asking for a person: the handoff message, then the agent waits for the team.
    let a = visitor.say("Can I talk to a person please?").await;
    assert_eq!(a.event, "done");
    assert_eq!(a.data["fallback"], "person_requested");
    assert_eq!(visitor.say("Hello?").await.event, "queued");
    let transcript = node
        .get(&format!("/inbox/{conv}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(transcript.contains("Waiting for a member of the team"));

    // A visitor sending too fast is told to wait.
    let mut limited = None;
    for _ in 0..12 {
        let r = visitor.post_raw("{\"text\": \"hi\"}").await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        r.text().await.unwrap();
    }
    let r = limited.expect("rate limited within 12 quick messages");
    assert!(r.headers().contains_key("retry-after"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "rate_limited");
}

/// A fake provider answering with the real streaming wire format.
pub async fn fake(
    path: &'static str,
    content_type: &'static str,
    body: String,
) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(path))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", content_type)
                .set_body_string(body),
        )
        .mount(&server)
        .await;
    server
}

pub fn openai_stream(parts: &[&str]) -> String {
    let mut s = String::new();
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for p in parts {
        s.push_str(&format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
            serde_json::Value::from(*p)
        ));
    }
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":7,\"total_tokens\":49}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s
}

fn anthropic_stream(parts: &[&str]) -> String {
    let mut s = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-test\",\"stop_reason\":null,\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
         event: ping\ndata: {\"type\": \"ping\"}\n\n",
    );
    for p in parts {
        s.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}\n\n",
            serde_json::Value::from(*p)
        ));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n");
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s
}

#[tokio::test]
async fn model_answers_stream_from_openai_and_anthropic_and_fall_back_when_down() {
    let openai = fake(
        "/v1/chat/completions",
        "text/event-stream",
        openai_stream(&["We open ", "at 8am ", "on weekdays."]),
    )
    .await;
    let anthropic = fake(
        "/v1/messages",
        "text/event-stream",
        anthropic_stream(&["Parking is ", "behind the building."]),
    )
    .await;
    // A port that refuses connections: bind, note it, drop it.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cp = Cp::start_with(Opts {
        env: vec![
            // The fakes (and the "local model" below) are on this machine.
            ("OUTPOST_ALLOW_LOCAL_PROVIDERS", "true".into()),
            (
                "OUTPOST_NODE_OPENAI_BASE_URL",
                format!("{}/v1", openai.uri()),
            ),
            (
                "OUTPOST_NODE_ANTHROPIC_BASE_URL",
                format!("{}/v1", anthropic.uri()),
            ),
        ],
        ..Opts::default()
    });
    let (browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Acme Dental").await;
    let r = node
        .upload("/kb/upload", "hours.md", HOURS_DOC.as_bytes())
        .await;
    assert_eq!(r.status(), 303);

    // Keys are entered in the node console and stay on the node.
    for (kind, value) in [
        ("openai_api_key", "sk-test-openai-0001"),
        ("anthropic_api_key", "sk-ant-test-0002"),
    ] {
        let r = node
            .post("/settings/secrets", &[("kind", kind), ("value", value)])
            .await;
        assert_eq!(r.status(), 303, "{kind} saved");
    }
    let settings = node.get("/settings").await.text().await.unwrap();
    assert!(settings.contains("0001") && !settings.contains("sk-test-openai-0001"));

    // OpenAI: the answer streams through, grounded in the knowledge base.
    let gpt = create_agent(
        &api,
        &node,
        &ws_id,
        agent_body("Gpt", "openai", "gpt-test", ""),
    )
    .await;
    let mut v = Visitor::new(&node, &gpt, Some("https://shop.example"));
    v.begin().await;
    let a = v.say("When do you open?").await;
    assert_eq!(a.event, "done", "{a:?}");
    assert_eq!(a.deltas.concat(), "We open at 8am on weekdays.");
    assert_eq!(a.text(), "We open at 8am on weekdays.");
    let reqs = openai.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].headers["authorization"],
        "Bearer sk-test-openai-0001"
    );
    let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["stream"], true);
    let sent = body.to_string();
    assert!(
        sent.contains("Monday to Friday from 8am to 6pm"),
        "grounded: {sent}"
    );
    assert!(sent.contains("Be warm and brief."), "persona: {sent}");
    assert!(sent.contains("When do you open?"));

    // Anthropic: same, with its own headers and event format.
    let claude = create_agent(
        &api,
        &node,
        &ws_id,
        agent_body("Claude", "anthropic", "claude-test", ""),
    )
    .await;
    let mut v = Visitor::new(&node, &claude, Some("https://shop.example"));
    v.begin().await;
    let a = v.say("Where do I park?").await;
    assert_eq!(a.event, "done", "{a:?}");
    assert_eq!(a.text(), "Parking is behind the building.");
    let reqs = anthropic.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].headers["x-api-key"], "sk-ant-test-0002");
    assert_eq!(reqs[0].headers["anthropic-version"], "2023-06-01");

    // Issue 19 part 5: the node reports AI requests and tokens per day and model, and the
    // workspace page shows them next to the messages (counts and model names only).
    let ai = wait_for("AI counts at the CP", 30, || async {
        let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
        let rows = d["ai_usage"].as_array()?.clone();
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    let row = |model: &str| {
        ai.iter().find(|r| r["model"] == model).map(|r| {
            (
                r["requests"].clone(),
                r["input_tokens"].clone(),
                r["output_tokens"].clone(),
            )
        })
    };
    assert_eq!(
        row("gpt-test"),
        Some((1.into(), 42.into(), 7.into())),
        "{ai:?}"
    );
    assert_eq!(
        row("claude-test"),
        Some((1.into(), 40.into(), 9.into())),
        "{ai:?}"
    );
    let page = browser
        .get(&format!("/workspaces/{ws_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("AI use per day") && page.contains("gpt-test"),
        "{page}"
    );

    // Provider down: the visitor gets the fallback message, the CP a failing llm check.
    let broken = create_agent(
        &api,
        &node,
        &ws_id,
        agent_body(
            "Local",
            "openai_compatible",
            "llama",
            &format!("http://127.0.0.1:{down}/v1"),
        ),
    )
    .await;
    let mut v = Visitor::new(&node, &broken, Some("https://shop.example"));
    v.begin().await;
    let a = v.say("When do you open?").await;
    assert_eq!(a.event, "done", "{a:?}");
    assert_eq!(
        a.text(),
        "Sorry, I don't know that yet. Our team will get back to you."
    );
    assert_eq!(a.data["fallback"], "unavailable");
    let checks = wait_for("a failing llm check at the CP", 30, || async {
        let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
        let checks: serde_json::Value =
            serde_json::from_str(d["node"]["checks_json"].as_str().unwrap_or("[]")).unwrap();
        let llm = checks
            .as_array()?
            .iter()
            .find(|c| c["name"] == "llm")?
            .clone();
        (llm["ok"] == false).then_some(llm)
    })
    .await;
    assert_eq!(checks["detail_code"], "unavailable");

    // Keys never reached the CP.
    let log = cp.log();
    assert!(!log.contains("sk-test-openai-0001") && !log.contains("sk-ant-test-0002"));
}

/// Every file under `dir` (recursively), except the subtree `skip`.
pub fn files_under(
    dir: &std::path::Path,
    skip: Option<&std::path::Path>,
) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if Some(p.as_path()) == skip {
            continue;
        }
        if p.is_dir() {
            out.extend(files_under(&p, skip));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Every row of every CP table, as text (PostgreSQL); SQLite is covered by its files.
pub fn pg_rows_text(cp: &Cp) -> String {
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        t: Option<String>,
    }
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = cp.db().get().unwrap();
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .load(&mut conn)
    .unwrap();
    assert!(tables.len() > 10, "the CP schema is there");
    let mut all = String::new();
    for t in tables {
        let rows: Vec<Row> = diesel::sql_query(format!(
            "SELECT string_agg(x::text, ' ') AS t FROM \"{}\" x",
            t.name
        ))
        .load(&mut conn)
        .unwrap();
        for r in rows {
            all.push_str(&r.t.unwrap_or_default());
        }
    }
    all
}

#[tokio::test]
async fn canary_content_never_reaches_the_control_plane_and_is_encrypted_on_the_node() {
    const MSG: &str = "canarymsg4e1f9a";
    const DOC: &str = "canarydoc7b2c0d";
    const NAME: &str = "canaryname93ac1";
    let cp = Cp::start();
    let (_browser, api, ws_id, node) =
        workspace_with_node(&cp, "owner@acme.test", "Canary Clinic").await;
    let agent = create_agent(&api, &node, &ws_id, agent_body("Ava", "retrieval", "", "")).await;

    // A KB document, a visitor conversation and a named contact, each with a canary.
    let doc = format!("Our secret recipe is {DOC} and it is delicious.\n");
    assert_eq!(
        node.upload("/kb/upload", "recipe.txt", doc.as_bytes())
            .await
            .status(),
        303
    );
    let mut v = Visitor::new(&node, &agent, Some("https://shop.example"));
    v.begin().await;
    let a = v
        .say(&format!("What is the secret recipe? My code is {MSG}"))
        .await;
    assert!(
        a.text().contains(DOC),
        "the agent quoted the document: {a:?}"
    );
    let page = node.get("/contacts").await.text().await.unwrap();
    let contact = page
        .split("/contacts/")
        .skip(1)
        .map(|p| {
            p.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .find(|id| id.len() >= 16)
        .expect("the visitor is a contact");
    let r = node
        .post(
            &format!("/contacts/{contact}"),
            &[
                ("name", &format!("Jane {NAME}")),
                ("stage", "qualified"),
                ("score", "70"),
                ("tags", "vip"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "contact updated");
    let detail = node
        .get(&format!("/contacts/{contact}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(detail.contains(NAME), "the console shows the name");

    // Let several reports go to the CP after all of it.
    let (_, before) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
    let seq = before["node"]["last_seq"].as_i64().unwrap();
    wait_for("two more reports", 30, || async {
        let (_, d) = api.get_json(&format!("/api/v1/workspaces/{ws_id}")).await;
        (d["node"]["last_seq"].as_i64().unwrap() >= seq + 2).then_some(())
    })
    .await;
    let node_id = before["node"]["id"].as_str().unwrap().to_owned();

    // The CP: every file of its data dir (SQLite database and WAL, outbox, CA…) except
    // the local node's own directory, its log, and on PostgreSQL every row of every table.
    let node_root = cp.data_dir().join("nodes");
    let cp_files = files_under(&cp.data_dir(), Some(&node_root));
    assert!(!cp_files.is_empty());
    for f in cp_files.iter().chain([cp.log_path()].iter()) {
        let bytes = std::fs::read(f).unwrap();
        for canary in [MSG, DOC, NAME] {
            assert!(
                !contains(&bytes, canary),
                "{canary} found in CP file {}",
                f.display()
            );
        }
    }
    if cp.db_url.starts_with("postgres") {
        let rows = pg_rows_text(&cp);
        for canary in [MSG, DOC, NAME] {
            assert!(!rows.contains(canary), "{canary} found in a CP table");
        }
    }

    // The node: its database and WAL hold the content only encrypted; its log not at all.
    let node_dir = cp.node_dir(&node_id);
    let node_files = files_under(&node_dir, None);
    let db_files: Vec<_> = node_files
        .iter()
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("node.db")
        })
        .collect();
    assert!(
        !db_files.is_empty(),
        "found node.db under {}",
        node_dir.display()
    );
    for f in node_files.iter() {
        let bytes = std::fs::read(f).unwrap();
        for canary in [MSG, DOC, NAME] {
            assert!(
                !contains(&bytes, canary),
                "{canary} readable in node file {}",
                f.display()
            );
        }
    }

    // Erasing the contact: confirmation required, then gone at once, and recorded.
    let r = node
        .post(&format!("/contacts/{contact}/erase"), &[("confirm", "")])
        .await;
    assert_eq!(r.status(), 400);
    let r = node
        .post(
            &format!("/contacts/{contact}/erase"),
            &[("confirm", "erase")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        node.get(&format!("/contacts/{contact}")).await.status(),
        404
    );
    let erasures = node.get("/erasures").await.text().await.unwrap();
    assert!(erasures.contains("id=\"erasures\"") && !erasures.contains(NAME));
    assert!(
        conversation_ids(&node).await.is_empty(),
        "its conversation is gone too"
    );
}
