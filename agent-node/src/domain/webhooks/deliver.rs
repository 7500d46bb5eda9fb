//! Sending the queue: every couple of seconds the node posts what is due, builds each
//! payload from the content as it is at that moment, signs it, and records the outcome.
//! A 2xx answer delivers; anything else (another status, a timeout, an address the
//! outbound-URL policy refuses once resolved) is retried on the Standard Webhooks
//! schedule ([`SCHEDULE`]), and after the last retry the delivery is `failed`. An event
//! whose subject is gone (the contact was erased, retention deleted the message) is
//! `dropped`: the node does not send what it no longer holds.

use super::{sign, WebhookError, Webhooks};
use crate::domain::content::{Content, ContentError, Conversation};
use crate::platform::store;
use outpost_common::outbound;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Seconds to wait before each retry (after the first attempt): the schedule the
/// Standard Webhooks specification suggests — 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const SCHEDULE: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the queue is looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// A delivery due for an attempt.
#[derive(Debug, Clone)]
pub struct Due {
    /// Delivery id (the `webhook-id` is `msg_` + it).
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Event type.
    pub event: String,
    /// What it is about: a conversation, message, contact or booking id.
    pub subject: String,
    /// When the event happened, unix seconds.
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: i64,
}

/// What sends the queue.
pub struct Sender {
    webhooks: Webhooks,
    content: Content,
    client: outbound::Client,
    schedule: Vec<i64>,
}

impl Sender {
    /// Over the node's queue and content, posting with `client` (which enforces the
    /// outbound-URL policy) on [`SCHEDULE`].
    pub fn new(webhooks: Webhooks, content: Content, client: outbound::Client) -> Self {
        Self::with_schedule(webhooks, content, client, SCHEDULE.to_vec())
    }

    /// With another retry schedule (tests).
    pub fn with_schedule(
        webhooks: Webhooks,
        content: Content,
        client: outbound::Client,
        schedule: Vec<i64>,
    ) -> Self {
        Self {
            webhooks,
            content,
            client,
            schedule,
        }
    }

    /// Sends what is due now, one at a time; returns how many attempts were made.
    pub async fn tick(self: &Arc<Self>) -> Result<usize, WebhookError> {
        let this = self.clone();
        let due = tokio::task::spawn_blocking(move || this.webhooks.due(store::now(), 50))
            .await
            .map_err(|e| WebhookError::Invalid(format!("queue task: {e}")))??;
        let n = due.len();
        for d in due {
            self.attempt(d).await?;
        }
        Ok(n)
    }

    async fn attempt(self: &Arc<Self>, d: Due) -> Result<(), WebhookError> {
        let this = self.clone();
        let job = d.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let target = this.webhooks.target(&job.endpoint_id)?;
            let body = payload(&this.webhooks, &this.content, &job)?;
            Ok::<_, WebhookError>(target.zip(body))
        })
        .await
        .map_err(|e| WebhookError::Invalid(format!("payload task: {e}")))??;
        let Some(((url, secret), body)) = prepared else {
            let webhooks = self.webhooks.clone();
            return tokio::task::spawn_blocking(move || {
                webhooks.record(&d.id, "dropped", None, None, Some("subject_gone"))
            })
            .await
            .map_err(|e| WebhookError::Invalid(format!("record task: {e}")))?;
        };
        let msg_id = format!("msg_{}", d.id);
        let timestamp = store::now();
        let signature = sign::signature(&secret, &msg_id, timestamp, body.as_bytes());
        let outcome = match self.client.post(&url) {
            Err(refused) => Err(format!("refused_{}", refused.code())),
            Ok(req) => req
                .header("content-type", "application/json")
                .header("webhook-id", &msg_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .timeout(ATTEMPT_TIMEOUT)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| {
                    if outbound::refusal_of(&e).is_some() {
                        "refused_private_address".to_owned()
                    } else if e.is_timeout() {
                        "timeout".to_owned()
                    } else {
                        "connection_failed".to_owned()
                    }
                }),
        };
        let attempt_no = usize::try_from(d.attempts).unwrap_or(usize::MAX);
        let retry = self.schedule.get(attempt_no).map(|s| store::now() + s);
        let (status, next, http, error) = match outcome {
            Ok(code) if (200..300).contains(&code) => ("delivered", None, Some(code), None),
            Ok(code) => (
                if retry.is_some() { "pending" } else { "failed" },
                retry,
                Some(code),
                Some(format!("http_{code}")),
            ),
            Err(e) => (
                if retry.is_some() { "pending" } else { "failed" },
                retry,
                None,
                Some(e),
            ),
        };
        tracing::info!(
            delivery = %d.id,
            endpoint = %d.endpoint_id,
            event = %d.event,
            status,
            http_status = http,
            "webhook attempt"
        );
        let webhooks = self.webhooks.clone();
        tokio::task::spawn_blocking(move || {
            webhooks.record(&d.id, status, next, http, error.as_deref())
        })
        .await
        .map_err(|e| WebhookError::Invalid(format!("record task: {e}")))?
    }
}

/// Sends the queue until the task is aborted.
pub async fn run(sender: Arc<Sender>) {
    loop {
        if let Err(e) = sender.tick().await {
            tracing::error!(error = %e, "sending webhooks failed");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A read whose subject is missing is `None`, like one that found nothing.
fn gone<T>(e: ContentError) -> Result<Option<T>, WebhookError> {
    match e {
        ContentError::NotFound => Ok(None),
        other => Err(WebhookError::Invalid(format!("reading content: {other}"))),
    }
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A conversation as payloads and the API show it.
pub fn conversation_json(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "contact_id": c.contact_id,
        "agent_id": c.agent_id,
        "channel": c.channel,
        "status": c.status.as_str(),
        "waiting_for_team": c.waiting_since.is_some(),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })
}

/// The body of a delivery (`{"type", "timestamp", "data"}`, as the specification
/// recommends), or `None` when its subject is gone.
fn payload(
    webhooks: &Webhooks,
    content: &Content,
    d: &Due,
) -> Result<Option<String>, WebhookError> {
    let data = match d.event.as_str() {
        "appointment.booked" | "appointment.rescheduled" | "appointment.cancelled" => {
            match webhooks.appointment_json(&d.subject)? {
                Some(a) => json!({ "appointment": a }),
                None => return Ok(None),
            }
        }
        "conversation.created" | "handoff.requested" => {
            match content.conversation(&d.subject).or_else(gone)? {
                Some(c) => json!({ "conversation": conversation_json(&c) }),
                None => return Ok(None),
            }
        }
        "message.created" => {
            let id: i64 = d.subject.parse().unwrap_or(-1);
            match content.message(id).or_else(gone)? {
                Some(m) => json!({ "message": {
                    "id": m.id,
                    "conversation_id": m.conversation_id,
                    "author": m.author.as_str(),
                    "text": m.body,
                    "created_at": m.created_at,
                }}),
                None => return Ok(None),
            }
        }
        "contact.updated" => match content.contact(&d.subject).or_else(gone)? {
            Some(c) => json!({ "contact": {
                "id": c.id,
                "name": c.name,
                "email": c.email,
                "phone": c.phone,
                "channel": c.channel,
                "stage": c.stage.as_str(),
                "score": c.score,
                "tags": c.tags,
                "created_at": c.created_at,
                "last_seen_at": c.last_seen_at,
            }}),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(
        json!({
            "type": d.event,
            "timestamp": rfc3339(d.created_at),
            "data": data,
        })
        .to_string(),
    ))
}
