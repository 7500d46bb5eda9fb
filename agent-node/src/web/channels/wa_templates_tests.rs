//! Templates against a fake Graph API speaking its wire format.

use super::super::testkit::{contains, deliver_until, Kit};
use super::*;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::super::testkit::{WA_ACCESS_TOKEN as ACCESS_TOKEN, WA_PHONE_ID as PHONE_ID};
const WABA: &str = "102290129340398";

fn text_webhook(wamid: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                    "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551181"}],
                    "messages": [{"from": "16315551181", "id": wamid, "timestamp": crate::platform::store::now().to_string(), "type": "text", "text": {"body": text}}]
                }
            }]
        }]
    })
}

/// What `GET /{waba}/message_templates` answers (Meta's shape, paging included).
fn template_list() -> serde_json::Value {
    serde_json::json!({
        "data": [
            {"name": "hello_again", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "1",
             "components": [{"type": "BODY", "text": "Hello, we are still here to help. Reply to this message to continue."}]},
            {"name": "appointment_reminder", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "2",
             "parameter_format": "POSITIONAL",
             "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Your appointment"},
                {"type": "BODY", "text": "Hi {{1}}, your appointment is on {{2}}.", "example": {"body_text": [["Kerry", "Friday"]]}},
                {"type": "FOOTER", "text": "Acme Dental"},
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "OK"}]}
             ]},
            {"name": "promo_picture", "language": "en_US", "status": "APPROVED", "category": "MARKETING", "id": "3",
             "components": [{"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Look!"}]},
            {"name": "named_params", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "4",
             "parameter_format": "NAMED",
             "components": [{"type": "BODY", "text": "Hi {{first_name}}"}]},
            {"name": "refused_one", "language": "en_US", "status": "REJECTED", "category": "MARKETING", "id": "5",
             "components": [{"type": "BODY", "text": "Nope"}]},
            {"name": "order_shipped", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "6",
             "parameter_format": "POSITIONAL",
             "components": [
                {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["4::aW1hZ2UvanBlZw==:ARb"]}},
                {"type": "BODY", "text": "Your order {{1}} is on its way.", "example": {"body_text": [["A-1001"]]}},
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Thanks"},
                    {"type": "URL", "text": "Track it", "url": "https://shop.example/track/{{1}}", "example": ["https://shop.example/track/A-1001"]}
                ]}
             ]},
            {"name": "store_location", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "7",
             "components": [{"type": "HEADER", "format": "LOCATION"}, {"type": "BODY", "text": "We are here."}]},
            {"name": "two_links", "language": "en_US", "status": "APPROVED", "category": "MARKETING", "id": "8",
             "components": [
                {"type": "BODY", "text": "Two links"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "A", "url": "https://shop.example/a/{{1}}"},
                    {"type": "URL", "text": "B", "url": "https://shop.example/b/{{1}}"}
                ]}
             ]},
            {"name": "coupon", "language": "en_US", "status": "APPROVED", "category": "MARKETING", "id": "9",
             "components": [
                {"type": "BODY", "text": "Your code"},
                {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "{{1}}"}]}
             ]}
        ],
        "paging": {"cursors": {"before": "MAZDZD", "after": "MjQZD"}}
    })
}

async fn graph() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{WABA}/message_templates")))
        .and(query_param("status", "APPROVED"))
        .and(header(
            "Authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(template_list()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{PHONE_ID}/messages")))
        .and(header(
            "Authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "16315551181", "wa_id": "16315551181"}],
            "messages": [{"id": "wamid.TEMPLATE1"}]
        })))
        .mount(&server)
        .await;
    server
}

fn whatsapp_kit(server: &MockServer) -> Kit {
    super::super::testkit::whatsapp_kit(&server.uri())
}

async fn webhook(k: &Kit, wamid: &str, text: &str) {
    k.channels
        .whatsapp_payload(serde_json::from_value(text_webhook(wamid, text)).expect("payload"))
        .await
        .expect("stored");
}

#[tokio::test]
async fn approved_templates_are_listed_for_the_account_a_webhook_named_and_cached() {
    let server = graph().await;
    let k = whatsapp_kit(&server);
    assert_eq!(
        k.channels.refresh_whatsapp_templates().await,
        Err("account_unknown"),
        "no webhook has named the account yet"
    );
    webhook(&k, "wamid.T1", "What are your opening hours?").await;
    let listed = k
        .channels
        .refresh_whatsapp_templates()
        .await
        .expect("listed");
    let names: Vec<(&str, usize)> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.variables))
        .collect();
    assert_eq!(
        names,
        [
            ("hello_again", 0),
            ("appointment_reminder", 2),
            ("promo_picture", 0),
            ("order_shipped", 1)
        ],
        "named variables, location headers, other button variables and rejected templates \
         are left out"
    );
    assert_eq!(listed[2].header, Some(MediaHeader::Image));
    assert_eq!(listed[3].header, Some(MediaHeader::Document));
    assert_eq!(
        listed[3].url_button,
        Some(UrlButton {
            index: 1,
            url: "https://shop.example/track/{{1}}".into()
        })
    );
    assert_eq!(
        (listed[1].header.as_ref(), listed[1].url_button.as_ref()),
        (None, None)
    );
    assert_eq!(cached_templates(&k.store), listed);
    assert_eq!(
        listed[1].render(&["Kerry".into(), "Friday 10:00".into()]),
        "Hi Kerry, your appointment is on Friday 10:00."
    );
}

#[tokio::test]
async fn a_template_reply_outside_the_window_is_sent_exactly_as_the_graph_api_expects() {
    let server = graph().await;
    let k = whatsapp_kit(&server);
    webhook(&k, "wamid.T2", "What are your opening hours?").await;
    deliver_until(&k.channels, &server, "/messages", 1).await;
    let conv: String = k
        .store
        .with(|c| {
            c.execute(
                "UPDATE channel_conversations SET last_inbound_at = last_inbound_at - 90000",
                [],
            )?;
            Ok(c.query_row(
                "SELECT conversation_id FROM channel_conversations",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("conversation");
    assert!(!window_open(&k.store, &conv));
    let templates = k
        .channels
        .refresh_whatsapp_templates()
        .await
        .expect("listed");
    let content = &k.channels.runtime.content();
    let params = vec!["Kerry".to_owned(), "Friday CANARY-VAR-91".to_owned()];
    let body_only = |p: &[String]| TemplateValues::body(p);
    assert!(queue_template_reply(content, &conv, &templates[1], &body_only(&params[..1])).is_err());
    queue_template_reply(content, &conv, &templates[1], &body_only(&params)).expect("queued");

    let sent = deliver_until(&k.channels, &server, "/messages", 2).await;
    let body: serde_json::Value = sent[1].body_json().expect("json");
    assert_eq!(
        body,
        serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16315551181",
            "type": "template",
            "template": {
                "name": "appointment_reminder",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "Kerry"},
                    {"type": "text", "text": "Friday CANARY-VAR-91"}
                ]}]
            }
        })
    );
    let last = content.recent_messages(&conv, 1).expect("messages");
    assert_eq!(last[0].author, Author::Human);
    assert_eq!(
        last[0].body,
        "Hi Kerry, your appointment is on Friday CANARY-VAR-91."
    );
    assert!(
        !contains(&k.db_bytes(), "CANARY-VAR-91"),
        "variables are sealed"
    );

    // A template without variables has no components; a free-form reply is still refused.
    queue_template_reply(content, &conv, &templates[0], &TemplateValues::default())
        .expect("queued");
    content
        .append_message(&conv, Author::Human, "Free text")
        .expect("reply");
    let sent = deliver_until(&k.channels, &server, "/messages", 3).await;
    let body: serde_json::Value = sent[2].body_json().expect("json");
    assert_eq!(
        body["template"],
        serde_json::json!({"name": "hello_again", "language": {"code": "en_US"}})
    );
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/messages"))
            .count(),
        3
    );
    let last = content.recent_messages(&conv, 1).expect("messages");
    assert_eq!(last[0].author, Author::System);
    assert!(last[0].body.contains("24 hours"), "{}", last[0].body);
}

#[tokio::test]
async fn a_follow_up_due_outside_the_window_is_held_with_a_note_until_the_customer_writes() {
    use crate::domain::content::{FollowupKind, FollowupStatus};
    let server = graph().await;
    let k = whatsapp_kit(&server);
    webhook(&k, "wamid.F1", "What are your opening hours?").await;
    deliver_until(&k.channels, &server, "/messages", 1).await;
    let (conv, contact): (String, String) = k
        .store
        .with(|c| {
            c.execute(
                "UPDATE channel_conversations SET last_inbound_at = last_inbound_at - 90000",
                [],
            )?;
            Ok(
                c.query_row("SELECT id, contact_id FROM conversations", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?,
            )
        })
        .expect("conversation");
    let runtime = &k.channels.runtime;
    let content = runtime.content();
    let now = crate::platform::store::now();
    let fid = content
        .add_followup(
            &contact,
            FollowupKind::Message,
            now - 5,
            "How did the visit go?",
            "u1",
        )
        .expect("follow-up");
    for _ in 0..2 {
        runtime.send_due_followups(now).expect("due");
        k.channels.deliver_pending(&[]).await.expect("deliver");
    }
    let msgs = content.recent_messages(&conv, 10).expect("messages");
    let notes: Vec<&str> = msgs
        .iter()
        .filter(|m| m.author == Author::System)
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(notes, [HELD_NOTE], "held, said once");
    assert!(!msgs.iter().any(|m| m.body == "How did the visit go?"));
    let status = |fid: &str| {
        content
            .followups(&contact, 10)
            .expect("followups")
            .into_iter()
            .find(|f| f.id == fid)
            .expect("followup")
            .status
    };
    assert_eq!(status(&fid), FollowupStatus::Pending);
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1,
        "nothing sent"
    );

    // The customer writes again: the window reopens and the follow-up goes out.
    webhook(&k, "wamid.F2", "Hello again").await;
    runtime.send_due_followups(now).expect("due");
    assert_eq!(status(&fid), FollowupStatus::Sent);
    let sent = deliver_until(&k.channels, &server, "/messages", 3).await;
    assert!(sent.iter().any(|r| {
        let b: serde_json::Value = r.body_json().expect("json");
        b["text"]["body"] == "How did the visit go?"
    }));
}

/// A WhatsApp conversation whose window closed 25 hours ago, templates listed; returns
/// (conversation id, contact id).
async fn closed_window(k: &Kit, server: &MockServer, wamid: &str) -> (String, String) {
    webhook(k, wamid, "What are your opening hours?").await;
    deliver_until(&k.channels, server, "/messages", 1).await;
    k.channels
        .refresh_whatsapp_templates()
        .await
        .expect("listed");
    k.store
        .with(|c| {
            c.execute(
                "UPDATE channel_conversations SET last_inbound_at = last_inbound_at - 90000",
                [],
            )?;
            Ok(
                c.query_row("SELECT id, contact_id FROM conversations", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?,
            )
        })
        .expect("conversation")
}

#[tokio::test]
async fn a_follow_up_due_outside_the_window_goes_out_as_its_template_with_the_name_filled_in() {
    use crate::domain::content::{FollowupKind, FollowupStatus};
    let server = graph().await;
    let k = whatsapp_kit(&server);
    let (conv, contact) = closed_window(&k, &server, "wamid.FT1").await;
    let json = followup_template_json(
        &k.store,
        "appointment_reminder:en_US",
        TemplateValues::body(&[
            "{{contact.first_name}}".into(),
            "Friday CANARY-FU-77".into(),
        ]),
    )
    .expect("valid");
    let runtime = &k.channels.runtime;
    let content = runtime.content();
    let now = crate::platform::store::now();
    let fid = content
        .add_followup_with_template(
            &contact,
            FollowupKind::Message,
            now - 5,
            "See you Friday!",
            "u1",
            Some(&json),
        )
        .expect("follow-up");
    assert!(!contains(&k.db_bytes(), "CANARY-FU-77"), "sealed");

    assert_eq!(runtime.send_due_followups(now).expect("due"), (1, 0));
    let sent = deliver_until(&k.channels, &server, "/messages", 2).await;
    let body: serde_json::Value = sent[1].body_json().expect("json");
    assert_eq!(
        body,
        serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16315551181",
            "type": "template",
            "template": {
                "name": "appointment_reminder",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "Kerry"},
                    {"type": "text", "text": "Friday CANARY-FU-77"}
                ]}]
            }
        })
    );
    let status = content
        .followups(&contact, 10)
        .expect("followups")
        .into_iter()
        .find(|f| f.id == fid)
        .expect("followup")
        .status;
    assert_eq!(status, FollowupStatus::Sent);
    let last = content.recent_messages(&conv, 1).expect("messages");
    assert_eq!(
        (last[0].author, last[0].body.as_str()),
        (
            Author::Human,
            "Hi Kerry, your appointment is on Friday CANARY-FU-77."
        ),
        "the inbox shows what the customer got"
    );
    runtime.send_due_followups(now).expect("again");
    k.channels.deliver_pending(&[]).await.expect("deliver");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        3,
        "the list, the answer and one template: sent once"
    );
}

#[tokio::test]
async fn a_follow_up_whose_template_cannot_be_filled_or_is_gone_is_held_with_a_note_saying_why() {
    use crate::domain::content::{FollowupKind, FollowupStatus};
    let server = graph().await;
    let k = whatsapp_kit(&server);
    let (conv, contact) = closed_window(&k, &server, "wamid.FT2").await;
    let content = k.channels.runtime.content();
    // The contact has no name, and the template names them.
    content
        .update_contact(
            &contact,
            crate::domain::content::ContactUpdate {
                name: Some(String::new()),
                email: None,
                phone: None,
                stage: None,
                score: None,
                tags: None,
            },
            "u1",
        )
        .expect("name removed");
    let now = crate::platform::store::now();
    let add = |values: Vec<String>, key: &str| {
        let json =
            followup_template_json(&k.store, key, TemplateValues::body(&values)).expect("valid");
        content
            .add_followup_with_template(
                &contact,
                FollowupKind::Message,
                now - 5,
                "See you",
                "u1",
                Some(&json),
            )
            .expect("follow-up")
    };
    let nameless = add(
        vec!["{{contact.name}}".into(), "Friday".into()],
        "appointment_reminder:en_US",
    );
    let gone = add(vec![], "hello_again:en_US");
    // hello_again is withdrawn at Meta before the follow-up is due.
    let mut left = cached_templates(&k.store);
    left.retain(|t| t.name != "hello_again");
    k.store
        .with(|c| Store::set_meta(c, TEMPLATES_KEY, &serde_json::to_string(&left).expect("j")))
        .expect("cache");

    assert_eq!(
        k.channels.runtime.send_due_followups(now).expect("due"),
        (0, 0)
    );
    k.channels.deliver_pending(&[]).await.expect("deliver");
    let notes: Vec<String> = content
        .recent_messages(&conv, 10)
        .expect("messages")
        .into_iter()
        .filter(|m| m.author == Author::System)
        .map(|m| m.body)
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().any(|n| n == NO_NAME_NOTE), "{notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("\"hello_again\" is no longer approved")),
        "{notes:?}"
    );
    let statuses: Vec<FollowupStatus> = content
        .followups(&contact, 10)
        .expect("followups")
        .into_iter()
        .filter(|f| f.id == nameless || f.id == gone)
        .map(|f| f.status)
        .collect();
    assert_eq!(statuses, [FollowupStatus::Pending; 2]);
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        2,
        "nothing sent past the list and the first answer"
    );
}

#[test]
fn a_follow_up_template_is_refused_in_words_when_its_values_are_wrong() {
    let k = super::super::testkit::whatsapp_kit("http://127.0.0.1:9");
    let cache = |templates: &serde_json::Value| {
        let list: TemplateList = serde_json::from_value(templates.clone()).expect("list");
        let usable: Vec<Template> = list.data.into_iter().filter_map(usable).collect();
        k.store
            .with(|c| {
                Store::set_meta(
                    c,
                    TEMPLATES_KEY,
                    &serde_json::to_string(&usable).expect("j"),
                )
            })
            .expect("cache");
    };
    cache(&template_list());
    let key = "appointment_reminder:en_US";
    let err = |values: Vec<&str>, key: &str| {
        followup_template_json(
            &k.store,
            key,
            TemplateValues {
                body: values.into_iter().map(String::from).collect(),
                ..TemplateValues::default()
            },
        )
        .expect_err("refused")
    };
    assert_eq!(
        err(vec!["Kerry"], key),
        "Fill in every variable of the template."
    );
    assert_eq!(
        err(vec!["Kerry", " "], key),
        "Fill in variable 2 of the template."
    );
    assert!(err(vec!["{{contact.email}}", "Friday"], key).contains("placeholder"));
    assert_eq!(
        err(vec![], "named_params:en_US"),
        "Choose one of the approved templates."
    );
}

#[tokio::test]
async fn a_template_with_a_media_header_and_a_url_button_is_sent_with_the_components_meta_documents(
) {
    let server = graph().await;
    let k = whatsapp_kit(&server);
    let (conv, _) = closed_window(&k, &server, "wamid.M1").await;
    let templates = cached_templates(&k.store);
    let find = |name: &str| {
        templates
            .iter()
            .find(|t| t.name == name)
            .expect("listed")
            .clone()
    };
    let (shipped, promo) = (find("order_shipped"), find("promo_picture"));
    let content = k.channels.runtime.content();
    let values = TemplateValues {
        body: vec!["A-1001".into()],
        header_link: Some("https://shop.example/invoices/A-1001.pdf".into()),
        button: Some("A-1001".into()),
    };
    for bad in [
        TemplateValues {
            header_link: None,
            ..values.clone()
        },
        TemplateValues {
            header_link: Some("https://127.0.0.1/a.pdf".into()),
            ..values.clone()
        },
        TemplateValues {
            button: None,
            ..values.clone()
        },
        TemplateValues {
            button: Some("A 1001".into()),
            ..values.clone()
        },
    ] {
        assert!(shipped.check(&bad).is_err(), "{bad:?}");
        assert!(queue_template_reply(content, &conv, &shipped, &bad).is_err());
    }
    queue_template_reply(content, &conv, &shipped, &values).expect("queued");
    queue_template_reply(
        content,
        &conv,
        &promo,
        &TemplateValues {
            header_link: Some("https://shop.example/summer.jpg".into()),
            ..TemplateValues::default()
        },
    )
    .expect("queued");

    let sent = deliver_until(&k.channels, &server, "/messages", 3).await;
    let body: serde_json::Value = sent[1].body_json().expect("json");
    assert_eq!(
        body,
        serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16315551181",
            "type": "template",
            "template": {
                "name": "order_shipped",
                "language": {"code": "en_US"},
                "components": [
                    {"type": "header", "parameters": [
                        {"type": "document", "document": {"link": "https://shop.example/invoices/A-1001.pdf"}}
                    ]},
                    {"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]},
                    {"type": "button", "sub_type": "url", "index": "1", "parameters": [
                        {"type": "text", "text": "A-1001"}
                    ]}
                ]
            }
        })
    );
    let body: serde_json::Value = sent[2].body_json().expect("json");
    assert_eq!(
        body["template"]["components"],
        serde_json::json!([{"type": "header", "parameters": [
            {"type": "image", "image": {"link": "https://shop.example/summer.jpg"}}
        ]}])
    );
}

#[tokio::test]
async fn a_template_send_queued_before_headers_were_offered_is_still_sent() {
    let server = graph().await;
    let k = whatsapp_kit(&server);
    let (conv, _) = closed_window(&k, &server, "wamid.M2").await;
    // What the previous version sealed: the body variables alone.
    k.channels
        .runtime
        .content()
        .append_message_with_extra(
            &conv,
            Author::Human,
            "Hi Kerry, your appointment is on Friday.",
            r#"["Kerry","Friday"]"#,
            |db, msg, sealed| {
                db.execute(
                    "INSERT INTO whatsapp_template_sends (message_id, name, language, params_ct)
                     VALUES (?1, 'appointment_reminder', 'en_US', ?2)",
                    params![msg.id, sealed],
                )?;
                Ok(())
            },
        )
        .expect("queued");
    let sent = deliver_until(&k.channels, &server, "/messages", 2).await;
    let body: serde_json::Value = sent[1].body_json().expect("json");
    assert_eq!(
        body["template"]["components"],
        serde_json::json!([{"type": "body", "parameters": [
            {"type": "text", "text": "Kerry"},
            {"type": "text", "text": "Friday"}
        ]}])
    );
}
