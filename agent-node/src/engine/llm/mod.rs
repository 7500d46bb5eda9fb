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
use outpost_common::outbound::{self, Policy, Redirects};
use outpost_crypto::Secret;
use outpost_protocol::{Check, ModelChoice, ProviderKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A retrieved knowledge-base passage the answer must be grounded in. It carries no
/// document title or file name: those are the business's internal names, and a model
/// given them quotes them to visitors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grounding {
    /// Where the passage sits in its document: its heading path ("Clinic › Address"),
    /// or the question of a Q&A row; may be empty.
    pub context: String,
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
    /// Tools the model may call (empty: none offered).
    pub tools: Vec<ToolSpec>,
    /// The tool rounds of this answer so far, oldest first: they follow `history`.
    pub rounds: Vec<ToolRound>,
}

/// A tool offered to the model: its name, what it does, and the JSON Schema of its
/// arguments. Each provider writes it in its own request format.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// Name the model calls it by.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// JSON Schema of the arguments.
    pub schema: serde_json::Value,
}

/// A call the model asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The provider's id of the call (results refer to it).
    pub id: String,
    /// The tool.
    pub name: String,
    /// The arguments (an object; `{}` when the model sent none or unreadable JSON).
    pub arguments: serde_json::Value,
}

/// One round of tool use inside an answer: what the model said and called, and what
/// each call returned (JSON text; `results[i]` answers `calls[i]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ToolRound {
    /// Text the model streamed before calling.
    pub text: String,
    /// The calls.
    pub calls: Vec<ToolCall>,
    /// Their results.
    pub results: Vec<String>,
}

/// What one streamed model response ended with: tokens and the tool calls it asked for
/// (none: the text sent was the final answer).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    /// Tokens.
    pub usage: Usage,
    /// Tool calls, in the order the model made them.
    pub calls: Vec<ToolCall>,
}

/// A tool call being streamed: arguments arrive as pieces of JSON text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialCall {
    /// The provider's index of the call (OpenAI `index`, Anthropic content-block index).
    pub index: u64,
    /// Call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments so far.
    pub arguments: String,
}

impl PartialCall {
    fn finish(self) -> ToolCall {
        let arguments = match serde_json::from_str::<serde_json::Value>(&self.arguments) {
            Ok(v) if v.is_object() => v,
            _ => serde_json::json!({}),
        };
        ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        }
    }
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
            s.push_str(&format!("\n[{}] {}\n{}\n", i + 1, g.context, g.text));
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Tokens, as far as reported.
    pub usage: Usage,
    /// Tool calls streamed so far.
    pub calls: Vec<PartialCall>,
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
    /// The endpoint is refused by the outbound-URL policy (not https, user info in the
    /// URL, or a private address, by literal or by what its name resolves to).
    #[error("the model endpoint is not allowed")]
    UrlNotAllowed,
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
            LlmError::UrlNotAllowed => "url_not_allowed",
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

    /// Like [`LlmProvider::stream`], and returns the tool calls the model asked for
    /// (providers without tools never ask for any).
    fn converse<'a>(
        &'a self,
        req: &'a ChatRequest,
        tx: mpsc::Sender<String>,
    ) -> BoxFuture<'a, Result<Reply, LlmError>> {
        Box::pin(async move {
            self.stream(req, tx).await.map(|usage| Reply {
                usage,
                calls: vec![],
            })
        })
    }
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
/// Every model call goes through the outbound-URL policy ([`outpost_common::outbound`]):
/// the base URL is checked when the provider is picked, names on the addresses they
/// resolve to, and no redirect is followed (a model API answers where it is asked; a
/// redirect would be a way to send the conversation and the key somewhere unchecked).
#[derive(Debug)]
pub struct Providers {
    urls: ProviderUrls,
    secrets: SecretStore,
    client: outpost_common::outbound::Client,
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
    /// Providers with the default timeouts, public https endpoints only.
    pub fn new(urls: ProviderUrls, secrets: SecretStore) -> anyhow::Result<Self> {
        Self::with_timeouts(urls, secrets, Timeouts::default())
    }

    /// Providers with explicit timeouts (tests), public https endpoints only.
    pub fn with_timeouts(
        urls: ProviderUrls,
        secrets: SecretStore,
        timeouts: Timeouts,
    ) -> anyhow::Result<Self> {
        Self::with_policy(urls, secrets, timeouts, Policy::STRICT)
    }

    /// Providers under `policy` (`--allow-local-providers` allows loopback).
    pub fn with_policy(
        urls: ProviderUrls,
        secrets: SecretStore,
        timeouts: Timeouts,
        policy: Policy,
    ) -> anyhow::Result<Self> {
        let client = outbound::Client::new(USER_AGENT, timeouts.connect, policy, Redirects::None)?;
        Ok(Self::with_client(urls, secrets, timeouts, client))
    }

    /// Providers over a given outbound client (tests: one whose names resolve where the
    /// test says).
    pub fn with_client(
        urls: ProviderUrls,
        secrets: SecretStore,
        timeouts: Timeouts,
        client: outbound::Client,
    ) -> Self {
        Self {
            client,
            urls,
            secrets,
            timeouts,
        }
    }

    /// The base URL, if the policy allows it.
    fn endpoint(&self, provider: &'static str, base: &str) -> Result<String, LlmError> {
        self.client.policy().check(base).map_err(|r| {
            tracing::warn!(provider, code = r.code(), "model endpoint refused");
            LlmError::UrlNotAllowed
        })?;
        Ok(base.trim_end_matches('/').to_owned())
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
            client: self.client.checked_base_client().clone(),
            timeouts: self.timeouts,
        };
        Ok(match choice.provider {
            ProviderKind::Retrieval => Arc::new(retrieval::Retrieval),
            ProviderKind::Openai => Arc::new(openai::OpenAi {
                name: "openai",
                base: self.endpoint("openai", &self.urls.openai)?,
                key: Some(self.key(SecretKind::OpenaiApiKey)?.ok_or(LlmError::NoKey)?),
                http,
            }),
            ProviderKind::OpenaiCompatible => {
                if choice.base_url.is_empty() {
                    return Err(LlmError::BadResponse);
                }
                Arc::new(openai::OpenAi {
                    name: "openai_compatible",
                    base: self.endpoint("openai_compatible", &choice.base_url)?,
                    key: self.key(SecretKind::OpenaiCompatibleApiKey)?,
                    http,
                })
            }
            ProviderKind::Anthropic => Arc::new(anthropic::Anthropic {
                base: self.endpoint("anthropic", &self.urls.anthropic)?,
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
    /// forward (and may fail the stream). Returns the usage and tool calls `on_event`
    /// accumulated.
    /// A stream that ends before the provider marked the answer complete was cut off:
    /// that is [`LlmError::Unavailable`] (retried if nothing was forwarded yet).
    pub async fn stream_sse(
        &self,
        provider: &'static str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        mut on_event: impl FnMut(&sse::Event, &mut Progress) -> Result<Option<String>, LlmError>,
        tx: &mpsc::Sender<String>,
    ) -> Result<Reply, LlmError> {
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
                    Ok(()) => {
                        let mut calls = std::mem::take(&mut progress.calls);
                        calls.sort_by_key(|c| c.index);
                        return Ok(Reply {
                            usage: progress.usage,
                            calls: calls.into_iter().map(PartialCall::finish).collect(),
                        });
                    }
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
                let code = if outbound::refusal_of(&e).is_some() {
                    // The name resolved to a private address: not worth a retry.
                    LlmError::UrlNotAllowed
                } else if e.is_timeout() {
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
                context: "Clinic › Hours".into(),
                text: "Open 8–6.".into(),
            }],
            history: vec![Turn {
                role: Role::User,
                text: "When?".into(),
            }],
            max_tokens: 10,
            tools: vec![],
            rounds: vec![],
        };
        let s = r.system_with_sources();
        assert!(s.starts_with("You are Ava."));
        assert!(s.contains("[1] Clinic › Hours\nOpen 8–6."));
        assert_eq!(r.question(), "When?");
    }
}

#[cfg(test)]
mod provider_tests;
