//! The appointment book against a real node database.

use super::bookings::BookRequest;
use super::slots::Window;
use super::*;
use crate::domain::content::Content;
use crate::platform::keys::MasterKey;

struct Fx {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    content: Content,
    book: Appointments,
    service: String,
}

/// 2026-03-23T00:00:00Z, a Monday, the week of the Paris spring change.
const MONDAY: i64 = 1_774_224_000;

fn at(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().expect("instant").as_second()
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let content = Content::new(store.clone(), &MasterKey::from_bytes([9; 32]));
    let book = Appointments::new(
        store.clone(),
        content.clone(),
        &MasterKey::from_bytes([9; 32]),
    );
    book.save_settings(&Settings {
        time_zone: "Europe/Paris".into(),
        step_minutes: 30,
        notice_minutes: 60,
        horizon_days: 30,
    })
    .expect("settings");
    let windows: Vec<Window> = (1..=5)
        .map(|weekday| Window {
            weekday,
            start_minute: 9 * 60,
            end_minute: 17 * 60,
        })
        .collect();
    book.set_hours("", &windows).expect("hours");
    let service = book.add_service("Check-up", 30, "€60").expect("service");
    Fx {
        _dir: dir,
        store,
        content,
        book,
        service,
    }
}

fn request(f: &Fx, contact: &str, starts_at: i64) -> BookRequest {
    BookRequest {
        service_id: f.service.clone(),
        staff_id: None,
        starts_at,
        contact_id: contact.to_owned(),
        conversation_id: None,
        details: BookingDetails {
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            phone: "+33 6 12 34 56 78".into(),
            note: String::new(),
        },
    }
}

#[test]
fn twenty_concurrent_bookings_of_one_slot_exactly_one_wins() {
    let f = fx();
    let slot = at("2026-03-24T08:00:00Z"); // Tuesday 09:00 in Paris
    let contacts: Vec<String> = (0..20)
        .map(|i| {
            f.content
                .contact_for_identity("web", &format!("v{i}"), None)
                .expect("contact")
        })
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(20));
    let handles: Vec<_> = contacts
        .into_iter()
        .map(|contact| {
            let (book, barrier, req) =
                (f.book.clone(), barrier.clone(), request(&f, &contact, slot));
            std::thread::spawn(move || {
                barrier.wait();
                book.book(&req, MONDAY)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "exactly one booking of the slot");
    for r in &results {
        match r {
            Ok(b) => assert_eq!(b.starts_at, slot),
            Err(AppointmentError::Taken(others)) => {
                assert!(!others.is_empty(), "other slots are offered");
                assert!(others.iter().all(|s| s.starts_at != slot));
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(
        f.book
            .bookings_between(slot, slot + 1, None)
            .expect("list")
            .len(),
        1
    );
}

#[test]
fn the_database_refuses_overlapping_bookings_of_different_lengths() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let long = f.book.add_service("Whitening", 60, "").expect("service");
    let mut req = request(&f, &contact, at("2026-03-24T08:30:00Z"));
    req.service_id = long;
    f.book.book(&req, MONDAY).expect("09:30–10:30 booked");
    // 10:00–10:30 overlaps the second half of the hour-long booking.
    let err = f
        .book
        .book(&request(&f, &contact, at("2026-03-24T09:00:00Z")), MONDAY)
        .expect_err("overlap refused");
    assert!(matches!(err, AppointmentError::Taken(_)), "{err:?}");
    // And not merely by the slot computation: a raw insert of a cell already held fails.
    let raw = f.store.with(|c| {
        c.execute(
            "INSERT INTO appt_bookings (id, service_id, staff_id, contact_id, starts_at,
                 ends_at, status, details_ct, created_at, updated_at)
             VALUES ('x', 's', '', ?1, 0, 300, 'booked', x'00', 0, 0)",
            [&contact],
        )?;
        let cell = at("2026-03-24T09:00:00Z") / CELL_SECS;
        Ok(c.execute(
            "INSERT INTO appt_cells (staff_id, cell, booking_id) VALUES ('', ?1, 'x')",
            [cell],
        ))
    });
    assert!(raw.expect("store").is_err(), "primary key on (staff, cell)");
    // 09:00–09:30 ends where the long one starts: free.
    f.book
        .book(&request(&f, &contact, at("2026-03-24T08:00:00Z")), MONDAY)
        .expect("adjacent slot");
}

#[test]
fn only_offered_times_can_be_booked() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    for (when, why) in [
        ("2026-03-28T09:00:00Z", "Saturday: closed"),
        ("2026-03-24T07:00:00Z", "08:00 in Paris: before opening"),
        ("2026-03-24T15:45:00Z", "16:45: runs past closing"),
        ("2026-04-28T08:00:00Z", "beyond the 30-day horizon"),
        ("2026-03-24T08:10:00Z", "not on the 30-minute grid"),
    ] {
        let r = f.book.book(&request(&f, &contact, at(when)), MONDAY);
        assert!(matches!(r, Err(AppointmentError::Taken(_))), "{why}: {r:?}");
    }
    let notice = f.book.book(
        &request(&f, &contact, at("2026-03-24T08:00:00Z")),
        at("2026-03-24T07:30:00Z"),
    );
    assert!(
        matches!(notice, Err(AppointmentError::Taken(_))),
        "inside the notice period"
    );
    f.book
        .add_closure(
            "",
            jiff::civil::Date::new(2026, 3, 24).expect("date"),
            "Holiday",
        )
        .expect("closure");
    let r = f
        .book
        .book(&request(&f, &contact, at("2026-03-24T08:00:00Z")), MONDAY);
    assert!(matches!(r, Err(AppointmentError::Taken(_))), "holiday");
}

#[test]
fn each_staff_member_has_a_calendar_of_their_own() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let ann = f.book.add_staff("Ann").expect("staff");
    let bob = f.book.add_staff("Bob").expect("staff");
    let slot = at("2026-03-24T08:00:00Z");
    let first = f
        .book
        .book(&request(&f, &contact, slot), MONDAY)
        .expect("1");
    let second = f
        .book
        .book(&request(&f, &contact, slot), MONDAY)
        .expect("2");
    assert_eq!(
        [first.staff_id.as_str(), second.staff_id.as_str()],
        [ann.as_str(), bob.as_str()]
    );
    assert_eq!(first.staff_name, "Ann");
    assert!(matches!(
        f.book.book(&request(&f, &contact, slot), MONDAY),
        Err(AppointmentError::Taken(_))
    ));
    let mine = f
        .book
        .bookings_between(slot, slot + 1, Some(&bob))
        .expect("Bob's");
    assert_eq!(mine.len(), 1);
}

#[test]
fn rescheduling_and_cancelling_free_the_old_time() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let nine = at("2026-03-24T08:00:00Z");
    let ten = at("2026-03-24T09:00:00Z");
    let b = f
        .book
        .book(&request(&f, &contact, nine), MONDAY)
        .expect("book");
    let other = f
        .book
        .book(&request(&f, &contact, ten), MONDAY)
        .expect("another at ten");
    let err = f.book.reschedule(&b.id, ten, MONDAY).expect_err("taken");
    assert!(matches!(err, AppointmentError::Taken(_)));
    assert_eq!(f.book.booking(&b.id).expect("kept").starts_at, nine);
    f.book.cancel(&other.id, MONDAY).expect("cancel");
    let moved = f.book.reschedule(&b.id, ten, MONDAY).expect("moved");
    assert_eq!((moved.starts_at, moved.ends_at), (ten, ten + 1800));
    // nine is free again
    f.book
        .book(&request(&f, &contact, nine), MONDAY)
        .expect("nine again");
}

#[test]
fn booking_details_are_sealed_and_erased_with_the_contact() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let b = f
        .book
        .book(&request(&f, &contact, at("2026-03-24T08:00:00Z")), MONDAY)
        .expect("book");
    assert_eq!(b.details.email, "ada@example.com");
    let raw: Vec<u8> = f
        .store
        .with(|c| {
            Ok(c.query_row(
                "SELECT details_ct FROM appt_bookings WHERE id = ?1",
                [&b.id],
                |r| r.get(0),
            )?)
        })
        .expect("row");
    let haystack = String::from_utf8_lossy(&raw);
    assert!(!haystack.contains("ada@example.com") && !haystack.contains("Lovelace"));
    f.content.erase_contact(&contact, "u1").expect("erase");
    assert!(matches!(
        f.book.booking(&b.id),
        Err(AppointmentError::NotFound)
    ));
    let cells: i64 = f
        .store
        .with(|c| Ok(c.query_row("SELECT COUNT(*) FROM appt_cells", [], |r| r.get(0))?))
        .expect("count");
    assert_eq!(cells, 0, "the time is free again");
}

#[test]
fn reminders_come_24_hours_and_2_hours_before_and_once_each() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let start = at("2026-03-26T08:00:00Z");
    let b = f
        .book
        .book(&request(&f, &contact, start), MONDAY)
        .expect("book");
    assert!(f
        .book
        .claim_due_reminders(start - 25 * 3600)
        .expect("early")
        .is_empty());
    let day = f.book.claim_due_reminders(start - 24 * 3600).expect("24h");
    assert_eq!(day.len(), 1);
    assert_eq!(
        (day[0].booking.id.as_str(), day[0].before_secs),
        (b.id.as_str(), bookings::REMIND_EARLY_SECS)
    );
    assert!(f
        .book
        .claim_due_reminders(start - 23 * 3600)
        .expect("again")
        .is_empty());
    let late = f.book.claim_due_reminders(start - 2 * 3600).expect("2h");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].before_secs, bookings::REMIND_LATE_SECS);
    assert!(f
        .book
        .claim_due_reminders(start - 3600)
        .expect("again")
        .is_empty());
    // A booking made 3 hours ahead gets only the 2-hour reminder; a cancelled one none.
    let soon = at("2026-03-24T09:00:00Z");
    let s = f
        .book
        .book(&request(&f, &contact, soon), soon - 3 * 3600)
        .expect("soon");
    let gone = f
        .book
        .book(&request(&f, &contact, soon + 1800), soon - 3 * 3600)
        .expect("gone");
    f.book.cancel(&gone.id, soon - 3 * 3600).expect("cancel");
    let r = f.book.claim_due_reminders(soon - 2 * 3600).expect("due");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].booking.id, s.id);
}

#[test]
fn past_bookings_follow_the_messages_retention_period() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let b = f
        .book
        .book(&request(&f, &contact, at("2026-03-24T08:00:00Z")), MONDAY)
        .expect("book");
    // Messages are kept 365 days by default.
    crate::domain::retention::sweep(&f.store, &f.content, None, at("2027-03-20T00:00:00Z"))
        .expect("sweep");
    assert!(f.book.booking(&b.id).is_ok(), "within the period");
    crate::domain::retention::sweep(&f.store, &f.content, None, at("2027-03-26T00:00:00Z"))
        .expect("sweep");
    assert!(matches!(
        f.book.booking(&b.id),
        Err(AppointmentError::NotFound)
    ));
}

#[test]
fn staff_offer_their_services_in_their_own_hours_and_days_off() {
    let f = fx();
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let whitening = f.book.add_service("Whitening", 60, "").expect("service");
    let ann = f.book.add_staff("Ann").expect("staff");
    let bob = f.book.add_staff("Bob").expect("staff");
    // Ann does check-ups only, on Tuesday mornings; Bob works the business's hours and
    // does both (no choice made), but is off on Wednesday 25 March.
    f.book
        .set_staff_services(&ann, std::slice::from_ref(&f.service))
        .expect("ann's services");
    f.book
        .set_hours(
            &ann,
            &[Window {
                weekday: 2,
                start_minute: 9 * 60,
                end_minute: 12 * 60,
            }],
        )
        .expect("ann's hours");
    let wednesday: jiff::civil::Date = "2026-03-25".parse().expect("date");
    f.book
        .add_closure(&bob, wednesday, "Off")
        .expect("bob's day off");
    assert_eq!(
        f.book.staff_services(&ann).expect("list"),
        vec![f.service.clone()]
    );
    assert!(f.book.staff_services(&bob).expect("list").is_empty());

    let slots_of = |service: &str, day: &str| {
        let from = at(&format!("{day}T00:00:00Z"));
        f.book
            .find_slots(service, None, from, from + 86_400, MONDAY, 100)
            .expect("slots")
    };
    // Whitening on Tuesday: Bob only (Ann does not offer it), 09:00–17:00 Paris.
    let tue_whitening = slots_of(&whitening, "2026-03-24");
    assert!(!tue_whitening.is_empty());
    assert!(tue_whitening.iter().all(|s| s.staff_id == bob));
    // Check-up on Wednesday: Bob is off, Ann does not work Wednesdays: nothing.
    assert!(slots_of(&f.service, "2026-03-25").is_empty());
    // Whitening on Wednesday: nobody.
    assert!(slots_of(&whitening, "2026-03-25").is_empty());
    // Check-up on Thursday: Bob (Ann works Tuesdays only).
    let thu = slots_of(&f.service, "2026-03-26");
    assert!(!thu.is_empty() && thu.iter().all(|s| s.staff_id == bob));
    // Check-up on Tuesday at 10:00 Paris: Ann first by name; at 14:00 only Bob.
    let tue = slots_of(&f.service, "2026-03-24");
    let ten = at("2026-03-24T09:00:00Z");
    let two = at("2026-03-24T13:00:00Z");
    assert_eq!(
        tue.iter().find(|s| s.starts_at == ten).map(|s| &s.staff_id),
        Some(&ann)
    );
    assert_eq!(
        tue.iter().find(|s| s.starts_at == two).map(|s| &s.staff_id),
        Some(&bob)
    );
    // Asking Ann for a whitening is refused as not offered, with other times.
    let mut asked = request(&f, &contact, at("2026-03-24T09:00:00Z"));
    asked.service_id = whitening.clone();
    asked.staff_id = Some(ann.clone());
    assert!(matches!(
        f.book.book(&asked, MONDAY),
        Err(AppointmentError::Taken(_))
    ));
    asked.staff_id = None;
    let b = f.book.book(&asked, MONDAY).expect("Bob does it");
    assert_eq!(b.staff_id, bob);
    // Letting Ann do everything again gives her whitenings on Tuesday morning.
    f.book.set_staff_services(&ann, &[]).expect("all");
    assert!(slots_of(&whitening, "2026-03-24")
        .iter()
        .any(|s| s.staff_id == ann));
    // Unknown staff: not found.
    assert!(matches!(
        f.book.set_staff_services("nobody", &[]),
        Err(AppointmentError::NotFound)
    ));
}

#[test]
fn bookings_moves_and_cancellations_are_counted_per_hour_without_the_test_channel() {
    let f = fx();
    let now = crate::platform::store::now();
    // Open every day, all day, so the times below are offered whenever this runs.
    let every_day: Vec<Window> = (1..=7)
        .map(|weekday| Window {
            weekday,
            start_minute: 0,
            end_minute: 1440,
        })
        .collect();
    f.book.set_hours("", &every_day).expect("hours");
    let free = f
        .book
        .find_slots(&f.service, None, now, now + 5 * 86_400, now, 5)
        .expect("slots");
    let contact = f
        .content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let a = f
        .book
        .book(&request(&f, &contact, free[0].starts_at), now)
        .expect("a");
    let b = f
        .book
        .book(&request(&f, &contact, free[1].starts_at), now)
        .expect("b");
    f.book
        .reschedule(&a.id, free[2].starts_at, now)
        .expect("moved");
    f.book.cancel(&b.id, now).expect("cancelled");
    f.book.cancel(&b.id, now).expect("twice is harmless");
    let tester = f
        .content
        .contact_for_identity(crate::domain::content::TEST_CHANNEL, "t", None)
        .expect("tester");
    f.book
        .book(&request(&f, &tester, free[3].starts_at), now)
        .expect("test booking");
    let later = crate::platform::store::now();
    let counts = report_counts(&f.store, later).expect("counts");
    let total =
        |pick: fn(&outpost_protocol::BookingCount) -> i64| counts.iter().map(pick).sum::<i64>();
    assert_eq!(
        (
            total(|c| c.booked),
            total(|c| c.rescheduled),
            total(|c| c.cancelled)
        ),
        (2, 1, 1),
        "{counts:?}"
    );
    assert!(counts.iter().all(|c| c.hour % 3600 == 0));
    // Three hours later they have left the report (the CP keeps what it received).
    assert!(report_counts(&f.store, later + 3 * 3600)
        .expect("counts")
        .is_empty());
}
