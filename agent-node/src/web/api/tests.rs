use super::*;
use crate::domain::api_tokens::ApiScope;
use crate::domain::content::{Author, Content};
use crate::web::console::tests::{fixture, Fixture};
use actix_web::dev::ServiceResponse;
use actix_web::test as at;
use serde_json::Value;

macro_rules! app {
    ($f:expr) => {
        at::init_service(
            actix_web::App::new()
                .app_data($f.data.clone())
                .wrap(crate::web::console::security_headers())
                .configure(crate::web::api::routes)
                .configure(crate::web::console::routes),
        )
        .await
    };
}

fn token(f: &Fixture, scopes: &[ApiScope]) -> String {
    ApiTokens::new(f.data.store.clone(), &f.data.master)
        .create("test", scopes, None, "user-1")
        .expect("token")
        .1
}

async fn json(r: ServiceResponse) -> Value {
    let bytes = at::read_body(r).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(300)
                .collect::<String>()
        )
    })
}

fn request(method: &str, uri: &str, bearer: Option<&str>) -> at::TestRequest {
    let req = match method {
        "GET" => at::TestRequest::get(),
        "POST" => at::TestRequest::post(),
        "PATCH" => at::TestRequest::patch(),
        "DELETE" => at::TestRequest::delete(),
        other => panic!("method {other}"),
    }
    .uri(uri);
    match bearer {
        Some(t) => req.insert_header(("authorization", format!("Bearer {t}"))),
        None => req,
    }
}

/// Every guarded route: no token 401, a token without the route's scope 403, a revoked
/// or an expired token 401, each with its JSON code; the right scope gets past the guard.
#[actix_web::test]
async fn every_route_refuses_without_a_token_the_wrong_scope_and_a_dead_token() {
    let f = fixture();
    let app = app!(f);
    let tokens = ApiTokens::new(f.data.store.clone(), &f.data.master);
    let (revoked_info, revoked) = tokens
        .create("revoked", &ApiScope::ALL, None, "u")
        .expect("token");
    tokens.revoke(&revoked_info.id).expect("revoke");
    let (_, expired) = tokens
        .create(
            "expired",
            &ApiScope::ALL,
            Some(crate::platform::store::now() + 60),
            "u",
        )
        .expect("token");
    f.data
        .store
        .with(|c| {
            Ok(c.execute(
                "UPDATE api_tokens SET expires_at = 5 WHERE name = 'expired'",
                [],
            )?)
        })
        .expect("expire");
    let mut guarded = 0;
    for r in ROUTES {
        let uri = r
            .pattern
            .replace("{id}", "3f1c2a9e-7b7d-4c1e-9a57-1f0f4f3f2a10");
        let Some(scope) = r.scope else {
            let res = at::call_service(&app, request(r.method, &uri, None).to_request()).await;
            assert_eq!(res.status(), StatusCode::OK, "{} {}", r.method, r.pattern);
            continue;
        };
        guarded += 1;
        let others: Vec<ApiScope> = ApiScope::ALL.into_iter().filter(|s| *s != scope).collect();
        let wrong = token(&f, &others);
        let right = token(&f, &[scope]);
        for (what, bearer, status, code) in [
            (
                "no token",
                None,
                StatusCode::UNAUTHORIZED,
                "missing_api_token",
            ),
            (
                "not a token",
                Some("onat_forged"),
                StatusCode::UNAUTHORIZED,
                "invalid_api_token",
            ),
            (
                "revoked",
                Some(revoked.as_str()),
                StatusCode::UNAUTHORIZED,
                "token_revoked",
            ),
            (
                "expired",
                Some(expired.as_str()),
                StatusCode::UNAUTHORIZED,
                "token_expired",
            ),
            (
                "wrong scope",
                Some(wrong.as_str()),
                StatusCode::FORBIDDEN,
                "missing_scope",
            ),
        ] {
            let res = at::call_service(
                &app,
                request(r.method, &uri, bearer)
                    .insert_header(("content-type", "application/json"))
                    .set_payload("{}")
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), status, "{what}: {} {}", r.method, r.pattern);
            let body = json(res).await;
            assert_eq!(body["code"], code, "{what}: {} {}", r.method, r.pattern);
        }
        let res = at::call_service(
            &app,
            request(r.method, &uri, Some(&right))
                .insert_header(("content-type", "application/json"))
                .set_payload("{}")
                .to_request(),
        )
        .await;
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&res.status()),
            "the right scope passes: {} {} -> {}",
            r.method,
            r.pattern,
            res.status()
        );
    }
    assert!(guarded >= 12, "every data route is guarded");
}

/// The OpenAPI document and the route table list the same routes, and every route the
/// table declares is registered (a declared route no handler serves answers the API's
/// 404 `no such route`).
#[actix_web::test]
async fn the_document_lists_every_route() {
    let f = fixture();
    let app = app!(f);
    let res = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/api/v1/openapi.json")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let doc = json(res).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let mut documented = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    for r in ROUTES {
        assert!(
            documented.contains(&(r.method.to_owned(), r.pattern.to_owned())),
            "{} {} is not in the OpenAPI document",
            r.method,
            r.pattern
        );
        if r.scope.is_some() {
            let op = &doc["paths"][r.pattern][r.method.to_lowercase()];
            assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object());
        }
    }
    for (method, path) in &documented {
        assert!(
            ROUTES
                .iter()
                .any(|r| r.method == method && r.pattern == path),
            "the document lists {method} {path}, which ROUTES does not declare"
        );
    }
    // Registered: with every scope, no declared route answers "no such route".
    let all = token(&f, &ApiScope::ALL);
    for r in ROUTES {
        let uri = r
            .pattern
            .replace("{id}", "3f1c2a9e-7b7d-4c1e-9a57-1f0f4f3f2a10");
        let res = at::call_service(&app, request(r.method, &uri, Some(&all)).to_request()).await;
        if res.status() == StatusCode::NOT_FOUND {
            let body = json(res).await;
            assert_ne!(
                body["message"], "There is no such route.",
                "{} {} is declared but not registered",
                r.method, r.pattern
            );
        }
    }
    let res = at::call_service(
        &app,
        request("GET", "/api/v1/nope", Some(&all)).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(res).await["code"], "not_found");
}

fn seed(f: &Fixture) -> (Content, String, String) {
    let c = Content::new(f.data.store.clone(), &f.data.master);
    let contact = c
        .contact_for_identity("telegram", "777", Some("Maria Lopez"))
        .expect("contact");
    let conv = c
        .current_conversation(&contact, "agent-1", "telegram")
        .expect("conv");
    c.append_message(&conv.id, Author::Contact, "Do you open on Sundays?")
        .expect("msg");
    (c, contact, conv.id)
}

#[actix_web::test]
async fn conversations_and_messages_page_and_a_reply_takes_the_conversation_over() {
    let f = fixture();
    let app = app!(f);
    let (c, _, conv) = seed(&f);
    for i in 0..4 {
        let k = c
            .contact_for_identity("web", &format!("v-{i}"), None)
            .expect("contact");
        c.current_conversation(&k, "agent-1", "web").expect("conv");
    }
    let read = token(&f, &[ApiScope::ConversationsRead]);
    // Five conversations, two per page: every one once, in three pages.
    let mut seen = vec![];
    let mut uri = "/api/v1/conversations?limit=2".to_owned();
    for _ in 0..4 {
        let res = at::call_service(&app, request("GET", &uri, Some(&read)).to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let page = json(res).await;
        for item in page["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => uri = format!("/api/v1/conversations?limit=2&cursor={next}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
    for bad in ["limit=0", "limit=201", "cursor=%%%", "status=nope"] {
        let res = at::call_service(
            &app,
            request("GET", &format!("/api/v1/conversations?{bad}"), Some(&read)).to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json(res).await["code"], "invalid_input", "{bad}");
    }

    let res = at::call_service(
        &app,
        request(
            "GET",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&read),
        )
        .to_request(),
    )
    .await;
    let page = json(res).await;
    assert_eq!(page["items"][0]["text"], "Do you open on Sundays?");
    assert_eq!(page["items"][0]["author"], "contact");

    let write = token(&f, &[ApiScope::MessagesWrite]);
    let reply = |body: &'static str| {
        request(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&write),
        )
        .insert_header(("content-type", "application/json"))
        .set_payload(body)
        .to_request()
    };
    let res = at::call_service(&app, reply(r#"{"text": "Yes, 10 to 2."}"#)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(json(res).await["author"], "human");
    let now = c.conversation(&conv).expect("get").expect("conv");
    assert!(now.taken_over(), "the assistant stops answering");
    let last = c.recent_messages(&conv, 1).expect("messages");
    assert_eq!(
        (last[0].author, last[0].body.as_str()),
        (Author::Human, "Yes, 10 to 2.")
    );
    for (body, status, code) in [
        (
            r#"{"text": "  "}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"txt": "hi"}"#,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        ("not json", StatusCode::BAD_REQUEST, "malformed_json"),
    ] {
        let res = at::call_service(&app, reply(body)).await;
        assert_eq!(res.status(), status, "{body}");
        assert_eq!(json(res).await["code"], code, "{body}");
    }
    let big: &'static str = format!(r#"{{"text": "{}"}}"#, "x".repeat(MAX_JSON_BYTES)).leak();
    let res = at::call_service(&app, reply(big)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(res).await["code"], "payload_too_large");
    assert_eq!(
        c.recent_messages(&conv, 10).expect("messages").len(),
        3,
        "the question, the takeover note, the reply: refused replies store nothing"
    );
}

#[actix_web::test]
async fn contacts_are_read_and_updated_with_their_rules() {
    let f = fixture();
    let app = app!(f);
    let (c, contact, _) = seed(&f);
    let t = token(&f, &[ApiScope::ContactsRead, ApiScope::ContactsWrite]);
    let res = at::call_service(
        &app,
        request("GET", "/api/v1/contacts", Some(&t)).to_request(),
    )
    .await;
    let page = json(res).await;
    assert_eq!(page["items"][0]["name"], "Maria Lopez");
    assert!(
        page["items"][0].get("identity").is_none(),
        "not the channel identity"
    );
    let patch = |body: &'static str| {
        request("PATCH", &format!("/api/v1/contacts/{contact}"), Some(&t))
            .insert_header(("content-type", "application/json"))
            .set_payload(body)
            .to_request()
    };
    let res = at::call_service(
        &app,
        patch(r#"{"email": "maria@example.com", "stage": "qualified", "tags": ["VIP"]}"#),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = json(res).await;
    assert_eq!(
        (body["email"].as_str(), body["stage"].as_str()),
        (Some("maria@example.com"), Some("qualified"))
    );
    for bad in [
        r#"{"email": "nope"}"#,
        r#"{"score": 101}"#,
        r#"{"stage": "gold"}"#,
    ] {
        let res = at::call_service(&app, patch(bad)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json(res).await["code"], "invalid_input", "{bad}");
    }
    let now = c.contact(&contact).expect("get").expect("contact");
    assert_eq!(
        now.email.as_deref(),
        Some("maria@example.com"),
        "refused changes change nothing"
    );
    let res = at::call_service(
        &app,
        request(
            "GET",
            "/api/v1/contacts/3f1c2a9e-7b7d-4c1e-9a57-1f0f4f3f2a10",
            Some(&t),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn kb_documents_are_uploaded_listed_and_deleted_within_the_limit() {
    let f = fixture();
    let app = app!(f);
    let t = token(&f, &[ApiScope::KbRead, ApiScope::KbWrite]);
    let res = at::call_service(
        &app,
        request("POST", "/api/v1/kb/documents?filename=hours.md", Some(&t))
            .set_payload("# Hours\n\nWe open Monday to Friday, 9 to 5.")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let doc = json(res).await;
    assert_eq!(doc["kind"], "markdown");
    let id = doc["id"].as_str().expect("id").to_owned();
    for (uri, body, status) in [
        (
            "/api/v1/kb/documents?filename=x.exe",
            b"MZ".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/kb/documents",
            b"text".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/kb/documents?filename=big.txt",
            vec![b'a'; crate::domain::kb::MAX_UPLOAD_BYTES + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let res = at::call_service(
            &app,
            request("POST", uri, Some(&t))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), status, "{uri}");
        assert!(json(res).await["code"].is_string());
    }
    let res = at::call_service(
        &app,
        request("GET", "/api/v1/kb/documents", Some(&t)).to_request(),
    )
    .await;
    let list = json(res).await;
    assert_eq!(
        list["items"].as_array().expect("items").len(),
        1,
        "refused uploads store nothing"
    );
    let res = at::call_service(
        &app,
        request("DELETE", &format!("/api/v1/kb/documents/{id}"), Some(&t)).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = at::call_service(
        &app,
        request("DELETE", &format!("/api/v1/kb/documents/{id}"), Some(&t)).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn an_export_is_started_and_its_link_appears_when_ready() {
    let f = fixture();
    let app = app!(f);
    let (_, contact, _) = seed(&f);
    let t = token(&f, &[ApiScope::ExportsCreate]);
    let res = at::call_service(
        &app,
        request("POST", "/api/v1/exports", Some(&t))
            .insert_header(("content-type", "application/json"))
            .set_payload(format!(r#"{{"contact_id": "{contact}", "link_hours": 2}}"#))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let e = json(res).await;
    assert_eq!(e["scope"], "contact");
    let id = e["id"].as_str().expect("id").to_owned();
    let mut ready = Value::Null;
    for _ in 0..100 {
        let res = at::call_service(
            &app,
            request("GET", &format!("/api/v1/exports/{id}"), Some(&t)).to_request(),
        )
        .await;
        let e = json(res).await;
        if e["state"] == "ready" {
            ready = e;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let link = ready["download_url"].as_str().expect("a link once ready");
    assert!(
        link.starts_with("http://acme-dental.localhost:40123/exports/"),
        "{link}"
    );
    let res = at::call_service(
        &app,
        request("POST", "/api/v1/exports", Some(&t))
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"link_hours": 0}"#)
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}
