//! Website import against a local fake site (wiremock on 127.0.0.1, reached with the
//! policy's local switch on, as the other outbound tests do).

use super::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn importer(limits: Limits) -> (tempfile::TempDir, Arc<Importer>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("node.db")).expect("db"));
    let master = Arc::new(MasterKey::from_bytes([7; 32]));
    let imp = Importer::new(store, master, Policy::new(true), limits).expect("client");
    (dir, Arc::new(imp))
}

fn html(title: &str, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        format!("<html><head><title>{title}</title></head><body>{body}</body></html>"),
        "text/html; charset=utf-8",
    )
}

async fn page(server: &MockServer, at: &str, resp: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(resp)
        .mount(server)
        .await;
}

async fn robots(server: &MockServer, txt: &str) {
    page(
        server,
        "/robots.txt",
        ResponseTemplate::new(200).set_body_string(txt.to_owned()),
    )
    .await;
}

#[test]
fn robots_rules_longest_match_wins_and_named_agents_come_first() {
    let r = Robots::parse(
        "User-agent: *\nDisallow: /private\nAllow: /private/open\nDisallow: /*.pdf$\n",
        ROBOTS_AGENT,
    );
    assert!(r.allows("/"));
    assert!(!r.allows("/private/x"));
    assert!(r.allows("/private/open/x"));
    assert!(!r.allows("/files/menu.pdf"));
    assert!(r.allows("/files/menu.pdf?x=1"));
    // A group naming us replaces `*`.
    let r = Robots::parse(
        "User-agent: *\nDisallow: /\n\nUser-agent: Outpost\nUser-agent: other\nDisallow: /admin\n",
        ROBOTS_AGENT,
    );
    assert!(r.allows("/prices"));
    assert!(!r.allows("/admin/x"));
    // `Disallow:` with nothing allows everything; comments are ignored.
    let r = Robots::parse("User-agent: * # all\nDisallow:\n", ROBOTS_AGENT);
    assert!(r.allows("/anything"));
}

#[test]
fn sitemaps_and_sitemap_indexes_are_read() {
    let (locs, index) = sitemap_locs(
        r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc> https://a.example/x?a=1&amp;b=2 </loc></url><url><loc>https://a.example/y</loc></url></urlset>"#,
    );
    assert_eq!(locs, ["https://a.example/x?a=1&b=2", "https://a.example/y"]);
    assert!(!index);
    let (_, index) = sitemap_locs(
        r#"<sitemapindex><sitemap><loc>https://a.example/s1.xml</loc></sitemap></sitemapindex>"#,
    );
    assert!(index);
}

#[tokio::test]
async fn a_sitemap_import_reads_its_pages_obeys_robots_and_is_searchable() {
    let server = MockServer::start().await;
    let base = server.uri();
    robots(&server, "User-agent: *\nDisallow: /staff\n").await;
    page(
        &server,
        "/sitemap.xml",
        ResponseTemplate::new(200).set_body_string(format!(
            "<urlset><url><loc>{base}/prices</loc></url><url><loc>{base}/staff</loc></url>\
             <url><loc>{base}/contact</loc></url><url><loc>https://elsewhere.example/x</loc></url></urlset>"
        )),
    )
    .await;
    page(
        &server,
        "/prices",
        html(
            "Prices",
            "<h1>Prices</h1><h2>Cleaning</h2><p>A cleaning costs 80 EUR.</p>",
        ),
    )
    .await;
    page(&server, "/staff", html("Staff", "<p>canary-staff-only</p>")).await;
    page(
        &server,
        "/contact",
        html(
            "Contact",
            "<h1>Find us</h1><p>We are at 12 Harbour Street.</p>",
        ),
    )
    .await;

    let (_d, imp) = importer(Limits::default());
    let id = imp
        .add(&format!("{base}/sitemap.xml"), 24)
        .expect("source added");
    assert_eq!(imp.run_due(store::now()).await, 1);
    let src = imp.get(&id).expect("get").expect("source");
    assert_eq!(src.state, SourceState::Done, "{:?}", src.notes);
    assert_eq!(src.pages_done, 2);
    assert!(
        src.notes
            .iter()
            .any(|n| n.contains("/staff") && n.contains("robots.txt")),
        "{:?}",
        src.notes
    );
    assert!(
        src.notes.iter().any(|n| n.contains("elsewhere.example")),
        "{:?}",
        src.notes
    );
    let kb = imp.kb();
    let hits = kb.search("how much is a cleaning", 3).expect("search");
    assert_eq!(hits[0].text, "A cleaning costs 80 EUR.");
    assert_eq!(hits[0].context, "Prices › Cleaning");
    assert!(kb
        .search("canary-staff-only", 3)
        .expect("search")
        .is_empty());
    // Not due again before a day has passed.
    assert_eq!(imp.run_due(store::now() + 3600).await, 0);
    let next = src.next_at.expect("scheduled daily");
    assert!(next >= store::now() + 23 * 3600, "{next}");
}

#[tokio::test]
async fn a_start_page_import_follows_same_site_links_and_reimports_on_schedule() {
    let server = MockServer::start().await;
    let base = server.uri();
    page(&server, "/robots.txt", ResponseTemplate::new(404)).await;
    page(
        &server,
        "/",
        html(
            "Home",
            r#"<h1>Welcome</h1><p>Dental care in Harbour Town.</p>
               <a href="/hours#top">Hours</a> <a href='https://other.example/'>Other</a>"#,
        ),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/hours"))
        .respond_with(html(
            "Hours",
            "<h2>Opening hours</h2><p>Open Monday to Friday.</p>",
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (_d, imp) = importer(Limits::default());
    let id = imp.add(&format!("{base}/"), 24).expect("source added");
    imp.run_due(store::now()).await;
    let src = imp.get(&id).expect("get").expect("source");
    assert_eq!(
        (src.state, src.pages_done),
        (SourceState::Done, 2),
        "{:?}",
        src.notes
    );
    let doc = src.document_id.clone().expect("document");
    let kb = imp.kb();
    assert!(kb.search("when are you open", 3).expect("search")[0]
        .text
        .contains("Monday to Friday"));

    // The site changed; the next day's import replaces the document in place.
    page(
        &server,
        "/hours",
        html(
            "Hours",
            "<h2>Opening hours</h2><p>Open every day of the week.</p>",
        ),
    )
    .await;
    let later = src.next_at.expect("scheduled");
    assert!(later >= store::now() + 23 * 3600);
    assert_eq!(imp.run_due(later).await, 1);
    let src = imp.get(&id).expect("get").expect("source");
    assert_eq!(src.document_id.as_deref(), Some(doc.as_str()));
    assert_eq!(kb.list().expect("list").len(), 1);
    let hits = kb.search("when are you open", 3).expect("search");
    assert!(hits[0].text.contains("every day"), "{hits:?}");
    assert!(kb.search("Monday", 3).expect("search").is_empty());
}

#[tokio::test]
async fn redirects_to_another_site_or_a_private_address_and_oversized_pages_are_skipped() {
    let server = MockServer::start().await;
    let base = server.uri();
    let port = server.address().port();
    robots(&server, "").await;
    page(
        &server,
        "/",
        html(
            "Home",
            r#"<p>Home page text.</p><a href="/away">a</a><a href="/inside">b</a>
               <a href="/big">c</a><a href="/moved">d</a>"#,
        ),
    )
    .await;
    // Another host (the same machine by another name is another site).
    page(
        &server,
        "/away",
        ResponseTemplate::new(302).insert_header("location", format!("http://localhost:{port}/x")),
    )
    .await;
    page(
        &server,
        "/inside",
        ResponseTemplate::new(301).insert_header("location", "http://10.0.0.7/admin"),
    )
    .await;
    page(
        &server,
        "/big",
        html("Big", &format!("<p>{}</p>", "x".repeat(40 * 1024))),
    )
    .await;
    page(
        &server,
        "/moved",
        ResponseTemplate::new(308).insert_header("location", "/new-home"),
    )
    .await;
    page(
        &server,
        "/new-home",
        html("New", "<p>The moved page text.</p>"),
    )
    .await;

    let limits = Limits {
        max_page_bytes: 32 * 1024,
        ..Limits::default()
    };
    let (_d, imp) = importer(limits);
    let id = imp.add(&format!("{base}/"), 0).expect("source added");
    imp.run_due(store::now()).await;
    let src = imp.get(&id).expect("get").expect("source");
    assert_eq!(src.state, SourceState::Done, "{:?}", src.notes);
    assert_eq!(
        src.pages_done, 2,
        "home and the moved page: {:?}",
        src.notes
    );
    let notes = src.notes.join("\n");
    assert!(
        notes.contains("/away: redirects to another site (localhost)"),
        "{notes}"
    );
    assert!(
        notes.contains("/inside: redirects to a private network address"),
        "{notes}"
    );
    assert!(
        notes.contains("/big: larger than 32 KiB, skipped"),
        "{notes}"
    );
    // every_hours 0: imported once, not scheduled.
    assert_eq!(src.next_at, None);
    assert_eq!(imp.run_due(store::now() + 48 * 3600).await, 0);
}

#[tokio::test]
async fn private_start_addresses_and_unreadable_robots_store_nothing() {
    let (_d, imp) = importer(Limits::default());
    assert!(matches!(
        imp.add("http://192.168.1.1/", 24),
        Err(ImportError::Refused(Refused::Private))
    ));
    let strict = Importer::new(
        imp.store.clone(),
        imp.master.clone(),
        Policy::STRICT,
        Limits::default(),
    )
    .expect("client");
    assert!(matches!(
        strict.add("http://127.0.0.1:8080/", 24),
        Err(ImportError::Refused(_))
    ));
    assert!(imp.list().expect("list").is_empty());

    let server = MockServer::start().await;
    page(&server, "/robots.txt", ResponseTemplate::new(503)).await;
    page(&server, "/", html("Home", "<p>text</p>")).await;
    let id = imp.add(&format!("{}/", server.uri()), 24).expect("added");
    imp.run_due(store::now()).await;
    let src = imp.get(&id).expect("get").expect("source");
    assert_eq!(src.state, SourceState::Failed);
    assert!(
        src.notes[0].contains("robots.txt could not be read"),
        "{:?}",
        src.notes
    );
    assert!(src.document_id.is_none());
    assert!(imp.kb().list().expect("list").is_empty());
}
