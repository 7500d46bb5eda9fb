//! Console page: Settings → Phone numbers. Lists the Twilio account's numbers and assigns
//! one to an agent, which points its voice, SMS and status webhooks at this node
//! (`web::channels::numbers`). Needs the `settings` scope.

use super::access::Nav;
use super::flash::{see_other_done, Done};
use super::{render, ConsoleError, ConsoleSession, WriteSession};
use crate::web::channels::numbers::number_agents;
use crate::web::channels::Channels;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

struct Row {
    sid: String,
    phone_number: String,
    friendly_name: String,
    /// The agent answering it, if assigned from this node.
    agent: Option<String>,
    /// Whether its webhooks point at this node.
    here: bool,
}

#[derive(Template)]
#[template(path = "telephony.html")]
struct TelephonyPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    rows: Vec<Row>,
    agents: Vec<(String, String)>,
    /// Why the numbers could not be listed.
    error: Option<String>,
}

/// The channels are absent only from console-only test apps: said, not a 500.
fn running(channels: Option<web::Data<Channels>>) -> Result<web::Data<Channels>, ConsoleError> {
    channels
        .ok_or_else(|| ConsoleError::BadRequest("Channels are not running on this node.".into()))
}

async fn page(
    channels: Option<web::Data<Channels>>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    let channels = running(channels)?;
    let agents = channels
        .agent_names()
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("reading the agents: {e}")))?;
    let assigned = number_agents(channels.store());
    let public = channels.public_url().to_owned();
    let (rows, error) = match channels.twilio_numbers().await {
        Ok(numbers) => (
            numbers
                .into_iter()
                .map(|n| Row {
                    agent: assigned.get(&n.phone_number).map(|id| {
                        agents
                            .iter()
                            .find(|(a, _)| a == id)
                            .map_or_else(|| id.clone(), |(_, name)| name.clone())
                    }),
                    here: n
                        .voice_url
                        .as_deref()
                        .is_some_and(|u| u.starts_with(&public)),
                    sid: n.sid,
                    phone_number: n.phone_number,
                    friendly_name: n.friendly_name,
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    render(&TelephonyPage {
        nav: Nav::for_session(&session),
        rows,
        agents,
        error,
    })
}

#[derive(Deserialize)]
struct AssignForm {
    number_sid: String,
    agent_id: String,
}

async fn assign(
    channels: Option<web::Data<Channels>>,
    session: WriteSession,
    form: web::Form<AssignForm>,
) -> Result<HttpResponse, ConsoleError> {
    let channels = running(channels)?;
    let f = form.into_inner();
    channels
        .assign_number(f.number_sid.trim(), f.agent_id.trim())
        .await
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    tracing::info!(user = %session.user_id, "phone number assigned");
    Ok(see_other_done("/settings/telephony", Done::Saved))
}

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings/telephony", web::get().to(page))
        .route("/settings/telephony/assign", web::post().to(assign));
}

#[cfg(test)]
mod tests {
    use crate::domain::secrets::SecretKind;
    use crate::web::channels::numbers::tests::{fake_twilio, NUMBER, PN, SID, TOKEN};
    use crate::web::channels::testkit::kit;
    use crate::web::channels::ChannelUrls;
    use crate::web::console::tests::{fixture, session_with};
    use crate::web::console::{routes, security_headers};
    use actix_web::{http::StatusCode, test as at, web, App};

    #[actix_web::test]
    async fn the_page_lists_the_accounts_numbers_and_assigns_one() {
        let twilio = fake_twilio().await;
        let k = kit(ChannelUrls {
            telegram: "http://127.0.0.1:9".into(),
            graph: "http://127.0.0.1:9".into(),
            twilio: twilio.uri(),
        });
        let f = fixture();
        let app = at::init_service(
            App::new()
                .app_data(f.data.clone())
                .app_data(web::Data::from(k.channels.clone()))
                .wrap(security_headers())
                .configure(routes),
        )
        .await;
        let cookie = session_with(&f, &["console", "settings"]);
        let get = || {
            at::TestRequest::get()
                .uri("/settings/telephony")
                .cookie(cookie.clone())
                .to_request()
        };
        let body = at::read_body(at::call_service(&app, get()).await).await;
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("Save the Twilio auth token"), "{body}");

        k.put(SecretKind::TwilioAccountSid, SID);
        k.put(SecretKind::TwilioAuthToken, TOKEN);
        let body = at::read_body(at::call_service(&app, get()).await).await;
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(NUMBER) && body.contains("Front desk"),
            "{body}"
        );
        assert!(body.contains("not assigned"), "{body}");
        let r = at::call_service(
            &app,
            at::TestRequest::post()
                .uri("/settings/telephony/assign")
                .insert_header(("origin", "http://acme-dental.localhost:40123"))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .cookie(cookie.clone())
                .set_payload(format!("number_sid={PN}&agent_id=a1"))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let body = at::read_body(at::call_service(&app, get()).await).await;
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("<td>Ava"),
            "answered by the kit's agent: {body}"
        );
        assert!(!body.contains("not assigned"), "{body}");
    }
}
