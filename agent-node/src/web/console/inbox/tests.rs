use super::*;
use crate::web::console::tests::{fixture, Fixture};
use actix_web::cookie::Cookie;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test as at;

pub(crate) const ORIGIN: &str = "http://acme-dental.localhost:40123";

macro_rules! app {
    ($f:expr) => {
        at::init_service(
            actix_web::App::new()
                .app_data($f.data.clone())
                // as in `console::start`
                .app_data(actix_web::web::FormConfig::default().limit(64 * 1024))
                .wrap(crate::web::console::security_headers())
                .configure(crate::web::console::routes),
        )
        .await
    };
}
pub(crate) use app;

pub(crate) use crate::web::console::tests::{sign_in, MEMBER};

pub(crate) async fn body(r: ServiceResponse) -> String {
    String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8")
}

pub(crate) fn post(uri: &str, cookie: &Cookie<'static>) -> at::TestRequest {
    at::TestRequest::post()
        .uri(uri)
        .insert_header(("origin", ORIGIN))
        .cookie(cookie.clone())
}

fn seed(f: &Fixture) -> (Content, String) {
    let c = Content::new(f.data.store.clone(), &f.data.master);
    let contact = c
        .contact_for_identity("telegram", "777", Some("Maria Lopez"))
        .expect("contact");
    let conv = c
        .current_conversation(&contact, "agent-1", "telegram")
        .expect("conv");
    c.append_message(
        &conv.id,
        Author::Contact,
        "Can I book a cleaning on Friday?",
    )
    .expect("m");
    c.append_message(&conv.id, Author::Agent, "Friday 10:00 is free.")
        .expect("m");
    (c, conv.id)
}

#[actix_web::test]
async fn inbox_lists_shows_and_controls_conversations() {
    let f = fixture();
    let (content, conv) = seed(&f);
    let app = app!(f);
    let cookie = sign_in!(app, f, MEMBER);

    for uri in ["/inbox", "/inbox?status=open", "/inbox/list?status=all"] {
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri(uri)
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        let b = body(r).await;
        assert!(b.contains("Maria Lopez"), "{uri}: {b}");
        assert!(b.contains("Friday 10:00 is free."), "{uri}");
        assert!(b.contains(&format!("/inbox/{conv}")));
    }
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/inbox/list?status=human")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let b = body(r).await;
    assert!(!b.contains("Maria Lopez") && !b.contains("<html"), "{b}");

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/inbox/{conv}"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r).await;
    assert!(b.contains("Can I book a cleaning on Friday?"));
    assert!(b.contains(&format!(r#"hx-get="/inbox/{conv}/messages""#)));

    // take over
    let r = at::call_service(
        &app,
        post(&format!("/inbox/{conv}/takeover"), &cookie).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        content
            .conversation(&conv)
            .expect("get")
            .expect("some")
            .status,
        ConversationStatus::Human
    );
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/inbox/{conv}/messages"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let b = body(r).await;
    assert!(b.contains("A team member joined the conversation"), "{b}");
    assert!(!b.contains("<html"));

    // reply
    let r = at::call_service(
        &app,
        post(&format!("/inbox/{conv}/reply"), &cookie)
            .set_form([("text", "Hi Maria, this is Dr. Chen.")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let last = content.recent_messages(&conv, 1).expect("recent");
    assert_eq!(last[0].author, Author::Human);
    assert_eq!(last[0].body, "Hi Maria, this is Dr. Chen.");

    // too long, empty
    for text in ["x".repeat(MAX_REPLY_CHARS + 1), "   ".to_owned()] {
        let r = at::call_service(
            &app,
            post(&format!("/inbox/{conv}/reply"), &cookie)
                .set_form([("text", text.as_str())])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = at::call_service(
        &app,
        post(&format!("/inbox/{conv}/reply"), &cookie)
            .set_form([("text", "é".repeat(MAX_REPLY_CHARS).as_str())])
            .to_request(),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "4000 characters are fine"
    );

    // hand back, close
    let r = at::call_service(
        &app,
        post(&format!("/inbox/{conv}/handback"), &cookie).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        content
            .conversation(&conv)
            .expect("get")
            .expect("some")
            .status,
        ConversationStatus::Open
    );
    let r = at::call_service(
        &app,
        post(&format!("/inbox/{conv}/close"), &cookie).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        content
            .conversation(&conv)
            .expect("get")
            .expect("some")
            .status,
        ConversationStatus::Closed
    );

    // replying to a conversation not taken over takes it over
    let r = at::call_service(
        &app,
        post(&format!("/inbox/{conv}/reply"), &cookie)
            .set_form([("text", "One more thing")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        content
            .conversation(&conv)
            .expect("get")
            .expect("some")
            .status,
        ConversationStatus::Human
    );
    let tl = content
        .timeline(
            &content
                .conversation(&conv)
                .expect("get")
                .expect("some")
                .contact_id,
            100,
        )
        .expect("timeline");
    assert!(tl.iter().any(|e| e.actor.as_deref() == Some("user-1")
        && e.kind == crate::domain::content::TimelineKind::Event("conversation_takeover".into())));
}

#[actix_web::test]
async fn inbox_refuses_without_session_foreign_origin_and_unknown_ids() {
    let f = fixture();
    let (content, conv) = seed(&f);
    let app = app!(f);
    for uri in [
        "/inbox".to_owned(),
        "/inbox/list".to_owned(),
        format!("/inbox/{conv}"),
        format!("/inbox/{conv}/messages"),
    ] {
        let r = at::call_service(&app, at::TestRequest::get().uri(&uri).to_request()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{uri}");
        assert!(!body(r).await.contains("Friday"));
    }
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!("/inbox/{conv}/takeover"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let cookie = sign_in!(app, f, MEMBER);
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!("/inbox/{conv}/takeover"))
            .insert_header(("origin", "http://evil.localhost"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!("/inbox/{conv}/reply"))
            .insert_header(("origin", "http://evil.localhost"))
            .cookie(cookie.clone())
            .set_form([("text", "hi")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        content
            .conversation(&conv)
            .expect("get")
            .expect("some")
            .status,
        ConversationStatus::Open
    );

    let unknown = uuid::Uuid::new_v4();
    for uri in [
        format!("/inbox/{unknown}"),
        format!("/inbox/{unknown}/messages"),
        "/inbox/not-an-id".to_owned(),
    ] {
        let r = at::call_service(
            &app,
            at::TestRequest::get()
                .uri(&uri)
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
    }
    for uri in [
        format!("/inbox/{unknown}/takeover"),
        format!("/inbox/{unknown}/close"),
    ] {
        let r = at::call_service(&app, post(&uri, &cookie).to_request()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
    }
    let r = at::call_service(
        &app,
        post(&format!("/inbox/{unknown}/reply"), &cookie)
            .set_form([("text", "hi")])
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn files_customers_sent_are_shown_to_staff_and_served_without_sniffing() {
    use crate::domain::content::{Inbound, MediaIn};
    let f = fixture();
    let c = Content::new(f.data.store.clone(), &f.data.master);
    let picture = b"\xFF\xD8\xFF\xE0 JFIF canary picture".to_vec();
    let pdf = b"%PDF-1.7 canary <script>alert(1)</script>".to_vec();
    let mut ids = Vec::new();
    for (body, kind, content_type, data) in [
        ("Is this tooth chipped?", "image", "image/jpeg", &picture),
        ("[document: x-ray.pdf]", "document", "application/pdf", &pdf),
    ] {
        let (conv, msg) = c
            .ingest_once_with_media(
                Inbound {
                    channel: "whatsapp",
                    external_id: "16315551181",
                    name: Some("Kerry Fisher"),
                    agent_id: "agent-1",
                    body,
                },
                Some(&MediaIn {
                    kind: kind.into(),
                    content_type,
                    data: data.clone(),
                }),
                |_| Ok(true),
                |_, _, _| Ok(()),
            )
            .expect("ingest")
            .expect("new");
        ids.push((conv.id, msg.id));
    }
    let (conv, image_id) = ids[0].clone();
    let pdf_id = ids[1].1;
    let app = app!(f);
    let cookie = sign_in!(app, f, MEMBER);
    let get = |uri: String| {
        at::TestRequest::get()
            .uri(&uri)
            .cookie(cookie.clone())
            .to_request()
    };

    for page in [format!("/inbox/{conv}"), format!("/inbox/{conv}/messages")] {
        let b = body(at::call_service(&app, get(page.clone())).await).await;
        assert!(
            b.contains(&format!(
                r#"<img class="media" src="/inbox/media/{image_id}""#
            )),
            "{page}: {b}"
        );
        assert!(b.contains("Is this tooth chipped?"));
        assert!(
            b.contains(&format!(
                r#"href="/inbox/media/{pdf_id}" download>Download document-{pdf_id}.pdf"#
            )),
            "{page}: {b}"
        );
    }

    let r = at::call_service(&app, get(format!("/inbox/media/{image_id}"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h.get("content-type").expect("type"), "image/jpeg");
    assert_eq!(h.get("x-content-type-options").expect("nosniff"), "nosniff");
    assert_eq!(
        h.get("content-disposition").expect("disposition"),
        &format!(r#"inline; filename="image-{image_id}.jpg""#)
    );
    assert_eq!(
        h.get("content-security-policy").expect("csp"),
        "default-src 'none'; sandbox"
    );
    assert_eq!(at::read_body(r).await.to_vec(), picture);

    let r = at::call_service(&app, get(format!("/inbox/media/{pdf_id}"))).await;
    assert_eq!(
        r.headers().get("content-disposition").expect("disposition"),
        &format!(r#"attachment; filename="document-{pdf_id}.pdf""#)
    );
    assert_eq!(at::read_body(r).await.to_vec(), pdf);

    for missing in ["/inbox/media/999".to_owned(), "/inbox/media/abc".to_owned()] {
        let r = at::call_service(&app, get(missing.clone())).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    // Without a session: nothing.
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/inbox/media/{image_id}"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn staff_play_a_call_recording_and_see_a_deletion_twilio_has_not_done_yet() {
    use crate::domain::content::{Author, MediaIn, RECORDING_KIND};
    let f = fixture();
    let c = Content::new(f.data.store.clone(), &f.data.master);
    let (conv, _) = c
        .ingest("voice", "+14155550123", None, "agent-1", "[phone call]")
        .expect("call");
    let audio = b"ID3 canary call audio".to_vec();
    let msg = c
        .append_media_once(
            &conv.id,
            Author::System,
            "Call recording (1:05)",
            &MediaIn {
                kind: RECORDING_KIND.into(),
                content_type: "audio/mpeg",
                data: audio.clone(),
            },
            |_| Ok(true),
            |db, _| {
                db.execute(
                    "INSERT INTO twilio_recording_deletions
                       (recording_sid, conversation_id, attempts, next_attempt_at, last_error, created_at)
                     VALUES ('RE1', ?1, 2, 0, 'http_503', 0)",
                    [&conv.id],
                )?;
                Ok(())
            },
        )
        .expect("store")
        .expect("new");
    let app = app!(f);
    let cookie = sign_in!(app, f, MEMBER);
    let get = |uri: String| {
        at::TestRequest::get()
            .uri(&uri)
            .cookie(cookie.clone())
            .to_request()
    };
    let page = body(at::call_service(&app, get(format!("/inbox/{}", conv.id))).await).await;
    assert!(page.contains("Call recording (1:05)"), "{page}");
    assert!(
        page.contains(&format!(
            r#"<audio class="media" controls preload="none" src="/inbox/media/{}""#,
            msg.id
        )),
        "{page}"
    );
    assert!(
        page.contains(
            "A recording of this call is still at Twilio: deleting it failed 2 time(s) (http_503)"
        ),
        "{page}"
    );
    let r = at::call_service(&app, get(format!("/inbox/media/{}", msg.id))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("content-type").expect("type"), "audio/mpeg");
    assert_eq!(
        r.headers().get("x-content-type-options").expect("nosniff"),
        "nosniff"
    );
    assert_eq!(at::read_body(r).await.to_vec(), audio);
}

#[actix_web::test]
async fn outside_whatsapps_window_staff_pick_a_template_and_fill_its_variables() {
    use crate::web::channels::wa_templates::Template;
    let f = fixture();
    let c = Content::new(f.data.store.clone(), &f.data.master);
    let (conv, msg) = c
        .ingest(
            "whatsapp",
            "16315551181",
            Some("Kerry Fisher"),
            "agent-1",
            "Can I move my appointment?",
        )
        .expect("ingest");
    let templates = vec![Template {
        name: "appointment_reminder".into(),
        language: "en_US".into(),
        category: "UTILITY".into(),
        body: "Hi {{1}}, your appointment is on {{2}}.".into(),
        variables: 2,
        header: None,
        url_button: None,
    }];
    let now = crate::platform::store::now();
    f.data
        .store
        .with(|db| {
            db.execute(
                "INSERT INTO channel_conversations (conversation_id, channel, delivered_id, last_inbound_at)
                 VALUES (?1, 'whatsapp', ?2, ?3)",
                rusqlite::params![conv.id, msg.id, now - 3600],
            )?;
            crate::platform::store::Store::set_meta(
                db,
                "whatsapp_templates",
                &serde_json::to_string(&templates).expect("json"),
            )
        })
        .expect("seed");
    let app = app!(f);
    let cookie = sign_in!(app, f, MEMBER);
    let page = |uri: String| {
        at::TestRequest::get()
            .uri(&uri)
            .cookie(cookie.clone())
            .to_request()
    };

    // Within the window: no template picker.
    let b = body(at::call_service(&app, page(format!("/inbox/{}", conv.id))).await).await;
    assert!(!b.contains("Send a template"), "{b}");

    f.data
        .store
        .with(|db| {
            db.execute(
                "UPDATE channel_conversations SET last_inbound_at = ?1",
                [now - 25 * 3600],
            )?;
            Ok(())
        })
        .expect("age");
    let b = body(at::call_service(&app, page(format!("/inbox/{}", conv.id))).await).await;
    assert!(b.contains("Send a template"), "{b}");
    assert!(b.contains(r#"<option value="appointment_reminder:en_US">appointment_reminder (en_US, utility)</option>"#), "{b}");
    assert!(!b.contains("template-form"));
    let b = body(
        at::call_service(
            &app,
            page(format!(
                "/inbox/{}?template=appointment_reminder:en_US",
                conv.id
            )),
        )
        .await,
    )
    .await;
    assert!(
        b.contains(r#"<input id="v1" name="v1" value="" required"#),
        "{b}"
    );
    assert!(
        b.contains(r#"<input id="v2" name="v2" value="" required"#),
        "{b}"
    );
    assert!(!b.contains(r#"name="v3""#));

    let send = |form: &'static str| {
        post(&format!("/inbox/{}/template", conv.id), &cookie)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(form)
            .to_request()
    };
    for refused in [
        "template=appointment_reminder%3Aen_US&v1=Kerry",
        "template=nope%3Aen_US&v1=a&v2=b",
    ] {
        let r = at::call_service(&app, send(refused)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{refused}");
    }
    let r = at::call_service(
        &app,
        send("template=appointment_reminder%3Aen_US&v1=Kerry&v2=Friday+10%3A00"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let last = c.recent_messages(&conv.id, 1).expect("messages");
    assert_eq!(last[0].author, Author::Human);
    assert_eq!(
        last[0].body,
        "Hi Kerry, your appointment is on Friday 10:00."
    );
    let queued: (String, String) = f
        .data
        .store
        .with(|db| {
            Ok(db.query_row(
                "SELECT name, language FROM whatsapp_template_sends WHERE message_id = ?1",
                [last[0].id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .expect("queued as a template");
    assert_eq!(queued, ("appointment_reminder".into(), "en_US".into()));
    assert!(c
        .conversation(&conv.id)
        .expect("get")
        .expect("some")
        .taken_over());
}

#[actix_web::test]
async fn a_template_with_a_media_header_and_a_button_variable_asks_for_both_and_says_what_is_wrong()
{
    use crate::web::channels::wa_templates::{MediaHeader, Template, UrlButton};
    let f = fixture();
    let c = Content::new(f.data.store.clone(), &f.data.master);
    let (conv, msg) = c
        .ingest(
            "whatsapp",
            "16315551181",
            Some("Kerry Fisher"),
            "agent-1",
            "Where is my order?",
        )
        .expect("ingest");
    let templates = vec![Template {
        name: "order_shipped".into(),
        language: "en_US".into(),
        category: "UTILITY".into(),
        body: "Your order {{1}} is on its way.".into(),
        variables: 1,
        header: Some(MediaHeader::Image),
        url_button: Some(UrlButton {
            index: 1,
            url: "https://shop.example/track/{{1}}".into(),
        }),
    }];
    let now = crate::platform::store::now();
    f.data
        .store
        .with(|db| {
            db.execute(
                "INSERT INTO channel_conversations (conversation_id, channel, delivered_id, last_inbound_at)
                 VALUES (?1, 'whatsapp', ?2, ?3)",
                rusqlite::params![conv.id, msg.id, now - 25 * 3600],
            )?;
            crate::platform::store::Store::set_meta(
                db,
                "whatsapp_templates",
                &serde_json::to_string(&templates).expect("json"),
            )
        })
        .expect("seed");
    let app = app!(f);
    let cookie = sign_in!(app, f, MEMBER);
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/inbox/{}?template=order_shipped:en_US", conv.id))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let b = body(r).await;
    assert!(
        b.contains("Link of the image shown above the message"),
        "{b}"
    );
    assert!(b.contains(r#"name="header_link""#), "{b}");
    assert!(b.contains("https://shop.example/track/{{1}}"), "{b}");
    assert!(b.contains(r#"name="button""#), "{b}");

    let send = |form: &'static str| {
        post(&format!("/inbox/{}/template", conv.id), &cookie)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(form)
            .to_request()
    };
    let messages = || c.recent_messages(&conv.id, 10).expect("messages").len();
    let before = messages();
    for (form, says) in [
        (
            "template=order_shipped%3Aen_US&v1=A-1001&button=A-1001",
            "Give the https link of the image",
        ),
        (
            "template=order_shipped%3Aen_US&header_link=http%3A%2F%2Fshop.example%2Fa.jpg&v1=A-1001&button=A-1001",
            "The image link cannot be used. The address must use https.",
        ),
        (
            "template=order_shipped%3Aen_US&header_link=https%3A%2F%2F10.0.0.7%2Fa.jpg&v1=A-1001&button=A-1001",
            "The image link cannot be used. This address points to a private network",
        ),
        (
            "template=order_shipped%3Aen_US&header_link=https%3A%2F%2Fshop.example%2Fa.jpg&v1=A-1001",
            "Fill in the end of the button",
        ),
    ] {
        let r = at::call_service(&app, send(form)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{form}");
        let b = body(r).await;
        assert!(b.contains(r#"id="template-error""#), "{b}");
        assert!(b.contains(says), "{says}: {b}");
        assert!(b.contains("Nothing was sent."));
        assert!(b.contains(r#"value="A-1001""#), "what was typed is kept: {b}");
    }
    assert_eq!(messages(), before, "nothing queued");

    let r = at::call_service(
        &app,
        send("template=order_shipped%3Aen_US&header_link=https%3A%2F%2Fshop.example%2Fa.jpg&v1=A-1001&button=A-1001"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let last = c.recent_messages(&conv.id, 1).expect("messages");
    assert_eq!(
        last[0].body,
        "[image: https://shop.example/a.jpg]\nYour order A-1001 is on its way.\n[button: https://shop.example/track/A-1001]"
    );
}
