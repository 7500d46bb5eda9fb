//! The hosted providers against local fakes speaking their real wire formats.

use super::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fast() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        first_byte: Duration::from_millis(400),
        idle: Duration::from_millis(400),
        total: Duration::from_secs(5),
        retries: 2,
        backoff_base: Duration::from_millis(10),
    }
}

fn http() -> Http {
    Http {
        client: http_client(&fast()).expect("client"),
        timeouts: fast(),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "test-model".into(),
        system: "You are Ava.".into(),
        grounding: vec![Grounding {
            context: "Hours".into(),
            text: "Open 8am to 6pm.".into(),
        }],
        history: vec![Turn {
            role: Role::User,
            text: "When do you open?".into(),
        }],
        max_tokens: 50,
        tools: vec![],
        rounds: vec![],
    }
}

fn openai(base: &str) -> openai::OpenAi {
    openai::OpenAi {
        name: "openai",
        base: format!("{base}/v1"),
        key: Some(Secret::new("sk-test".into())),
        http: http(),
    }
}

async fn run(p: &dyn LlmProvider) -> (Result<Usage, LlmError>, String) {
    let (tx, mut rx) = mpsc::channel(64);
    let req = request();
    let (result, text) = tokio::join!(p.stream(&req, tx), async {
        let mut s = String::new();
        while let Some(d) = rx.recv().await {
            s.push_str(&d);
        }
        s
    });
    (result, text)
}

const OPENAI_SSE: &str =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"We open \"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"at 8am.\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4}}\n\n\
data: [DONE]\n\n";

#[tokio::test]
async fn openai_streams_deltas_with_the_key_model_and_sources() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(OPENAI_SSE),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (r, text) = run(&openai(&server.uri())).await;
    assert_eq!(text, "We open at 8am.");
    assert_eq!(
        r.expect("usage"),
        Usage {
            input_tokens: 12,
            output_tokens: 4
        }
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&server.received_requests().await.expect("requests")[0].body)
            .expect("json");
    assert_eq!(sent["model"], "test-model");
    assert_eq!(sent["stream"], true);
    assert!(sent["messages"][0]["content"]
        .as_str()
        .expect("system")
        .contains("[1] Hours\nOpen 8am to 6pm."));
    assert_eq!(sent["messages"][1]["content"], "When do you open?");
}

#[tokio::test]
async fn anthropic_streams_text_deltas_with_its_headers() {
    let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Open \"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"at 8.\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant"))
        .and(header("anthropic-version", anthropic::API_VERSION))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(body),
        )
        .mount(&server)
        .await;
    let p = anthropic::Anthropic {
        base: format!("{}/v1", server.uri()),
        key: Secret::new("sk-ant".into()),
        http: http(),
    };
    let (r, text) = run(&p).await;
    assert_eq!(text, "Open at 8.");
    assert_eq!(r.expect("usage").output_tokens, 5);
    let sent: serde_json::Value =
        serde_json::from_slice(&server.received_requests().await.expect("requests")[0].body)
            .expect("json");
    assert!(sent["system"]
        .as_str()
        .expect("system")
        .contains("[1] Hours\nOpen 8am to 6pm."));
    assert_eq!(sent["messages"][0]["role"], "user");
}

#[tokio::test]
async fn failures_map_to_codes_and_only_transient_ones_are_retried() {
    for (status, expected, calls) in [
        (401, LlmError::Unauthorized, 1),
        (500, LlmError::Unavailable, 3),
        (429, LlmError::RateLimited, 3),
        (400, LlmError::BadResponse, 1),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string("{\"error\":{}}"))
            .mount(&server)
            .await;
        let (r, text) = run(&openai(&server.uri())).await;
        assert_eq!(r, Err(expected.clone()), "{status}");
        assert!(text.is_empty());
        let n = server.received_requests().await.expect("requests").len();
        assert_eq!(n, calls, "{status}: attempts");
    }
}

#[tokio::test]
async fn a_rate_limit_that_clears_is_retried_to_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(OPENAI_SSE),
        )
        .mount(&server)
        .await;
    let (r, text) = run(&openai(&server.uri())).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(text, "We open at 8am.");
    assert_eq!(server.received_requests().await.expect("requests").len(), 3);
}

fn sse(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(body)
}

#[tokio::test]
async fn an_error_after_the_first_delta_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(
            "data: {\"choices\":[{\"delta\":{\"content\":\"We open \"}}]}\n\n\
data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
        ))
        .mount(&server)
        .await;
    let (r, text) = run(&openai(&server.uri())).await;
    assert_eq!(r, Err(LlmError::Unavailable));
    assert_eq!(text, "We open ", "the visitor never sees an answer twice");
    assert_eq!(server.received_requests().await.expect("requests").len(), 1);
}

#[tokio::test]
async fn a_cut_off_stream_is_unavailable_and_retried_only_before_any_delta() {
    // Nothing forwarded yet: retried, then reported.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
        ))
        .mount(&server)
        .await;
    let (r, text) = run(&openai(&server.uri())).await;
    assert_eq!(r, Err(LlmError::Unavailable));
    assert!(text.is_empty());
    assert_eq!(server.received_requests().await.expect("requests").len(), 3);

    // Part of the answer forwarded: not retried.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(
            "data: {\"choices\":[{\"delta\":{\"content\":\"We open\"}}]}\n\n",
        ))
        .mount(&server)
        .await;
    let (r, text) = run(&openai(&server.uri())).await;
    assert_eq!(r, Err(LlmError::Unavailable));
    assert_eq!(text, "We open");
    assert_eq!(server.received_requests().await.expect("requests").len(), 1);
}

#[tokio::test]
async fn an_openai_compatible_model_needs_no_key_nor_done_marker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(sse(
                "data: {\"choices\":[{\"delta\":{\"content\":\"Hi.\"},\"finish_reason\":null}]}\r\n\r\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n",
            ))
            .mount(&server)
            .await;
    let p = openai::OpenAi {
        name: "openai_compatible",
        base: format!("{}/v1/", server.uri()),
        key: None,
        http: http(),
    };
    let (r, text) = run(&p).await;
    assert_eq!(r, Ok(Usage::default()));
    assert_eq!(text, "Hi.");
    let req = &server.received_requests().await.expect("requests")[0];
    assert!(!req.headers.contains_key("authorization"));
}

fn anthropic_at(server: &MockServer) -> anthropic::Anthropic {
    anthropic::Anthropic {
        base: format!("{}/v1", server.uri()),
        key: Secret::new("sk-ant".into()),
        http: http(),
    }
}

#[tokio::test]
async fn anthropic_failures_map_to_codes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_string(
                "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}",
            ))
            .mount(&server)
            .await;
    assert_eq!(
        run(&anthropic_at(&server)).await.0,
        Err(LlmError::Unauthorized)
    );
    assert_eq!(server.received_requests().await.expect("requests").len(), 1);

    // An `error` event in a 200 stream (the API's overload signal) before any text:
    // transient, so retried, then reported.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
            .respond_with(sse("event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n"))
            .mount(&server)
            .await;
    let (r, text) = run(&anthropic_at(&server)).await;
    assert_eq!(r, Err(LlmError::Unavailable));
    assert!(text.is_empty());
    assert_eq!(server.received_requests().await.expect("requests").len(), 3);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse("event: not json\ndata: {oops\n\n"))
        .mount(&server)
        .await;
    assert_eq!(
        run(&anthropic_at(&server)).await.0,
        Err(LlmError::BadResponse)
    );
}

#[test]
fn providers_print_keys_as_stars() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Arc::new(crate::platform::store::Store::open(&dir.path().join("node.db")).expect("db"));
    let secrets = SecretStore::new(
        store,
        Arc::new(crate::platform::keys::MasterKey::from_bytes([4; 32])),
    );
    let providers =
        Providers::with_timeouts(ProviderUrls::default(), secrets, fast()).expect("providers");
    let p = openai::OpenAi {
        name: "openai",
        base: "http://127.0.0.1:1/v1".into(),
        key: Some(Secret::new("sk-canary-debug-1234".into())),
        http: http(),
    };
    let a = anthropic::Anthropic {
        base: "http://127.0.0.1:1/v1".into(),
        key: Secret::new("sk-ant-canary-debug-5678".into()),
        http: http(),
    };
    for s in [format!("{p:?}"), format!("{a:?}"), format!("{providers:?}")] {
        assert!(!s.contains("canary"), "{s}");
    }
    assert!(format!("{p:?}").contains("***"));
    assert!(format!("{a:?}").contains("***"));
}

#[tokio::test]
async fn a_stream_that_goes_silent_times_out_without_a_retry() {
    // wiremock sends bodies whole, so a raw HTTP/1.1 server sends one chunked delta
    // and then holds the connection open.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = sock.read(&mut buf).await;
                let event = "data: {\"choices\":[{\"delta\":{\"content\":\"We open \"}}]}\n\n";
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let chunk = format!("{head}{:x}\r\n{event}\r\n", event.len());
                let _ = sock.write_all(chunk.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    let started = std::time::Instant::now();
    let (r, text) = run(&openai(&format!("http://{addr}"))).await;
    assert_eq!(r, Err(LlmError::Timeout));
    assert_eq!(text, "We open ");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "no retry after a delta"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the idle bound applied"
    );
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let (r, _) = run(&openai(&server.uri())).await;
    assert_eq!(r, Err(LlmError::Timeout));
}

#[tokio::test]
async fn missing_keys_and_unusable_choices_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Arc::new(crate::platform::store::Store::open(&dir.path().join("node.db")).expect("db"));
    let secrets = SecretStore::new(
        store,
        Arc::new(crate::platform::keys::MasterKey::from_bytes([3; 32])),
    );
    let p = Providers::with_timeouts(ProviderUrls::default(), secrets.clone(), fast())
        .expect("providers");
    let choice = |provider, base_url: &str| ModelChoice {
        provider,
        model: "m".into(),
        base_url: base_url.into(),
    };
    assert_eq!(
        p.for_model(&choice(ProviderKind::Openai, "")).err(),
        Some(LlmError::NoKey)
    );
    assert_eq!(
        p.for_model(&choice(ProviderKind::Anthropic, "")).err(),
        Some(LlmError::NoKey)
    );
    assert_eq!(
        p.for_model(&choice(ProviderKind::OpenaiCompatible, ""))
            .err(),
        Some(LlmError::BadResponse)
    );
    assert!(
        p.for_model(&choice(
            ProviderKind::OpenaiCompatible,
            "https://models.example.com/v1"
        ))
        .is_ok(),
        "an OpenAI-compatible endpoint needs no key"
    );
    assert_eq!(
        p.for_model(&choice(ProviderKind::Retrieval, ""))
            .map(|p| p.name())
            .ok(),
        Some("retrieval")
    );
    secrets
        .put(
            SecretKind::OpenaiApiKey,
            &Secret::new("sk-x".into()),
            crate::domain::secrets::SecretSource::Console,
        )
        .expect("put");
    assert!(
        p.for_model(&choice(ProviderKind::Openai, "")).is_ok(),
        "a saved key applies at once"
    );
}

fn secrets_in(dir: &std::path::Path) -> SecretStore {
    let store = Arc::new(crate::platform::store::Store::open(&dir.join("node.db")).expect("db"));
    SecretStore::new(
        store,
        Arc::new(crate::platform::keys::MasterKey::from_bytes([5; 32])),
    )
}

fn compatible(base_url: &str) -> ModelChoice {
    ModelChoice {
        provider: ProviderKind::OpenaiCompatible,
        model: "m".into(),
        base_url: base_url.into(),
    }
}

/// Issue 20: the node sent conversations and the key wherever the agent's endpoint
/// pointed. Every bypass of the old rule, and loopback without the switch, is refused
/// before a request is built.
#[test]
fn endpoints_the_policy_refuses_get_no_provider() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Providers::with_timeouts(ProviderUrls::default(), secrets_in(dir.path()), fast())
        .expect("providers");
    for url in [
        "http://127.0.0.1@169.254.169.254/v1",
        "http://127.0.0.1:80@10.0.0.5/v1",
        "http://[::1]@10.0.0.5/v1",
        "http://127.attacker.example/v1",
        "https://169.254.169.254/v1",
        "https://10.0.0.5/v1",
        "http://2130706433/v1",
        "http://0x7f.1/v1",
        "http://017700000001/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "https://[fd00::1]/v1",
        "http://127.0.0.1:1/v1",
        "http://localhost:11434/v1",
    ] {
        assert_eq!(
            p.for_model(&compatible(url)).err(),
            Some(LlmError::UrlNotAllowed),
            "{url}"
        );
    }
    assert_eq!(LlmError::UrlNotAllowed.code(), "url_not_allowed");
}

/// A local fake (a model on this machine) answers only with --allow-local-providers;
/// the hosted providers' configured URLs are under the same rule.
#[tokio::test]
async fn a_local_model_needs_the_switch() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(OPENAI_SSE),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = ProviderUrls {
        openai: format!("{}/v1", server.uri()),
        anthropic: format!("{}/v1", server.uri()),
    };
    let secrets = secrets_in(dir.path());
    secrets
        .put(
            SecretKind::OpenaiApiKey,
            &Secret::new("sk-x".into()),
            crate::domain::secrets::SecretSource::Console,
        )
        .expect("put");
    let base = format!("{}/v1", server.uri());
    let strict = Providers::with_timeouts(urls.clone(), secrets.clone(), fast()).expect("p");
    for choice in [
        compatible(&base),
        ModelChoice {
            provider: ProviderKind::Openai,
            model: "m".into(),
            base_url: String::new(),
        },
    ] {
        assert_eq!(
            strict.for_model(&choice).err(),
            Some(LlmError::UrlNotAllowed)
        );
    }
    let local =
        Providers::with_policy(urls, secrets, fast(), Policy::new(true)).expect("providers");
    let (r, text) = run(local
        .for_model(&compatible(&base))
        .expect("allowed")
        .as_ref())
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(text, "We open at 8am.");
    assert_eq!(server.received_requests().await.expect("requests").len(), 1);
}

/// A name is checked on the address it resolves to when connecting (DNS rebinding): a
/// public-looking name that answers a private address gets no request, and no retry.
#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_gets_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let port = server.address().port();
    let dir = tempfile::tempdir().expect("tempdir");
    let rebinding: outbound::Lookup = Arc::new(|_name: String| {
        Box::pin(async { Ok(vec![std::net::IpAddr::from([127, 0, 0, 1])]) })
    });
    let client = outbound::Client::with_lookup(
        USER_AGENT,
        Duration::from_millis(500),
        Policy::STRICT,
        Redirects::None,
        rebinding,
    )
    .expect("client");
    let p = Providers::with_client(
        ProviderUrls::default(),
        secrets_in(dir.path()),
        fast(),
        client,
    );
    let provider = p
        .for_model(&compatible(&format!(
            "https://models.example.com:{port}/v1"
        )))
        .expect("the URL names a host: checked when resolved");
    let (r, text) = run(provider.as_ref()).await;
    assert_eq!(r, Err(LlmError::UrlNotAllowed));
    assert!(text.is_empty());
    assert!(server
        .received_requests()
        .await
        .expect("requests")
        .is_empty());
}
