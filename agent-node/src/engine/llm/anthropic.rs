//! Anthropic messages: `POST {base}/messages` with `x-api-key` and `anthropic-version`,
//! `stream: true`; events `message_start` (input tokens), `content_block_delta` with
//! `text_delta`, `message_delta` (output tokens), `message_stop`, `ping`, `error`.
//!
//! Tools go in `tools: [{name, description, input_schema}]`. A call streams as a
//! `content_block_start` whose block is `{type: "tool_use", id, name, input: {}}`, then
//! `content_block_delta`s with `input_json_delta.partial_json` pieces at that block's
//! index; the response stops with `stop_reason: "tool_use"`. Results go back as the
//! assistant turn's content blocks (text and `tool_use`) followed by a user turn of
//! `tool_result` blocks.

use super::{
    ChatRequest, Http, LlmError, LlmProvider, PartialCall, Progress, Reply, Role, ToolSpec, Usage,
};
use futures_util::future::BoxFuture;
use outpost_crypto::Secret;
use tokio::sync::mpsc;

/// The API version header sent with every request.
pub const API_VERSION: &str = "2023-06-01";

/// The Anthropic provider. Debug prints the key as `***`.
#[derive(Debug)]
pub struct Anthropic {
    /// Base URL, e.g. `https://api.anthropic.com/v1`.
    pub base: String,
    /// The key.
    pub key: Secret,
    /// HTTP client and timeouts.
    pub http: Http,
}

/// The request body. Anthropic wants alternating turns starting with the user, so
/// leading assistant turns (the greeting) are dropped and repeated roles merged.
pub fn body(req: &ChatRequest) -> serde_json::Value {
    let mut messages: Vec<(&'static str, String)> = Vec::new();
    for t in &req.history {
        let role = match t.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if messages.is_empty() && role == "assistant" {
            continue;
        }
        match messages.last_mut() {
            Some((r, text)) if *r == role => {
                text.push_str("\n\n");
                text.push_str(&t.text);
            }
            _ => messages.push((role, t.text.clone())),
        }
    }
    let mut messages: Vec<serde_json::Value> = messages
        .iter()
        .map(|(r, t)| serde_json::json!({"role": r, "content": t}))
        .collect();
    for round in &req.rounds {
        let mut content = Vec::new();
        if !round.text.trim().is_empty() {
            content.push(serde_json::json!({"type": "text", "text": round.text}));
        }
        for c in &round.calls {
            content.push(
                serde_json::json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}),
            );
        }
        messages.push(serde_json::json!({"role": "assistant", "content": content}));
        let results: Vec<serde_json::Value> = round
            .calls
            .iter()
            .zip(&round.results)
            .map(|(c, r)| serde_json::json!({"type": "tool_result", "tool_use_id": c.id, "content": r}))
            .collect();
        messages.push(serde_json::json!({"role": "user", "content": results}));
    }
    let mut body = serde_json::json!({
        "model": req.model,
        "system": req.system_with_sources(),
        "messages": messages,
        "max_tokens": req.max_tokens,
        "stream": true,
    });
    if !req.tools.is_empty() {
        body["tools"] = tools(&req.tools);
    }
    body
}

/// The `tools` array of a request.
pub fn tools(specs: &[ToolSpec]) -> serde_json::Value {
    specs
        .iter()
        .map(|t| {
            serde_json::json!({"name": t.name, "description": t.description, "input_schema": t.schema})
        })
        .collect()
}

/// Reads one streamed event.
pub fn on_event(
    ev: &super::sse::Event,
    progress: &mut Progress,
) -> Result<Option<String>, LlmError> {
    if ev.data.is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(&ev.data).map_err(|_| LlmError::BadResponse)?;
    let kind = v["type"].as_str().unwrap_or(ev.event.as_str());
    match kind {
        "message_start" => {
            progress.usage.input_tokens =
                v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
            Ok(None)
        }
        "content_block_delta" if v["delta"]["type"] == "text_delta" => {
            Ok(v["delta"]["text"].as_str().map(str::to_owned))
        }
        "content_block_start" if v["content_block"]["type"] == "tool_use" => {
            let block = &v["content_block"];
            progress.calls.push(PartialCall {
                index: v["index"].as_u64().unwrap_or(0),
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                name: block["name"].as_str().unwrap_or_default().to_owned(),
                arguments: String::new(),
            });
            Ok(None)
        }
        "content_block_delta" if v["delta"]["type"] == "input_json_delta" => {
            let index = v["index"].as_u64().unwrap_or(0);
            if let Some(call) = progress.calls.iter_mut().find(|c| c.index == index) {
                call.arguments
                    .push_str(v["delta"]["partial_json"].as_str().unwrap_or_default());
            }
            Ok(None)
        }
        "message_delta" => {
            progress.usage.output_tokens = v["usage"]["output_tokens"].as_u64().unwrap_or(0);
            if v["delta"]["stop_reason"].is_string() {
                progress.finished = true;
            }
            Ok(None)
        }
        "message_stop" => {
            progress.done = true;
            Ok(None)
        }
        "error" => Err(match v["error"]["type"].as_str() {
            Some("rate_limit_error") => LlmError::RateLimited,
            Some("authentication_error" | "permission_error") => LlmError::Unauthorized,
            _ => LlmError::Unavailable,
        }),
        _ => Ok(None),
    }
}

impl LlmProvider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn stream<'a>(
        &'a self,
        req: &'a ChatRequest,
        tx: mpsc::Sender<String>,
    ) -> BoxFuture<'a, Result<Usage, LlmError>> {
        Box::pin(async move { self.converse(req, tx).await.map(|r| r.usage) })
    }

    fn converse<'a>(
        &'a self,
        req: &'a ChatRequest,
        tx: mpsc::Sender<String>,
    ) -> BoxFuture<'a, Result<Reply, LlmError>> {
        Box::pin(async move {
            let url = format!("{}/messages", self.base.trim_end_matches('/'));
            let body = body(req);
            self.http
                .stream_sse(
                    "anthropic",
                    |c| {
                        c.post(&url)
                            .header("x-api-key", self.key.expose())
                            .header("anthropic-version", API_VERSION)
                            .json(&body)
                    },
                    on_event,
                    &tx,
                )
                .await
        })
    }
}
