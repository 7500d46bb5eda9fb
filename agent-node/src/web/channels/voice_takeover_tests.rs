//! Taking over a live call against a fake Twilio (wiremock, checking the basic
//! credentials), with the call's webhooks signed by the test's own signer.

use super::super::routes;
use super::super::testkit::{
    configure_voice, status_and_body, twilio_kit, twilio_request, Kit, VoiceAgent,
};
use super::*;
use crate::domain::content::ConversationStatus;
use actix_web::{test as at, web};
use base64::Engine as _;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "canary-takeover-auth-token-91e0";
const CALLER: &str = "+14155550199";
const STAFF: &str = "+14155550100";
const PUBLIC: &str = "http://acme.localhost:1";
const CALL: &str = "CA00000000000000000000000000000007";

fn sign(url: &str, params: &[(&str, &str)]) -> String {
    super::super::testkit::twilio_sign(TOKEN, url, params)
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
    )
}

fn redirect_path() -> String {
    format!("/2010-04-01/Accounts/{SID}/Calls/{CALL}.json")
}

/// A kit whose Twilio is `twilio`, with the credentials, a voice agent open around the
/// clock and a staff number.
fn configured(twilio: &MockServer) -> Kit {
    configured_at(&twilio.uri())
}

fn configured_at(twilio: &str) -> Kit {
    let k = twilio_kit(twilio);
    let agent = VoiceAgent {
        language: "en",
        greeting: None,
        open: true,
    };
    let settings = VoiceSettings {
        transfer_number: Some(STAFF.into()),
        voice: "Polly.Joanna".into(),
        recording: false,
    };
    configure_voice(&k, (SID, TOKEN), agent, settings);
    k
}

/// Plays Twilio: posts a signed voice webhook; (status, body).
macro_rules! twilio_posts {
    ($app:expr, $uri:expr, $extra:expr $(,)?) => {{
        let mut params: Vec<(&str, &str)> = vec![
            ("AccountSid", SID),
            ("CallSid", CALL),
            ("From", CALLER),
            ("To", "+15005550006"),
        ];
        params.extend_from_slice($extra);
        let sig = sign(&format!("{PUBLIC}{}", $uri), &params);
        let req = twilio_request($uri, &params, Some(sig));
        status_and_body(at::call_service(&$app, req.to_request()).await).await
    }};
}

fn conversation(k: &Kit) -> String {
    k.store
        .with(|c| Ok(c.query_row("SELECT conversation_id FROM calls", [], |r| r.get(0))?))
        .expect("conversation")
}

fn status(k: &Kit, conv: &str) -> ConversationStatus {
    k.channels
        .runtime
        .content()
        .conversation(conv)
        .expect("read")
        .expect("conv")
        .status
}

#[actix_web::test]
async fn taking_a_live_call_redirects_it_to_staff_and_the_assistant_stops() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(redirect_path()))
        .and(header("authorization", basic().as_str()))
        .and(body_string_contains("Twiml="))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "sid": CALL, "status": "in-progress"
        })))
        .expect(1)
        .mount(&twilio)
        .await;
    let k = configured(&twilio);
    let app = at::init_service(
        actix_web::App::new()
            .app_data(web::Data::from(k.channels.clone()))
            .configure(routes),
    )
    .await;
    let (code, _) = twilio_posts!(app, "/channels/twilio/voice", &[("CallStatus", "ringing")]);
    assert_eq!(code, 200);
    let conv = conversation(&k);
    let calls = call_states(&k.store, &conv).expect("calls");
    assert!(calls[0].live, "{calls:?}");

    k.channels
        .take_over_call(&conv, "u-staff")
        .await
        .expect("taken over");

    // Twilio got the new TwiML: a word to the caller, then the staff number.
    let sent = twilio.received_requests().await.expect("requests");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&sent[0].body)
        .into_owned()
        .collect();
    assert_eq!(form.len(), 1, "{form:?}");
    assert_eq!(form[0].0, "Twiml");
    let twiml = &form[0].1;
    assert!(twiml.starts_with("<Response><Say"), "{twiml}");
    assert!(twiml.contains(r#"voice="Polly.Joanna""#), "{twiml}");
    assert!(
        twiml.contains(&format!(
            r#"<Dial timeout="25" method="POST" action="{PUBLIC}/channels/twilio/voice/dialed">{STAFF}</Dial>"#
        )),
        "{twiml}"
    );
    // Handed over like a chat: status, a timeline line in the transcript.
    assert_eq!(status(&k, &conv), ConversationStatus::Human);
    let content = k.channels.runtime.content();
    let bodies: Vec<String> = content
        .recent_messages(&conv, 20)
        .expect("messages")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("A team member took the call")),
        "{bodies:?}"
    );
    let calls = call_states(&k.store, &conv).expect("calls");
    assert!(
        !calls[0].live && calls[0].taken_over_at.is_some(),
        "{calls:?}"
    );

    // A gather step still in flight is not answered by the assistant.
    let agents_before = agent_messages(&k, &conv);
    let (code, xml) = twilio_posts!(
        app,
        "/channels/twilio/voice/gather?turn=1",
        &[
            ("CallStatus", "in-progress"),
            ("SpeechResult", "What are your opening hours?")
        ],
    );
    assert_eq!(code, 200);
    assert!(!xml.contains("Monday to Friday"), "{xml}");
    assert!(!xml.contains("<Gather"), "{xml}");
    assert_eq!(agent_messages(&k, &conv), agents_before);

    // Taking it again: nothing live any more, said in words, Twilio not called again.
    let again = k.channels.take_over_call(&conv, "u-staff").await;
    assert!(matches!(again, Err(TakeoverError::Ended)), "{again:?}");
}

fn agent_messages(k: &Kit, conv: &str) -> usize {
    k.channels
        .runtime
        .content()
        .recent_messages(conv, 50)
        .expect("messages")
        .iter()
        .filter(|m| m.author == Author::Agent)
        .count()
}

#[actix_web::test]
async fn a_refusal_an_outage_or_an_ended_call_is_said_and_changes_nothing() {
    let twilio = MockServer::start().await;
    let k = configured(&twilio);
    let app = at::init_service(
        actix_web::App::new()
            .app_data(web::Data::from(k.channels.clone()))
            .configure(routes),
    )
    .await;
    twilio_posts!(app, "/channels/twilio/voice", &[("CallStatus", "ringing")]);
    let conv = conversation(&k);

    // Twilio down: the assistant keeps the call.
    let down = Mock::given(method("POST"))
        .and(path(redirect_path()))
        .respond_with(ResponseTemplate::new(503))
        .mount_as_scoped(&twilio)
        .await;
    let r = k.channels.take_over_call(&conv, "u-staff").await;
    assert!(matches!(r, Err(TakeoverError::Unreachable)), "{r:?}");
    assert_eq!(status(&k, &conv), ConversationStatus::Open);
    assert!(call_states(&k.store, &conv).expect("calls")[0].live);
    drop(down);

    // Twilio says the call is no longer in progress: ended, in words.
    let gone = Mock::given(method("POST"))
        .and(path(redirect_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21220, "message": "Call is not in-progress. Cannot redirect.", "status": 400
        })))
        .mount_as_scoped(&twilio)
        .await;
    let r = k.channels.take_over_call(&conv, "u-staff").await;
    assert!(matches!(r, Err(TakeoverError::Ended)), "{r:?}");
    assert_eq!(
        r.expect_err("ended").to_string(),
        "This call has already ended: there is nothing to take over."
    );
    assert_eq!(status(&k, &conv), ConversationStatus::Open);
    drop(gone);

    // Credentials refused.
    let refused = Mock::given(method("POST"))
        .and(path(redirect_path()))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "code": 20003, "message": "Authenticate", "status": 401
        })))
        .mount_as_scoped(&twilio)
        .await;
    let r = k.channels.take_over_call(&conv, "u-staff").await;
    assert!(matches!(r, Err(TakeoverError::Refused)), "{r:?}");
    assert_eq!(status(&k, &conv), ConversationStatus::Open);
    drop(refused);
    let asked = twilio.received_requests().await.expect("requests").len();
    assert_eq!(asked, 3);

    // The call ends: the node no longer offers it, and does not ask Twilio.
    let (code, _) = twilio_posts!(
        app,
        "/channels/twilio/voice/status",
        &[("CallStatus", "completed"), ("CallDuration", "31")],
    );
    assert_eq!(code, 204);
    let calls = call_states(&k.store, &conv).expect("calls");
    assert!(!calls[0].live && calls[0].ended, "{calls:?}");
    let sid_kept: Option<String> = k
        .store
        .with(|c| Ok(c.query_row("SELECT call_sid FROM calls", [], |r| r.get(0))?))
        .expect("sid");
    assert_eq!(sid_kept, None, "the CallSid is dropped once the call ended");
    let r = k.channels.take_over_call(&conv, "u-staff").await;
    assert!(matches!(r, Err(TakeoverError::Ended)), "{r:?}");
    assert_eq!(
        twilio.received_requests().await.expect("requests").len(),
        asked
    );
}

/// The inbox page of a live call, as a team member with the inbox uses it.
#[actix_web::test]
async fn the_inbox_offers_a_live_call_and_says_why_it_could_not_be_taken() {
    use crate::web::console::tests::{fixture_on, session_with};
    use crate::web::console::{routes as console_routes, security_headers};
    let twilio = MockServer::start().await;
    let k = configured(&twilio);
    let channels_app = at::init_service(
        actix_web::App::new()
            .app_data(web::Data::from(k.channels.clone()))
            .configure(routes),
    )
    .await;
    twilio_posts!(
        channels_app,
        "/channels/twilio/voice",
        &[("CallStatus", "in-progress")]
    );
    let conv = conversation(&k);
    let f = fixture_on(
        tempfile::tempdir().expect("tempdir"),
        k.store.clone(),
        std::sync::Arc::new(crate::platform::keys::MasterKey::from_bytes([11; 32])),
    );
    let app = at::init_service(
        actix_web::App::new()
            .app_data(f.data.clone())
            .app_data(web::Data::from(k.channels.clone()))
            .wrap(security_headers())
            .configure(console_routes),
    )
    .await;
    let member = session_with(&f, &["console", "inbox"]);
    let page = |cookie: actix_web::cookie::Cookie<'static>| {
        at::TestRequest::get()
            .uri(&format!("/inbox/{conv}"))
            .cookie(cookie)
            .to_request()
    };
    let take = |cookie: actix_web::cookie::Cookie<'static>| {
        at::TestRequest::post()
            .uri(&format!("/inbox/{conv}/call/takeover"))
            .insert_header(("origin", "http://acme-dental.localhost:40123"))
            .cookie(cookie)
            .to_request()
    };
    let body = |r| async move { String::from_utf8_lossy(&at::read_body(r).await).into_owned() };

    let shown = body(at::call_service(&app, page(member.clone())).await).await;
    assert!(shown.contains("Take this call"), "{shown}");
    assert!(shown.contains("In progress"), "{shown}");
    // A typed reply could never reach a caller: the page offers no reply box, and a
    // reply posted anyway is refused in words and stored nowhere.
    assert!(shown.contains(r#"id="call-reply""#), "{shown}");
    assert!(!shown.contains(r#"id="reply-text""#), "{shown}");
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!("/inbox/{conv}/reply"))
            .insert_header(("origin", "http://acme-dental.localhost:40123"))
            .cookie(member.clone())
            .set_form([("text", "typed-reply-canary")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 400);
    let said = body(r).await;
    assert!(
        said.contains("a typed reply cannot reach the caller"),
        "{said}"
    );
    let shown = body(at::call_service(&app, page(member.clone())).await).await;
    assert!(!shown.contains("typed-reply-canary"), "{shown}");
    assert_eq!(status(&k, &conv), ConversationStatus::Open);

    // Without the inbox scope: refused.
    let stranger = session_with(&f, &["console"]);
    assert_eq!(at::call_service(&app, take(stranger)).await.status(), 403);

    // Twilio says the call is over: said in words, nothing changed.
    let gone = Mock::given(method("POST"))
        .and(path(redirect_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21220, "message": "Call is not in-progress. Cannot redirect.", "status": 400
        })))
        .mount_as_scoped(&twilio)
        .await;
    let r = at::call_service(&app, take(member.clone())).await;
    assert_eq!(r.status(), 400);
    let said = body(r).await;
    assert!(said.contains("This call has already ended"), "{said}");
    assert_eq!(status(&k, &conv), ConversationStatus::Open);
    drop(gone);

    // Twilio accepts: back to the page, which says the call is with the team and offers
    // neither the call nor a hand back.
    Mock::given(method("POST"))
        .and(path(redirect_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "sid": CALL, "status": "in-progress"
        })))
        .mount(&twilio)
        .await;
    let r = at::call_service(&app, take(member.clone())).await;
    assert_eq!(r.status(), 303);
    let shown = body(at::call_service(&app, page(member.clone())).await).await;
    assert!(shown.contains(r#"id="call-taken""#), "{shown}");
    assert!(shown.contains("cannot be handed back"), "{shown}");
    assert!(!shown.contains("Take this call"), "{shown}");
    assert!(!shown.contains("Hand back to the assistant"), "{shown}");
}

#[actix_web::test]
async fn a_twilio_nobody_answers_for_is_said_and_the_assistant_keeps_the_call() {
    // Nothing listens on the discard port.
    let k = configured_at("http://127.0.0.1:9");
    let app = at::init_service(
        actix_web::App::new()
            .app_data(web::Data::from(k.channels.clone()))
            .configure(routes),
    )
    .await;
    twilio_posts!(app, "/channels/twilio/voice", &[("CallStatus", "ringing")]);
    let conv = conversation(&k);
    let r = k.channels.take_over_call(&conv, "u-staff").await;
    assert!(matches!(r, Err(TakeoverError::Unreachable)), "{r:?}");
    assert_eq!(status(&k, &conv), ConversationStatus::Open);
    assert!(call_states(&k.store, &conv).expect("calls")[0].live);
}
