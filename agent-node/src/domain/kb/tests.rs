//! The knowledge base: storage, search, encryption at rest and re-chunking.

use super::*;

#[test]
fn titles_lose_hidden_and_direction_characters() {
    // "invoice\u{202e}gpj.exe" would show as "invoiceexe.jpg".
    assert_eq!(clean_title("invoice\u{202e}gpj.exe"), "invoicegpj.exe");
    assert_eq!(clean_title("a\u{200b}b\u{0}c\n"), "abc");
    assert_eq!(clean_title("Cafe\u{301}.txt"), "Café.txt");
    assert_eq!(clean_title("\u{200b} \u{feff}"), "Untitled");
}

fn kb() -> (tempfile::TempDir, KnowledgeBase, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let store = Arc::new(Store::open(&path).expect("db"));
    let kb = KnowledgeBase::new(store, &MasterKey::from_bytes([9; 32]));
    (dir, kb, path)
}

#[test]
fn kinds_from_file_names() {
    assert_eq!(DocKind::from_filename("a.TXT"), Some(DocKind::Text));
    assert_eq!(
        DocKind::from_filename("x.y.markdown"),
        Some(DocKind::Markdown)
    );
    assert_eq!(DocKind::from_filename("p.htm"), Some(DocKind::Html));
    assert_eq!(DocKind::from_filename("faq.csv"), Some(DocKind::Csv));
    assert_eq!(DocKind::from_filename("doc.pdf"), Some(DocKind::Pdf));
    assert_eq!(DocKind::from_filename("Letter.DOCX"), Some(DocKind::Docx));
    assert_eq!(DocKind::from_filename("old.doc"), None);
    assert_eq!(DocKind::from_filename("README"), None);
    for k in [
        DocKind::Text,
        DocKind::Markdown,
        DocKind::Html,
        DocKind::Csv,
        DocKind::Pdf,
        DocKind::Docx,
    ] {
        assert_eq!(DocKind::parse(k.as_str()), Some(k));
    }
}

/// Issue 19: PDF and Word uploads are searched like text, and a scan stores nothing.
#[test]
fn pdf_and_docx_documents_are_searchable_and_a_scan_stores_nothing() {
    use super::documents::tests::{docx_with, pdf_with_pages};
    let (_d, kb, _) = kb();
    let pdf = pdf_with_pages(
        &[&["Our dentist Dr Alvarez speaks Spanish and English."]],
        true,
    );
    let doc = kb
        .add_document("team.pdf", DocKind::Pdf, &pdf, None)
        .expect("pdf added");
    assert_eq!((doc.kind, doc.chunks), (DocKind::Pdf, 1));
    let docx = docx_with(
        r#"<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Payment</w:t></w:r></w:p><w:p><w:r><w:t>We accept cards and bank transfers.</w:t></w:r></w:p>"#,
        None,
    );
    kb.add_document("billing.docx", DocKind::Docx, &docx, None)
        .expect("docx added");
    let hits = kb
        .search("Which languages does the dentist speak?", 3)
        .expect("search");
    assert!(hits[0].text.contains("Spanish"), "{hits:?}");
    let hits = kb.search("can I pay by bank transfer", 3).expect("search");
    assert_eq!(hits[0].context, "Payment");
    assert_eq!(hits[0].text, "We accept cards and bank transfers.");

    let scan = pdf_with_pages(&[&[]], true);
    assert!(matches!(
        kb.add_document("scan.pdf", DocKind::Pdf, &scan, None),
        Err(KbError::NoTextLayer)
    ));
    assert_eq!(kb.list().expect("list").len(), 2);
}

#[test]
fn add_search_list_document_delete() {
    let (_d, kb, _) = kb();
    let hours = kb
        .add_document(
            "hours.md",
            DocKind::Markdown,
            b"# Opening hours\n\nWe are open Monday to Friday from 9 am to 5 pm.",
            Some("user-1"),
        )
        .expect("add");
    assert_eq!(hours.chunks, 1);
    let faq = kb
        .add_document(
            "faq.csv",
            DocKind::Csv,
            b"question,answer\nDo you accept insurance?,Yes we accept most insurance plans\n\
              Is parking available?,Free parking behind the building\n",
            None,
        )
        .expect("add");
    assert_eq!(faq.chunks, 2);
    kb.add_document(
        "about.html",
        DocKind::Html,
        b"<h1>About</h1><p>Family dentistry since 1990.</p>",
        None,
    )
    .expect("add");

    let hits = kb.search("When are you open?", 5).expect("search");
    assert_eq!(hits[0].document_id, hours.id);
    assert_eq!(hits[0].document_title, "hours.md");
    assert!(hits[0].text.contains("Monday to Friday"));
    assert!(hits[0].score < 0.0, "bm25 as SQLite returns it");

    let hits = kb.search("parking", 5).expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text, "Free parking behind the building");
    assert_eq!(hits[0].context, "Is parking available?");
    assert!(kb.search("the of", 5).expect("search").is_empty());
    assert!(kb.search("unrelated zebra", 5).expect("search").is_empty());

    let list = kb.list().expect("list");
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].title, "about.html", "newest first");
    assert_eq!(list[2].id, hours.id);

    let (doc, chunks) = kb.document(&faq.id).expect("doc").expect("exists");
    assert_eq!(doc, faq);
    assert_eq!(chunks.len(), 2);
    assert!(kb.document("nope").expect("doc").is_none());

    assert!(kb.delete(&faq.id).expect("delete"));
    assert!(!kb.delete(&faq.id).expect("delete again"));
    assert!(kb
        .search("parking insurance", 5)
        .expect("search")
        .is_empty());
    assert_eq!(kb.list().expect("list").len(), 2);
    let left: i64 = kb
        .store
        .with(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM kb_chunks WHERE document_id = ?1",
                [&faq.id],
                |r| r.get(0),
            )?)
        })
        .expect("count");
    assert_eq!(left, 0);
}

#[test]
fn ranking_prefers_the_more_relevant_passage() {
    let (_d, kb, _) = kb();
    kb.add_document(
        "a.txt",
        DocKind::Text,
        b"Whitening is offered. Cleaning too.",
        None,
    )
    .expect("add");
    let best = kb
        .add_document(
            "b.txt",
            DocKind::Text,
            b"Teeth whitening: our whitening treatment takes one hour. Whitening prices vary.",
            None,
        )
        .expect("add");
    kb.add_document(
        "c.txt",
        DocKind::Text,
        b"Nothing relevant here at all.",
        None,
    )
    .expect("add");
    let hits = kb.search("whitening", 10).expect("search");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].document_id, best.id);
    assert!(hits[0].score <= hits[1].score);
    assert_eq!(kb.search("whitening", 1).expect("search").len(), 1);
}

#[test]
fn bad_input_is_refused_and_nothing_stored() {
    let (_d, kb, _) = kb();
    assert!(matches!(
        kb.add_document("x.txt", DocKind::Text, b"\xff\xfe bad", None),
        Err(KbError::NotUtf8)
    ));
    assert!(matches!(
        kb.add_document("x.html", DocKind::Html, b"<script>x</script>  ", None),
        Err(KbError::Empty)
    ));
    assert!(matches!(
        kb.add_document("x.csv", DocKind::Csv, b"q,a\njust one\n", None),
        Err(KbError::BadCsv(_))
    ));
    let big = vec![b'a'; MAX_UPLOAD_BYTES + 1];
    assert!(matches!(
        kb.add_document("x.txt", DocKind::Text, &big, None),
        Err(KbError::TooLarge)
    ));
    assert!(kb.list().expect("list").is_empty());
    let msg =
        KbError::BadCsv("Row 2 needs a question and an answer (two columns).".into()).to_string();
    assert!(!msg.contains("just one"));
}

#[test]
fn canary_is_not_in_the_database_file() {
    const CANARY: &str = "canary-kb-7f3a9";
    let (_d, kb, path) = kb();
    let body = format!("Secret procedure {CANARY} for sterilisation of instruments.");
    let doc = kb
        .add_document(
            &format!("{CANARY}.txt"),
            DocKind::Text,
            body.as_bytes(),
            None,
        )
        .expect("add");
    // Retrievable through the API...
    let hits = kb.search(CANARY, 5).expect("search");
    assert_eq!(hits[0].document_id, doc.id);
    assert!(hits[0].text.contains(CANARY));
    assert_eq!(kb.list().expect("list")[0].title, format!("{CANARY}.txt"));
    // ...but absent from the bytes on disk (database and WAL).
    let mut raw = std::fs::read(&path).expect("db");
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        raw.extend_from_slice(&wal);
    }
    assert!(raw.len() > 4096);
    for needle in [
        CANARY,
        "canary",
        "7f3a9",
        "sterilisation",
        "sterilisat",
        "procedure",
    ] {
        assert!(
            !raw.windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
            "{needle} found in node.db"
        );
    }
}

/// A node database as a release before sections left it: one Markdown document stored as
/// version-1 passages (markup stripped, headings as plain paragraphs, no context, no
/// upload kept) and one Q&A CSV.
fn version_1_database(path: &std::path::Path, master: &MasterKey) {
    let all = crate::migrations::MIGRATIONS;
    let sections = all
        .iter()
        .position(|m| *m == SECTIONS_SCHEMA)
        .expect("the sections migration is listed");
    let before = &all[..sections];
    let store = Arc::new(Store::open_with(path, before).expect("old db"));
    let kb = KnowledgeBase::new(store.clone(), master);
    let docs: [(&str, &str, &[&str]); 2] = [
        (
            "clinic.md",
            "markdown",
            &["Harbour Dental\n\nAddress\n\nWe are at 12 Harbour Street, Brighton. Enter by the blue door.\n\nParking\n\nFree parking behind the building."],
        ),
        (
            "faq.csv",
            "csv",
            &["Q: Do you take walk-ins?\nA: Yes, walk-ins are welcome every morning."],
        ),
    ];
    store
        .with(|c| {
            for (n, (title, kind, chunks)) in docs.iter().enumerate() {
                let id = format!("00000000-0000-4000-8000-00000000000{n}");
                let title_ct =
                    outpost_crypto::aead_seal(&kb.content_key, title.as_bytes(), &title_aad(&id));
                c.execute(
                    "INSERT INTO kb_documents (id, title_ct, kind, bytes, chunks, created_at)
                     VALUES (?1, ?2, ?3, 100, ?4, ?5)",
                    params![id, title_ct, kind, chunks.len(), 1_700_000_000 + n as i64],
                )?;
                for (ord, text) in chunks.iter().enumerate() {
                    c.execute(
                        "INSERT INTO kb_chunks (document_id, ord, body_ct) VALUES (?1, ?2, x'')",
                        params![id, ord],
                    )?;
                    let cid = c.last_insert_rowid();
                    let ct = outpost_crypto::aead_seal(
                        &kb.content_key,
                        text.as_bytes(),
                        &chunk_aad(cid),
                    );
                    c.execute(
                        "UPDATE kb_chunks SET body_ct = ?1 WHERE id = ?2",
                        params![ct, cid],
                    )?;
                    c.execute(
                        "INSERT INTO kb_index (rowid, terms) VALUES (?1, ?2)",
                        params![cid, kb.blinder.document_terms(&format!("{title}\n{text}"))],
                    )?;
                }
            }
            Ok(())
        })
        .expect("old rows");
}

#[test]
fn documents_from_before_sections_are_cut_again_on_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.db");
    let master = MasterKey::from_bytes([9; 32]);
    version_1_database(&path, &master);

    // The upgrade: migrations run, then the node re-chunks at start.
    let store = Arc::new(Store::open(&path).expect("migrated"));
    let kb = KnowledgeBase::new(store, &master);
    let before = kb.search("What is your address?", 4).expect("search");
    assert_eq!(before.len(), 1, "one passage held the whole document");
    assert!(before[0].context.is_empty());
    let old_answer = crate::engine::llm::retrieval::compose(
        "What is your address?",
        &[crate::engine::llm::Grounding {
            context: before[0].context.clone(),
            text: before[0].text.clone(),
        }],
    );
    assert_ne!(
        old_answer.as_deref(),
        Some("We are at 12 Harbour Street, Brighton."),
        "the old passages do not give the address"
    );

    // A document added after the upgrade is already current.
    let fresh = kb
        .add_document(
            "hours.md",
            DocKind::Markdown,
            b"# Hours\n\nOpen 8 to 6.",
            None,
        )
        .expect("add");
    assert_eq!(kb.rechunk_outdated().expect("rechunk"), 2);
    assert_eq!(kb.rechunk_outdated().expect("again"), 0, "once only");

    let hits = kb.search("What is your address?", 4).expect("search");
    assert_eq!(hits[0].context, "Harbour Dental › Address");
    assert_eq!(
        hits[0].text,
        "We are at 12 Harbour Street, Brighton. Enter by the blue door."
    );
    let answer = crate::engine::llm::retrieval::compose(
        "What is your address?",
        &hits
            .iter()
            .map(|h| crate::engine::llm::Grounding {
                context: h.context.clone(),
                text: h.text.clone(),
            })
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        answer.as_deref(),
        Some("We are at 12 Harbour Street, Brighton.")
    );
    let hits = kb.search("walk-ins?", 4).expect("search");
    assert_eq!(hits[0].context, "Do you take walk-ins?");
    assert_eq!(hits[0].text, "Yes, walk-ins are welcome every morning.");
    let list = kb.list().expect("list");
    let clinic = list
        .iter()
        .find(|d| d.title == "clinic.md")
        .expect("clinic");
    assert_eq!(clinic.chunks, 2, "address and parking");
    assert_eq!(
        kb.document(&fresh.id).expect("doc").expect("exists").1,
        vec!["Hours\nOpen 8 to 6.".to_owned()]
    );
}

#[test]
fn a_new_chunker_cuts_again_from_the_kept_upload() {
    let (_d, kb, _) = kb();
    let doc = kb
        .add_document(
            "clinic.md",
            DocKind::Markdown,
            b"# Clinic\n\n## Address\n\n12 Harbour Street.\n\n## Parking\n\nBehind us.",
            None,
        )
        .expect("add");
    let before = kb.document_chunks(&doc.id).expect("doc").expect("exists").1;
    assert_eq!(before.len(), 2);
    // As if the chunker version had been bumped since this document was cut.
    kb.store
        .with(|c| Ok(c.execute("UPDATE kb_documents SET chunker = 1", [])?))
        .expect("age");
    assert_eq!(kb.rechunk_outdated().expect("rechunk"), 1);
    let after = kb.document_chunks(&doc.id).expect("doc").expect("exists").1;
    assert_eq!(after, before, "cut from the upload, not from the passages");
    let hits = kb.search("parking", 4).expect("search");
    assert_eq!(hits.len(), 1, "the old index rows are gone");
    assert_eq!(hits[0].context, "Clinic › Parking");
}

/// A full disk: the owner frees space by deleting documents, so deleting one must work
/// when the database has not a single free page (the index's deletions are new pages;
/// before, they were written first and the delete failed for want of space).
#[test]
fn a_document_is_deleted_when_not_a_page_is_free() {
    let (_d, kb, _) = kb();
    // Distinct words, so the document has a large index.
    let words = |seed: u64| {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("w{:07x} ", x & 0xFFF_FFFF)
            })
            .collect::<String>()
    };
    let first = words(1);
    let first_word = first.split(' ').next().expect("a word").to_owned();
    let big = kb
        .add_document("big.txt", DocKind::Text, first.as_bytes(), None)
        .expect("big");
    kb.add_document("big-2.txt", DocKind::Text, words(2).as_bytes(), None)
        .expect("big 2");
    assert_eq!(kb.search(&first_word, 5).expect("search").len(), 1);
    kb.add_document(
        "hours.txt",
        DocKind::Text,
        b"We open at nine on weekdays.",
        None,
    )
    .expect("small");
    kb.store.cap_pages_above_current(50).expect("cap");
    let mut n = 0;
    while kb
        .store
        .with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, randomblob(100))",
                [format!("filler-{n}")],
            )?;
            Ok(())
        })
        .is_ok()
    {
        n += 1;
        assert!(n < 100_000, "never filled");
    }
    let free = |kb: &KnowledgeBase| -> i64 {
        kb.store
            .with(|c| Ok(c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?))
            .expect("freelist")
    };
    // The failed write released the reserve; small rows took its pages too.
    assert_eq!(free(&kb), 0);

    assert!(kb.delete(&big.id).expect("deleted on a full disk"));
    assert!(free(&kb) > 0, "deleting freed space");
    assert!(kb.search(&first_word, 5).expect("search").is_empty());
    assert_eq!(kb.list().expect("list").len(), 2);
    let hits = kb.search("weekdays", 5).expect("search");
    assert_eq!(hits.len(), 1, "the other document is still found");
}
