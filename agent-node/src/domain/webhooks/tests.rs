//! The queue against a fake receiver (wiremock) that checks the Standard Webhooks
//! signature with its own code: ring's HMAC over `id.timestamp.body`, base64 of it after
//! `v1,`, the secret decoded from `whsec_…` — nothing from `sign`.

use super::deliver::Sender;
use super::*;
use crate::domain::content::{Author, ContactUpdate, Content, ConversationStatus, AGENT_ACTOR};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use outpost_common::outbound::{self, Redirects};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    content: Content,
    hooks: Webhooks,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let master = MasterKey::from_bytes([9; 32]);
    Setup {
        content: Content::new(store.clone(), &master),
        hooks: Webhooks::new(store.clone(), &master),
        store,
        _dir: dir,
    }
}

fn client(policy: Policy) -> outbound::Client {
    outbound::Client::new(
        "outpost-test",
        Duration::from_secs(2),
        policy,
        Redirects::None,
    )
    .expect("client")
}

fn sender(s: &Setup, policy: Policy, schedule: Vec<i64>) -> Arc<Sender> {
    Arc::new(Sender::with_schedule(
        s.hooks.clone(),
        s.content.clone(),
        client(policy),
        schedule,
    ))
}

/// The receiver's own check, as the specification describes it.
fn check(
    secret: &str,
    id: &str,
    ts: &str,
    sigs: &str,
    body: &[u8],
) -> std::result::Result<(), String> {
    let ts_n: i64 = ts.parse().map_err(|_| "timestamp")?;
    if (store::now() - ts_n).abs() > 300 {
        return Err("timestamp outside the tolerance".into());
    }
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("prefix")?)
        .map_err(|_| "secret")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = STANDARD.encode(ring::hmac::sign(&key, &signed).as_ref());
    if sigs
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
    {
        Ok(())
    } else {
        Err("bad signature".into())
    }
}

fn verify(secret: &str, req: &wiremock::Request) -> std::result::Result<serde_json::Value, String> {
    let h = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(format!("no {name}"))
    };
    check(
        secret,
        &h("webhook-id")?,
        &h("webhook-timestamp")?,
        &h("webhook-signature")?,
        &req.body,
    )?;
    serde_json::from_slice(&req.body).map_err(|_| "body".into())
}

/// The receiver's check against the specification's published example (its timestamp
/// is old, so the tolerance is the one thing that refuses it), then against the node's
/// signature of the same message now.
#[test]
fn the_receivers_check_agrees_with_the_specifications_example() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert_eq!(
        check(SECRET, ID, "1614265330", SIG, BODY),
        Err("timestamp outside the tolerance".into())
    );
    let raw = STANDARD.decode(&SECRET[6..]).expect("b64");
    assert_eq!(sign::signature(&raw, ID, 1_614_265_330, BODY), SIG);
    let now = store::now();
    let ours = sign::signature(&raw, ID, now, BODY);
    check(SECRET, ID, &now.to_string(), &ours, BODY).expect("verifies");
    assert!(check(SECRET, ID, &now.to_string(), &ours, b"{}").is_err());
    assert!(check(SECRET, "msg_other", &now.to_string(), &ours, BODY).is_err());
}

#[test]
fn endpoints_must_be_public_https_and_the_secret_is_sealed() {
    let s = setup();
    for url in [
        "http://hooks.example.com/x",
        "https://10.0.0.8/hook",
        "https://192.168.1.20/hook",
        "http://127.0.0.1:9/hook",
        "https://localhost/hook",
        "https://user:pw@hooks.example.com/x",
        "not a url",
    ] {
        assert!(
            matches!(
                s.hooks
                    .add_endpoint(url, &[Event::MessageCreated], Policy::STRICT, "u"),
                Err(WebhookError::Invalid(_))
            ),
            "{url}"
        );
    }
    assert!(s.hooks.endpoints().expect("list").is_empty());
    let (e, secret) = s
        .hooks
        .add_endpoint(
            "https://hooks.example.com/outpost",
            &[Event::MessageCreated],
            Policy::STRICT,
            "u",
        )
        .expect("public https");
    assert!(secret.starts_with("whsec_"));
    let stored: Vec<u8> = s
        .store
        .with(|c| Ok(c.query_row("SELECT secret_ct FROM webhook_endpoints", [], |r| r.get(0))?))
        .expect("row");
    let raw = STANDARD.decode(&secret["whsec_".len()..]).expect("b64");
    assert!(
        !stored.windows(raw.len()).any(|w| w == raw),
        "sealed at rest"
    );
    assert_eq!(s.hooks.target(&e.id).expect("target").expect("some").1, raw);
}

/// The four events reach the receiver signed; the "Try it here" channel emits nothing.
#[tokio::test]
async fn events_are_delivered_signed_as_the_specification_says() {
    let s = setup();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let local = Policy::new(true);
    let (_, secret) = s
        .hooks
        .add_endpoint(&format!("{}/hook", server.uri()), &Event::ALL, local, "u")
        .expect("endpoint");
    let contact = s
        .content
        .contact_for_identity("telegram", "42", Some("Ana"))
        .expect("contact");
    let conv = s
        .content
        .current_conversation(&contact, "agent-1", "telegram")
        .expect("conv");
    s.content
        .append_message(&conv.id, Author::Contact, "I want a person")
        .expect("msg");
    s.content
        .set_status(&conv.id, ConversationStatus::Human, AGENT_ACTOR)
        .expect("handoff");
    s.content
        .update_contact(
            &contact,
            ContactUpdate {
                stage: Some(crate::domain::content::Stage::Qualified),
                ..Default::default()
            },
            "user-1",
        )
        .expect("update");
    // The console's test channel: nothing queued.
    let tester = s
        .content
        .contact_for_identity(crate::domain::content::TEST_CHANNEL, "t", None)
        .expect("tester");
    let test_conv = s
        .content
        .current_conversation(&tester, "agent-1", crate::domain::content::TEST_CHANNEL)
        .expect("conv");
    s.content
        .append_message(&test_conv.id, Author::Contact, "just testing")
        .expect("msg");

    let sent = sender(&s, local, vec![1]).tick().await.expect("tick");
    let received = server.received_requests().await.expect("requests");
    assert_eq!((sent, received.len()), (received.len(), received.len()));
    let bodies: Vec<serde_json::Value> = received
        .iter()
        .map(|r| verify(&secret, r).expect("the receiver's check passes"))
        .collect();
    let types: Vec<&str> = bodies
        .iter()
        .map(|b| b["type"].as_str().expect("type"))
        .collect();
    for t in [
        "conversation.created",
        "message.created",
        "handoff.requested",
        "contact.updated",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    assert!(!bodies
        .iter()
        .any(|b| b.to_string().contains("just testing")));
    let msg = bodies
        .iter()
        .find(|b| b["data"]["message"]["text"] == "I want a person")
        .expect("the message, with its text");
    assert_eq!(msg["data"]["message"]["conversation_id"], conv.id.as_str());
    let contact_body = bodies
        .iter()
        .find(|b| b["type"] == "contact.updated")
        .expect("c");
    assert_eq!(contact_body["data"]["contact"]["stage"], "qualified");
    assert!(
        !contact_body.to_string().contains("\"42\""),
        "never the channel identity"
    );
    let ids: std::collections::HashSet<_> = received
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), received.len(), "one id per message");
    assert!(s
        .hooks
        .log(50)
        .expect("log")
        .iter()
        .all(|d| d.status == "delivered" && d.attempts == 1));
}

/// A failing receiver is retried on the schedule with the same id and body, then given
/// up on; an erased subject is dropped, not sent.
#[tokio::test]
async fn failures_are_retried_with_the_same_id_then_given_up_and_erasure_drops() {
    let s = setup();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let local = Policy::new(true);
    let (endpoint, secret) = s
        .hooks
        .add_endpoint(&server.uri(), &[Event::ConversationCreated], local, "u")
        .expect("endpoint");
    let contact = s
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    s.content
        .current_conversation(&contact, "agent-1", "web")
        .expect("conv");
    let retrying = sender(&s, local, vec![0, 3600]);
    retrying.tick().await.expect("first");
    let log = s.hooks.log(10).expect("log");
    assert_eq!(
        (log[0].status.as_str(), log[0].attempts, log[0].last_status),
        ("pending", 1, Some(500))
    );
    retrying.tick().await.expect("retry");
    let received = server.received_requests().await.expect("requests");
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].headers["webhook-id"],
        received[1].headers["webhook-id"]
    );
    assert_eq!(received[0].body, received[1].body);
    verify(&secret, &received[1]).expect("signed");
    assert_eq!(s.hooks.log(10).expect("log")[0].status, "delivered");

    // A receiver that never answers well: given up after the schedule.
    s.hooks.remove_endpoint(&endpoint.id).expect("remove");
    let (_, _) = s
        .hooks
        .add_endpoint(
            "http://127.0.0.1:9/closed",
            &[Event::ConversationCreated],
            local,
            "u",
        )
        .expect("endpoint");
    let other = s
        .content
        .contact_for_identity("web", "v2", None)
        .expect("c");
    s.content
        .current_conversation(&other, "agent-1", "web")
        .expect("conv");
    let quick = sender(&s, local, vec![0]);
    quick.tick().await.expect("first");
    quick.tick().await.expect("last");
    let log = s.hooks.log(10).expect("log");
    assert_eq!(
        (
            log[0].status.as_str(),
            log[0].attempts,
            log[0].last_error.as_deref()
        ),
        ("failed", 2, Some("connection_failed"))
    );

    // Erased before it was sent: dropped.
    let third = s
        .content
        .contact_for_identity("web", "v3", None)
        .expect("c");
    s.content
        .current_conversation(&third, "agent-1", "web")
        .expect("conv");
    s.content.erase_contact(&third, "user-1").expect("erase");
    quick.tick().await.expect("tick");
    let log = s.hooks.log(10).expect("log");
    assert_eq!(
        (log[0].status.as_str(), log[0].last_error.as_deref()),
        ("dropped", Some("subject_gone"))
    );
}

/// A public name that resolves to a private address at delivery is not connected to.
#[tokio::test]
async fn a_name_resolving_to_a_private_address_gets_nothing() {
    let s = setup();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let port = server.address().port();
    s.hooks
        .add_endpoint(
            &format!("https://hooks.example.com:{port}/x"),
            &[Event::ConversationCreated],
            Policy::STRICT,
            "u",
        )
        .expect("a public name passes when saved");
    let contact = s.content.contact_for_identity("web", "v", None).expect("c");
    s.content
        .current_conversation(&contact, "agent-1", "web")
        .expect("conv");
    let rebinding: outbound::Lookup = Arc::new(|_name: String| {
        Box::pin(async { Ok(vec![std::net::IpAddr::from([127, 0, 0, 1])]) })
    });
    let client = outbound::Client::with_lookup(
        "outpost-test",
        Duration::from_millis(500),
        Policy::STRICT,
        Redirects::None,
        rebinding,
    )
    .expect("client");
    let sender = Arc::new(Sender::with_schedule(
        s.hooks.clone(),
        s.content.clone(),
        client,
        vec![60],
    ));
    sender.tick().await.expect("tick");
    assert!(server.received_requests().await.expect("r").is_empty());
    let log = s.hooks.log(10).expect("log");
    assert_eq!(
        (log[0].status.as_str(), log[0].last_error.as_deref()),
        ("pending", Some("refused_private_address"))
    );
}

/// Booking, moving and cancelling an appointment reach the receiver signed, carrying the
/// booking's ids, service, times and status, and none of the customer's details.
#[tokio::test]
async fn appointment_events_are_delivered_signed_without_the_customers_details() {
    use crate::domain::appointments::{slots::Window, Appointments, BookRequest, BookingDetails};
    let s = setup();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let local = Policy::new(true);
    let (_, secret) = s
        .hooks
        .add_endpoint(
            &format!("{}/hook", server.uri()),
            &[
                Event::AppointmentBooked,
                Event::AppointmentRescheduled,
                Event::AppointmentCancelled,
            ],
            local,
            "u",
        )
        .expect("endpoint");
    let book = Appointments::new(
        s.store.clone(),
        s.content.clone(),
        &MasterKey::from_bytes([9; 32]),
    );
    let every_day: Vec<Window> = (1..=7)
        .map(|weekday| Window {
            weekday,
            start_minute: 0,
            end_minute: 1440,
        })
        .collect();
    book.set_hours("", &every_day).expect("hours");
    let service = book.add_service("Check-up", 30, "").expect("service");
    let contact = s
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let now = store::now();
    let free = book
        .find_slots(&service, None, now, now + 7 * 86_400, now, 3)
        .expect("slots");
    let b = book
        .book(
            &BookRequest {
                service_id: service.clone(),
                staff_id: None,
                starts_at: free[0].starts_at,
                contact_id: contact.clone(),
                conversation_id: None,
                details: BookingDetails {
                    name: "Ada Lovelace".into(),
                    email: "ada@example.com".into(),
                    phone: "+33 6 12 34 56 78".into(),
                    note: "secret note".into(),
                },
            },
            now,
        )
        .expect("booked");
    book.reschedule(&b.id, free[1].starts_at, now)
        .expect("moved");
    book.cancel(&b.id, now).expect("cancelled");
    // A test-channel booking emits nothing.
    let tester = s
        .content
        .contact_for_identity(crate::domain::content::TEST_CHANNEL, "t", None)
        .expect("tester");
    book.book(
        &BookRequest {
            service_id: service.clone(),
            staff_id: None,
            starts_at: free[2].starts_at,
            contact_id: tester,
            conversation_id: None,
            details: BookingDetails {
                name: "Tester".into(),
                ..Default::default()
            },
        },
        now,
    )
    .expect("test booking");

    sender(&s, local, vec![1]).tick().await.expect("tick");
    let received = server.received_requests().await.expect("requests");
    let bodies: Vec<serde_json::Value> = received
        .iter()
        .map(|r| verify(&secret, r).expect("the receiver's check passes"))
        .collect();
    let types: Vec<&str> = bodies
        .iter()
        .map(|b| b["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "appointment.booked",
            "appointment.rescheduled",
            "appointment.cancelled"
        ]
    );
    for body in &bodies {
        let a = &body["data"]["appointment"];
        assert_eq!(a["id"], b.id.as_str());
        assert_eq!(a["contact_id"], contact.as_str());
        assert_eq!(a["service_name"], "Check-up");
        // Built when sent: the booking as it is now.
        assert_eq!(a["status"], "cancelled");
        assert_eq!(a["starts_at"], free[1].starts_at);
        let text = body.to_string();
        for detail in ["Ada", "ada@example.com", "+33", "secret note", "Tester"] {
            assert!(!text.contains(detail), "{detail} in {text}");
        }
    }
}
