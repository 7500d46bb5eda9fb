//! WhatsApp message templates: the only messages WhatsApp delivers more than 24 hours
//! after the customer's last message.
//!
//! The approved templates are listed with `GET {graph}/{waba id}/message_templates`. The
//! WhatsApp Business Account id is not a credential: every webhook carries it as
//! `entry[].id`, so the node learns it from the first verified webhook (meta key
//! `whatsapp_waba_id`). The list is cached in `meta` (templates are the business's own
//! texts, not customer content) and refreshed every 15 minutes by the channels' task.
//! Offered are templates whose variables are positional (`{{1}}`) and in the body, with
//! at most an image, video or document header (its link given when sending, checked
//! against the outbound-URL policy) and one URL button whose address ends with `{{1}}`
//! (its end given when sending). Named variables, variables in a text header, location
//! headers and other button variables are not offered.
//!
//! A staff member picks one in the inbox; the rendered text is stored as their message
//! (sealed like any other) and the template's name, language and variables in
//! `whatsapp_template_sends`, the variables sealed under the contact's key, in the same
//! transaction. The delivery loop then sends that message as `type: template`, which
//! WhatsApp accepts outside the window.

pub use super::wa_followups::{
    followup_gate, followup_template_json, FollowupTemplate, HELD_NOTE, NO_NAME_NOTE, PLACEHOLDERS,
};
use super::{Channels, SendError};
use crate::domain::content::{Author, Content, ContentError, Message};
use crate::domain::secrets::SecretKind;
use crate::platform::store::{self, Store};
use outpost_common::outbound::Policy;
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

/// The media a template's header shows; its link is given when sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaHeader {
    /// `IMAGE`.
    Image,
    /// `VIDEO`.
    Video,
    /// `DOCUMENT`.
    Document,
}

impl MediaHeader {
    /// The Graph API's parameter type (`image`, `video`, `document`), also the word
    /// used in the console.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaHeader::Image => "image",
            MediaHeader::Video => "video",
            MediaHeader::Document => "document",
        }
    }

    fn parse(format: &str) -> Option<Self> {
        match format {
            "IMAGE" => Some(MediaHeader::Image),
            "VIDEO" => Some(MediaHeader::Video),
            "DOCUMENT" => Some(MediaHeader::Document),
            _ => None,
        }
    }
}

/// A URL button whose address ends with a variable (`https://…/track/{{1}}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlButton {
    /// Its position among the template's buttons, from 0.
    pub index: usize,
    /// Its address as approved, `{{1}}` included.
    pub url: String,
}

/// What staff fill into a template: the body variables, the header's media link and the
/// end of the URL button's address, as the template needs them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateValues {
    /// `{{1}}`, `{{2}}`… of the body.
    pub body: Vec<String>,
    /// The https link of the header's image, video or document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_link: Option<String>,
    /// What replaces `{{1}}` at the end of the URL button's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
}

impl TemplateValues {
    /// Body variables only.
    pub fn body(values: &[String]) -> Self {
        Self {
            body: values.to_vec(),
            ..Self::default()
        }
    }
}

/// Longest header link accepted, characters.
pub const MAX_LINK_CHARS: usize = 2000;

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
    /// The header's media, if it shows an image, video or document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<MediaHeader>,
    /// The URL button with a variable, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_button: Option<UrlButton>,
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

    /// What the inbox shows of a message sending it: the header's link, the body and the
    /// button's address, one per line.
    pub fn render_message(&self, values: &TemplateValues) -> String {
        let mut out = String::new();
        if let (Some(kind), Some(link)) = (self.header, &values.header_link) {
            out.push_str(&format!("[{}: {link}]\n", kind.as_str()));
        }
        out.push_str(&self.render(&values.body));
        if let (Some(b), Some(end)) = (&self.url_button, &values.button) {
            out.push_str(&format!("\n[button: {}]", b.url.replace("{{1}}", end)));
        }
        out
    }

    /// Checks what staff filled in for this template; what is wrong, in words.
    pub fn check(&self, values: &TemplateValues) -> Result<(), String> {
        if values.body.len() != self.variables {
            return Err("Fill in every variable of the template.".into());
        }
        for (n, v) in values.body.iter().enumerate() {
            if v.trim().is_empty() {
                return Err(format!("Fill in variable {} of the template.", n + 1));
            }
            if v.chars().count() > MAX_VARIABLE_CHARS {
                return Err(format!(
                    "A variable can be at most {MAX_VARIABLE_CHARS} characters."
                ));
            }
        }
        match (self.header, values.header_link.as_deref().map(str::trim)) {
            (None, None) => {}
            (None, Some(_)) => return Err("This template has no media header.".into()),
            (Some(kind), None | Some("")) => {
                return Err(format!(
                    "Give the https link of the {} the template's header shows.",
                    kind.as_str()
                ))
            }
            (Some(kind), Some(link)) => {
                if link.chars().count() > MAX_LINK_CHARS {
                    return Err(format!(
                        "The {} link can be at most {MAX_LINK_CHARS} characters.",
                        kind.as_str()
                    ));
                }
                // WhatsApp fetches it: it must be a public https address.
                Policy::STRICT
                    .check(link)
                    .map_err(|r| format!("The {} link cannot be used. {r}", kind.as_str()))?;
            }
        }
        match (&self.url_button, values.button.as_deref().map(str::trim)) {
            (None, None) => {}
            (None, Some(_)) => return Err("This template has no button to fill in.".into()),
            (Some(b), None | Some("")) => {
                return Err(format!(
                    "Fill in the end of the button's address ({}).",
                    b.url
                ))
            }
            (Some(_), Some(end)) => {
                if end.chars().count() > MAX_VARIABLE_CHARS || end.chars().any(char::is_whitespace)
                {
                    return Err(format!(
                        "The end of the button's address is one word of at most {MAX_VARIABLE_CHARS} characters, without spaces."
                    ));
                }
            }
        }
        Ok(())
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

/// The template, if the inbox can send it (approved; positional body variables; a text
/// header without variables or a media header; at most one URL button ending in `{{1}}`
/// and no other button variable).
fn usable(t: GraphTemplate) -> Option<Template> {
    if t.status != "APPROVED" {
        return None;
    }
    let (mut body, mut header, mut url_button) = (None, None, None);
    for c in &t.components {
        match c.kind.as_str() {
            "BODY" => body = c.text.clone(),
            "HEADER" => match c.format.as_deref().unwrap_or("TEXT") {
                "TEXT" if !c.text.as_deref().is_some_and(|t| t.contains("{{")) => {}
                format => header = Some(MediaHeader::parse(format)?),
            },
            "BUTTONS" => {
                for (index, b) in c.buttons.iter().enumerate() {
                    if !b.to_string().contains("{{") {
                        continue;
                    }
                    let url = b["url"].as_str().unwrap_or_default();
                    let dynamic_url = b["type"] == "URL"
                        && url.ends_with("{{1}}")
                        && url.matches("{{").count() == 1
                        && !b["text"].as_str().unwrap_or_default().contains("{{");
                    if !dynamic_url || url_button.is_some() {
                        return None;
                    }
                    url_button = Some(UrlButton {
                        index,
                        url: url.to_owned(),
                    });
                }
            }
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
        header,
        url_button,
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

/// Stores a staff member's template reply: the rendered text as their message and what
/// the delivery loop needs to send it as a template, in one transaction.
pub fn queue_template_reply(
    content: &Content,
    conversation_id: &str,
    template: &Template,
    values: &TemplateValues,
) -> Result<Message, ContentError> {
    if template.check(values).is_err() {
        return Err(ContentError::Invalid(
            "fill in every variable of the template",
        ));
    }
    let send = Filled {
        body: values.body.clone(),
        header: template
            .header
            .zip(values.header_link.as_ref())
            .map(|(kind, link)| (kind, link.trim().to_owned())),
        button: template
            .url_button
            .as_ref()
            .zip(values.button.as_ref())
            .map(|(b, end)| (b.index, end.trim().to_owned())),
    };
    let sealed_params = serde_json::to_string(&send).map_err(|_| ContentError::Crypto)?;
    content.append_message_with_extra(
        conversation_id,
        Author::Human,
        &template.render_message(values),
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

/// What a template send carries besides its name (sealed in
/// `whatsapp_template_sends.params_ct`): the header's kind and link and the URL button's
/// index and value are kept as queued, whatever the template list says later.
#[derive(Serialize, Deserialize)]
struct Filled {
    body: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<(MediaHeader, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    button: Option<(usize, String)>,
}

/// `params_ct` as sealed: a [`Filled`], or the body variables alone (sends queued
/// before headers and buttons were offered).
#[derive(Deserialize)]
#[serde(untagged)]
enum Sealed {
    Filled(Filled),
    Body(Vec<String>),
}

/// A message to be sent as a template.
pub(super) struct TemplateSend {
    name: String,
    language: String,
    filled: Filled,
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
        let filled = match serde_json::from_str(&json) {
            Ok(Sealed::Filled(f)) => f,
            Ok(Sealed::Body(body)) => Filled {
                body,
                header: None,
                button: None,
            },
            Err(_) => return Err(SendError::Permanent("unreadable")),
        };
        Ok(Some(TemplateSend {
            name,
            language,
            filled,
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
                let components = components(&t.filled);
                if !components.is_empty() {
                    template["components"] = serde_json::Value::Array(components);
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

/// The `components` of a template message, as the Graph API documents them: the header's
/// media by link, the body's text parameters, the URL button's text parameter.
fn components(f: &Filled) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    if let Some((kind, link)) = &f.header {
        let kind = kind.as_str();
        out.push(serde_json::json!({
            "type": "header",
            "parameters": [{"type": kind, kind: {"link": link}}],
        }));
    }
    if !f.body.is_empty() {
        let parameters: Vec<serde_json::Value> = f
            .body
            .iter()
            .map(|p| serde_json::json!({"type": "text", "text": p}))
            .collect();
        out.push(serde_json::json!({"type": "body", "parameters": parameters}));
    }
    if let Some((index, text)) = &f.button {
        out.push(serde_json::json!({
            "type": "button",
            "sub_type": "url",
            "index": index.to_string(),
            "parameters": [{"type": "text", "text": text}],
        }));
    }
    out
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
