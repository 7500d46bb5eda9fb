//! The guided booking flow through the runtime, as a web visitor goes through it, and the
//! reminders.

use crate::domain::appointments::{slots::Window, BookRequest, BookingDetails, Settings};
use crate::domain::content::Author;
use crate::engine::agent::{Outcome, Runtime};
use crate::engine::booking::{parse_details, wants_to_book};
use crate::engine::llm::{LlmHealth, Providers};
use crate::platform::keys::MasterKey;
use crate::platform::store::Store;
use outpost_protocol::AgentConfig;
use std::sync::Arc;
use tokio::sync::mpsc;

struct Fx {
    _dir: tempfile::TempDir,
    rt: Arc<Runtime>,
    agent: AgentConfig,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let master = Arc::new(MasterKey::from_bytes([9; 32]));
    let providers = Providers::new(
        crate::engine::llm::ProviderUrls::default(),
        crate::domain::secrets::SecretStore::new(store.clone(), master.clone()),
    )
    .expect("providers");
    let rt = Arc::new(Runtime::new(
        store,
        &master,
        providers,
        Arc::new(LlmHealth::default()),
    ));
    let book = rt.appointments();
    book.save_settings(&Settings {
        time_zone: "Europe/Paris".into(),
        step_minutes: 60,
        notice_minutes: 60,
        horizon_days: 14,
    })
    .expect("settings");
    // Open all day, every day, so the test does not depend on when it runs.
    let windows: Vec<Window> = (1..=7)
        .map(|weekday| Window {
            weekday,
            start_minute: 0,
            end_minute: 1440,
        })
        .collect();
    book.set_hours("", &windows).expect("hours");
    book.add_service("Check-up", 30, "€60").expect("service");
    book.add_service("Whitening", 60, "").expect("service");
    let agent = AgentConfig {
        id: "a1".into(),
        name: "Ava".into(),
        greeting: String::new(),
        instructions: String::new(),
        language: "en".into(),
        fallback_message: "I will pass this on.".into(),
        business_hours: Default::default(),
        model: Default::default(),
        allowed_origins: vec![],
        channels: vec![],
    };
    Fx {
        _dir: dir,
        rt,
        agent,
    }
}

/// Says `text` in `conv`; returns the answer and the quick replies.
async fn say(f: &Fx, conv: &str, text: &str) -> (String, Vec<String>) {
    let (tx, mut rx) = mpsc::channel(64);
    let outcome =
        f.rt.respond(&f.agent, conv, text, tx)
            .await
            .expect("respond");
    while rx.try_recv().is_ok() {}
    match outcome {
        Outcome::Guided(m, quick) => (m.body, quick),
        other => panic!("expected the booking flow to answer {text:?}, got {other:?}"),
    }
}

fn visitor(f: &Fx, id: &str) -> String {
    let c = f.rt.content();
    let contact = c.contact_for_identity("web", id, None).expect("contact");
    c.current_conversation(&contact, "a1", "web")
        .expect("conversation")
        .id
}

#[tokio::test]
async fn a_visitor_books_through_quick_replies_and_gets_a_confirmation() {
    let f = fx();
    let conv = visitor(&f, "v1");
    let (q, quick) = say(&f, &conv, "Hi, can I book an appointment?").await;
    assert!(q.contains("Which service?"), "{q}");
    assert!(q.contains("Check-up (30 min, €60)"), "{q}");
    assert_eq!(quick, ["Check-up", "Whitening"]);
    let (q, days) = say(&f, &conv, "Check-up").await;
    assert!(
        q.starts_with("Which day would you like for Check-up"),
        "{q}"
    );
    assert!(!days.is_empty() && days.len() <= 6, "{days:?}");
    let (q, times) = say(&f, &conv, &days[1]).await;
    assert!(q.contains("(Paris time)"), "{q}");
    assert!(
        !times.is_empty() && times.iter().all(|t| t.len() == 5),
        "{times:?}"
    );
    let (q, quick) = say(&f, &conv, &times[0]).await;
    assert!(q.starts_with("What name should I book under?"), "{q}");
    assert!(quick.is_empty());
    let (q, quick) = say(&f, &conv, "Ada Lovelace, ada@example.com").await;
    assert!(q.contains(&format!("{} {}", days[1], times[0])), "{q}");
    assert!(q.contains("for Ada Lovelace. Shall I book it?"), "{q}");
    assert_eq!(quick, ["Yes, book it", "No"]);
    let (q, quick) = say(&f, &conv, "Yes, book it").await;
    assert!(
        q.starts_with(&format!(
            "Booked: Check-up on {} {} (Paris time).",
            days[1], times[0]
        )),
        "{q}"
    );
    assert!(quick.is_empty());
    let booked = f.rt.appointments().all_bookings().expect("bookings");
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0].details.email, "ada@example.com");
    assert_eq!(booked[0].conversation_id.as_deref(), Some(conv.as_str()));
    // The flow is over: the next message is answered as usual.
    let (tx, _rx) = mpsc::channel(64);
    let next =
        f.rt.respond(&f.agent, &conv, "Thanks!", tx)
            .await
            .expect("respond");
    assert!(!matches!(next, Outcome::Guided(..)), "{next:?}");
}

#[tokio::test]
async fn a_time_taken_meanwhile_is_said_and_other_times_offered() {
    let f = fx();
    let conv = visitor(&f, "v1");
    say(&f, &conv, "I want to book a whitening").await;
    let (q, _) = say(&f, &conv, "1").await; // a number picks too
    assert!(q.starts_with("Which time"), "{q}");
    let (q, _) = say(&f, &conv, "1").await;
    assert!(q.starts_with("What name"), "{q}");
    say(&f, &conv, "Grace Hopper").await;
    // Someone else books the same time first.
    let flow =
        f.rt.appointments()
            .flow(&conv)
            .expect("flow")
            .expect("under way");
    let other =
        f.rt.content()
            .contact_for_identity("web", "v2", None)
            .expect("contact");
    f.rt.appointments()
        .book(
            &BookRequest {
                service_id: flow.service_id.clone().expect("service"),
                staff_id: None,
                starts_at: flow.starts_at.expect("time"),
                contact_id: other,
                conversation_id: None,
                details: BookingDetails {
                    name: "Other".into(),
                    ..Default::default()
                },
            },
            crate::platform::store::now(),
        )
        .expect("the other visitor wins");
    let (q, quick) = say(&f, &conv, "yes").await;
    assert!(
        q.starts_with("Sorry, that time was just taken. Other times:"),
        "{q}"
    );
    assert!(!quick.is_empty());
    let (q, _) = say(&f, &conv, &quick[0]).await;
    assert!(q.starts_with("What name should I book under?"), "{q}");
}

#[tokio::test]
async fn stop_leaves_the_flow_and_no_services_means_no_flow() {
    let f = fx();
    let conv = visitor(&f, "v1");
    say(&f, &conv, "book please").await;
    let (q, _) = say(&f, &conv, "stop").await;
    assert_eq!(q, "All right, nothing was booked.");
    assert!(f.rt.appointments().flow(&conv).expect("flow").is_none());
    for s in f.rt.appointments().services().expect("services") {
        f.rt.appointments().delete_service(&s.id).expect("delete");
    }
    let (tx, _rx) = mpsc::channel(64);
    let outcome =
        f.rt.respond(&f.agent, &conv, "book please", tx)
            .await
            .expect("respond");
    assert!(!matches!(outcome, Outcome::Guided(..)));
}

#[test]
fn reminders_go_into_the_conversation_once_each() {
    let f = fx();
    let conv = visitor(&f, "v1");
    let contact =
        f.rt.content()
            .conversation(&conv)
            .expect("read")
            .expect("conversation")
            .contact_id;
    let book = f.rt.appointments();
    let now = crate::platform::store::now();
    let slot = book
        .find_slots(
            &book.services().expect("services")[0].id,
            None,
            now + 3 * 86_400,
            now + 4 * 86_400,
            now,
            1,
        )
        .expect("slots")[0]
        .clone();
    book.book(
        &BookRequest {
            service_id: book.services().expect("services")[0].id.clone(),
            staff_id: None,
            starts_at: slot.starts_at,
            contact_id: contact,
            conversation_id: Some(conv.clone()),
            details: BookingDetails {
                name: "Ada".into(),
                ..Default::default()
            },
        },
        now,
    )
    .expect("book");
    let guide = f.rt.guide();
    assert_eq!(
        guide
            .send_due_reminders(slot.starts_at - 25 * 3600)
            .expect("early"),
        0
    );
    assert_eq!(
        guide
            .send_due_reminders(slot.starts_at - 24 * 3600)
            .expect("24h"),
        1
    );
    assert_eq!(
        guide
            .send_due_reminders(slot.starts_at - 20 * 3600)
            .expect("again"),
        0
    );
    assert_eq!(
        guide
            .send_due_reminders(slot.starts_at - 2 * 3600)
            .expect("2h"),
        1
    );
    assert_eq!(
        guide
            .send_due_reminders(slot.starts_at - 60)
            .expect("again"),
        0
    );
    let msgs =
        f.rt.content()
            .messages_after(&conv, 0, 10)
            .expect("messages");
    let reminders: Vec<&str> = msgs
        .iter()
        .filter(|m| m.author == Author::Agent)
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(reminders.len(), 2, "{reminders:?}");
    assert!(reminders[0].starts_with("Reminder: your Check-up is tomorrow, "));
    assert!(reminders[1].starts_with("Reminder: your Check-up is today, "));
    assert!(reminders[1].ends_with("(Paris time)."));
}

#[test]
fn booking_words_and_details_are_understood() {
    assert!(wants_to_book("Can I book a cleaning?"));
    assert!(wants_to_book("Je voudrais un rendez-vous"));
    assert!(!wants_to_book("Where are you?"));
    let d = parse_details("Ada Lovelace, ada@example.com, +33 6 12 34 56 78");
    assert_eq!(
        (d.name.as_str(), d.email.as_str(), d.phone.as_str()),
        ("Ada Lovelace", "ada@example.com", "+33 6 12 34 56 78")
    );
    let d = parse_details("Grace Hopper grace@navy.mil");
    assert_eq!(
        (d.name.as_str(), d.email.as_str()),
        ("Grace Hopper", "grace@navy.mil")
    );
}

#[test]
fn the_booking_tools_act_only_for_the_conversations_contact() {
    use serde_json::json;
    let f = fx();
    let c = f.rt.content();
    let ada = c.contact_for_identity("web", "ada", None).expect("contact");
    let ada_conv = c.current_conversation(&ada, "a1", "web").expect("conv").id;
    let bob = c.contact_for_identity("web", "bob", None).expect("contact");
    let bob_conv = c.current_conversation(&bob, "a1", "web").expect("conv").id;
    let guide = f.rt.guide();
    let now = crate::platform::store::now();

    let found = guide
        .run_tool(
            "find_slots",
            &json!({"service": "check-up"}),
            &ada_conv,
            &ada,
            now,
        )
        .expect("find");
    assert_eq!(found["ok"], true, "{found}");
    assert_eq!(found["time_zone"], "Paris time");
    let first = found["slots"][0]["starts_at"].as_i64().expect("a slot");
    let second = found["slots"][1]["starts_at"].as_i64().expect("another");

    let booked = guide
        .run_tool(
            "book",
            &json!({"service": "Check-up", "starts_at": first, "name": "Ada", "email": "ada@example.com"}),
            &ada_conv,
            &ada,
            now,
        )
        .expect("book");
    assert_eq!(booked["ok"], true, "{booked}");
    assert!(booked["confirmation"]
        .as_str()
        .expect("text")
        .starts_with("Booked: Check-up on "));
    let id = booked["booking_id"].as_str().expect("id").to_owned();

    let again = guide
        .run_tool(
            "book",
            &json!({"service": "Check-up", "starts_at": first, "name": "Bob"}),
            &bob_conv,
            &bob,
            now,
        )
        .expect("book");
    assert_eq!(again["error"], "taken");
    assert!(!again["other_slots"].as_array().expect("others").is_empty());

    for tool in ["cancel", "reschedule"] {
        let r = guide
            .run_tool(
                tool,
                &json!({"booking_id": id, "starts_at": second}),
                &bob_conv,
                &bob,
                now,
            )
            .expect("tool");
        assert_eq!(r["error"], "unknown_booking", "{tool}: {r}");
    }
    assert_eq!(
        f.rt.appointments().booking(&id).expect("kept").starts_at,
        first,
        "Bob's conversation cannot touch Ada's booking"
    );
    let moved = guide
        .run_tool(
            "reschedule",
            &json!({"booking_id": id, "starts_at": second}),
            &ada_conv,
            &ada,
            now,
        )
        .expect("reschedule");
    assert_eq!(moved["ok"], true, "{moved}");
    let cancelled = guide
        .run_tool("cancel", &json!({"booking_id": id}), &ada_conv, &ada, now)
        .expect("cancel");
    assert_eq!(cancelled["status"], "cancelled");
    let unknown = guide
        .run_tool(
            "find_slots",
            &json!({"service": "Massage"}),
            &ada_conv,
            &ada,
            now,
        )
        .expect("find");
    assert_eq!(unknown["error"], "unknown_service");
    assert_eq!(unknown["services"], json!(["Check-up", "Whitening"]));
}
