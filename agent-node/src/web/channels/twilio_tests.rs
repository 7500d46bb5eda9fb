//! Twilio's signature with its published example, and SMS through a fake Messages API.
//! Webhooks are signed here by [`twilio_sign`], written with `ring` and `base64` directly
//! from Twilio's description, not with the node's code.

use super::super::testkit::{
    contains, deliver_until, kit, status_and_body, twilio_request, twilio_sign, Kit,
};
use super::super::{routes, ChannelUrls};
use super::*;
use crate::domain::content::Author;
use crate::test_support::LogBuffer;
use actix_web::test as at;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "canary-twilio-auth-token-91ab";
const OUR_NUMBER: &str = "+15005550006";
const CUSTOMER: &str = "+14155550123";
/// The node's public URL in the kit (`testkit::kit`).
const PUBLIC: &str = "http://acme.localhost:1";

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_signature_matches_twilios_published_example() {
    // https://www.twilio.com/docs/usage/security#validating-requests (and twilio-php's
    // validation guide): this URL, token and parameters give this signature.
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ];
    let expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    assert_eq!(
        twilio_sign("12345", url, &params),
        expected,
        "the test's own signer"
    );
    assert_eq!(signature(b"12345", url, &owned(&params)), expected);
    // Order of the POST parameters does not matter; their values and the URL do.
    let mut shuffled = owned(&params);
    shuffled.reverse();
    assert!(verify(b"12345", url, &shuffled, Some(expected)));
    assert!(!verify(b"12345", url, &shuffled, None));
    assert!(!verify(b"12346", url, &shuffled, Some(expected)));
    assert!(!verify(
        b"12345",
        "https://mycompany.com/myapp.php",
        &shuffled,
        Some(expected)
    ));
    shuffled[0].1 = "+18005551213".into();
    assert!(!verify(b"12345", url, &shuffled, Some(expected)));
}

#[test]
fn opt_out_keywords_are_whole_messages_in_any_case() {
    for w in [
        "STOP",
        "stop",
        " Stop ",
        "STOPALL",
        "unsubscribe",
        "CANCEL",
        "end",
        "QUIT",
    ] {
        assert_eq!(opt_keyword(w), Some(true), "{w}");
    }
    for w in ["START", "unstop"] {
        assert_eq!(opt_keyword(w), Some(false), "{w}");
    }
    for w in ["Please stop calling", "stopp", "", "START NOW"] {
        assert_eq!(opt_keyword(w), None, "{w}");
    }
}

fn configure(k: &Kit) {
    k.put(SecretKind::TwilioAccountSid, SID);
    k.put(SecretKind::TwilioAuthToken, TOKEN);
}

fn urls(server: &MockServer) -> ChannelUrls {
    ChannelUrls {
        telegram: "http://127.0.0.1:9".into(),
        graph: "http://127.0.0.1:9".into(),
        twilio: server.uri(),
    }
}

/// The fake Messages API: checks the basic credentials, answers like Twilio (201 and the
/// message resource).
async fn fake_twilio() -> MockServer {
    let server = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "sid": "SM00000000000000000000000000000001",
            "status": "queued",
            "account_sid": SID
        })))
        .mount(&server)
        .await;
    server
}

fn sms_params<'a>(sid: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
        ("Body", body),
        ("From", CUSTOMER),
        ("MessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("To", OUR_NUMBER),
    ]
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

/// Posts form `params` to `uri`, signed with `signature` (`None`: unsigned); (status, body).
macro_rules! post {
    ($app:expr, $uri:expr, $params:expr, $signature:expr) => {{
        let req = twilio_request($uri, &$params, $signature);
        status_and_body(at::call_service(&$app, req.to_request()).await).await
    }};
}

fn signed(uri: &str, params: &[(&str, &str)]) -> Option<String> {
    Some(twilio_sign(TOKEN, &format!("{PUBLIC}{uri}"), params))
}

const SMS_URI: &str = "/channels/twilio/sms";

#[actix_web::test]
async fn a_wrong_or_missing_signature_is_refused_and_nothing_is_stored() {
    let k = kit(ChannelUrls::default());
    configure(&k);
    let app = app!(k);
    let params = sms_params("SM-bad", "What are your opening hours?");
    assert_eq!(post!(app, SMS_URI, params, None).0, 403);
    let wrong = Some(twilio_sign(
        "another token",
        &format!("{PUBLIC}{SMS_URI}"),
        &params,
    ));
    assert_eq!(post!(app, SMS_URI, params, wrong).0, 403);
    // Signed for another URL (Twilio signs the address it called).
    let elsewhere = Some(twilio_sign(
        TOKEN,
        "https://evil.example/channels/twilio/sms",
        &params,
    ));
    assert_eq!(post!(app, SMS_URI, params, elsewhere).0, 403);
    // Signed, then altered.
    let sig = signed(SMS_URI, &params);
    let altered = sms_params("SM-bad", "What are your closing hours?");
    assert_eq!(post!(app, SMS_URI, altered, sig).0, 403);
    assert_eq!(k.message_count(), 0);
    assert_eq!(
        k.channels.health().check(SMS),
        None,
        "forged requests do not make the channel look broken"
    );
}

#[actix_web::test]
async fn an_sms_is_answered_once_and_stop_then_start_is_honoured() {
    let logs = LogBuffer::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .finish(),
    );
    let server = fake_twilio().await;
    let k = kit(urls(&server));
    configure(&k);
    let app = app!(k);

    let params = sms_params("SM-in-1", "What are your opening hours?");
    let (status, body) = post!(app, SMS_URI, params, signed(SMS_URI, &params));
    assert_eq!(status, 200);
    assert_eq!(body, EMPTY_TWIML, "Twilio sends nothing by itself");
    let sent = deliver_until(&k.channels, &server, "/Messages.json", 1).await;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&sent[0].body)
        .into_owned()
        .collect();
    let field = |n: &str| {
        form.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("To"), CUSTOMER);
    assert_eq!(field("From"), OUR_NUMBER, "from the number written to");
    assert!(
        field("Body").contains("Monday to Friday"),
        "{}",
        field("Body")
    );
    assert_eq!(k.message_count(), 2);

    // Twilio retries the same MessageSid: processed once.
    assert_eq!(post!(app, SMS_URI, params, signed(SMS_URI, &params)).0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(k.message_count(), 2);
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );

    // STOP: stored, recorded on the contact, not answered; a staff reply is not sent.
    let stop = sms_params("SM-in-2", "Stop");
    assert_eq!(post!(app, SMS_URI, stop, signed(SMS_URI, &stop)).0, 200);
    let (conv, contact): (String, String) = k
        .store
        .with(|c| {
            Ok(c.query_row(
                "SELECT d.conversation_id, v.contact_id FROM channel_conversations d
                 JOIN conversations v ON v.id = d.conversation_id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .expect("conversation");
    let opted = |k: &Kit| {
        k.store
            .with(|c| Ok(opted_out(c, &contact)?))
            .expect("opt-out")
    };
    assert!(opted(&k), "recorded on the contact");
    let content = k.channels.runtime.content();
    content
        .append_message(&conv, Author::Human, "We miss you")
        .expect("reply");
    let question = sms_params("SM-in-3", "What are your opening hours?");
    assert_eq!(
        post!(app, SMS_URI, question, signed(SMS_URI, &question)).0,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1,
        "nothing sent after STOP"
    );
    let last = content.recent_messages(&conv, 10).expect("messages");
    assert!(
        last.iter()
            .any(|m| m.author == Author::System && m.body.contains("opted out")),
        "staff are told why"
    );
    assert_eq!(
        last.iter().filter(|m| m.author == Author::Agent).count(),
        1,
        "no automatic answer after STOP"
    );

    // START: back in; the next question is answered.
    let start = sms_params("SM-in-4", "START");
    assert_eq!(post!(app, SMS_URI, start, signed(SMS_URI, &start)).0, 200);
    assert!(!opted(&k));
    let again = sms_params("SM-in-5", "What are your opening hours?");
    assert_eq!(post!(app, SMS_URI, again, signed(SMS_URI, &again)).0, 200);
    deliver_until(&k.channels, &server, "/Messages.json", 2).await;

    // Canaries: the token is sealed in node.db and never logged, nor the numbers or text.
    let db = k.db_bytes();
    let logged = logs.text();
    assert!(!contains(&db, TOKEN), "token in node.db");
    for canary in [TOKEN, CUSTOMER, "opening hours"] {
        assert!(!logged.contains(canary), "{canary} logged");
    }
    assert!(
        logged.contains("duplicate inbound message ignored"),
        "the canary sees the logs"
    );
}
