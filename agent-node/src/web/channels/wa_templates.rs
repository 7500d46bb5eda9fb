//! WhatsApp message templates: the only messages WhatsApp delivers more than 24 hours
//! after the customer's last message.
//!
//! The approved templates are listed with `GET {graph}/{waba id}/message_templates`. The
//! WhatsApp Business Account id is not a credential: every webhook carries it as
//! `entry[].id`, so the node learns it from the first verified webhook (meta key
//! `whatsapp_waba_id`). The list is cached in `meta` (templates are the business's own
//! texts, not customer content) and refreshed every 15 minutes by the channels' task.
//! Only templates whose variables are positional (`{{1}}`) and all in the body are
//! offered: header media and button variables cannot be filled in from the inbox.
//!
//! A staff member picks one in the inbox; the rendered text is stored as their message
//! (sealed like any other) and the template's name, language and variables in
//! `whatsapp_template_sends`, the variables sealed under the contact's key, in the same
//! transaction. The delivery loop then sends that message as `type: template`, which
//! WhatsApp accepts outside the window.

use super::{Channels, SendError};
use crate::domain::content::{Author, Content, ContentError, Followup, Message};
use crate::domain::secrets::SecretKind;
use crate::engine::followup_gate::{FollowupGate, Gate};
use crate::platform::store::{self, Store};
use rusqlite::{params, OptionalExtension as _};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Migration adding the template sends (see `MIGRATIONS` in `src/migrations.rs`).
pub const TEMPLATES_SCHEMA: &str = r#"
CREATE TABLE whatsapp_template_sends (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    language TEXT NOT NULL,
    params_ct BLOB NOT NULL
);
"#;

/// `meta` key of the WhatsApp Business Account id.
const WABA_KEY: &str = "whatsapp_waba_id";
/// `meta` key of the cached template list (JSON).
const TEMPLATES_KEY: &str = "whatsapp_templates";
/// Longest variable value accepted, characters.
pub const MAX_VARIABLE_CHARS: usize = 1000;
/// How often the template list is refreshed.
const REFRESH: Duration = Duration::from_secs(15 * 60);

/// An approved template the inbox can send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Its name on Meta.
    pub name: String,
    /// Its language code (`en_US`).
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    pub category: String,
    /// The body text with `{{1}}`, `{{2}}`… placeholders.
    pub body: String,
    /// How many variables the body has.
    pub variables: usize,
}

impl Template {
    /// The body with `{{n}}` replaced by `params[n - 1]`.
    pub fn render(&self, params: &[String]) -> String {
        let mut out = self.body.clone();
        for (i, p) in params.iter().enumerate().rev() {
            out = out.replace(&format!("{{{{{}}}}}", i + 1), p);
        }
        out
    }

    /// `name:language`, how the inbox form names it.
    pub fn key(&self) -> String {
        format!("{}:{}", self.name, self.language)
    }
}

/// The `{{n}}` placeholders of `text`: `Some(highest n)`, or `None` if one is not a
/// positional number (named parameters).
fn positional_variables(text: &str) -> Option<usize> {
    let mut max = 0;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let n: usize = after[..end].trim().parse().ok()?;
        max = max.max(n);
        rest = &after[end + 2..];
    }
    Some(max)
}

#[derive(Debug, Deserialize)]
struct TemplateList {
    #[serde(default)]
    data: Vec<GraphTemplate>,
}

#[derive(Debug, Deserialize)]
struct GraphTemplate {
    name: String,
    language: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Debug, Deserialize)]
struct Component {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    buttons: Vec<serde_json::Value>,
}

/// The template, if the inbox can send it (approved, positional body variables only).
fn usable(t: GraphTemplate) -> Option<Template> {
    if t.status != "APPROVED" {
        return None;
    }
    let mut body = None;
    for c in &t.components {
        match c.kind.as_str() {
            "BODY" => body = c.text.clone(),
            "HEADER" => {
                let text_only = c.format.as_deref().is_none_or(|f| f == "TEXT");
                if !text_only || c.text.as_deref().is_some_and(|t| t.contains("{{")) {
                    return None;
                }
            }
            "BUTTONS" if c.buttons.iter().any(|b| b.to_string().contains("{{")) => return None,
            _ => {}
        }
    }
    let body = body?;
    let variables = positional_variables(&body)?;
    Some(Template {
        name: t.name,
        language: t.language,
        category: t.category,
        body,
        variables,
    })
}

/// The cached templates (empty before the first refresh).
pub fn cached_templates(store: &Store) -> Vec<Template> {
    store
        .meta(TEMPLATES_KEY)
        .ok()
        .flatten()
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default()
}

/// Replaces the cached templates (tests of the pages that offer them).
#[cfg(test)]
pub(crate) fn cache_templates(store: &Store, templates: &[Template]) {
    let json = serde_json::to_string(templates).expect("json");
    store
        .with(|c| Store::set_meta(c, TEMPLATES_KEY, &json))
        .expect("cached");
}

/// Whether WhatsApp still takes free-form messages in this conversation (its customer
/// wrote in the last 24 hours). `true` for conversations of other channels.
pub fn window_open(store: &Store, conversation_id: &str) -> bool {
    let last: Option<i64> = store
        .with(|c| {
            Ok(c.query_row(
                "SELECT last_inbound_at FROM channel_conversations
                 WHERE conversation_id = ?1 AND channel = 'whatsapp'",
                [conversation_id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .ok()
        .flatten();
    last.is_none_or(|at| store::now() - at <= super::whatsapp::WINDOW_SECS)
}

/// What a follow-up's template variables may hold besides plain text, filled on the node
/// from the contact when the follow-up is sent.
pub const PLACEHOLDERS: [&str; 2] = ["{{contact.first_name}}", "{{contact.name}}"];

/// The template a follow-up message carries: sent in its place when it is due outside
/// the 24-hour window (sealed JSON in `followup_templates`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowupTemplate {
    /// The template's name on Meta.
    pub name: String,
    /// Its language code.
    pub language: String,
    /// The body variables, possibly with [`PLACEHOLDERS`].
    pub body: Vec<String>,
}

/// Checks a template chosen for a follow-up (`key` = `name:language`, one of the cached
/// templates) and its variables; the JSON to store with the follow-up, or what is wrong
/// in words.
pub fn followup_template_json(
    store: &Store,
    key: &str,
    values: Vec<String>,
) -> Result<String, String> {
    let template = cached_templates(store)
        .into_iter()
        .find(|t| t.key() == key)
        .ok_or("Choose one of the approved templates.")?;
    check_values(&template, &values)?;
    for (n, v) in values.iter().enumerate() {
        let rest = PLACEHOLDERS.iter().fold(v.clone(), |v, p| v.replace(p, ""));
        if rest.contains("{{") {
            return Err(format!(
                "Variable {} holds a placeholder the node does not know; use {}.",
                n + 1,
                PLACEHOLDERS.join(" or ")
            ));
        }
    }
    serde_json::to_string(&FollowupTemplate {
        name: template.name,
        language: template.language,
        body: values,
    })
    .map_err(|_| "The template could not be stored.".to_owned())
}

/// Checks the variables for `template`: one per variable, none empty or too long.
fn check_values(template: &Template, values: &[String]) -> Result<(), String> {
    if values.len() != template.variables {
        return Err("Fill in every variable of the template.".into());
    }
    for (n, v) in values.iter().enumerate() {
        if v.trim().is_empty() {
            return Err(format!("Fill in variable {} of the template.", n + 1));
        }
        if v.chars().count() > MAX_VARIABLE_CHARS {
            return Err(format!(
                "A variable can be at most {MAX_VARIABLE_CHARS} characters."
            ));
        }
    }
    Ok(())
}

/// `value` with the [`PLACEHOLDERS`] filled from the contact's name; `None` if it needs
/// a name the contact does not have.
fn fill(value: &str, name: Option<&str>) -> Option<String> {
    if !PLACEHOLDERS.iter().any(|p| value.contains(p)) {
        return Some(value.to_owned());
    }
    let name = name.map(str::trim).filter(|n| !n.is_empty())?;
    let first = name.split_whitespace().next()?;
    Some(
        value
            .replace("{{contact.first_name}}", first)
            .replace("{{contact.name}}", name),
    )
}

/// The note a held follow-up leaves in its conversation.
pub const HELD_NOTE: &str = "A follow-up message is held: WhatsApp delivers it only within 24 \
     hours of the customer's last message. It will be sent when the customer writes again; to \
     reach them sooner, send a template from this conversation.";

/// The note of a follow-up whose template needs the contact's name, which is unknown.
pub const NO_NAME_NOTE: &str = "A follow-up message is held: the customer last wrote more \
     than 24 hours ago and its template needs the contact's name, which is not known. Give \
     the contact a name on their page, or send a template from this conversation.";

/// The note of a follow-up whose template is no longer approved or has changed.
fn template_gone_note(name: &str) -> String {
    format!(
        "A follow-up message is held: the customer last wrote more than 24 hours ago and its \
         template \"{name}\" is no longer approved or has changed. It will be sent when the \
         customer writes again; to reach them sooner, send a template from this conversation."
    )
}

/// The follow-up gate of the channels (see
/// [`crate::engine::followup_gate::FollowupGate`]): a follow-up due in a WhatsApp
/// conversation whose 24-hour window has closed is sent as the template it carries,
/// its placeholders filled from the contact, or else held with a note.
pub fn followup_gate(store: std::sync::Arc<Store>, content: Content) -> FollowupGate {
    std::sync::Arc::new(move |f: &Followup, conversation_id: &str| {
        if window_open(&store, conversation_id) {
            return Ok(Gate::Open);
        }
        let Some(json) = content.followup_template(&f.id)? else {
            return Ok(Gate::Hold(HELD_NOTE.into()));
        };
        let choice: FollowupTemplate =
            serde_json::from_str(&json).map_err(|_| ContentError::Crypto)?;
        let Some(template) = cached_templates(&store)
            .into_iter()
            .find(|t| t.name == choice.name && t.language == choice.language)
        else {
            return Ok(Gate::Hold(template_gone_note(&choice.name)));
        };
        let name = content.contact(&f.contact_id)?.and_then(|c| c.name);
        let Some(values) = choice
            .body
            .iter()
            .map(|v| fill(v, name.as_deref()))
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(Gate::Hold(NO_NAME_NOTE.into()));
        };
        match queue_template_reply(&content, conversation_id, &template, &values) {
            Ok(_) => Ok(Gate::Sent),
            Err(ContentError::Invalid(_)) => Ok(Gate::Hold(template_gone_note(&choice.name))),
            Err(e) => Err(e),
        }
    })
}

/// Stores a staff member's template reply: the rendered text as their message and what
/// the delivery loop needs to send it as a template, in one transaction.
pub fn queue_template_reply(
    content: &Content,
    conversation_id: &str,
    template: &Template,
    params: &[String],
) -> Result<Message, ContentError> {
    if check_values(template, params).is_err() {
        return Err(ContentError::Invalid(
            "fill in every variable of the template",
        ));
    }
    let sealed_params = serde_json::to_string(params).map_err(|_| ContentError::Crypto)?;
    content.append_message_with_extra(
        conversation_id,
        Author::Human,
        &template.render(params),
        &sealed_params,
        |c, msg, sealed| {
            c.execute(
                "INSERT INTO whatsapp_template_sends (message_id, name, language, params_ct)
                 VALUES (?1, ?2, ?3, ?4)",
                params![msg.id, template.name, template.language, sealed],
            )?;
            Ok(())
        },
    )
}

/// A message to be sent as a template.
pub(super) struct TemplateSend {
    name: String,
    language: String,
    params: Vec<String>,
}

impl Channels {
    /// Remembers the WhatsApp Business Account id a verified webhook named.
    pub(super) fn remember_waba(&self, id: &str) {
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        if self.store.meta(WABA_KEY).ok().flatten().as_deref() == Some(id) {
            return;
        }
        if let Err(e) = self.store.with(|c| Store::set_meta(c, WABA_KEY, id)) {
            tracing::warn!(error = %e, "remembering the WhatsApp Business Account id failed");
        }
    }

    /// Lists the approved templates on the Graph API and caches those the inbox can
    /// send. `Err(code)` when it cannot (`not_configured`, `account_unknown` before the
    /// first webhook, `unreachable`, `token_revoked`, `bad_response`).
    pub async fn refresh_whatsapp_templates(&self) -> Result<Vec<Template>, &'static str> {
        let token = match self.whatsapp_secret(SecretKind::WhatsappAccessToken) {
            Ok(Some(t)) => t,
            Ok(None) => return Err("not_configured"),
            Err(_) => return Err("storage"),
        };
        let Some(waba) = self.store.meta(WABA_KEY).map_err(|_| "storage")? else {
            return Err("account_unknown");
        };
        let resp = self
            .http
            .get(format!("{}/{waba}/message_templates", self.urls.graph))
            .query(&[
                ("fields", "name,language,status,category,components"),
                ("status", "APPROVED"),
                ("limit", "100"),
            ])
            .bearer_auth(token.expose())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|_| "unreachable")?;
        match resp.status().as_u16() {
            200..=299 => {}
            401 => return Err("token_revoked"),
            _ => return Err("unreachable"),
        }
        let list: TemplateList = resp.json().await.map_err(|_| "bad_response")?;
        let templates: Vec<Template> = list.data.into_iter().filter_map(usable).collect();
        let json = serde_json::to_string(&templates).map_err(|_| "bad_response")?;
        self.store
            .with(|c| Store::set_meta(c, TEMPLATES_KEY, &json))
            .map_err(|_| "storage")?;
        tracing::info!(count = templates.len(), "WhatsApp templates refreshed");
        Ok(templates)
    }

    /// The template send recorded for message `id`, opened.
    pub(super) fn template_send_of(&self, id: i64) -> Result<Option<TemplateSend>, SendError> {
        let row: Option<(String, String, Vec<u8>)> = self
            .store
            .with(|c| {
                Ok(c.query_row(
                    "SELECT name, language, params_ct FROM whatsapp_template_sends
                     WHERE message_id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?)
            })
            .map_err(|_| SendError::Retry("storage"))?;
        let Some((name, language, sealed)) = row else {
            return Ok(None);
        };
        let json = self
            .runtime
            .content()
            .open_message_extra(id, &sealed)
            .map_err(|_| SendError::Permanent("unreadable"))?;
        let params = serde_json::from_str(&json).map_err(|_| SendError::Permanent("unreadable"))?;
        Ok(Some(TemplateSend {
            name,
            language,
            params,
        }))
    }

    /// Sends message `id` (`text`) to `to`: as its template if staff picked one, else as
    /// free-form text within the 24-hour window.
    pub(super) async fn whatsapp_deliver(
        &self,
        to: &str,
        id: i64,
        text: &str,
        last_inbound: i64,
    ) -> Result<(), SendError> {
        match self.template_send_of(id)? {
            Some(t) => {
                let mut template = serde_json::json!({
                    "name": t.name,
                    "language": {"code": t.language},
                });
                if !t.params.is_empty() {
                    let parameters: Vec<serde_json::Value> = t
                        .params
                        .iter()
                        .map(|p| serde_json::json!({"type": "text", "text": p}))
                        .collect();
                    template["components"] =
                        serde_json::json!([{"type": "body", "parameters": parameters}]);
                }
                self.whatsapp_post(&serde_json::json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": "template",
                    "template": template,
                }))
                .await
            }
            None => self.whatsapp_send(to, text, last_inbound).await,
        }
    }
}

/// Refreshes the template list every 15 minutes while WhatsApp is configured, until
/// aborted. Failures are logged by code only.
pub async fn refresh_loop(ch: std::sync::Arc<Channels>) {
    loop {
        let wait = match ch.refresh_whatsapp_templates().await {
            Ok(_) => REFRESH,
            // Until a webhook names the account: look again soon.
            Err("not_configured" | "account_unknown") => Duration::from_secs(60),
            Err(code) => {
                tracing::warn!(code, "listing WhatsApp templates failed");
                REFRESH
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
#[path = "wa_templates_tests.rs"]
mod tests;
