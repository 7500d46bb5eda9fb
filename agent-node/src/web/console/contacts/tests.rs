use super::*;
use crate::domain::content::Content;
use crate::web::console::inbox::tests::{app, body, post, sign_in, MEMBER};
use crate::web::console::tests::fixture;
use actix_web::http::StatusCode;
use actix_web::test as at;

#[test]
fn due_times_are_read_as_utc() {
    assert_eq!(parse_due("1970-01-01T01:00"), Some(3600));
    assert_eq!(parse_due("1970-01-01T00:00:30"), Some(30));
    assert_eq!(parse_due("tomorrow"), None);
}

use crate::test_support::LogBuffer;

/// Issue 13: the contact page edits an email address and a phone number (browser
/// `type="email"` / `type="tel"` fields, checked again on the server); both show on
/// the contact page and in the list; a wrong one is refused with a 400 that says what
/// is wrong and changes nothing; neither reaches the log.
#[actix_web::test]
async fn email_and_phone_are_edited_on_the_contact_page() {
    const EMAIL: &str = "jonas.weber@example.com";
    const PHONE: &str = "+49 151 1234 5678";
    let logs = LogBuffer::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .finish(),
    );
    let f = fixture();
    let content = Content::new(f.data.store.clone(), &f.data.master);
    let id = content
        .contact_for_identity("web", "visitor-9", None)
        .expect("contact");
    let app = app!(f);
    let cookie = sign_in!(app, f, MEMBER);
    let page = |cookie: actix_web::cookie::Cookie<'static>, uri: String| {
        at::TestRequest::get().uri(&uri).cookie(cookie).to_request()
    };

    let b =
        body(at::call_service(&app, page(cookie.clone(), format!("/contacts/{id}"))).await).await;
    for s in [
        r#"<input type="email" id="contact-email-input" name="email" value="""#,
        r#"<input type="tel" id="contact-phone-input" name="phone" value="""#,
        r#"<label for="contact-email-input">Email</label>"#,
        r#"<label for="contact-phone-input">Phone</label>"#,
    ] {
        assert!(b.contains(s), "{s} missing: {b}");
    }

    let form = |name: &'static str, email: &'static str, phone: &'static str| {
        [
            ("name", name),
            ("email", email),
            ("phone", phone),
            ("stage", "new"),
            ("score", "0"),
            ("tags", ""),
        ]
    };
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}"), &cookie)
            .set_form(form("Jonas", EMAIL, PHONE))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let d = content.contact(&id).expect("get").expect("some");
    assert_eq!(
        (d.email.as_deref(), d.phone.as_deref()),
        (Some(EMAIL), Some(PHONE))
    );
    let b =
        body(at::call_service(&app, page(cookie.clone(), format!("/contacts/{id}"))).await).await;
    for s in [
        format!(r#"<a href="mailto:{EMAIL}">{EMAIL}</a>"#),
        format!(r#"<a href="tel:{PHONE}">{PHONE}</a>"#),
        format!(r#"name="email" value="{EMAIL}""#),
        format!(r#"name="phone" value="{PHONE}""#),
    ] {
        assert!(b.contains(&s), "{s} missing: {b}");
    }
    let b = body(at::call_service(&app, page(cookie.clone(), "/contacts".into())).await).await;
    assert!(b.contains(&format!("<td>{EMAIL}</td>")), "{b}");
    assert!(b.contains(&format!("<td>{PHONE}</td>")), "{b}");

    // A wrong email (or phone) refuses the whole form: 400, the reason, nothing saved.
    for (bad, message) in [
        (
            form("Someone else", "jonas weber@example", PHONE),
            "The email address is not valid: write it like name@example.com, without spaces.",
        ),
        (
            form("Someone else", EMAIL, "call 0151 after 5"),
            "The phone number is not valid: use digits, spaces and + ( ) - . only.",
        ),
    ] {
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}"), &cookie)
                .set_form(bad)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let b = body(r).await;
        assert!(b.contains(message), "{message}: {b}");
        assert!(
            !b.contains("jonas weber@example") && !b.contains("after 5"),
            "{b}"
        );
        let after = content.contact(&id).expect("get").expect("some");
        assert_eq!(after, d, "nothing changed");
    }

    // Empty clears; a form without the fields keeps them.
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}"), &cookie)
            .set_form(form("Jonas", "", PHONE))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}"), &cookie)
            .set_form([
                ("name", "Jonas"),
                ("stage", "won"),
                ("score", "5"),
                ("tags", ""),
            ])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let d = content.contact(&id).expect("get").expect("some");
    assert_eq!((d.email, d.phone.as_deref()), (None, Some(PHONE)));
    assert_eq!(d.stage, Stage::Won);

    let logged = logs.text();
    for value in [EMAIL, PHONE, "jonas weber@example", "after 5"] {
        assert!(!logged.contains(value), "{value} logged: {logged}");
    }
}

#[actix_web::test]
async fn contacts_pages_update_note_and_follow_up() {
    let f = fixture();
    let content = Content::new(f.data.store.clone(), &f.data.master);
    let id = content
        .contact_for_identity("whatsapp", "+4915112345678", None)
        .expect("contact");
    let app = app!(f);

    let r = at::call_service(&app, at::TestRequest::get().uri("/contacts").to_request()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/contacts/{id}"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!body(r).await.contains("+4915112345678"));

    let cookie = sign_in!(app, f, MEMBER);
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/contacts")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r).await;
    assert!(b.contains(&format!("WhatsApp contact {}", &id[..4])), "{b}");
    assert!(!b.contains("+4915112345678"), "the list shows no identity");

    let form = [
        ("name", "Jonas Weber"),
        ("stage", "qualified"),
        ("score", "80"),
        ("tags", "implant, vip, "),
    ];
    // foreign origin refused
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!("/contacts/{id}"))
            .insert_header(("origin", "http://evil.localhost"))
            .cookie(cookie.clone())
            .set_form(form)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}"), &cookie)
            .set_form(form)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let d = content.contact(&id).expect("get").expect("some");
    assert_eq!(d.stage, Stage::Qualified);
    assert_eq!(d.score, 80);
    assert_eq!(d.tags, ["implant", "vip"]);
    assert_eq!(d.name.as_deref(), Some("Jonas Weber"));

    for bad in [
        [
            ("name", ""),
            ("stage", "bogus"),
            ("score", "1"),
            ("tags", ""),
        ],
        [
            ("name", ""),
            ("stage", "won"),
            ("score", "101"),
            ("tags", ""),
        ],
        [("name", ""), ("stage", "won"), ("score", "x"), ("tags", "")],
    ] {
        let r = at::call_service(
            &app,
            post(&format!("/contacts/{id}"), &cookie)
                .set_form(bad)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}/notes"), &cookie)
            .set_form([("text", "Asked about financing")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}/notes"), &cookie)
            .set_form([("text", " ")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}/followups"), &cookie)
            .set_form([
                ("kind", "reminder"),
                ("due", "2030-05-01T09:30"),
                ("text", "Send the quote"),
            ])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}/followups"), &cookie)
            .set_form([("kind", "reminder"), ("due", "soon"), ("text", "x")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let fu = content.followups(&id, 10).expect("followups");
    assert_eq!(fu.len(), 1);
    assert_eq!(fu[0].due_at, parse_due("2030-05-01T09:30").expect("due"));

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/contacts/{id}"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r).await;
    for s in [
        "Jonas Weber",
        "+4915112345678",
        "Asked about financing",
        "Send the quote",
        "Stage: New → Qualified",
        // The signed-in user's own change, in words rather than their user id.
        r#"<span class="muted">by you</span>"#,
        r#"<option value="qualified" selected>"#,
    ] {
        assert!(b.contains(s), "{s} missing: {b}");
    }
    assert!(!b.contains("user-1"), "no user id on the page: {b}");

    // a follow-up id under another contact is not found
    let other = content
        .contact_for_identity("web", "v-2", None)
        .expect("other");
    let fid = &fu[0].id;
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{other}/followups/{fid}/done"), &cookie).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{id}/followups/{fid}/done"), &cookie).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        content.followups(&id, 10).expect("followups")[0].status,
        FollowupStatus::Done
    );

    // stage filter
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/contacts?stage=won")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert!(!body(r).await.contains("Jonas Weber"));
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/contacts?stage=qualified")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert!(body(r).await.contains("Jonas Weber"));

    // unknown ids
    let unknown = uuid::Uuid::new_v4();
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/contacts/{unknown}"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{unknown}"), &cookie)
            .set_form(form)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = at::call_service(
        &app,
        post(&format!("/contacts/{unknown}/notes"), &cookie)
            .set_form([("text", "x")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_follow_up_message_to_a_whatsapp_contact_can_carry_a_template_with_its_variables() {
    use crate::web::channels::wa_templates::{self, Template};
    let f = fixture();
    let content = Content::new(f.data.store.clone(), &f.data.master);
    let id = content
        .contact_for_identity("whatsapp", "+4915112345678", None)
        .expect("contact");
    wa_templates::cache_templates(
        &f.data.store,
        &[Template {
            name: "appointment_reminder".into(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            body: "Hi {{1}}, your appointment is on {{2}}.".into(),
            variables: 2,
            header: None,
            url_button: None,
        }],
    );
    let app = app!(f);
    let cookie = sign_in!(app, f, MEMBER);
    let page = |uri: String| {
        let cookie = cookie.clone();
        let app = &app;
        async move {
            let r = at::call_service(
                app,
                at::TestRequest::get().uri(&uri).cookie(cookie).to_request(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::OK);
            body(r).await
        }
    };
    let b = page(format!("/contacts/{id}")).await;
    assert!(b.contains("fu-template-pick"), "{b}");
    assert!(
        !b.contains("fu-v1"),
        "no variables before a template is chosen"
    );
    let b = page(format!(
        "/contacts/{id}?template=appointment_reminder:en_US"
    ))
    .await;
    assert!(
        b.contains(r#"id="fu-v1""#) && b.contains(r#"id="fu-v2""#),
        "{b}"
    );
    assert!(b.contains("Hi {{1}}, your appointment is on {{2}}."));

    let add = |v1: &'static str| {
        post(&format!("/contacts/{id}/followups"), &cookie).set_form([
            ("kind", "message"),
            ("due", "2030-05-01T09:30"),
            ("text", "See you Friday"),
            ("template", "appointment_reminder:en_US"),
            ("v1", v1),
            ("v2", "Friday 10:00"),
        ])
    };
    let r = at::call_service(&app, add("{{contact.email}}").to_request()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("placeholder the node does not know"));
    assert!(content.followups(&id, 10).expect("followups").is_empty());

    let r = at::call_service(&app, add("{{contact.first_name}}").to_request()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let fu = content.followups(&id, 10).expect("followups");
    assert_eq!(fu.len(), 1);
    let json: serde_json::Value = serde_json::from_str(
        &content
            .followup_template(&fu[0].id)
            .expect("read")
            .expect("carried"),
    )
    .expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "name": "appointment_reminder",
            "language": "en_US",
            "body": ["{{contact.first_name}}", "Friday 10:00"]
        })
    );
    let b = page(format!("/contacts/{id}")).await;
    assert!(
        b.contains("Past WhatsApp's 24-hour window: the template appointment_reminder:en_US"),
        "the follow-up says what it is sent as: {b}"
    );
}
