//! Console pages: settings — the AI provider keys. A key entered here is sealed under
//! the node's master key and never leaves the node; the page shows only its kind,
//! fingerprint, last four characters and when it was added.

use super::access::Nav;
use super::flash::{see_other_done, Done};
use super::{render, ConsoleError, ConsoleSession, ConsoleState, WriteSession};
use crate::domain::secrets::{SecretKind, SecretMeta, SecretSource, SecretStore};
use crate::web::channels::voice::VoiceSettings;
use actix_web::{web, HttpResponse};
use askama::Template;
use outpost_crypto::Secret;
use serde::Deserialize;

/// Longest secret accepted, characters.
pub const MAX_SECRET_CHARS: usize = 4096;

struct Row {
    kind: SecretKind,
    meta: Option<SecretMeta>,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    rows: Vec<Row>,
    voice: VoiceSettings,
}

fn store(state: &ConsoleState) -> SecretStore {
    SecretStore::new(state.store.clone(), state.master.clone())
}

fn when(t: &i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(*t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

async fn page(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    let secrets = store(&state);
    let stored = web::block(move || secrets.list()).await??;
    let st = state.store.clone();
    let voice = web::block(move || VoiceSettings::load(&st)).await??;
    let rows = SecretKind::ALL
        .iter()
        .map(|k| Row {
            kind: *k,
            meta: stored.iter().find(|m| m.kind == *k).cloned(),
        })
        .collect();
    render(&SettingsPage {
        nav: Nav::for_session(&session),
        rows,
        voice,
    })
}

#[derive(Deserialize)]
struct VoiceForm {
    #[serde(default)]
    transfer_number: String,
    #[serde(default)]
    voice: String,
    #[serde(default)]
    recording: Option<String>,
}

/// A staff number in E.164 (`+` and 8–15 digits), or none.
fn transfer_number(s: &str) -> Result<Option<String>, ConsoleError> {
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if s.is_empty() {
        return Ok(None);
    }
    let digits = s.strip_prefix('+').unwrap_or_default();
    if (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(Some(s))
    } else {
        Err(ConsoleError::BadRequest(
            "Give the staff number in international format, e.g. +14155550100.".into(),
        ))
    }
}

/// Phone calls: where they are transferred, the voice, the recording notice.
async fn save_voice(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<VoiceForm>,
) -> Result<HttpResponse, ConsoleError> {
    let f = form.into_inner();
    let voice = f.voice.trim().to_owned();
    if voice.len() > 60
        || !voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(ConsoleError::BadRequest(
            "Give a Twilio voice name such as Polly.Joanna, or leave it empty.".into(),
        ));
    }
    let settings = VoiceSettings {
        transfer_number: transfer_number(&f.transfer_number)?,
        voice,
        recording: f.recording.is_some(),
    };
    let st = state.store.clone();
    web::block(move || settings.save(&st)).await??;
    tracing::info!(user = %session.user_id, "voice settings saved");
    Ok(see_other_done("/settings", Done::Saved))
}

#[derive(Deserialize)]
struct SecretForm {
    kind: String,
    value: String,
}

async fn save(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, ConsoleError> {
    let SecretForm { kind, value } = form.into_inner();
    let kind = SecretKind::parse(&kind)
        .ok_or_else(|| ConsoleError::BadRequest("Choose one of the listed key types.".into()))?;
    let value = Secret::new(value.trim().to_owned());
    if value.expose().is_empty() {
        return Err(ConsoleError::BadRequest("Paste the key first.".into()));
    }
    if value.expose().chars().count() > MAX_SECRET_CHARS
        || value.expose().contains(char::is_whitespace)
    {
        return Err(ConsoleError::BadRequest(
            "That does not look like an API key (no spaces, at most 4,096 characters).".into(),
        ));
    }
    let secrets = store(&state);
    web::block(move || secrets.put(kind, &value, SecretSource::Console)).await??;
    tracing::info!(user = %session.user_id, kind = kind.as_str(), "provider key set in the console");
    Ok(see_other_done("/settings", Done::Saved))
}

async fn remove(
    state: web::Data<ConsoleState>,
    session: WriteSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let kind = SecretKind::parse(&path).ok_or(ConsoleError::NotFound)?;
    let secrets = store(&state);
    web::block(move || secrets.remove(kind)).await??;
    tracing::info!(user = %session.user_id, kind = kind.as_str(), "provider key removed in the console");
    Ok(see_other_done("/settings", Done::KeyRemoved))
}

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(page))
        .route("/settings/secrets", web::post().to(save))
        .route("/settings/secrets/{kind}/delete", web::post().to(remove))
        .route("/settings/voice", web::post().to(save_voice));
}

#[cfg(test)]
mod tests {
    use super::MAX_SECRET_CHARS;
    use crate::web::console::tests::{fixture, sign_in, ADMIN};
    use crate::web::console::{routes, security_headers};
    use actix_web::{http::StatusCode, test as at, App};

    #[actix_web::test]
    async fn keys_are_set_shown_masked_and_removed() {
        let f = fixture();
        let app = at::init_service(
            App::new()
                .app_data(f.data.clone())
                .wrap(security_headers())
                .configure(routes),
        )
        .await;
        let cookie = sign_in!(app, f, ADMIN);
        let origin = "http://acme-dental.localhost:40123";
        let post = |form: &'static str, uri: &'static str, origin: &'static str| {
            at::TestRequest::post()
                .uri(uri)
                .insert_header(("origin", origin))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .cookie(cookie.clone())
                .set_payload(form)
                .to_request()
        };
        let r = at::call_service(
            &app,
            post(
                "kind=openai_api_key&value=sk-live-canary-77aa",
                "/settings/secrets",
                origin,
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/settings")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        let body = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
        assert!(body.contains("…77aa"), "{body}");
        let fingerprint = crate::domain::secrets::fingerprint(
            &f.data.master,
            &outpost_crypto::Secret::new("sk-live-canary-77aa".into()),
        );
        assert!(body.contains(&fingerprint), "shows the fingerprint");
        assert!(!body.contains("sk-live-canary"), "never the value");
        assert!(body.contains("type=\"password\""));

        let too_long: &'static str = format!(
            "kind=openai_api_key&value={}",
            "k".repeat(MAX_SECRET_CHARS + 1)
        )
        .leak();
        for (form, status) in [
            ("kind=openai_api_key&value=", StatusCode::BAD_REQUEST),
            ("kind=openai_api_key&value=+++", StatusCode::BAD_REQUEST),
            ("kind=nope&value=abc", StatusCode::BAD_REQUEST),
            (too_long, StatusCode::BAD_REQUEST),
        ] {
            let r = at::call_service(&app, post(form, "/settings/secrets", origin)).await;
            assert_eq!(r.status(), status, "{form:.40}");
        }
        let secrets =
            crate::domain::secrets::SecretStore::new(f.data.store.clone(), f.data.master.clone());
        assert_eq!(
            secrets
                .get(crate::domain::secrets::SecretKind::OpenaiApiKey)
                .expect("get")
                .expect("still set")
                .expose(),
            "sk-live-canary-77aa",
            "a refused form changes nothing"
        );
        let r = at::call_service(
            &app,
            post(
                "kind=openai_api_key&value=x",
                "/settings/secrets",
                "http://evil.localhost",
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = at::call_service(
            &app,
            at::TestRequest::post()
                .uri("/settings/secrets")
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload("kind=openai_api_key&value=x")
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        let r = at::call_service(
            &app,
            post("", "/settings/secrets/openai_api_key/delete", origin),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/settings")
                .cookie(cookie)
                .to_request(),
        )
        .await;
        let body = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
        assert!(!body.contains("…77aa"));
    }

    #[actix_web::test]
    async fn voice_settings_are_checked_saved_and_shown() {
        use crate::web::channels::voice::VoiceSettings;
        let f = fixture();
        let app = at::init_service(
            App::new()
                .app_data(f.data.clone())
                .wrap(security_headers())
                .configure(routes),
        )
        .await;
        let cookie = sign_in!(app, f, ADMIN);
        let post = |form: &'static str| {
            at::TestRequest::post()
                .uri("/settings/voice")
                .insert_header(("origin", "http://acme-dental.localhost:40123"))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .cookie(cookie.clone())
                .set_payload(form)
                .to_request()
        };
        for bad in [
            "transfer_number=0412345678&voice=",
            "transfer_number=%2B1abc&voice=",
            "transfer_number=&voice=%3Cx%3E",
        ] {
            let r = at::call_service(&app, post(bad)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(
            VoiceSettings::load(&f.data.store).expect("load"),
            VoiceSettings::default(),
            "nothing saved"
        );
        let r = at::call_service(
            &app,
            post("transfer_number=%2B1+415-555-0100&voice=Polly.Joanna&recording=on"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            VoiceSettings::load(&f.data.store).expect("load"),
            VoiceSettings {
                transfer_number: Some("+14155550100".into()),
                voice: "Polly.Joanna".into(),
                recording: true,
            }
        );
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/settings")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        let body = String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8");
        assert!(body.contains("value=\"+14155550100\""), "{body}");
        assert!(body.contains("name=\"recording\" checked"), "{body}");
    }
}
