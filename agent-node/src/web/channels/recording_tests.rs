//! Recordings and voicemails against a fake Twilio (wiremock, checking the account's
//! basic auth itself), with callbacks signed by the test's own signer (Twilio's scheme
//! written with `ring` here, not the node's code).

use super::super::routes;
use super::super::testkit::{
    configure_voice, contains, status_and_body, twilio_kit, twilio_request, Kit, VoiceAgent,
};
use super::super::voice::VoiceSettings;
use super::*;
use actix_web::test as at;
use wiremock::matchers::{basic_auth, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "canary-recording-auth-token-91f2";
const CALLER: &str = "+14155550177";
const PUBLIC: &str = "http://acme.localhost:1";
const CALL: &str = "CA00000000000000000000000000000077";
const REC: &str = "RE00000000000000000000000000000077";
/// The bytes of the fake recording: must never be in node.db in clear.
const AUDIO: &[u8] = b"ID3\x04CANARY-RECORDED-VOICE-5d1e the caller's words";

fn twilio_sign(url: &str, params: &[(&str, &str)]) -> String {
    super::super::testkit::twilio_sign(TOKEN, url, params)
}

/// A kit whose Twilio API is `twilio`, its agent open around the clock (or never).
fn configured(twilio: &str, open: bool, recording: bool) -> Kit {
    let k = twilio_kit(twilio);
    let agent = VoiceAgent {
        language: "en",
        greeting: None,
        open,
    };
    let settings = VoiceSettings {
        transfer_number: Some("+14155550100".into()),
        voice: String::new(),
        recording,
    };
    configure_voice(&k, (SID, TOKEN), agent, settings);
    k
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

/// Posts a Twilio request to `uri`, signed unless `sign` is false; (status, body).
macro_rules! post {
    ($app:expr, $uri:expr, $params:expr) => {
        post!($app, $uri, $params, true)
    };
    ($app:expr, $uri:expr, $params:expr, $sign:expr) => {{
        let params: Vec<(&str, &str)> = $params;
        // "Unsigned" here is a signature Twilio made for another address.
        let signed_for = if $sign {
            $uri
        } else {
            "/channels/twilio/voice/status"
        };
        let sig = twilio_sign(&format!("{PUBLIC}{signed_for}"), &params);
        let req = twilio_request($uri, &params, Some(sig));
        status_and_body(at::call_service(&$app, req.to_request()).await).await
    }};
}

fn call_params(status: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("AccountSid", SID),
        ("CallSid", CALL),
        ("CallStatus", status),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", "+15005550006"),
    ]
}

fn recording_params(duration: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("AccountSid", SID),
        ("CallSid", CALL),
        ("RecordingSid", REC),
        (
            "RecordingUrl",
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Recordings/RE00000000000000000000000000000077",
        ),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", duration),
        ("RecordingChannels", "1"),
        ("RecordingSource", "StartCallRecordingAPI"),
    ]
}

/// The fake Twilio's recording file, served only with the account's basic auth.
async fn serve_recording(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(format!(
            "/2010-04-01/Accounts/{SID}/Recordings/{REC}.mp3"
        )))
        .and(basic_auth(SID, TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Type", "audio/mpeg")
                .set_body_bytes(AUDIO),
        )
        .expect(1)
        .mount(server)
        .await;
}

fn delete_path() -> String {
    format!("/2010-04-01/Accounts/{SID}/Recordings/{REC}.json")
}

fn the_conversation(k: &Kit) -> String {
    k.store
        .with(|c| Ok(c.query_row("SELECT conversation_id FROM calls", [], |r| r.get(0))?))
        .expect("conversation")
}

fn media_rows(k: &Kit) -> i64 {
    k.store
        .with(|c| Ok(c.query_row("SELECT COUNT(*) FROM message_media", [], |r| r.get(0))?))
        .expect("count")
}

#[actix_web::test]
async fn a_recording_is_downloaded_sealed_deleted_at_twilio_and_erased_with_the_contact() {
    let twilio = MockServer::start().await;
    serve_recording(&twilio).await;
    Mock::given(method("DELETE"))
        .and(path(delete_path()))
        .and(basic_auth(SID, TOKEN))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&twilio)
        .await;
    let k = configured(&twilio.uri(), true, true);
    let app = app!(k);

    // The notice, then the whole call is recorded with the node as the callback.
    let (_, xml) = post!(app, "/channels/twilio/voice", call_params("ringing"));
    let notice = xml.find("This call may be recorded.").expect("notice");
    let start = xml
        .find(&format!(
            r#"<Start><Recording recordingStatusCallback="{PUBLIC}/channels/twilio/voice/recording" recordingStatusCallbackMethod="POST" recordingStatusCallbackEvent="completed"/></Start>"#
        ))
        .expect("recording started");
    assert!(notice < start, "{xml}");

    let (status, _) = post!(
        app,
        "/channels/twilio/voice/recording",
        recording_params("65")
    );
    assert_eq!(status, 204);
    // Twilio sends the callback again: stored once, downloaded and deleted once.
    let (status, _) = post!(
        app,
        "/channels/twilio/voice/recording",
        recording_params("65")
    );
    assert_eq!(status, 204);

    let conv = the_conversation(&k);
    let content = k.channels.runtime.content();
    let msgs = content.recent_messages(&conv, 20).expect("messages");
    let line = msgs
        .iter()
        .find(|m| m.body == "Call recording (1:05)")
        .expect("the recording's line");
    assert_eq!(line.author, Author::System);
    let file = content.media(line.id).expect("open").expect("stored");
    assert_eq!(file.data, AUDIO);
    assert_eq!(file.info.kind, RECORDING_KIND);
    assert_eq!(file.info.content_type, "audio/mpeg");
    assert_eq!(media_rows(&k), 1);
    // Encrypted at rest, and nothing left to delete at Twilio.
    assert!(!contains(&k.db_bytes(), "CANARY-RECORDED-VOICE-5d1e"));
    assert!(pending_deletions(&k.store, &conv)
        .expect("pending")
        .is_empty());

    // Erasing the contact erases the recording.
    let contact = content.conversation(&conv).expect("read").expect("conv");
    content
        .erase_contact(&contact.contact_id, "test")
        .expect("erase");
    assert_eq!(media_rows(&k), 0);
    twilio.verify().await;
}

#[actix_web::test]
async fn a_failed_deletion_at_twilio_is_shown_and_retried_until_it_succeeds() {
    let twilio = MockServer::start().await;
    serve_recording(&twilio).await;
    Mock::given(method("DELETE"))
        .and(path(delete_path()))
        .and(basic_auth(SID, TOKEN))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&twilio)
        .await;
    Mock::given(method("DELETE"))
        .and(path(delete_path()))
        .and(basic_auth(SID, TOKEN))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&twilio)
        .await;
    let k = configured(&twilio.uri(), true, true);
    let app = app!(k);
    post!(app, "/channels/twilio/voice", call_params("ringing"));
    let (status, _) = post!(
        app,
        "/channels/twilio/voice/recording",
        recording_params("7")
    );
    assert_eq!(status, 204, "the file is kept even if Twilio still has it");
    let conv = the_conversation(&k);
    let pending = pending_deletions(&k.store, &conv).expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("http_500"));
    // Not due yet: nothing is tried.
    assert_eq!(
        k.channels.retry_recording_deletions().await.expect("retry"),
        0
    );
    // Once due, the deletion is tried again and the row goes.
    k.store
        .with(|c| {
            c.execute(
                "UPDATE twilio_recording_deletions SET next_attempt_at = 0",
                [],
            )?;
            Ok(())
        })
        .expect("due");
    assert_eq!(
        k.channels.retry_recording_deletions().await.expect("retry"),
        1
    );
    assert!(pending_deletions(&k.store, &conv)
        .expect("pending")
        .is_empty());
    assert_eq!(media_rows(&k), 1);
    twilio.verify().await;
}

#[actix_web::test]
async fn a_wrongly_signed_recording_callback_is_refused_and_nothing_is_fetched_or_stored() {
    let twilio = MockServer::start().await;
    let k = configured(&twilio.uri(), true, true);
    let app = app!(k);
    post!(app, "/channels/twilio/voice", call_params("ringing"));
    let (status, _) = post!(
        app,
        "/channels/twilio/voice/recording",
        recording_params("65"),
        false
    );
    assert_eq!(status, 403);
    let req = at::TestRequest::post()
        .uri("/channels/twilio/voice/recording")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload("CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed")
        .to_request();
    assert_eq!(at::call_service(&app, req).await.status(), 403);
    assert_eq!(media_rows(&k), 0);
    assert!(twilio
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
    let left: i64 = k
        .store
        .with(|c| {
            Ok(
                c.query_row("SELECT COUNT(*) FROM twilio_recording_deletions", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .expect("count");
    assert_eq!(left, 0);
}

#[actix_web::test]
async fn after_hours_a_caller_leaves_a_voicemail_that_waits_for_the_team() {
    let twilio = MockServer::start().await;
    serve_recording(&twilio).await;
    Mock::given(method("DELETE"))
        .and(path(delete_path()))
        .and(basic_auth(SID, TOKEN))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&twilio)
        .await;
    let k = configured(&twilio.uri(), false, false);
    let app = app!(k);
    let (_, xml) = post!(app, "/channels/twilio/voice", call_params("ringing"));
    assert!(!xml.contains("<Start>"), "not recorded when off: {xml}");
    assert!(xml.contains("not available right now"), "{xml}");
    assert!(
        xml.contains(&format!(
            r#"<Record maxLength="120" playBeep="true" method="POST" action="{PUBLIC}/channels/twilio/voice/voicemail" recordingStatusCallback="{PUBLIC}/channels/twilio/voice/recording?kind=voicemail""#
        )),
        "{xml}"
    );
    let mut left = call_params("in-progress");
    left.extend([("RecordingSid", REC), ("RecordingDuration", "42")]);
    let (status, xml) = post!(app, "/channels/twilio/voice/voicemail", left);
    assert_eq!(status, 200);
    assert!(xml.contains("<Hangup/>"), "{xml}");

    let (status, _) = post!(
        app,
        "/channels/twilio/voice/recording?kind=voicemail",
        recording_params("42")
    );
    assert_eq!(status, 204);
    let conv = the_conversation(&k);
    let content = k.channels.runtime.content();
    let msgs = content.recent_messages(&conv, 20).expect("messages");
    let line = msgs
        .iter()
        .find(|m| m.body == "Voicemail (0:42)")
        .expect("the voicemail's line");
    assert_eq!(line.author, Author::Contact);
    let file = content.media(line.id).expect("open").expect("stored");
    assert_eq!(file.info.kind, VOICEMAIL_KIND);
    let convo = content.conversation(&conv).expect("read").expect("conv");
    assert!(
        convo.waiting_since.is_some(),
        "the team is asked to call back"
    );
    assert_eq!(convo.status, ConversationStatus::Human);
    twilio.verify().await;
}

#[actix_web::test]
async fn a_transfer_nobody_takes_offers_the_voicemail() {
    let k = configured("http://127.0.0.1:9", true, false);
    let app = app!(k);
    let (_, xml) = post!(app, "/channels/twilio/voice", call_params("ringing"));
    assert!(
        xml.contains(&format!(
            r#"<Dial timeout="25" method="POST" action="{PUBLIC}/channels/twilio/voice/dialed">+14155550100</Dial>"#
        )),
        "{xml}"
    );
    for status in ["no-answer", "busy", "failed"] {
        let mut p = call_params("in-progress");
        p.push(("DialCallStatus", status));
        let (code, xml) = post!(app, "/channels/twilio/voice/dialed", p);
        assert_eq!(code, 200);
        assert!(xml.contains("Nobody from the team"), "{status}: {xml}");
        assert!(xml.contains("<Record "), "{status}: {xml}");
    }
    let mut p = call_params("completed");
    p.push(("DialCallStatus", "completed"));
    let (_, xml) = post!(app, "/channels/twilio/voice/dialed", p);
    assert!(!xml.contains("<Record"), "{xml}");
    assert!(xml.contains("<Hangup/>"), "{xml}");
}
