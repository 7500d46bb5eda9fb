//! Long because the one path from a message to a reply is here whole: the guided flow,
//! retrieval, the model with its tool rounds, counting and the fallback.
//!
//! The agent runtime: what happens when a customer writes. The message is stored
//! (encrypted, counted), and unless a human has taken the conversation over, the agent
//! answers: knowledge-base passages are retrieved, the configured provider streams an
//! answer grounded in them, and the answer is stored too. With no key the built-in
//! retrieval responder says the sentence that answers; when nothing matches well enough, when the provider
//! fails, or when the customer asks for a person, the agent says the fallback message.
//!
//! Channels (the web widget now; Telegram and WhatsApp later) call [`Runtime::respond`];
//! it is the one path from an inbound message to a reply.

use crate::domain::content::{Author, Content, ConversationStatus, Message};
use crate::domain::kb::KnowledgeBase;
use crate::engine::llm::{ChatRequest, Grounding, LlmError, LlmHealth, Providers, Role, Turn};
use crate::platform::keys::MasterKey;
use crate::platform::store::{Store, CONFIG_KEY, SUSPENDED_KEY};
use outpost_protocol::{AgentConfig, ProviderKind, WorkspaceConfig};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Passages retrieved per question.
pub const PASSAGES: usize = 4;
/// Messages of context given to the model.
pub const HISTORY: usize = 20;
/// Longest answer asked of a model, in tokens.
pub const MAX_TOKENS: u32 = 600;
/// Rounds of tool calls a model may make in one answer before the fallback is said.
pub const TOOL_ROUNDS: usize = 5;

/// Whether the agent's model is offered the booking tools (OpenAI and Anthropic; an
/// OpenAI-compatible local model may not support tools, and the built-in responder has
/// the guided flow).
pub fn offers_tools(agent: &AgentConfig) -> bool {
    matches!(
        agent.model.provider,
        ProviderKind::Openai | ProviderKind::Anthropic
    )
}

/// Errors of the runtime; every one is logged by code, never with content.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] crate::domain::content::ContentError),
    /// The knowledge base failed.
    #[error(transparent)]
    Kb(#[from] crate::domain::kb::KbError),
    /// The node database failed.
    #[error(transparent)]
    Store(#[from] crate::platform::store::StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Join,
}

impl AgentError {
    /// Whether a write failed for want of space (a full disk).
    pub fn is_full(&self) -> bool {
        match self {
            AgentError::Content(crate::domain::content::ContentError::Store(e))
            | AgentError::Kb(crate::domain::kb::KbError::Store(e))
            | AgentError::Store(e) => e.is_full(),
            _ => false,
        }
    }
}

/// How a message was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered; the stored answer.
    Answered(Message),
    /// The agent said the fallback message (no passage, provider failure or a person
    /// asked for); the stored message and why.
    Fallback(Message, &'static str),
    /// The guided booking flow answered; the stored message and the quick replies
    /// offered (`engine::booking`).
    Guided(Message, Vec<String>),
    /// A human has the conversation: nothing is said automatically.
    HumanHandling,
    /// The workspace is suspended: the message is kept, nothing is answered.
    Suspended,
}

/// What the runtime needs, shared by every channel.
pub struct Runtime {
    store: Arc<Store>,
    content: Content,
    appointments: crate::domain::appointments::Appointments,
    kb: KnowledgeBase,
    providers: Providers,
    health: Arc<LlmHealth>,
    config: Mutex<(String, Arc<WorkspaceConfig>)>,
    pub(super) followup_gate: std::sync::OnceLock<super::followup_gate::FollowupGate>,
}

impl Runtime {
    /// Builds the runtime over the node database.
    pub fn new(
        store: Arc<Store>,
        master: &MasterKey,
        providers: Providers,
        health: Arc<LlmHealth>,
    ) -> Self {
        let content = Content::new(store.clone(), master);
        Self {
            appointments: crate::domain::appointments::Appointments::new(
                store.clone(),
                content.clone(),
                master,
            ),
            content,
            kb: KnowledgeBase::new(store.clone(), master),
            store,
            providers,
            health,
            config: Mutex::new((String::new(), Arc::new(WorkspaceConfig::default()))),
            followup_gate: std::sync::OnceLock::new(),
        }
    }

    /// The content store.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The appointment book.
    pub fn appointments(&self) -> &crate::domain::appointments::Appointments {
        &self.appointments
    }

    /// The guided booking flow over this runtime's stores.
    pub fn guide(&self) -> crate::engine::booking::Guide<'_> {
        crate::engine::booking::Guide {
            book: &self.appointments,
            content: &self.content,
            store: &self.store,
        }
    }

    /// The node database (its space probe: [`Store::seems_full`], [`Store::probe_space`]).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The LLM health the reports carry.
    pub fn health(&self) -> &Arc<LlmHealth> {
        &self.health
    }

    /// The configuration last applied by the CP (parsed again only when it changed).
    pub fn config(&self) -> Result<Arc<WorkspaceConfig>, AgentError> {
        let raw = self.store.meta(CONFIG_KEY)?.unwrap_or_default();
        let mut cached = self.config.lock().unwrap_or_else(|p| p.into_inner());
        if cached.0 != raw {
            let parsed = if raw.is_empty() {
                WorkspaceConfig::default()
            } else {
                serde_json::from_str(&raw).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "stored configuration is unreadable; no agents");
                    WorkspaceConfig::default()
                })
            };
            *cached = (raw, Arc::new(parsed));
        }
        Ok(cached.1.clone())
    }

    /// The agent with this id, if configured.
    pub fn agent(&self, id: &str) -> Result<Option<AgentConfig>, AgentError> {
        Ok(self.config()?.agents.iter().find(|a| a.id == id).cloned())
    }

    /// Whether the workspace is suspended (channels stop answering, data is kept).
    pub fn suspended(&self) -> Result<bool, AgentError> {
        Ok(self.store.meta(SUSPENDED_KEY)?.is_some())
    }

    /// Stores the customer's `text` in `conversation_id` and answers it, streaming the
    /// answer's text on `tx` as it is produced. Returns once the answer is stored.
    pub async fn respond(
        self: &Arc<Self>,
        agent: &AgentConfig,
        conversation_id: &str,
        text: &str,
        tx: mpsc::Sender<String>,
    ) -> Result<Outcome, AgentError> {
        let (content, conv, body) = (
            self.content.clone(),
            conversation_id.to_owned(),
            text.to_owned(),
        );
        blocking(move || content.append_message(&conv, Author::Contact, &body)).await??;
        self.answer(agent, conversation_id, text, tx).await
    }

    /// Answers a customer message already stored in `conversation_id` (channels that
    /// store it with [`Content::ingest`]); otherwise like [`Runtime::respond`].
    pub async fn answer(
        self: &Arc<Self>,
        agent: &AgentConfig,
        conversation_id: &str,
        text: &str,
        tx: mpsc::Sender<String>,
    ) -> Result<Outcome, AgentError> {
        let (this, conv) = (self.clone(), conversation_id.to_owned());
        let (conversation, suspended) = blocking(move || {
            let c = this.content.conversation(&conv)?;
            Ok::<_, AgentError>((c, this.suspended()?))
        })
        .await??;
        let status = conversation.as_ref().map(|c| c.status);
        if suspended {
            return Ok(Outcome::Suspended);
        }
        if status == Some(ConversationStatus::Human) {
            return Ok(Outcome::HumanHandling);
        }
        if asks_for_a_person(text) {
            let msg = self.handoff(agent, conversation_id, &tx).await?;
            return Ok(Outcome::Fallback(msg, "person_requested"));
        }
        let tools = offers_tools(agent);
        let contact_id = conversation.as_ref().map(|c| c.contact_id.clone());
        if let Some(conv) = conversation.filter(|_| !tools) {
            let (this, question) = (self.clone(), text.to_owned());
            let turn = blocking(move || {
                let turn = this.guide().turn(
                    &conv.id,
                    &conv.contact_id,
                    &question,
                    crate::platform::store::now(),
                );
                let turn = match turn {
                    Ok(t) => t,
                    Err(crate::domain::appointments::AppointmentError::Content(e)) => {
                        return Err(AgentError::Content(e))
                    }
                    Err(crate::domain::appointments::AppointmentError::Store(e)) => {
                        return Err(AgentError::Store(e))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the booking flow failed; answering as usual");
                        None
                    }
                };
                match turn {
                    Some(t) => {
                        let msg = this
                            .content
                            .append_message(&conv.id, Author::Agent, &t.text)?;
                        Ok(Some((msg, t.quick_replies)))
                    }
                    None => Ok(None),
                }
            })
            .await??;
            if let Some((msg, quick)) = turn {
                let _ = tx.send(msg.body.clone()).await;
                return Ok(Outcome::Guided(msg, quick));
            }
        }

        let (this, conv, question) = (self.clone(), conversation_id.to_owned(), text.to_owned());
        let contact = contact_id.clone().filter(|_| tools);
        let (passages, history, booking) = blocking(move || {
            let passages = this.kb.search(&question, PASSAGES)?;
            let history = this.content.recent_messages(&conv, HISTORY)?;
            let booking = match contact {
                Some(contact) => this
                    .booking_prompt(&contact, crate::platform::store::now())
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "reading the appointment book failed; no booking tools");
                        None
                    }),
                None => None,
            };
            Ok::<_, AgentError>((passages, history, booking))
        })
        .await??;
        let mut system = system_prompt(agent, crate::platform::store::now());
        if let Some(b) = &booking {
            system.push_str("\n\n");
            system.push_str(b);
        }
        let request = ChatRequest {
            model: agent.model.model.clone(),
            system,
            grounding: passages
                .into_iter()
                .map(|p| Grounding {
                    context: p.context,
                    text: p.text,
                })
                .collect(),
            history: history_turns(&history),
            max_tokens: MAX_TOKENS,
            tools: if booking.is_some() {
                crate::engine::booking_tools::tool_specs()
            } else {
                vec![]
            },
            rounds: vec![],
        };
        if agent.model.provider == ProviderKind::Retrieval && request.grounding.is_empty() {
            let msg = self.say(agent, conversation_id, &tx, "").await?;
            return Ok(Outcome::Fallback(msg, "no_match"));
        }

        let answer = match self.providers.for_model(&agent.model) {
            Ok(provider) => {
                let who = contact_id.map(|c| (conversation_id.to_owned(), c));
                self.converse(agent, &*provider, request, who, &tx).await
            }
            Err(e) => Err((e, String::new())),
        };
        match answer {
            Ok(text) => {
                if agent.model.provider != ProviderKind::Retrieval {
                    self.health.record_ok();
                }
                let (this, conv) = (self.clone(), conversation_id.to_owned());
                let msg =
                    blocking(move || this.content.append_message(&conv, Author::Agent, &text))
                        .await??;
                Ok(Outcome::Answered(msg))
            }
            Err((e, partial)) => {
                let code = e.code();
                if matches!(e, LlmError::NoAnswer) {
                    let msg = self.say(agent, conversation_id, &tx, &partial).await?;
                    return Ok(Outcome::Fallback(msg, "no_match"));
                }
                tracing::warn!(
                    provider = agent.model.provider.as_str(),
                    code,
                    "the model did not answer; saying the fallback message"
                );
                self.health.record_error(&e);
                let msg = self.say(agent, conversation_id, &tx, &partial).await?;
                Ok(Outcome::Fallback(msg, code))
            }
        }
    }

    /// Runs the provider until it gives a final answer: the tool calls it makes
    /// (booking tools, for `who` = (conversation, contact)) are executed and their
    /// results sent back, at most [`TOOL_ROUNDS`] times. Deltas go to the channel as
    /// they come (rounds separated by a blank line). Every request sent to a model is
    /// counted. On failure returns the error and what was already sent.
    async fn converse(
        self: &Arc<Self>,
        agent: &AgentConfig,
        provider: &dyn crate::engine::llm::LlmProvider,
        mut request: ChatRequest,
        who: Option<(String, String)>,
        tx: &mpsc::Sender<String>,
    ) -> Result<String, (LlmError, String)> {
        let mut full = String::new();
        for round in 0..=TOOL_ROUNDS {
            let (result, text) = self.stream(provider, &request, tx, !full.is_empty()).await;
            if !full.is_empty() && !text.is_empty() {
                full.push_str("\n\n");
            }
            full.push_str(&text);
            self.count(agent, result.as_ref().map(|r| r.usage).unwrap_or_default())
                .await;
            let reply = result.map_err(|e| (e, full.clone()))?;
            if reply.calls.is_empty() {
                if full.trim().is_empty() {
                    return Err((LlmError::BadResponse, full));
                }
                return Ok(full);
            }
            let Some((conv, contact)) = who.clone().filter(|_| round < TOOL_ROUNDS) else {
                tracing::warn!(
                    provider = provider.name(),
                    round,
                    "the model kept calling tools; saying the fallback message"
                );
                return Err((LlmError::BadResponse, full));
            };
            let (this, calls) = (self.clone(), reply.calls.clone());
            let results = blocking(move || {
                let guide = this.guide();
                let now = crate::platform::store::now();
                calls
                    .iter()
                    .map(|c| {
                        match guide.run_tool(&c.name, &c.arguments, &conv, &contact, now) {
                            Ok(v) => v.to_string(),
                            Err(e) => {
                                tracing::error!(error = %e, tool = c.name.as_str(), "a booking tool failed");
                                serde_json::json!({"ok": false, "error": "unavailable",
                                    "message": "The appointment book is unavailable; offer to pass the request to the team."})
                                .to_string()
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| (LlmError::BadResponse, full.clone()))?;
            request.rounds.push(crate::engine::llm::ToolRound {
                text,
                calls: reply.calls,
                results,
            });
        }
        Err((LlmError::BadResponse, full))
    }

    /// Counts one request sent to a model (not the built-in responder), with the tokens
    /// the provider said.
    async fn count(&self, agent: &AgentConfig, usage: crate::engine::llm::Usage) {
        if agent.model.provider == ProviderKind::Retrieval {
            return;
        }
        let (store, model) = (self.store.clone(), agent.model.model.clone());
        let counted = blocking(move || {
            crate::domain::ai_usage::record(
                &store,
                &model,
                usage.input_tokens,
                usage.output_tokens,
                crate::platform::store::now(),
            )
        })
        .await;
        if !matches!(counted, Ok(Ok(()))) {
            tracing::error!("counting an AI request failed");
        }
    }

    /// Runs one provider request, forwarding deltas to the channel (after a blank line
    /// when `continued` and the round says something) and collecting its text.
    async fn stream(
        &self,
        provider: &dyn crate::engine::llm::LlmProvider,
        request: &ChatRequest,
        tx: &mpsc::Sender<String>,
        continued: bool,
    ) -> (Result<crate::engine::llm::Reply, LlmError>, String) {
        let (dtx, mut drx) = mpsc::channel::<String>(64);
        let forward = async {
            let mut full = String::new();
            while let Some(delta) = drx.recv().await {
                if continued && full.is_empty() && !delta.is_empty() {
                    let _ = tx.send("\n\n".into()).await;
                }
                full.push_str(&delta);
                // A visitor who went away must not stop the answer from being stored.
                let _ = tx.send(delta).await;
            }
            full
        };
        tokio::join!(provider.converse(request, dtx), forward)
    }

    /// What the model is told about booking when the business takes appointments (it
    /// has services): today's date in the business's zone, how to use the tools, and
    /// the customer's upcoming bookings (their ids, for `reschedule` and `cancel`).
    /// `None` when there is nothing to book.
    fn booking_prompt(
        &self,
        contact_id: &str,
        now: i64,
    ) -> Result<Option<String>, crate::domain::appointments::AppointmentError> {
        use crate::domain::appointments::{slots, BookingStatus};
        let services = self.appointments.services()?;
        if services.is_empty() {
            return Ok(None);
        }
        let settings = self.appointments.settings()?;
        let tz = settings.tz();
        let today = slots::local_date(&tz, now)
            .map(|d| d.to_string())
            .unwrap_or_default();
        let mut s = format!(
            "You can book appointments with the tools find_slots, book, reschedule and cancel. \
             Today is {today} ({}). Services: {}. Always call find_slots before offering times \
             and book only a starts_at it returned; ask for the customer's name before booking. \
             Never say a time is booked unless the tool answered ok; if a time was taken, offer \
             the other times it returned. Tell the customer the confirmation the tool returns, links included.",
            crate::engine::booking::zone_words(&settings.time_zone),
            services
                .iter()
                .map(|s| format!("{} ({} min)", s.name, s.duration_minutes))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let upcoming: Vec<String> = self
            .appointments
            .contact_bookings(contact_id)?
            .into_iter()
            .filter(|b| b.status == BookingStatus::Booked && b.starts_at > now)
            .map(|b| {
                format!(
                    "booking_id {}: {} on {}",
                    b.id,
                    b.service_name,
                    slots::label(&tz, b.starts_at)
                )
            })
            .collect();
        if !upcoming.is_empty() {
            s.push_str("\nThis customer's upcoming bookings: ");
            s.push_str(&upcoming.join("; "));
            s.push('.');
        }
        Ok(Some(s))
    }

    /// Says the fallback message (after `partial`, if a broken answer had started).
    async fn say(
        &self,
        agent: &AgentConfig,
        conversation_id: &str,
        tx: &mpsc::Sender<String>,
        partial: &str,
    ) -> Result<Message, AgentError> {
        let fallback = fallback_text(agent, crate::platform::store::now());
        let text = if partial.trim().is_empty() {
            fallback
        } else {
            let _ = tx.send(format!("\n\n{fallback}")).await;
            format!("{partial}\n\n{fallback}")
        };
        if partial.trim().is_empty() {
            let _ = tx.send(text.clone()).await;
        }
        let (this, conv) = (self.content.clone(), conversation_id.to_owned());
        Ok(blocking(move || this.append_message(&conv, Author::Agent, &text)).await??)
    }

    /// The customer asked for a person: say the handoff message and put the
    /// conversation in the human queue (the agent stays quiet until handed back).
    async fn handoff(
        &self,
        agent: &AgentConfig,
        conversation_id: &str,
        tx: &mpsc::Sender<String>,
    ) -> Result<Message, AgentError> {
        let msg = self.say(agent, conversation_id, tx, "").await?;
        let (content, conv) = (self.content.clone(), conversation_id.to_owned());
        blocking(move || {
            content.set_status(
                &conv,
                ConversationStatus::Human,
                crate::domain::content::AGENT_ACTOR,
            )
        })
        .await??;
        Ok(msg)
    }
}

impl Runtime {
    /// Sends the follow-up messages whose time has come: each goes into the contact's
    /// most recent conversation as a message from the team (the visitor sees it in the
    /// chat; channels deliver it with issue 5) and is marked `sent`, or `failed` when the
    /// contact has no conversation to write into, or held or sent by its channel
    /// (`followup_gate`: a WhatsApp template past the 24-hour window). Reminders are
    /// left for staff (the inbox lists them). Returns (sent, failed).
    pub fn send_due_followups(&self, now: i64) -> Result<(usize, usize), AgentError> {
        use super::followup_gate::Gate;
        use crate::domain::content::{FollowupKind, FollowupStatus, AGENT_ACTOR};
        let (mut sent, mut failed) = (0, 0);
        for f in self.content.due_followups(now)? {
            if f.kind != FollowupKind::Message {
                continue;
            }
            let conv = self.content.contact_conversations(&f.contact_id, 1)?;
            let status = match conv.first() {
                Some(c) => match self.gate(&f, &c.id)? {
                    Gate::Hold(_) => continue,
                    Gate::Open => {
                        self.content.append_message(&c.id, Author::Human, &f.text)?;
                        sent += 1;
                        FollowupStatus::Sent
                    }
                    Gate::Sent => {
                        sent += 1;
                        FollowupStatus::Sent
                    }
                },
                None => {
                    failed += 1;
                    FollowupStatus::Failed
                }
            };
            self.content
                .set_followup_status(&f.id, status, AGENT_ACTOR)?;
        }
        Ok((sent, failed))
    }
}

/// Every 30 s, sends the follow-up messages that are due (see
/// [`Runtime::send_due_followups`]) and the appointment reminders (see
/// [`crate::engine::booking::Guide::send_due_reminders`]). Runs until aborted.
pub async fn followup_loop(runtime: Arc<Runtime>) {
    loop {
        let rt = runtime.clone();
        match tokio::task::spawn_blocking(move || {
            rt.send_due_followups(crate::platform::store::now())
        })
        .await
        {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((sent, failed))) => tracing::info!(sent, failed, "follow-up messages handled"),
            Ok(Err(e)) => tracing::error!(error = %e, "sending follow-ups failed"),
            Err(e) => tracing::error!(error = %e, "the follow-up task panicked"),
        }
        let rt = runtime.clone();
        match tokio::task::spawn_blocking(move || {
            rt.guide().send_due_reminders(crate::platform::store::now())
        })
        .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(sent)) => tracing::info!(sent, "appointment reminders sent"),
            Ok(Err(e)) => tracing::error!(error = %e, "sending appointment reminders failed"),
            Err(e) => tracing::error!(error = %e, "the reminder task panicked"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}

/// The fallback message at `now` (unix seconds), with the business hours in the
/// business's own time zone when the team is away.
pub fn fallback_text(agent: &AgentConfig, now: i64) -> String {
    let base = if agent.fallback_message.trim().is_empty() {
        "I can't answer that right now. A member of our team will get back to you."
    } else {
        agent.fallback_message.trim()
    };
    if agent.business_hours.is_open(now) {
        base.to_owned()
    } else {
        format!(
            "{base} Our team is available {}.",
            agent.business_hours.describe()
        )
    }
}

/// The system prompt: who the agent is, in which language, when humans are around.
pub fn system_prompt(agent: &AgentConfig, now: i64) -> String {
    let mut s = format!(
        "You are {}, the customer-service assistant of this business. Answer in the language \
         with tag \"{}\" unless the customer writes in another language. Be brief and friendly. \
         If the sources do not contain the answer, say you are not sure and offer to pass the \
         question to the team; never invent prices, dates or policies.",
        agent.name, agent.language
    );
    s.push_str(&format!(
        " The team is available {} and is {} now.",
        agent.business_hours.describe(),
        if agent.business_hours.is_open(now) {
            "available"
        } else {
            "away"
        }
    ));
    if !agent.instructions.trim().is_empty() {
        s.push_str("\n\nInstructions from the business:\n");
        s.push_str(agent.instructions.trim());
    }
    s
}

fn history_turns(history: &[Message]) -> Vec<Turn> {
    history
        .iter()
        .filter_map(|m| {
            let role = match m.author {
                Author::Contact => Role::User,
                Author::Agent | Author::Human => Role::Assistant,
                Author::System => return None,
            };
            Some(Turn {
                role,
                text: m.body.clone(),
            })
        })
        .collect()
}

/// Whether the customer asks to talk to a person rather than the assistant.
pub fn asks_for_a_person(text: &str) -> bool {
    let t = text.to_lowercase();
    const PHRASES: [&str; 10] = [
        "talk to a human",
        "speak to a human",
        "talk to a person",
        "speak to a person",
        "real person",
        "human agent",
        "talk to someone",
        "speak to someone",
        "customer service representative",
        "talk to an agent",
    ];
    PHRASES.iter().any(|p| t.contains(p)) || t.trim() == "human" || t.trim() == "agent"
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| AgentError::Join)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_follow_up_messages_go_into_the_latest_conversation() {
        use crate::domain::content::{FollowupKind, FollowupStatus};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
        let master = Arc::new(MasterKey::from_bytes([9; 32]));
        let providers = Providers::new(
            crate::engine::llm::ProviderUrls::default(),
            crate::domain::secrets::SecretStore::new(store.clone(), master.clone()),
        )
        .expect("providers");
        let rt = Runtime::new(store, &master, providers, Arc::new(LlmHealth::default()));
        let c = rt.content();
        let talked = c.contact_for_identity("web", "v1", None).expect("contact");
        let conv = c.current_conversation(&talked, "a1", "web").expect("conv");
        let silent = c.contact_for_identity("web", "v2", None).expect("contact");
        let now = crate::platform::store::now();
        c.add_followup(
            &talked,
            FollowupKind::Message,
            now - 5,
            "Your crown is ready.",
            "u1",
        )
        .expect("followup");
        c.add_followup(&talked, FollowupKind::Message, now + 3600, "Later.", "u1")
            .expect("followup");
        c.add_followup(&talked, FollowupKind::Reminder, now - 5, "Call back.", "u1")
            .expect("followup");
        c.add_followup(&silent, FollowupKind::Message, now - 5, "Hello?", "u1")
            .expect("followup");
        assert_eq!(rt.send_due_followups(now).expect("send"), (1, 1));
        let msgs = c.messages_after(&conv.id, 0, 10).expect("messages");
        assert_eq!(
            msgs.last().map(|m| (m.author, m.body.as_str())),
            Some((Author::Human, "Your crown is ready."))
        );
        let statuses: Vec<FollowupStatus> = c
            .followups(&talked, 10)
            .expect("list")
            .iter()
            .map(|f| f.status)
            .collect();
        assert!(statuses.contains(&FollowupStatus::Sent));
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == FollowupStatus::Pending)
                .count(),
            2,
            "the later one and the reminder"
        );
        assert_eq!(
            rt.send_due_followups(now).expect("again"),
            (0, 0),
            "sent once"
        );
    }

    #[test]
    fn people_are_recognised_when_asked_for() {
        assert!(asks_for_a_person("Can I talk to a human please?"));
        assert!(asks_for_a_person("HUMAN"));
        assert!(!asks_for_a_person("Do you treat human teeth only?"));
    }

    #[test]
    fn the_prompt_carries_persona_language_and_hours() {
        let agent = AgentConfig {
            id: "a".into(),
            name: "Ava".into(),
            greeting: String::new(),
            instructions: "Never discuss prices.".into(),
            language: "fr".into(),
            fallback_message: "Je transmets.".into(),
            business_hours: Default::default(),
            model: Default::default(),
            allowed_origins: vec![],
            channels: vec![],
        };
        let p = system_prompt(&agent, 1_795_422_600);
        assert!(p.contains("You are Ava"));
        assert!(p.contains("\"fr\""));
        assert!(p.contains("Mon–Fri 09:00–17:00 (UTC)"));
        assert!(p.contains("Never discuss prices."));
    }

    /// Unix seconds of an RFC 3339 instant.
    fn at(rfc3339: &str) -> i64 {
        let t: time::OffsetDateTime =
            time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
                .expect("instant");
        t.unix_timestamp()
    }

    #[test]
    fn visitors_read_paris_hours_in_paris_time_winter_and_summer() {
        let agent = AgentConfig {
            id: "a".into(),
            name: "Ava".into(),
            greeting: String::new(),
            instructions: String::new(),
            language: "fr".into(),
            fallback_message: "Je transmets.".into(),
            business_hours: outpost_protocol::BusinessHours {
                time_zone: "Europe/Paris".into(),
                // What the CP wrote in winter for older nodes; this node uses the zone.
                utc_offset_minutes: 60,
                ..Default::default()
            },
            model: Default::default(),
            allowed_origins: vec![],
            channels: vec![],
        };
        let away = "Je transmets. Our team is available Mon–Fri 09:00–17:00 (Paris time).";
        // Winter (UTC+1): 08:30 UTC is 09:30 in Paris.
        assert_eq!(
            fallback_text(&agent, at("2026-01-15T08:30:00Z")),
            "Je transmets."
        );
        assert_eq!(fallback_text(&agent, at("2026-01-15T16:30:00Z")), away);
        // Summer (UTC+2): 07:30 UTC is 09:30 in Paris, 15:30 UTC is 17:30.
        assert_eq!(
            fallback_text(&agent, at("2026-07-15T07:30:00Z")),
            "Je transmets."
        );
        assert_eq!(fallback_text(&agent, at("2026-07-15T15:30:00Z")), away);
        let p = system_prompt(&agent, at("2026-07-15T15:30:00Z"));
        assert!(p.contains("available Mon–Fri 09:00–17:00 (Paris time) and is away now"));
        assert!(!p.contains("UTC"), "{p}");
        // Asia/Kolkata is UTC+05:30: 03:30 UTC opens, 11:30 UTC closes.
        let mut india = agent.clone();
        india.business_hours.time_zone = "Asia/Kolkata".into();
        assert_eq!(
            fallback_text(&india, at("2026-07-15T03:30:00Z")),
            "Je transmets."
        );
        assert_eq!(
            fallback_text(&india, at("2026-07-15T11:30:00Z")),
            "Je transmets. Our team is available Mon–Fri 09:00–17:00 (Kolkata time)."
        );
    }
}
