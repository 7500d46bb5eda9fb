//! WhatsApp templates in the console: the picker (shared with the contact page's
//! follow-ups) and `POST /inbox/{id}/template`, which sends one past the 24-hour window.

use super::{content, conversation_page};
use crate::domain::content::ConversationStatus;
use crate::web::channels::wa_templates;
use crate::web::console::{render, see_other, valid_id, ConsoleError, ConsoleState, WriteSession};
use actix_web::{web, HttpResponse};

/// A template in the picker.
pub(in crate::web::console) struct TemplateOption {
    pub(in crate::web::console) key: String,
    pub(in crate::web::console) label: String,
    pub(in crate::web::console) selected: bool,
}

/// The template picked, with a field per variable (and for the header's media link and
/// the button's variable when it has them), refilled with what was typed after an error.
pub(in crate::web::console) struct ChosenTemplate {
    pub(in crate::web::console) key: String,
    pub(in crate::web::console) body: String,
    /// Each variable's number and the value typed.
    pub(in crate::web::console) vars: Vec<(usize, String)>,
    /// `image`, `video` or `document`: the header needs a link.
    pub(in crate::web::console) header: Option<&'static str>,
    pub(in crate::web::console) header_link: String,
    /// The URL button's address with `{{1}}`, when it has a variable.
    pub(in crate::web::console) button_url: Option<String>,
    pub(in crate::web::console) button: String,
    /// What was wrong with the values sent, in words.
    pub(in crate::web::console) error: Option<String>,
}

/// What staff typed into a template form: `v1`…`vN`, `header_link`, `button`.
pub(in crate::web::console) fn typed_values(
    form: &std::collections::HashMap<String, String>,
) -> wa_templates::TemplateValues {
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    wa_templates::TemplateValues {
        body: (1..)
            .map_while(|n| form.get(&format!("v{n}")))
            .map(|v| v.trim().to_owned())
            .collect(),
        header_link: field("header_link"),
        button: field("button"),
    }
}

/// The picker's options and the template picked (`picked` = `name:language`); `typed`
/// refills its fields after an error (the values and what was wrong).
pub(in crate::web::console) fn template_picker(
    templates: &[wa_templates::Template],
    picked: Option<&str>,
    typed: Option<(&wa_templates::TemplateValues, String)>,
) -> (Vec<TemplateOption>, Option<ChosenTemplate>) {
    let chosen = templates
        .iter()
        .find(|t| Some(t.key().as_str()) == picked)
        .map(|t| {
            let values = typed.as_ref().map(|(v, _)| *v);
            ChosenTemplate {
                key: t.key(),
                body: t.body.clone(),
                vars: (1..=t.variables)
                    .map(|n| {
                        let v = values.and_then(|v| v.body.get(n - 1));
                        (n, v.cloned().unwrap_or_default())
                    })
                    .collect(),
                header: t.header.map(|h| h.as_str()),
                header_link: values
                    .and_then(|v| v.header_link.clone())
                    .unwrap_or_default(),
                button_url: t.url_button.as_ref().map(|b| b.url.clone()),
                button: values.and_then(|v| v.button.clone()).unwrap_or_default(),
                error: typed.as_ref().map(|(_, e)| e.clone()),
            }
        });
    let options = templates
        .iter()
        .map(|t| TemplateOption {
            key: t.key(),
            label: format!("{} ({}, {})", t.name, t.language, t.category.to_lowercase()),
            selected: Some(t.key().as_str()) == picked,
        })
        .collect();
    (options, chosen)
}

/// `POST /inbox/{id}/template` (`template` = `name:language`, `v1`…`vN`): sends a
/// WhatsApp template (outside the 24-hour window), taking the conversation over first.
pub(super) async fn template_reply(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
    form: web::Form<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound);
    }
    let form = form.into_inner();
    let key = form.get("template").cloned().unwrap_or_default();
    let store = state.store.clone();
    let template = web::block(move || wa_templates::cached_templates(&store))
        .await?
        .into_iter()
        .find(|t| t.key() == key)
        .ok_or_else(|| ConsoleError::BadRequest("Choose one of the approved templates.".into()))?;
    let values = typed_values(&form);
    if let Err(error) = template.check(&values) {
        // Said in the form, with what was typed; nothing is sent.
        let key = template.key();
        let page =
            conversation_page(&state, &session, id, Some(&key), Some((&values, error))).await?;
        let mut response = render(&page)?;
        *response.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    let content = content(&state);
    let actor = session.user_id.clone();
    let conv = id.clone();
    web::block(move || {
        let c = content
            .conversation(&conv)?
            .ok_or(crate::domain::content::ContentError::NotFound)?;
        if c.channel != crate::web::channels::WHATSAPP {
            return Err(crate::domain::content::ContentError::Invalid(
                "Templates are for WhatsApp conversations.",
            ));
        }
        if !c.taken_over() {
            content.set_status(&conv, ConversationStatus::Human, &actor)?;
        }
        wa_templates::queue_template_reply(&content, &conv, &template, &values)
    })
    .await??;
    Ok(see_other(&format!("/inbox/{id}")))
}
