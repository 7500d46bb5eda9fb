//! PDF and DOCX fixtures are made here, in code: a PDF with a text layer written with
//! lopdf, a DOCX zipped from its XML.

use super::*;
use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Object, Stream};
use std::io::Write as _;

/// A PDF whose pages show `pages` (one string per text line, per page) in Helvetica, and
/// whose content streams are deflated when `compress` is set.
pub(crate) fn pdf_with_pages(pages: &[&[&str]], compress: bool) -> Vec<u8> {
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for lines in pages {
        let mut ops = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            ops.push(Operation::new("BT", vec![]));
            ops.push(Operation::new("Tf", vec!["F1".into(), 12.into()]));
            ops.push(Operation::new(
                "Td",
                vec![72.into(), (720 - 20 * i as i64).into()],
            ));
            ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            ops.push(Operation::new("ET", vec![]));
        }
        let mut stream = Stream::new(
            dictionary! {},
            Content { operations: ops }.encode().expect("encode"),
        );
        if compress {
            stream.compress().expect("compress");
        }
        let content_id = doc.add_object(stream);
        kids.push(
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
            })
            .into(),
        );
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// A PDF of one page whose content stream inflates to `unpacked` bytes of spaces.
fn pdf_bomb(unpacked: usize) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b' '; 1024 * 1024];
    let mut left = unpacked;
    while left > 0 {
        let n = left.min(block.len());
        enc.write_all(&block[..n]).expect("deflate");
        left -= n;
    }
    let packed = enc.finish().expect("deflate");
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content_id = doc.add_object(Stream::new(
        dictionary! { "Filter" => "FlateDecode" },
        packed,
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// A DOCX zipped from `document` (the body of `word/document.xml`) and optional
/// `styles` (`word/styles.xml`).
pub(crate) fn docx_with(document: &str, styles: Option<&str>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("[Content_Types].xml", opts).expect("zip");
    zip.write_all(br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#)
        .expect("zip");
    zip.start_file("word/document.xml", opts).expect("zip");
    write!(
        zip,
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{document}</w:body></w:document>"#
    )
    .expect("zip");
    if let Some(styles) = styles {
        zip.start_file("word/styles.xml", opts).expect("zip");
        write!(
            zip,
            r#"<?xml version="1.0"?><w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">{styles}</w:styles>"#
        )
        .expect("zip");
    }
    zip.finish().expect("zip").into_inner()
}

fn para(style: Option<&str>, text: &str) -> String {
    let ppr = style
        .map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#))
        .unwrap_or_default();
    format!(r#"<w:p>{ppr}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
}

#[test]
fn a_pdf_text_layer_becomes_passages() {
    let body = pdf_with_pages(
        &[
            &["Opening hours", "We are open Monday to Friday from 9 to 5."],
            &["Parking is free behind the building."],
        ],
        true,
    );
    let chunks = pdf(&body).expect("pdf read");
    let all: String = chunks
        .iter()
        .map(|c| format!("{} | {}\n", c.context, c.text))
        .collect();
    assert!(all.contains("Monday to Friday from 9 to 5"), "{all}");
    assert!(all.contains("Parking is free"), "{all}");
}

#[test]
fn a_pdf_without_text_is_a_scan_and_says_so() {
    let body = pdf_with_pages(&[&[], &[]], false);
    assert!(matches!(pdf(&body), Err(KbError::NoTextLayer)));
}

#[test]
fn a_pdf_that_unpacks_past_the_limit_is_refused() {
    let body = pdf_bomb(MAX_UNPACKED_BYTES as usize + 1024 * 1024);
    assert!(
        body.len() < 1024 * 1024,
        "the fixture is small: {}",
        body.len()
    );
    assert!(matches!(pdf(&body), Err(KbError::Unpacked)));
}

/// An object stream is inflated by the parser itself: the raw scan bounds it before.
#[test]
fn streams_the_parser_inflates_are_bounded_before_parsing() {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; 2 * 1024 * 1024])
        .expect("deflate");
    let packed = enc.finish().expect("deflate");
    let mut body =
        b"%PDF-1.5\n1 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode >>\nstream\r\n"
            .to_vec();
    body.extend_from_slice(&packed);
    body.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
    assert!(!raw_streams_within(&body, 1024 * 1024));
    assert!(raw_streams_within(&body, 3 * 1024 * 1024));
    // A real PDF with compressed content passes a small budget.
    let ok = pdf_with_pages(&[&["Opening hours are 9 to 5."]], true);
    assert!(raw_streams_within(&ok, 64 * 1024));
}

#[test]
fn a_pdf_over_the_page_limit_is_refused() {
    let pages: Vec<&[&str]> = vec![&["x"]; MAX_PDF_PAGES + 1];
    let body = pdf_with_pages(&pages, false);
    let err = pdf(&body).expect_err("too many pages");
    assert!(err.to_string().contains("more than 500 pages"), "{err}");
}

#[test]
fn a_file_that_is_no_pdf_is_refused_clearly() {
    for body in [&b"hello"[..], b"%PDF-1.7 truncated"] {
        let err = pdf(body).expect_err("not a pdf");
        assert!(matches!(err, KbError::BadFile(_)), "{err:?}");
    }
}

#[test]
fn docx_headings_become_the_context_of_their_passages() {
    let document = [
        para(Some("Title"), "Harbour Clinic"),
        para(Some("Heading1"), "Address"),
        para(None, "We are at 12 Harbour Street &amp; Quay."),
        para(Some("Heading2"), "Parking"),
        para(None, "Parking is free behind the building."),
    ]
    .concat();
    let chunks = docx(&docx_with(&document, None)).expect("docx read");
    assert_eq!(
        chunks,
        vec![
            Chunk {
                context: "Harbour Clinic › Address".into(),
                text: "We are at 12 Harbour Street & Quay.".into()
            },
            Chunk {
                context: "Harbour Clinic › Address › Parking".into(),
                text: "Parking is free behind the building.".into()
            },
        ]
    );
}

#[test]
fn docx_localised_heading_styles_are_found_by_their_name() {
    // A German Word calls its "heading 1" style `berschrift1`.
    let styles = r#"<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>"#;
    let document = [
        para(Some("berschrift1"), "Öffnungszeiten"),
        para(None, "Montag bis Freitag 9 bis 17 Uhr."),
    ]
    .concat();
    let chunks = docx(&docx_with(&document, Some(styles))).expect("docx read");
    assert_eq!(chunks[0].context, "Öffnungszeiten");
    assert_eq!(chunks[0].text, "Montag bis Freitag 9 bis 17 Uhr.");
}

#[test]
fn a_docx_zip_bomb_is_refused() {
    // A document.xml of 51 MiB of spaces deflates to about 50 KiB.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .large_file(false);
    zip.start_file("word/document.xml", opts).expect("zip");
    zip.write_all(b"<w:document><w:body>").expect("zip");
    let block = vec![b' '; 1024 * 1024];
    for _ in 0..(MAX_UNPACKED_BYTES / (1024 * 1024) + 1) {
        zip.write_all(&block).expect("zip");
    }
    let body = zip.finish().expect("zip").into_inner();
    assert!(
        body.len() < 1024 * 1024,
        "the fixture is small: {}",
        body.len()
    );
    assert!(matches!(docx(&body), Err(KbError::Unpacked)));
}

#[test]
fn a_file_that_is_no_docx_is_refused_clearly() {
    let err = docx(b"PK\x03\x04 not really").expect_err("not a docx");
    assert!(
        err.to_string().contains("not a readable Word document"),
        "{err}"
    );
    // A zip without word/document.xml (an .xlsx renamed, say).
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("xl/workbook.xml", zip::write::SimpleFileOptions::default())
        .expect("zip");
    let body = zip.finish().expect("zip").into_inner();
    assert!(matches!(docx(&body), Err(KbError::BadFile(_))));
}
