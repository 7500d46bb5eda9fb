//! A whole call in TwiML against the node's handlers, signed by the test's own signer
//! (Twilio's scheme written with `ring` here, not the node's code).

use super::super::testkit::{
    configure_voice, contains, kit, status_and_body, twilio_request, Kit, VoiceAgent,
};
use super::super::{routes, ChannelUrls};
use super::*;
use actix_web::test as at;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "canary-voice-auth-token-3c77";
const CALLER: &str = "+14155550199";
const STAFF: &str = "+14155550100";
const PUBLIC: &str = "http://acme.localhost:1";
const CALL: &str = "CA00000000000000000000000000000001";

fn twilio_sign(url: &str, params: &[(&str, &str)]) -> String {
    super::super::testkit::twilio_sign(TOKEN, url, params)
}

/// The kit's agent, open around the clock (or never), answering calls in French.
fn configure(k: &Kit, open: bool) {
    let agent = VoiceAgent {
        language: "fr",
        greeting: Some("Welcome to Acme Dental, this is Ava."),
        open,
    };
    let settings = VoiceSettings {
        transfer_number: Some(STAFF.into()),
        voice: "Polly.Lea".into(),
        recording: true,
    };
    configure_voice(k, (SID, TOKEN), agent, settings);
}

macro_rules! app {
    ($k:expr) => {
        at::init_service(
            actix_web::App::new()
                .app_data(web::Data::from($k.channels.clone()))
                .configure(routes),
        )
        .await
    };
}

/// Posts a Twilio voice request to `uri`, signed unless `sign` is false; (status, body).
macro_rules! call {
    ($app:expr, $uri:expr, $params:expr) => {
        call!($app, $uri, $params, true)
    };
    ($app:expr, $uri:expr, $params:expr, $sign:expr) => {{
        let params: Vec<(&str, &str)> = $params;
        let sig = $sign.then(|| twilio_sign(&format!("{PUBLIC}{}", $uri), &params));
        let req = twilio_request($uri, &params, sig);
        status_and_body(at::call_service(&$app, req.to_request()).await).await
    }};
}

fn base(status: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", CALL),
        ("CallStatus", status),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", "+15005550006"),
    ]
}

fn with(
    mut p: Vec<(&'static str, &'static str)>,
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    p.extend_from_slice(extra);
    p
}

fn calls(k: &Kit) -> Vec<(String, Option<i64>, Option<i64>)> {
    k.store
        .with(|c| {
            let mut s = c.prepare("SELECT status, ended_at, duration_secs FROM calls")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .expect("calls")
}

#[actix_web::test]
async fn a_call_is_greeted_answered_from_the_kb_and_transferred_to_staff() {
    let k = kit(ChannelUrls::default());
    configure(&k, true);
    let app = app!(k);

    // The call comes in: the recording notice, the greeting, then listening in French.
    let (status, xml) = call!(app, "/channels/twilio/voice", base("ringing"));
    assert_eq!(status, 200);
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#),
        "{xml}"
    );
    let notice = xml
        .find("This call may be recorded.")
        .expect("recording notice");
    let greeting = xml
        .find("Welcome to Acme Dental, this is Ava.")
        .expect("greeting");
    assert!(notice < greeting);
    assert!(
        xml.contains(r#"<Say voice="Polly.Lea" language="fr-FR">"#),
        "{xml}"
    );
    assert!(
        xml.contains(&format!(
            r#"<Gather input="speech" speechTimeout="auto" language="fr-FR" method="POST" action="{PUBLIC}/channels/twilio/voice/gather?turn=1">"#
        )),
        "{xml}"
    );
    // Silence after the greeting goes to the team.
    assert!(xml.contains(&format!(">{STAFF}</Dial>")), "{xml}");
    // Twilio retries the start: one call, one conversation.
    assert_eq!(call!(app, "/channels/twilio/voice", base("ringing")).0, 200);
    assert_eq!(calls(&k).len(), 1);

    // A speech turn is answered from the knowledge base and listened to again.
    let turn1 = with(
        base("in-progress"),
        &[
            ("SpeechResult", "What are your opening hours?"),
            ("Confidence", "0.93"),
        ],
    );
    let (status, xml) = call!(app, "/channels/twilio/voice/gather?turn=1", turn1.clone());
    assert_eq!(status, 200);
    assert!(xml.contains("Monday to Friday"), "{xml}");
    assert!(xml.contains("voice/gather?turn=2"), "{xml}");
    // A retried turn gets the same answer, stored once.
    let before = k.message_count();
    let (_, again) = call!(app, "/channels/twilio/voice/gather?turn=1", turn1);
    assert!(again.contains("Monday to Friday"), "{again}");
    assert_eq!(k.message_count(), before);

    // The caller asks for a person: the handoff words, then the staff number is dialled.
    let turn2 = with(
        base("in-progress"),
        &[
            ("SpeechResult", "I want to talk to a person"),
            ("Confidence", "0.9"),
        ],
    );
    let (_, xml) = call!(app, "/channels/twilio/voice/gather?turn=2", turn2);
    assert!(xml.contains(&format!(">{STAFF}</Dial>")), "{xml}");
    assert!(!xml.contains("<Gather"), "{xml}");

    // The call ends: status and duration recorded.
    let done = with(base("completed"), &[("CallDuration", "73")]);
    assert_eq!(call!(app, "/channels/twilio/voice/status", done).0, 204);
    let rows = calls(&k);
    assert_eq!(rows[0].0, "completed");
    assert_eq!(rows[0].2, Some(73));
    assert!(rows[0].1.is_some());

    // The transcript is a conversation on channel voice, sealed like every message.
    let conv: String = k
        .store
        .with(|c| Ok(c.query_row("SELECT conversation_id FROM calls", [], |r| r.get(0))?))
        .expect("conv");
    let content = k.channels.runtime.content();
    let convo = content.conversation(&conv).expect("read").expect("conv");
    assert_eq!(convo.channel, "voice");
    let msgs = content.recent_messages(&conv, 20).expect("messages");
    let bodies: Vec<&str> = msgs.iter().map(|m| m.body.as_str()).collect();
    assert!(
        bodies.contains(&"What are your opening hours?"),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| b.contains("transferred")),
        "{bodies:?}"
    );
    assert_eq!(calls_of(&k.store, &conv).expect("log").len(), 1);
    let db = k.db_bytes();
    for canary in ["opening hours", CALLER, TOKEN] {
        assert!(!contains(&db, canary), "{canary} in clear in node.db");
    }

    // Erasing the contact erases the call.
    content
        .erase_contact(&convo.contact_id, "test")
        .expect("erase");
    assert!(calls(&k).is_empty());
}

#[actix_web::test]
async fn after_hours_the_caller_hears_the_hours_and_nobody_is_dialled() {
    let k = kit(ChannelUrls::default());
    configure(&k, false);
    let app = app!(k);
    let (_, xml) = call!(app, "/channels/twilio/voice", base("ringing"));
    assert!(xml.contains("not available right now"), "{xml}");
    assert!(!xml.contains("<Dial"), "{xml}");
    let turn = with(
        base("in-progress"),
        &[("SpeechResult", "talk to a human please")],
    );
    let (_, xml) = call!(app, "/channels/twilio/voice/gather?turn=1", turn);
    assert!(!xml.contains("<Dial"), "{xml}");
    assert!(
        xml.contains("<Record "),
        "the caller may leave a message: {xml}"
    );
}

#[actix_web::test]
async fn unsigned_or_wrongly_signed_calls_are_refused_and_nothing_is_stored() {
    let k = kit(ChannelUrls::default());
    configure(&k, true);
    let app = app!(k);
    assert_eq!(
        call!(app, "/channels/twilio/voice", base("ringing"), false).0,
        403
    );
    let turn = with(base("in-progress"), &[("SpeechResult", "hello")]);
    assert_eq!(
        call!(app, "/channels/twilio/voice/gather?turn=1", turn, false).0,
        403
    );
    assert_eq!(
        call!(
            app,
            "/channels/twilio/voice/status",
            base("completed"),
            false
        )
        .0,
        403
    );
    // Signed for turn 1, sent as turn 2: the query is part of what Twilio signs.
    let p = with(base("in-progress"), &[("SpeechResult", "hello")]);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(p.iter())
        .finish();
    let req = at::TestRequest::post()
        .uri("/channels/twilio/voice/gather?turn=2")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .insert_header((
            "X-Twilio-Signature",
            twilio_sign(&format!("{PUBLIC}/channels/twilio/voice/gather?turn=1"), &p),
        ))
        .set_payload(body)
        .to_request();
    assert_eq!(at::call_service(&app, req).await.status(), 403);
    assert_eq!(k.message_count(), 0);
    assert!(calls(&k).is_empty());
}
