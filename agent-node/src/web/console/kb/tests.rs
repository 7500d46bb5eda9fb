use super::*;
use crate::web::console::tests::{fixture, sign_in, Fixture, ADMIN};
use crate::web::console::{routes, security_headers};
use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::test as at;

const ORIGIN: &str = "http://acme-dental.localhost:40123";
const BOUNDARY: &str = "----outpost-test-boundary";

macro_rules! app {
    ($f:expr) => {
        at::init_service(
            actix_web::App::new()
                .app_data($f.data.clone())
                .wrap(security_headers())
                .configure(routes),
        )
        .await
    };
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn upload_req(cookie: Option<&Cookie<'static>>, origin: &str, body: Vec<u8>) -> at::TestRequest {
    let mut r = at::TestRequest::post()
        .uri("/kb/upload")
        .insert_header(("origin", origin))
        .insert_header((
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .set_payload(body);
    if let Some(c) = cookie {
        r = r.cookie(c.clone());
    }
    r
}

fn kb(f: &Fixture) -> KnowledgeBase {
    knowledge_base(&f.data)
}

async fn body_text(
    r: actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
) -> String {
    String::from_utf8(at::read_body(r).await.to_vec()).expect("utf8")
}

#[actix_web::test]
async fn upload_view_search_delete() {
    let f = fixture();
    let app = app!(f);
    let cookie = sign_in!(app, f, ADMIN);

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/kb")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body_text(r).await;
    assert!(page.contains("id=\"kb-empty\""), "{page}");
    assert!(page.contains("accept=\".txt,.md,.markdown,.html,.htm,.csv,.pdf,.docx\""));
    assert!(page.contains("10 MiB") && page.contains("PDF"));

    let md = b"# Whitening\n\nOur <b>teeth whitening</b> session takes one hour & costs 300 EUR.";
    let r = at::call_service(
        &app,
        upload_req(
            Some(&cookie),
            ORIGIN,
            multipart(&[("file", Some("docs/whitening.md"), md)]),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r
        .headers()
        .get("location")
        .expect("location")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        location.starts_with("/kb/") && location.ends_with("?done=uploaded"),
        "{location}"
    );

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&location)
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body_text(r).await;
    assert!(page.contains("<h1>whitening.md</h1>"), "{page}");
    assert!(
            page.contains(r#"<p class="flash" role="status" id="done">Document added: your agents answer from it now.</p>"#),
            "the page says what the upload did: {page}"
        );
    assert!(
        page.contains("&lt;b&gt;teeth whitening&lt;&#x2f;b&gt;")
            || page.contains("&lt;b&gt;teeth whitening&lt;/b&gt;"),
        "markdown keeps literal HTML as text, escaped on the page: {page}"
    );
    assert!(
        page.contains(r#"<p class="kb-passage">Whitening<br>Our "#),
        "the passage shows the heading it sits under: {page}"
    );

    // A CSV with an explicit title.
    let csv = b"question,answer\nIs there parking?,Yes behind the building\n";
    let r = at::call_service(
        &app,
        upload_req(
            Some(&cookie),
            ORIGIN,
            multipart(&[
                ("title", None, b"Parking FAQ"),
                ("file", Some("faq.csv"), csv),
            ]),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/kb?q=whitening+price")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let page = body_text(r).await;
    assert!(page.contains("id=\"kb-hits\""), "{page}");
    assert!(page.contains("whitening.md") && page.contains("one hour"));
    assert!(!page.contains("behind the building"));
    assert!(page.contains("Parking FAQ"), "listed");

    let id = location
        .trim_start_matches("/kb/")
        .trim_end_matches("?done=uploaded")
        .to_owned();
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!("/kb/{id}/delete"))
            .insert_header(("origin", ORIGIN))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers().get("location").expect("location"),
        "/kb?done=deleted"
    );
    assert!(kb(&f).search("whitening", 5).expect("search").is_empty());
    assert_eq!(kb(&f).list().expect("list").len(), 1);
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&location)
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/kb/not-an-id")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn oversized_upload_is_413_and_nothing_is_stored() {
    let f = fixture();
    let app = app!(f);
    let cookie = sign_in!(app, f, ADMIN);
    // Just over the limit: passes the Content-Length pre-check, caught while streaming.
    let big = vec![b'a'; MAX_UPLOAD_BYTES + 1];
    let r = at::call_service(
        &app,
        upload_req(
            Some(&cookie),
            ORIGIN,
            multipart(&[("file", Some("big.txt"), &big)]),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let page = body_text(r).await;
    assert!(
        page.contains("“big.txt” was not added: The file is larger than 10 MiB"),
        "{page}"
    );
    // Far over: refused on the declared length, still naming the file.
    let huge = vec![b'a'; MAX_UPLOAD_BYTES + 2 * FORM_OVERHEAD];
    let r = at::call_service(
        &app,
        upload_req(
            Some(&cookie),
            ORIGIN,
            multipart(&[("file", Some("huge.txt"), &huge)]),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body_text(r)
        .await
        .contains("“huge.txt” was not added: The file is larger than 10 MiB"));
    assert!(kb(&f).list().expect("list").is_empty());
    // Exactly at the limit is accepted.
    let ok = vec![b'a'; MAX_UPLOAD_BYTES];
    let r = at::call_service(
        &app,
        upload_req(
            Some(&cookie),
            ORIGIN,
            multipart(&[("file", Some("max.txt"), &ok)]),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(kb(&f).list().expect("list").len(), 1);
}

#[actix_web::test]
async fn bad_uploads_are_400() {
    let f = fixture();
    let app = app!(f);
    let cookie = sign_in!(app, f, ADMIN);
    for (parts, expect) in [
        (
            multipart(&[("file", Some("report.pdf"), b"%PDF-1.7")]),
            "“report.pdf” was not added: The PDF could not be read.",
        ),
        (
            multipart(&[(
                "file",
                Some("scan.pdf"),
                &crate::domain::kb::documents::tests::pdf_with_pages(&[&[]], true),
            )]),
            "“scan.pdf” was not added: The PDF has no text layer (it looks like a scan)",
        ),
        (
            multipart(&[("file", Some("letter.doc"), b"\xd0\xcf\x11\xe0")]),
            "save it as .docx first",
        ),
        (
            multipart(&[("file", Some("slides.pptx"), b"PK")]),
            "“slides.pptx” was not added: This type of file is not accepted.",
        ),
        (
            multipart(&[("file", Some("x.txt"), b"\xff\xfe\x00")]),
            "UTF-8",
        ),
        (
            multipart(&[("file", Some("x.csv"), b"q,a\nlonely\n")]),
            "Row 2",
        ),
        (
            multipart(&[("file", Some("x.html"), b"<p> </p>")]),
            "no text",
        ),
        (multipart(&[("title", None, b"t")]), "Choose a file"),
    ] {
        let r = at::call_service(&app, upload_req(Some(&cookie), ORIGIN, parts).to_request()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{expect}");
        let page = body_text(r).await;
        assert!(page.contains(expect), "{expect}: {page}");
    }
    assert!(kb(&f).list().expect("list").is_empty());
}

/// Issue 13: a refused upload says which file failed (its name, escaped; never its
/// content), inside the console's navigation, with a way back to the knowledge base.
#[actix_web::test]
async fn a_refused_upload_names_the_file_and_leads_back_to_the_knowledge_base() {
    let f = fixture();
    let app = app!(f);
    let cookie = sign_in!(app, f, ADMIN);
    for (file, data, status, expect) in [
        (
            "prices.pdf",
            &b"%PDF-1.7 canary-file-body"[..],
            StatusCode::BAD_REQUEST,
            "“prices.pdf” was not added: The PDF could not be read.",
        ),
        (
            "empty.html",
            &b"<p> canary-file-body </p>"[..],
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "blank.txt",
            &b"   "[..],
            StatusCode::BAD_REQUEST,
            "“blank.txt” was not added: The document contains no text.",
        ),
        (
            "<em>prices.pdf",
            &b"canary-file-body"[..],
            StatusCode::BAD_REQUEST,
            "“&lt;em&gt;prices.pdf” was not added",
        ),
    ] {
        let r = at::call_service(
            &app,
            upload_req(
                Some(&cookie),
                ORIGIN,
                multipart(&[("file", Some(file), data)]),
            )
            .to_request(),
        )
        .await;
        if expect.is_empty() {
            // A document with text is accepted: the loop's control case.
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{file}");
            continue;
        }
        assert_eq!(r.status(), status, "{file}");
        let page = body_text(r).await;
        assert!(page.contains(expect), "{file}: {page}");
        assert!(
            page.contains(r#"<nav class="tabs" aria-label="Console">"#),
            "{file}: the navigation stays: {page}"
        );
        assert!(
            page.contains(r#"<a href="/kb" id="back">← Back</a>"#),
            "{file}: back to the knowledge base: {page}"
        );
        assert!(!page.contains("canary-file-body"), "{page}");
        assert!(!page.contains("<em>"), "the name is escaped: {page}");
    }
    assert_eq!(kb(&f).list().expect("list").len(), 1);
}

#[actix_web::test]
async fn session_and_origin_are_required() {
    let f = fixture();
    let app = app!(f);
    for uri in ["/kb", "/kb?q=x", "/kb/00000000-0000-0000-0000-000000000000"] {
        let r = at::call_service(&app, at::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    let body = || multipart(&[("file", Some("a.txt"), b"hello world")]);
    let r = at::call_service(&app, upload_req(None, ORIGIN, body()).to_request()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let cookie = sign_in!(app, f, ADMIN);
    let r = at::call_service(
        &app,
        upload_req(Some(&cookie), "http://evil.localhost", body()).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let doc = kb(&f)
        .add_document("a.txt", DocKind::Text, b"hello world", None)
        .expect("add");
    let r = at::call_service(
        &app,
        at::TestRequest::post()
            .uri(&format!("/kb/{}/delete", doc.id))
            .insert_header(("origin", "http://evil.localhost"))
            .cookie(cookie)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(kb(&f).list().expect("list").len(), 1);
}

#[test]
fn helpers() {
    assert_eq!(human_size(12), "12 B");
    assert_eq!(human_size(2048), "2 KiB");
    assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MiB");
    assert_eq!(base_name("C:\\fakepath\\a.txt"), "a.txt");
    assert_eq!(base_name("dir/b.md"), "b.md");
    assert!(valid_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
    assert!(!valid_id("../etc/passwd"));
}

/// Issue 19: a website is added from the knowledge-base page; a private address is
/// refused with a reason, and a queued import shows its progress row, which polls itself.
#[actix_web::test]
async fn a_website_source_is_added_shows_its_progress_and_can_be_removed() {
    let f = fixture();
    let app = app!(f);
    let cookie = sign_in!(app, f, ADMIN);
    let post = |uri: &str, body: &str| {
        at::TestRequest::post()
            .uri(uri)
            .insert_header(("origin", ORIGIN))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .cookie(cookie.clone())
            .set_payload(body.to_owned())
            .to_request()
    };
    let r = at::call_service(
        &app,
        post("/kb/sites", "url=http%3A%2F%2F10.0.0.7%2F&every=24"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(r).await.contains("private network"));
    let r = at::call_service(
        &app,
        post(
            "/kb/sites",
            "url=https%3A%2F%2Fwww.example.com%2Fsitemap.xml&every=7",
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(f.data.sites.list().expect("list").is_empty());

    let r = at::call_service(
        &app,
        post(
            "/kb/sites",
            "url=https%3A%2F%2Fwww.example.com%2Fsitemap.xml&every=24",
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers().get("location").expect("location"),
        "/kb?done=import_queued"
    );
    let sources = f.data.sites.list().expect("list");
    assert_eq!(sources.len(), 1);
    let id = sources[0].id.clone();

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/kb")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let page = body_text(r).await;
    assert!(
        page.contains("https://www.example.com/sitemap.xml"),
        "{page}"
    );
    assert!(
        page.contains(&format!("hx-get=\"/kb/sites/{id}/row\"")),
        "{page}"
    );
    assert!(
        page.contains("Waiting to start") && page.contains("Daily"),
        "{page}"
    );

    let r = at::call_service(
        &app,
        at::TestRequest::get()
            .uri(&format!("/kb/sites/{id}/row"))
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let row = body_text(r).await;
    assert!(row.starts_with(&format!("<tr id=\"site-{id}\"")), "{row}");

    let r = at::call_service(&app, post(&format!("/kb/sites/{id}/delete"), "")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(f.data.sites.list().expect("list").is_empty());
}
