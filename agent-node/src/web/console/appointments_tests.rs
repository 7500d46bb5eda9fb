//! The appointments page and the signed links of a booking, through the console's routes.

use super::appointments::book;
use super::tests::{fixture, sign_in};
use super::{routes, security_headers};
use crate::domain::appointments::{BookRequest, BookingDetails, BookingStatus};
use actix_web::cookie::Cookie;
use actix_web::dev::ServiceResponse;
use actix_web::{http::StatusCode, test as at, App};

const ORIGIN: &str = "http://acme-dental.localhost:40123";

async fn body(r: ServiceResponse) -> String {
    String::from_utf8(at::read_body(r).await.to_vec()).expect("utf-8")
}

fn post_req(uri: &str, form: &str, cookie: &Cookie<'static>) -> at::TestRequest {
    at::TestRequest::post()
        .uri(uri)
        .insert_header(("origin", ORIGIN))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .cookie(cookie.clone())
        .set_payload(form.to_owned())
}

#[actix_web::test]
async fn admins_set_up_booking_members_see_the_calendar_and_links_do_one_thing_each() {
    let f = fixture();
    let app = at::init_service(
        App::new()
            .app_data(f.data.clone())
            .wrap(security_headers())
            .configure(routes),
    )
    .await;
    let admin = sign_in!(app, f, &["console", "inbox", "settings"]);
    let member = sign_in!(app, f, &["console", "inbox"]);

    let every_day: String = (1..=7)
        .map(|d| format!("&hours_{d}=00%3A00-24%3A00"))
        .collect();
    let r = at::call_service(
        &app,
        post_req(
            "/appointments/settings",
            &format!(
                "time_zone=Europe%2FParis&step_minutes=30&notice_minutes=60&horizon_days=30{every_day}"
            ),
            &admin,
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = at::call_service(
        &app,
        post_req(
            "/appointments/services",
            "name=Check-up&duration_minutes=30&price=%E2%82%AC60",
            &admin,
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = at::call_service(
        &app,
        post_req(
            "/appointments/services",
            "name=Sneaky&duration_minutes=30",
            &member,
        )
        .to_request(),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "members cannot change services"
    );
    let r = at::call_service(
        &app,
        post_req(
            "/appointments/settings",
            "time_zone=Mars%2FOlympus&step_minutes=30&notice_minutes=60&horizon_days=30",
            &admin,
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "unknown zone refused");

    // A customer books (as the chat would).
    let b = book(&f.data);
    let content = super::inbox::content(&f.data);
    let contact = content
        .contact_for_identity("web", "v1", None)
        .expect("contact");
    let now = crate::platform::store::now();
    let service = b.services().expect("services")[0].clone();
    let slot = b
        .find_slots(&service.id, None, now + 86_400, now + 2 * 86_400, now, 1)
        .expect("slots")[0]
        .clone();
    let booking = b
        .book(
            &BookRequest {
                service_id: service.id.clone(),
                staff_id: None,
                starts_at: slot.starts_at,
                contact_id: contact,
                conversation_id: None,
                details: BookingDetails {
                    name: "Ada Lovelace".into(),
                    ..Default::default()
                },
            },
            now,
        )
        .expect("book");

    // The calendar: members see the booking, not the settings.
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!(
                "/appointments?week={}",
                crate::domain::appointments::slots::local_date(
                    &jiff::tz::db().get("Europe/Paris").expect("tz"),
                    slot.starts_at
                )
                .expect("date")
            ))
            .cookie(member.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body(r).await;
    assert!(page.contains("Check-up — Ada Lovelace"), "{page}");
    assert!(page.contains("(Paris time)"));
    assert!(!page.contains("Add service"), "settings are for admins");

    let links = b.links(ORIGIN, f.data.node_id.as_str(), &booking);
    let path = |url: &str| url.trim_start_matches(ORIGIN).to_owned();

    // The .ics file, without signing in.
    let r = at::call_service(
        &app,
        at::TestRequest::get().uri(&path(&links.ics)).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/calendar")));
    let ics = body(r).await;
    assert!(ics.contains(&format!("UID:{}@", booking.id)), "{ics}");
    assert!(ics.contains("SUMMARY:Check-up – Ada Lovelace"));

    // A cancel link does not open the reschedule page, nor survive tampering.
    let wrong = path(&links.cancel).replace("/cancel?", "/reschedule?");
    let r = at::call_service(&app, at::TestRequest::get().uri(&wrong).to_request()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let tampered = path(&links.cancel).replace("expires=", "expires=1");
    let r = at::call_service(&app, at::TestRequest::get().uri(&tampered).to_request()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Reschedule: the page offers times; posting one moves the booking.
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&path(&links.reschedule))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body(r).await;
    assert!(page.contains("Pick another time"), "{page}");
    let new_start = slot.starts_at + 3600;
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!(
                "{}&starts_at={new_start}",
                path(&links.reschedule)
            ))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body(r).await.contains("Your appointment is now"));
    assert_eq!(b.booking(&booking.id).expect("moved").starts_at, new_start);

    // Cancel: a page that asks, then the form that does it.
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&path(&links.cancel))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        b.booking(&booking.id).expect("still").status == BookingStatus::Booked,
        "a GET changes nothing"
    );
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&path(&links.cancel))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body(r).await.contains("is cancelled"));
    assert_eq!(
        b.booking(&booking.id).expect("cancelled").status,
        BookingStatus::Cancelled
    );

    // The business's feed lists it (as cancelled); a feed link for another staff id fails.
    let feed = b.feed_link(ORIGIN, f.data.node_id.as_str(), "", now);
    let r = at::call_service(&app, at::TestRequest::get().uri(&path(&feed)).to_request()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ics = body(r).await;
    assert!(ics.contains(&format!("UID:{}@", booking.id)) && ics.contains("STATUS:CANCELLED"));
    let other = path(&feed).replace("/feed/all/", "/feed/00000000-0000-0000-0000-000000000000/");
    let r = at::call_service(&app, at::TestRequest::get().uri(&other).to_request()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn admins_choose_a_staff_members_services_hours_and_days_off() {
    let f = fixture();
    let app = at::init_service(
        App::new()
            .app_data(f.data.clone())
            .wrap(security_headers())
            .configure(routes),
    )
    .await;
    let admin = sign_in!(app, f, &["console", "inbox", "settings"]);
    let member = sign_in!(app, f, &["console", "inbox"]);
    let b = book(&f.data);
    let checkup = b.add_service("Check-up", 30, "").expect("service");
    let whitening = b.add_service("Whitening", 60, "").expect("service");
    let ann = b.add_staff("Ann").expect("staff");
    let page = format!("/appointments/staff/{ann}");

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/appointments")
            .cookie(admin.clone())
            .to_request(),
    )
    .await;
    assert!(body(r).await.contains(&format!("href=\"{page}\"")));
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&page)
            .cookie(admin.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = body(r).await;
    assert!(
        html.contains("Ann works the business&#x27;s hours")
            || html.contains("Ann works the business's hours"),
        "{html}"
    );
    assert!(html.contains(&format!("value=\"{whitening}\"")));

    let r = at::call_service(
        &app,
        post_req(
            &page,
            &format!("service={checkup}&hours_2=09%3A00-12%3A00&hours_4=14%3A00-18%3A00"),
            &admin,
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        b.staff_services(&ann).expect("offers"),
        vec![checkup.clone()]
    );
    let hours = b.hours(&ann).expect("hours");
    assert_eq!(
        hours
            .iter()
            .map(|w| (w.weekday, w.start_minute, w.end_minute))
            .collect::<Vec<_>>(),
        [(2, 540, 720), (4, 840, 1080)]
    );
    let r = at::call_service(
        &app,
        post_req(
            &format!("{page}/closures"),
            "day=2026-12-24&label=Holiday",
            &admin,
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let closures = b.closures().expect("closures");
    assert_eq!(closures.len(), 1);
    assert_eq!(
        closures[0].staff_id, ann,
        "Ann's day off, not the business's"
    );
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&page)
            .cookie(admin.clone())
            .to_request(),
    )
    .await;
    let html = body(r).await;
    assert!(html.contains("Holiday"));
    assert!(html.contains("value=\"09:00-12:00\""));
    assert!(html.contains(&format!("value=\"{checkup}\" checked")));
    assert!(!html.contains(&format!("value=\"{whitening}\" checked")));

    // Members see neither the page nor may they change it.
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&page)
            .cookie(member.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = at::call_service(
        &app,
        post_req(&page, &format!("service={whitening}"), &member).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        b.staff_services(&ann).expect("offers"),
        vec![checkup.clone()]
    );
    // A form without the page's origin (CSRF) changes nothing.
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&page)
            .insert_header(("origin", "https://evil.example"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .cookie(admin.clone())
            .set_payload(format!("service={whitening}"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(b.staff_services(&ann).expect("offers"), vec![checkup]);
    // An unknown staff member is not found.
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/appointments/staff/00000000-0000-4000-8000-000000000000")
            .cookie(admin)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
