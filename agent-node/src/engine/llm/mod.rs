//! LLM providers behind one trait: OpenAI, Anthropic, any OpenAI-compatible endpoint and
//! the built-in retrieval responder (no network, no key).
//!
//! Every provider streams: text deltas go out on a channel as they arrive. Requests have
//! bounded timeouts (connect, first byte, idle between chunks, total) and are retried
//! with full jitter on connection errors, timeouts, 429 and 5xx, but only before the
//! first delta was sent, so a visitor never sees an answer twice. Errors are stable codes
//! ([`LlmError::code`]); nothing logged or reported carries a prompt, an answer or a key.

pub mod anthropic;
pub mod openai;
pub mod retrieval;
pub mod sse;

use crate::domain::secrets::{SecretKind, SecretStore};
use futures_util::future::BoxFuture;
use outpost_crypto::Secret;
use outpost_protocol::{Check, ModelChoice, ProviderKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A retrieved knowledge-base passage the answer must be grounded in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grounding {
    /// Title of the document it comes from.
    pub title: String,
    /// The passage.
    pub text: String,
}

/// Who said a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The customer.
    User,
    /// The agent (or a human answering for it).
    Assistant,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Turn {
    /// Who.
    pub role: Role,
    /// What.
    pub text: String,
}

/// What a provider is asked.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// Persona, language, hours and instructions, composed by the runtime.
    pub system: String,
    /// Passages to answer from.
    pub grounding: Vec<Grounding>,
    /// Oldest first; the last turn is the customer's question.
    pub history: Vec<Turn>,
    /// Longest answer, tokens.
    pub max_tokens: u32,
}

impl ChatRequest {
    /// The system prompt with the passages appended as numbered sources.
    pub fn system_with_sources(&self) -> String {
        let mut s = self.system.clone();
        if self.grounding.is_empty() {
            s.push_str("\n\nNo passage of the knowledge base matches this question: say you are not sure and offer to pass it to the team.");
            return s;
        }
        s.push_str("\n\nAnswer only from these sources from the business's knowledge base. If they do not answer the question, say so.\n");
        for (i, g) in self.grounding.iter().enumerate() {
            s.push_str(&format!("\n[{}] {}\n{}\n", i + 1, g.title, g.text));
        }
        s
    }

    /// The last customer turn.
    pub fn question(&self) -> &str {
        self.history
            .iter()
            .rev()
            .find(|t| t.role == Role::User)
            .map_or("", |t| t.text.as_str())
    }
}

/// What a streamed answer has told so far, filled in by a provider's event reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Tokens, as far as reported.
    pub usage: Usage,
    /// The model said the answer is complete (`finish_reason`, `stop_reason`): the
    /// stream may end now.
    pub finished: bool,
    /// The stream's own end marker (`[DONE]`, `message_stop`): stop reading.
    pub done: bool,
}

/// Tokens used by one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
}

/// Why a provider did not answer. [`LlmError::code`] is what logs and reports carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// No key is configured for the provider.
    #[error("no API key configured")]
    NoKey,
    /// The provider refused the key (401/403).
    #[error("the provider refused the key")]
    Unauthorized,
    /// The provider asked us to slow down (429).
    #[error("rate limited by the provider")]
    RateLimited,
    /// No answer in time.
    #[error("the provider timed out")]
    Timeout,
    /// Unreachable or failing (connection error, 5xx).
    #[error("the provider is unavailable")]
    Unavailable,
    /// An answer we could not read (or an unusable configuration).
    #[error("unreadable answer from the provider")]
    BadResponse,
    /// Nothing to answer from (retrieval responder without a matching passage).
    #[error("no answer")]
    NoAnswer,
}

impl LlmError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::NoKey => "no_key",
            LlmError::Unauthorized => "unauthorized",
            LlmError::RateLimited => "rate_limited",
            LlmError::Timeout => "timeout",
            LlmError::Unavailable => "unavailable",
            LlmError::BadResponse => "bad_response",
            LlmError::NoAnswer => "no_answer",
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited | LlmError::Timeout | LlmError::Unavailable
        )
    }
}

/// A model provider.
pub trait LlmProvider: Send + Sync {
    /// Stable provider name for logs.
    fn name(&self) -> &'static str;
    /// Streams the answer: each text delta is sent on `tx` as it arrives; returns the
    /// usage when done.
    fn stream<'a>(
        &'a self,
        req: &'a ChatRequest,
        tx: mpsc::Sender<String>,
    ) -> BoxFuture<'a, Result<Usage, LlmError>>;
}

/// Base URLs of the hosted providers (configurable so tests use local fakes).
#[derive(Clone, Debug)]
pub struct ProviderUrls {
    /// `https://api.openai.com/v1`.
    pub openai: String,
    /// `https://api.anthropic.com/v1`.
    pub anthropic: String,
}

impl Default for ProviderUrls {
    fn default() -> Self {
        Self {
            openai: "https://api.openai.com/v1".into(),
            anthropic: "https://api.anthropic.com/v1".into(),
        }
    }
}

/// Timeouts and retries of provider calls.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// From sending the request to the response headers.
    pub first_byte: Duration,
    /// Longest silence between two chunks of a streaming answer.
    pub idle: Duration,
    /// The whole answer.
    pub total: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Base of the full-jitter backoff.
    pub backoff_base: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(20),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(120),
            retries: 2,
            backoff_base: Duration::from_millis(500),
        }
    }
}

/// Picks the provider for an agent's model choice, with the key stored on the node.
#[derive(Debug)]
pub struct Providers {
    urls: ProviderUrls,
    secrets: SecretStore,
    client: reqwest::Client,
    timeouts: Timeouts,
}

/// The node's `User-Agent` on every outbound request (providers, channels).
pub const USER_AGENT: &str = concat!("outpost-node/", env!("CARGO_PKG_VERSION"));

/// Builds the node's HTTP client (rustls with ring and the Mozilla roots; see
/// [`outpost_common::http::client`]) with the connect timeout of `timeouts`.
pub fn http_client(timeouts: &Timeouts) -> anyhow::Result<reqwest::Client> {
    Ok(outpost_common::http::client(USER_AGENT, timeouts.connect)?)
}

impl Providers {
    /// Providers with the default timeouts.
    pub fn new(urls: ProviderUrls, secrets: SecretStore) -> anyhow::Result<Self> {
        Self::with_timeouts(urls, secrets, Timeouts::default())
    }

    /// Providers with explicit timeouts (tests).
    pub fn with_timeouts(
        urls: ProviderUrls,
        secrets: SecretStore,
        timeouts: Timeouts,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: http_client(&timeouts)?,
            urls,
            secrets,
            timeouts,
        })
    }

    fn key(&self, kind: SecretKind) -> Result<Option<Secret>, LlmError> {
        self.secrets.get(kind).map_err(|e| {
            tracing::error!(error = %e, kind = kind.as_str(), "reading a provider key failed");
            LlmError::NoKey
        })
    }

    /// The provider for an agent's model choice. Keys are read on each call, so a key
    /// saved in the console applies at once.
    pub fn for_model(&self, choice: &ModelChoice) -> Result<Arc<dyn LlmProvider>, LlmError> {
        let http = Http {
            client: self.client.clone(),
            timeouts: self.timeouts,
        };
        Ok(match choice.provider {
            ProviderKind::Retrieval => Arc::new(retrieval::Retrieval),
            ProviderKind::Openai => Arc::new(openai::OpenAi {
                name: "openai",
                base: self.urls.openai.clone(),
                key: Some(self.key(SecretKind::OpenaiApiKey)?.ok_or(LlmError::NoKey)?),
                http,
            }),
            ProviderKind::OpenaiCompatible => {
                if choice.base_url.is_empty() {
                    return Err(LlmError::BadResponse);
                }
                Arc::new(openai::OpenAi {
                    name: "openai_compatible",
                    base: choice.base_url.clone(),
                    key: self.key(SecretKind::OpenaiCompatibleApiKey)?,
                    http,
                })
            }
            ProviderKind::Anthropic => Arc::new(anthropic::Anthropic {
                base: self.urls.anthropic.clone(),
                key: self
                    .key(SecretKind::AnthropicApiKey)?
                    .ok_or(LlmError::NoKey)?,
                http,
            }),
        })
    }
}

/// Longest `Retry-After` honoured: a provider asking for more gets retried sooner (and
/// the total timeout still bounds the answer).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How long to wait before retry number `attempt + 1`: the provider's `Retry-After` (capped
/// at [`MAX_RETRY_AFTER`]) if it sent one, else full jitter in `[0, base * 2^attempt)`.
pub fn retry_wait(base: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(r) => r.min(MAX_RETRY_AFTER),
        None => base
            .saturating_mul(1 << attempt.min(8))
            .mul_f64(rand::random::<f64>()),
    }
}

/// The HTTP side shared by the hosted providers.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    timeouts: Timeouts,
}

impl Http {
    /// Sends the request built by `build` (retrying as described in the module docs)
    /// and feeds the streamed SSE events to `on_event`, which returns the deltas to
    /// forward (and may fail the stream). Returns the usage `on_event` accumulated.
    /// A stream that ends before the provider marked the answer complete was cut off:
    /// that is [`LlmError::Unavailable`] (retried if nothing was forwarded yet).
    pub async fn stream_sse(
        &self,
        provider: &'static str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        mut on_event: impl FnMut(&sse::Event, &mut Progress) -> Result<Option<String>, LlmError>,
        tx: &mpsc::Sender<String>,
    ) -> Result<Usage, LlmError> {
        let t = self.timeouts;
        let work = async {
            let mut attempt = 0u32;
            loop {
                let mut progress = Progress::default();
                let mut sent = false;
                let result = self
                    .attempt(&build, &mut on_event, &mut progress, &mut sent, tx)
                    .await;
                match result {
                    Ok(()) => return Ok(progress.usage),
                    Err((e, retry_after)) => {
                        tracing::warn!(provider, code = e.code(), attempt, "provider call failed");
                        if sent || !e.retryable() || attempt >= t.retries {
                            return Err(e);
                        }
                        tokio::time::sleep(retry_wait(t.backoff_base, attempt, retry_after)).await;
                        attempt += 1;
                    }
                }
            }
        };
        tokio::time::timeout(t.total, work)
            .await
            .unwrap_or(Err(LlmError::Timeout))
    }

    async fn attempt(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        on_event: &mut impl FnMut(&sse::Event, &mut Progress) -> Result<Option<String>, LlmError>,
        progress: &mut Progress,
        sent: &mut bool,
        tx: &mpsc::Sender<String>,
    ) -> Result<(), (LlmError, Option<Duration>)> {
        let t = self.timeouts;
        let response = tokio::time::timeout(t.first_byte, build(&self.client).send())
            .await
            .map_err(|_| (LlmError::Timeout, None))?
            .map_err(|e| {
                let code = if e.is_timeout() {
                    LlmError::Timeout
                } else {
                    LlmError::Unavailable
                };
                (code, None)
            })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let e = match status.as_u16() {
                401 | 403 => LlmError::Unauthorized,
                429 => LlmError::RateLimited,
                500..=599 => LlmError::Unavailable,
                _ => LlmError::BadResponse,
            };
            return Err((e, retry_after));
        }
        let mut response = response;
        let mut parser = sse::Parser::default();
        loop {
            let chunk = tokio::time::timeout(t.idle, response.chunk())
                .await
                .map_err(|_| (LlmError::Timeout, None))?
                .map_err(|_| (LlmError::Unavailable, None))?;
            let Some(chunk) = chunk else {
                return if progress.finished || progress.done {
                    Ok(())
                } else {
                    Err((LlmError::Unavailable, None))
                };
            };
            let events = parser
                .push(&chunk)
                .map_err(|_| (LlmError::BadResponse, None))?;
            for ev in &events {
                if let Some(delta) = on_event(ev, progress).map_err(|e| (e, None))? {
                    if !delta.is_empty() {
                        *sent = true;
                        let _ = tx.send(delta).await;
                    }
                }
                if progress.done {
                    return Ok(());
                }
            }
        }
    }
}

/// Health of the LLM path, reported to the CP as the `llm` check.
#[derive(Default)]
pub struct LlmHealth {
    last: Mutex<Option<Result<(), &'static str>>>,
}

impl LlmHealth {
    /// A model answered.
    pub fn record_ok(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Ok(()));
    }

    /// A model failed.
    pub fn record_error(&self, e: &LlmError) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(e.code()));
    }

    /// The `llm` check: the outcome of the last model call; `None` before any.
    pub fn check(&self) -> Option<Check> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.map(|r| Check {
            name: "llm".into(),
            ok: r.is_ok(),
            detail_code: r.err().map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reports_the_last_outcome_by_code() {
        let h = LlmHealth::default();
        assert!(h.check().is_none());
        h.record_error(&LlmError::RateLimited);
        let c = h.check().expect("check");
        assert!(!c.ok);
        assert_eq!(c.detail_code.as_deref(), Some("rate_limited"));
        h.record_ok();
        assert!(h.check().expect("check").ok);
    }

    #[test]
    fn retry_waits_are_jittered_and_retry_after_is_capped() {
        let base = Duration::from_millis(500);
        for attempt in 0..4 {
            for _ in 0..50 {
                assert!(retry_wait(base, attempt, None) < base * (1 << attempt));
            }
        }
        assert_eq!(
            retry_wait(base, 0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_wait(base, 0, Some(Duration::from_secs(3600))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn sources_are_numbered_in_the_system_prompt() {
        let r = ChatRequest {
            model: "m".into(),
            system: "You are Ava.".into(),
            grounding: vec![Grounding {
                title: "hours.md".into(),
                text: "Open 8–6.".into(),
            }],
            history: vec![Turn {
                role: Role::User,
                text: "When?".into(),
            }],
            max_tokens: 10,
        };
        let s = r.system_with_sources();
        assert!(s.starts_with("You are Ava."));
        assert!(s.contains("[1] hours.md\nOpen 8–6."));
        assert_eq!(r.question(), "When?");
    }
}

#[cfg(test)]
mod provider_tests {
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
                title: "hours.md".into(),
                text: "Open 8am to 6pm.".into(),
            }],
            history: vec![Turn {
                role: Role::User,
                text: "When do you open?".into(),
            }],
            max_tokens: 50,
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

    const OPENAI_SSE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
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
            .contains("[1] hours.md\nOpen 8am to 6pm."));
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
            .contains("hours.md"));
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
                "http://127.0.0.1:1/v1"
            ))
            .is_ok(),
            "a local model needs no key"
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
}
