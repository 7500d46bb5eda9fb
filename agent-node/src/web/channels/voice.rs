//! Phone calls on Twilio, in TwiML: `POST /channels/twilio/voice` (a call comes in),
//! `/voice/gather` (what the caller said, one speech turn at a time) and `/voice/status`
//! (the call ended). Every request is signed like SMS (see [`super::twilio`]).
//!
//! A call is a conversation on channel `voice` (the caller's number is the contact, sealed
//! and found by its hash); each turn the caller says and each answer is a message, sealed
//! like every message; the `calls` row keeps the call's times, duration and status and is
//! deleted with the conversation (so with the contact). Answers come from the same
//! [`Runtime::answer`](crate::engine::agent::Runtime::answer) as chat and are spoken with
//! `<Say>`. When the caller asks for a person, the agent has no answer, or the caller
//! says nothing, the call is transferred (`<Dial>`) to the staff number during business
//! hours (`<Dial action=…/voice/dialed>`); outside them the caller hears the
//! after-hours message. Either way, when nobody can take the call, the caller may leave
//! a voicemail (`<Record>`, at most two minutes). When the business records calls, the
//! call is recorded from the start (`<Start><Recording>`) after the notice. Recordings and
//! voicemails arrive at `/voice/recording` ([`super::recording`]). Twilio retries a
//! request it got no answer to: each step (the call's start, turn N) is stored once and
//! a retry gets the same TwiML back.

use super::twilio::{twiml, Params};
use super::{blocking, hash_id, ChannelError, Channels, VOICE};
use crate::domain::content::{Author, Inbound};
use crate::engine::agent::Outcome;
use crate::platform::store::{self, Store};
use actix_web::{web, HttpRequest, HttpResponse};
use outpost_protocol::AgentConfig;
use rusqlite::{params, OptionalExtension as _};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Meta key of the voice settings.
pub const SETTINGS_KEY: &str = "twilio_voice";
/// Longest answer spoken, in characters.
const MAX_SAY: usize = 1500;
/// Longest voicemail, seconds.
const VOICEMAIL_MAX_SECS: u32 = 120;
/// What the caller's first turn is stored as (the call itself has no words yet).
pub const CALL_STARTED: &str = "[phone call]";

/// How calls are answered; the business's own settings, not content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceSettings {
    /// Staff number calls are transferred to (E.164), if any.
    #[serde(default)]
    pub transfer_number: Option<String>,
    /// Twilio `<Say>` voice, e.g. `Polly.Joanna`; Twilio's default when empty.
    #[serde(default)]
    pub voice: String,
    /// Whether calls are recorded (the caller is told first). The recording is kept on
    /// the node and deleted at Twilio ([`super::recording`]).
    #[serde(default)]
    pub recording: bool,
}

impl VoiceSettings {
    /// The saved settings (defaults when none).
    pub fn load(store: &Store) -> store::Result<Self> {
        Ok(store
            .meta(SETTINGS_KEY)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default())
    }

    /// Saves the settings.
    pub fn save(&self, store: &Store) -> store::Result<()> {
        let json = serde_json::to_string(self).unwrap_or_default();
        store.with(|c| Store::set_meta(c, SETTINGS_KEY, &json))
    }
}

/// Escapes text for an XML element or attribute.
pub(super) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Twilio's speech language for the agent's BCP 47 tag (`fr` → `fr-FR`).
pub fn speech_language(tag: &str) -> String {
    if tag.contains('-') {
        return tag.to_owned();
    }
    match tag {
        "fr" => "fr-FR",
        "de" => "de-DE",
        "es" => "es-ES",
        "it" => "it-IT",
        "nl" => "nl-NL",
        "pt" => "pt-PT",
        "sv" => "sv-SE",
        "da" => "da-DK",
        "pl" => "pl-PL",
        "ja" => "ja-JP",
        _ => "en-US",
    }
    .to_owned()
}

/// Builds the TwiML of one step.
struct Twiml<'a> {
    agent: &'a AgentConfig,
    settings: &'a VoiceSettings,
    public_url: &'a str,
    out: String,
}

impl<'a> Twiml<'a> {
    fn new(agent: &'a AgentConfig, settings: &'a VoiceSettings, public_url: &'a str) -> Self {
        Self {
            agent,
            settings,
            public_url,
            out: String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#),
        }
    }

    fn say(&mut self, text: &str) {
        let text: String = text.chars().take(MAX_SAY).collect();
        let voice = if self.settings.voice.is_empty() {
            String::new()
        } else {
            format!(r#" voice="{}""#, xml(&self.settings.voice))
        };
        self.out.push_str(&format!(
            r#"<Say{voice} language="{}">{}</Say>"#,
            xml(&speech_language(&self.agent.language)),
            xml(&text)
        ));
    }

    /// Listens for turn `turn`; silence goes on to the transfer.
    fn gather(&mut self, turn: u32) {
        self.out.push_str(&format!(
            r#"<Gather input="speech" speechTimeout="auto" language="{}" method="POST" action="{}/channels/twilio/voice/gather?turn={turn}"></Gather>"#,
            xml(&speech_language(&self.agent.language)),
            xml(self.public_url),
        ));
    }

    /// To staff during business hours (when nobody answers, `/voice/dialed` offers the
    /// voicemail), else the after-hours message and the voicemail.
    fn transfer(&mut self, now: i64) -> bool {
        let open = self.agent.business_hours.is_open(now);
        match (&self.settings.transfer_number, open) {
            (Some(number), true) if !number.trim().is_empty() => {
                self.say("Please hold while I transfer you to a member of the team.");
                self.out.push_str(&format!(
                    r#"<Dial timeout="25" method="POST" action="{}/channels/twilio/voice/dialed">{}</Dial>"#,
                    xml(self.public_url),
                    xml(number.trim())
                ));
                true
            }
            _ => {
                self.say(&after_hours_text(self.agent));
                self.voicemail();
                false
            }
        }
    }

    /// Starts recording the whole call (the notice was said before).
    fn start_recording(&mut self) {
        self.out.push_str(&format!(
            r#"<Start><Recording recordingStatusCallback="{}/channels/twilio/voice/recording" recordingStatusCallbackMethod="POST" recordingStatusCallbackEvent="completed"/></Start>"#,
            xml(self.public_url)
        ));
    }

    /// Invites the caller to leave a message and records it; `/voice/voicemail` ends
    /// the call once it is left.
    fn voicemail(&mut self) {
        self.say("You can leave a message after the tone. Hang up when you are done.");
        self.out.push_str(&format!(
            r#"<Record maxLength="{VOICEMAIL_MAX_SECS}" playBeep="true" method="POST" action="{0}/channels/twilio/voice/voicemail" recordingStatusCallback="{0}/channels/twilio/voice/recording?kind=voicemail" recordingStatusCallbackMethod="POST" recordingStatusCallbackEvent="completed"/>"#,
            xml(self.public_url)
        ));
    }

    fn finish(mut self) -> String {
        self.out.push_str("</Response>");
        self.out
    }
}

/// What a caller hears when nobody can take the call.
fn after_hours_text(agent: &AgentConfig) -> String {
    format!(
        "Our team is not available right now. We are open {}. Please call again then, or send us a message.",
        agent.business_hours.describe()
    )
}

/// The conversation of a call, by its CallSid.
pub(super) fn call_conversation(store: &Store, call_sid: &str) -> store::Result<Option<String>> {
    let hash = hash_id(VOICE, call_sid);
    store.with(|c| {
        Ok(c.query_row(
            "SELECT conversation_id FROM calls WHERE sid_hash = ?1",
            [hash],
            |r| r.get(0),
        )
        .optional()?)
    })
}

impl Channels {
    /// Stores one step of a call once; `Some(conversation)` when new, `None` for a retry.
    async fn voice_step(
        self: &Arc<Self>,
        agent: &AgentConfig,
        call_sid: &str,
        step: &str,
        caller: &str,
        said: &str,
    ) -> Result<Option<String>, ChannelError> {
        let claim = hash_id(VOICE, &format!("{call_sid}\n{step}"));
        let sid_hash = hash_id(VOICE, call_sid);
        let (this, caller, said, agent_id) = (
            self.clone(),
            caller.to_owned(),
            said.to_owned(),
            agent.id.clone(),
        );
        let stored = blocking(move || -> Result<_, ChannelError> {
            let now = store::now();
            Ok(this.runtime.content().ingest_once(
                Inbound {
                    channel: VOICE,
                    external_id: &caller,
                    name: None,
                    agent_id: &agent_id,
                    body: &said,
                },
                |c| {
                    Ok(c.execute(
                        "INSERT OR IGNORE INTO channel_inbound (channel, id_hash, received_at)
                         VALUES (?1, ?2, ?3)",
                        params![VOICE, claim, now],
                    )? == 1)
                },
                |c, conv, _| {
                    c.execute(
                        "INSERT OR IGNORE INTO calls
                           (conversation_id, sid_hash, started_at, status)
                         VALUES (?1, ?2, ?3, 'in-progress')",
                        params![conv.id, sid_hash, now],
                    )?;
                    Ok(())
                },
            )?)
        })
        .await??;
        Ok(stored.map(|(conv, _)| conv.id))
    }

    /// The last thing the agent said in a conversation (a retried step gets it again).
    async fn last_said(self: &Arc<Self>, conv: Option<String>) -> Option<String> {
        let conv = conv?;
        let this = self.clone();
        blocking(move || this.runtime.content().recent_messages(&conv, 5))
            .await
            .ok()?
            .ok()?
            .into_iter()
            .rev()
            .find(|m| m.author == Author::Agent)
            .map(|m| m.body)
    }

    fn voice_context(
        &self,
        to: Option<&str>,
    ) -> Result<Option<(AgentConfig, VoiceSettings)>, ChannelError> {
        let Some(agent) = self.agent_for_number(VOICE, to)? else {
            return Ok(None);
        };
        Ok(Some((agent, VoiceSettings::load(&self.store)?)))
    }
}

/// What a voice webhook starts from: its parameters, checked against Twilio's signature,
/// and the agent and voice settings of the number called. `Err` is the answer to give
/// instead: 403, the no-agent TwiML, or 500 when the settings cannot be read.
fn voice_request(
    ch: &Channels,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(Params, AgentConfig, VoiceSettings), Box<HttpResponse>> {
    let p = ch
        .twilio_verified(VOICE, req, body)
        .map_err(|status| Box::new(HttpResponse::new(status)))?;
    match ch.voice_context(p.get("To")) {
        Ok(Some((agent, settings))) => Ok((p, agent, settings)),
        Ok(None) => Err(Box::new(no_agent())),
        Err(e) => {
            tracing::error!(error = %e, "reading the voice settings failed");
            Err(Box::new(HttpResponse::InternalServerError().finish()))
        }
    }
}

fn no_agent() -> HttpResponse {
    twiml(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Sorry, nobody can take your call right now.</Say><Hangup/></Response>"#
            .to_owned(),
    )
}

/// `POST /channels/twilio/voice`: a call comes in; greets and listens.
pub(super) async fn incoming(
    ch: web::Data<Channels>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let (p, agent, settings) = match voice_request(&ch, &req, &body) {
        Ok(x) => x,
        Err(answer) => return *answer,
    };
    let (Some(call), Some(from)) = (p.get("CallSid"), p.get("From")) else {
        return HttpResponse::BadRequest().finish();
    };
    if let Err(e) = ch
        .voice_step(&agent, call, "start", from, CALL_STARTED)
        .await
    {
        tracing::error!(error = %e, "storing a call failed");
        return HttpResponse::InternalServerError().finish();
    }
    if let Err(e) = super::voice_takeover::remember_live_call(&ch.store, call) {
        tracing::error!(error = %e, "keeping the live call failed");
    }
    tracing::info!("call answered");
    let mut t = Twiml::new(&agent, &settings, &ch.public_url);
    let greeting = if agent.greeting.trim().is_empty() {
        format!("Hello, this is {}. How can I help you?", agent.name)
    } else {
        agent.greeting.clone()
    };
    if settings.recording {
        t.say("This call may be recorded.");
        t.start_recording();
    }
    t.say(&greeting);
    t.gather(1);
    t.transfer(store::now());
    twiml(t.finish())
}

#[derive(Debug, Deserialize)]
pub(super) struct TurnQuery {
    #[serde(default)]
    turn: u32,
}

/// `POST /channels/twilio/voice/gather?turn=N`: what the caller said; answers and listens
/// again, or transfers.
pub(super) async fn gather(
    ch: web::Data<Channels>,
    req: HttpRequest,
    q: web::Query<TurnQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let p = match ch.twilio_verified(VOICE, &req, &body) {
        Ok(p) => p,
        Err(status) => return HttpResponse::new(status),
    };
    match turn(&ch, &p, q.turn).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "answering a call turn failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn turn(ch: &Arc<Channels>, p: &Params, n: u32) -> Result<HttpResponse, ChannelError> {
    let (Some(call), Some(from)) = (p.get("CallSid"), p.get("From")) else {
        return Ok(HttpResponse::BadRequest().finish());
    };
    let Some((agent, settings)) = ch.voice_context(p.get("To"))? else {
        return Ok(no_agent());
    };
    let now = store::now();
    let mut t = Twiml::new(&agent, &settings, &ch.public_url);
    let said = p.get("SpeechResult").map(str::trim).unwrap_or_default();
    if said.is_empty() {
        // Nothing understood: a person takes over, or the after-hours message.
        t.transfer(now);
        return Ok(twiml(t.finish()));
    }
    let step = format!("turn {n}");
    let Some(conv) = ch.voice_step(&agent, call, &step, from, said).await? else {
        // A retry of a turn already answered: the same words again.
        let conv = call_conversation(&ch.store, call)?;
        match ch.last_said(conv).await {
            Some(text) => {
                t.say(&text);
                t.gather(n + 1);
            }
            None => {
                t.transfer(now);
            }
        }
        return Ok(twiml(t.finish()));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(1);
    drop(rx);
    let outcome = ch.runtime.answer(&agent, &conv, said, tx).await?;
    let transfer = match outcome {
        Outcome::Answered(m) | Outcome::Guided(m, _) => {
            t.say(&m.body);
            t.gather(n + 1);
            false
        }
        Outcome::Fallback(m, _) => {
            t.say(&m.body);
            true
        }
        Outcome::HumanHandling => true,
        Outcome::Suspended => {
            t.say("Sorry, nobody can take your call right now.");
            t.out.push_str("<Hangup/>");
            false
        }
    };
    if transfer {
        let dialled = t.transfer(now);
        let (this, note) = (
            ch.clone(),
            if dialled {
                "Call transferred to the team."
            } else {
                "Call ended with the after-hours message."
            },
        );
        blocking(move || {
            this.runtime
                .content()
                .append_message(&conv, Author::System, note)
        })
        .await??;
    }
    Ok(twiml(t.finish()))
}

/// `POST /channels/twilio/voice/dialed`: how the transfer ended (`DialCallStatus`).
/// When nobody took it, the caller may leave a voicemail.
pub(super) async fn dialed(
    ch: web::Data<Channels>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let (p, agent, settings) = match voice_request(&ch, &req, &body) {
        Ok(x) => x,
        Err(answer) => return *answer,
    };
    let mut t = Twiml::new(&agent, &settings, &ch.public_url);
    if p.get("DialCallStatus") == Some("completed") {
        t.out.push_str("<Hangup/>");
    } else {
        t.say("Nobody from the team could take your call right now.");
        t.voicemail();
    }
    twiml(t.finish())
}

/// `POST /channels/twilio/voice/voicemail`: the caller left a message (or hung up); the
/// file itself arrives at `/voice/recording`.
pub(super) async fn voicemail_left(
    ch: web::Data<Channels>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let (_, agent, settings) = match voice_request(&ch, &req, &body) {
        Ok(x) => x,
        Err(answer) => return *answer,
    };
    let mut t = Twiml::new(&agent, &settings, &ch.public_url);
    t.say("Thank you, the team will get back to you. Goodbye.");
    t.out.push_str("<Hangup/>");
    twiml(t.finish())
}

/// `POST /channels/twilio/voice/status`: the call's final status and duration.
pub(super) async fn status(
    ch: web::Data<Channels>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ch = ch.into_inner();
    let p = match ch.twilio_verified(VOICE, &req, &body) {
        Ok(p) => p,
        Err(status) => return HttpResponse::new(status),
    };
    let Some(call) = p.get("CallSid") else {
        return HttpResponse::BadRequest().finish();
    };
    let status = match p.get("CallStatus").unwrap_or_default() {
        s @ ("completed" | "busy" | "no-answer" | "failed" | "canceled" | "in-progress"
        | "ringing" | "queued") => s.to_owned(),
        _ => "other".to_owned(),
    };
    let duration = p.get("CallDuration").and_then(|d| d.parse::<i64>().ok());
    let hash = hash_id(VOICE, call);
    let this = ch.clone();
    let sid = call.to_owned();
    let r = blocking(move || {
        this.store.with(|c| {
            c.execute(
                "UPDATE calls SET status = ?2, duration_secs = COALESCE(?3, duration_secs),
                   ended_at = CASE WHEN ?2 IN ('in-progress', 'ringing', 'queued')
                                   THEN ended_at ELSE COALESCE(ended_at, ?4) END
                 WHERE sid_hash = ?1",
                params![hash, status, duration, store::now()],
            )?;
            Ok(())
        })?;
        super::voice_takeover::forget_ended_call(&this.store, &sid)
    })
    .await;
    match r {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

/// One call as the console and exports show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallLog {
    /// The call's conversation.
    pub conversation_id: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, once ended.
    pub ended_at: Option<i64>,
    /// Seconds, as Twilio counted them.
    pub duration_secs: Option<i64>,
    /// Twilio's last status (`in-progress`, `completed`, `busy`, `no-answer`, …).
    pub status: String,
}

/// The calls of a conversation, oldest first.
pub fn calls_of(store: &Store, conversation_id: &str) -> store::Result<Vec<CallLog>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT conversation_id, started_at, ended_at, duration_secs, status
             FROM calls WHERE conversation_id = ?1 ORDER BY started_at, id",
        )?;
        let rows = stmt.query_map([conversation_id], |r| {
            Ok(CallLog {
                conversation_id: r.get(0)?,
                started_at: r.get(1)?,
                ended_at: r.get(2)?,
                duration_secs: r.get(3)?,
                status: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
}

#[cfg(test)]
#[path = "voice_tests.rs"]
mod tests;
