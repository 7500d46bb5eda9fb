//! OpenAI chat completions (and any OpenAI-compatible endpoint): `POST {base}/chat/completions`
//! with `stream: true`; the answer arrives as `data: {json}` events with
//! `choices[0].delta.content`, usage in the last chunk (`stream_options.include_usage`),
//! and `data: [DONE]`.
//!
//! Tools go in `tools: [{type: "function", function: {name, description, parameters}}]`.
//! A call streams as `choices[0].delta.tool_calls: [{index, id, type, function: {name,
//! arguments}}]`: id and name in the first piece of an index, the arguments as JSON text
//! in pieces after; the response ends with `finish_reason: "tool_calls"`. Results go
//! back as the assistant message with its `tool_calls` followed by one
//! `{role: "tool", tool_call_id, content}` message per call.

use super::{
    ChatRequest, Http, LlmError, LlmProvider, PartialCall, Progress, Reply, Role, ToolSpec, Usage,
};
use futures_util::future::BoxFuture;
use outpost_crypto::Secret;
use tokio::sync::mpsc;

/// An OpenAI-style provider. Debug prints the key as `***`.
#[derive(Debug)]
pub struct OpenAi {
    /// `openai` or `openai_compatible` (logs).
    pub name: &'static str,
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub base: String,
    /// The key; optional for local OpenAI-compatible models.
    pub key: Option<Secret>,
    /// HTTP client and timeouts.
    pub http: Http,
}

/// The request body.
pub fn body(req: &ChatRequest) -> serde_json::Value {
    let mut messages =
        vec![serde_json::json!({"role": "system", "content": req.system_with_sources()})];
    for t in &req.history {
        let role = match t.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(serde_json::json!({"role": role, "content": t.text}));
    }
    for round in &req.rounds {
        let calls: Vec<serde_json::Value> = round
            .calls
            .iter()
            .map(|c| {
                serde_json::json!({"id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments.to_string()}})
            })
            .collect();
        let content = if round.text.is_empty() {
            serde_json::Value::Null
        } else {
            round.text.clone().into()
        };
        messages.push(
            serde_json::json!({"role": "assistant", "content": content, "tool_calls": calls}),
        );
        for (c, result) in round.calls.iter().zip(&round.results) {
            messages
                .push(serde_json::json!({"role": "tool", "tool_call_id": c.id, "content": result}));
        }
    }
    let mut body = serde_json::json!({
        "model": req.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": req.max_tokens,
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
            serde_json::json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.schema
            }})
        })
        .collect()
}

/// Reads one streamed event: the delta, if any; usage when present.
pub fn on_event(
    ev: &super::sse::Event,
    progress: &mut Progress,
) -> Result<Option<String>, LlmError> {
    if ev.data.trim() == "[DONE]" {
        progress.done = true;
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(&ev.data).map_err(|_| LlmError::BadResponse)?;
    if v.get("error").is_some() {
        return Err(LlmError::Unavailable);
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        progress.usage.input_tokens = u["prompt_tokens"].as_u64().unwrap_or(0);
        progress.usage.output_tokens = u["completion_tokens"].as_u64().unwrap_or(0);
    }
    // Some OpenAI-compatible servers end without `[DONE]`; a finish reason is enough.
    if v["choices"][0]["finish_reason"].is_string() {
        progress.finished = true;
    }
    for piece in v["choices"][0]["delta"]["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let index = piece["index"].as_u64().unwrap_or(0);
        let pos = match progress.calls.iter().position(|c| c.index == index) {
            Some(p) => p,
            None => {
                progress.calls.push(PartialCall {
                    index,
                    ..Default::default()
                });
                progress.calls.len() - 1
            }
        };
        let call = &mut progress.calls[pos];
        if let Some(id) = piece["id"].as_str() {
            call.id = id.to_owned();
        }
        if let Some(name) = piece["function"]["name"].as_str() {
            call.name.push_str(name);
        }
        if let Some(args) = piece["function"]["arguments"].as_str() {
            call.arguments.push_str(args);
        }
    }
    Ok(v["choices"][0]["delta"]["content"]
        .as_str()
        .map(str::to_owned))
}

impl LlmProvider for OpenAi {
    fn name(&self) -> &'static str {
        self.name
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
            let url = format!("{}/chat/completions", self.base.trim_end_matches('/'));
            let body = body(req);
            self.http
                .stream_sse(
                    self.name,
                    |c| {
                        let r = c.post(&url).json(&body);
                        match &self.key {
                            Some(k) => r.bearer_auth(k.expose()),
                            None => r,
                        }
                    },
                    on_event,
                    &tx,
                )
                .await
        })
    }
}
