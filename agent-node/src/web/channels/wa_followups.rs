//! Follow-up messages that carry a WhatsApp template: chosen on the contact's page with
//! its values (plain text or [`PLACEHOLDERS`] filled from the contact when sent), stored
//! sealed with the follow-up (`followup_templates`), and sent in place of the text by the
//! runtime's follow-up gate when the follow-up is due outside the 24-hour window. A
//! follow-up without one, or whose template cannot be sent, is held with a note.

use super::wa_templates::{cached_templates, queue_template_reply, window_open, TemplateValues};
use crate::domain::content::{ContentError, Followup};
use crate::engine::agent::Runtime;
use crate::engine::followup_gate::{FollowupGate, Gate};
use crate::platform::store::Store;
use serde::{Deserialize, Serialize};

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
    /// The values; body variables possibly with [`PLACEHOLDERS`].
    #[serde(flatten)]
    pub values: TemplateValues,
}

/// Checks a template chosen for a follow-up (`key` = `name:language`, one of the cached
/// templates) and its variables; the JSON to store with the follow-up, or what is wrong
/// in words.
pub fn followup_template_json(
    store: &Store,
    key: &str,
    values: TemplateValues,
) -> Result<String, String> {
    let template = cached_templates(store)
        .into_iter()
        .find(|t| t.key() == key)
        .ok_or("Choose one of the approved templates.")?;
    template.check(&values)?;
    for (n, v) in values.body.iter().enumerate() {
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
        values,
    })
    .map_err(|_| "The template could not be stored.".to_owned())
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
pub fn followup_gate(store: std::sync::Arc<Store>, runtime: &Runtime) -> FollowupGate {
    let content = runtime.content().clone();
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
        let Some(body) = choice
            .values
            .body
            .iter()
            .map(|v| fill(v, name.as_deref()))
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(Gate::Hold(NO_NAME_NOTE.into()));
        };
        let values = TemplateValues {
            body,
            ..choice.values
        };
        match queue_template_reply(&content, conversation_id, &template, &values) {
            Ok(_) => Ok(Gate::Sent),
            Err(ContentError::Invalid(_)) => Ok(Gate::Hold(template_gone_note(&choice.name))),
            Err(e) => Err(e),
        }
    })
}
