//! Text of binary office documents: PDF (its text layer, with `lopdf`) and DOCX (a zip of
//! XML, with `zip` and `quick-xml`), cut into passages.
//!
//! Both formats are compressed, so an upload of 10 MiB can unpack to far more: every
//! inflate here is bounded by [`MAX_UNPACKED_BYTES`] (a larger document is refused with
//! [`KbError::Unpacked`] and nothing is stored) and a PDF may have at most
//! [`MAX_PDF_PAGES`] pages. A PDF whose pages hold no text (a scan) is refused with
//! [`KbError::NoTextLayer`] rather than stored empty.

use super::sections::{self, Block, Chunk};
use super::KbError;
use quick_xml::events::{BytesStart, Event};
use std::collections::HashMap;
use std::io::Read as _;

/// Most bytes a document may unpack to (all its streams or XML parts together), 50 MiB.
pub const MAX_UNPACKED_BYTES: u64 = 50 * 1024 * 1024;

/// Most pages read from one PDF.
pub const MAX_PDF_PAGES: usize = 500;

/// Most entries in a DOCX zip (a real one has a few dozen).
const MAX_ZIP_ENTRIES: usize = 10_000;

/// Most bytes all the zlib streams of a PDF's raw bytes may inflate to, checked before it
/// is parsed: lopdf inflates object streams while parsing, without a bound. Wider than
/// [`MAX_UNPACKED_BYTES`] because it also counts images, which are never inflated here.
const MAX_RAW_INFLATE: u64 = 256 * 1024 * 1024;

/// How many bytes zlib `data` inflates to, counting stops past `limit`; a damaged stream
/// counts what came out before the damage.
fn inflated_len(data: &[u8], limit: u64) -> u64 {
    let mut dec = flate2::read::ZlibDecoder::new(data);
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match dec.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => {
                n += k as u64;
                if n > limit {
                    return n;
                }
            }
        }
    }
}

/// Inflates zlib `data` with at most `budget` bytes out; `None` when it would be more.
fn bounded_inflate(data: &[u8], budget: u64) -> Option<u64> {
    let n = inflated_len(data, budget);
    (n <= budget).then_some(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether every `stream … endstream` of a PDF's raw bytes that inflates as zlib stays,
/// all together, within `budget` bytes. Found by scanning, not parsing, so it runs before
/// the parser and sees object streams too.
fn raw_streams_within(body: &[u8], budget: u64) -> bool {
    let mut left = budget;
    let mut at = 0;
    while let Some(i) = find(&body[at..], b"stream") {
        let kw = at + i;
        let mut start = kw + b"stream".len();
        at = start;
        if kw >= 3 && &body[kw - 3..kw] == b"end" {
            continue;
        }
        if body.get(start) == Some(&b'\r') {
            start += 1;
        }
        if body.get(start) != Some(&b'\n') {
            continue;
        }
        start += 1;
        let end = find(&body[start..], b"endstream").map_or(body.len(), |e| start + e);
        let n = inflated_len(&body[start..end], left);
        if n > left {
            return false;
        }
        left -= n;
        at = end;
    }
    true
}

/// The passages of a PDF's text layer. Headings are guessed as for plain text (a PDF
/// does not mark them in its text).
pub fn pdf(body: &[u8]) -> Result<Vec<Chunk>, KbError> {
    if !body.starts_with(b"%PDF-") {
        return Err(KbError::BadFile("The file is not a PDF.".into()));
    }
    if !raw_streams_within(body, MAX_RAW_INFLATE) {
        return Err(KbError::Unpacked);
    }
    let doc = lopdf::Document::load_mem(body)
        .map_err(|_| KbError::BadFile("The PDF could not be read.".into()))?;
    if doc.is_encrypted() {
        return Err(KbError::BadFile(
            "The PDF is protected by a password. Save an unprotected copy and upload it again."
                .into(),
        ));
    }
    let pages = doc.get_pages();
    if pages.len() > MAX_PDF_PAGES {
        return Err(KbError::BadFile(format!(
            "The PDF has more than {MAX_PDF_PAGES} pages. Split it into smaller files."
        )));
    }
    // Every content stream is inflated once within the budget before lopdf inflates it
    // without one.
    let mut left = MAX_UNPACKED_BYTES;
    for page in pages.values() {
        for id in doc.get_page_contents(*page) {
            let Ok(stream) = doc.get_object(id).and_then(lopdf::Object::as_stream) else {
                continue;
            };
            let used = match stream.filters() {
                Ok(f) if f.iter().any(|f| f == "FlateDecode") => {
                    bounded_inflate(&stream.content, left).ok_or(KbError::Unpacked)?
                }
                _ => stream.content.len() as u64,
            };
            left = left.checked_sub(used).ok_or(KbError::Unpacked)?;
        }
    }
    let numbers: Vec<u32> = pages.keys().copied().collect();
    let text = doc
        .extract_text(&numbers)
        .map_err(|_| KbError::BadFile("The text of the PDF could not be read.".into()))?;
    // Lines end at each text object; a blank line between them would cut paragraphs
    // mid-sentence, so the text is taken as it comes.
    let chunks = sections::plain(&text);
    if chunks.iter().all(|c| c.text.trim().is_empty()) {
        return Err(KbError::NoTextLayer);
    }
    Ok(chunks)
}

/// Reads the zip entry `name` of `zip` within `budget` (decreased by what it held);
/// `None` when there is no such entry.
fn zip_entry(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    budget: &mut u64,
) -> Result<Option<Vec<u8>>, KbError> {
    let entry = match zip.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(_) => return Err(bad_docx()),
    };
    // The declared size is the zip's own word: the limit is on what comes out.
    let mut out = Vec::new();
    entry
        .take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|_| bad_docx())?;
    let n = out.len() as u64;
    if n > *budget {
        return Err(KbError::Unpacked);
    }
    *budget -= n;
    Ok(Some(out))
}

fn bad_docx() -> KbError {
    KbError::BadFile("The file is not a readable Word document (.docx).".into())
}

/// The local name of an XML element (`w:p` → `p`).
fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|b| *b == b':').next().unwrap_or(name)
}

/// The value of attribute `w:val` (any prefix) of `e`.
fn val(e: &BytesStart<'_>) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (local(a.key.as_ref()) == b"val")
            .then(|| a.unescape_value().ok().map(|v| v.into_owned()))
            .flatten()
    })
}

/// Heading level of a style name ("heading 2" → 2; "Title" is 0, above "heading 1").
fn level_of_name(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_lowercase();
    if n == "title" {
        return Some(0);
    }
    let d = n.strip_prefix("heading")?.trim();
    d.parse::<u8>().ok().filter(|l| (1..=9).contains(l))
}

/// Heading levels by style id, from `word/styles.xml` (ids are localised: a German
/// Word names "heading 1" `berschrift1`; the name and outline level are not).
fn heading_styles(xml: &[u8]) -> HashMap<String, u8> {
    let mut out = HashMap::new();
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match local(e.name().as_ref()) {
                b"style" => {
                    current = e.attributes().flatten().find_map(|a| {
                        (local(a.key.as_ref()) == b"styleId")
                            .then(|| a.unescape_value().ok().map(|v| v.into_owned()))
                            .flatten()
                    });
                }
                b"name" => {
                    if let (Some(id), Some(level)) =
                        (current.as_ref(), val(&e).as_deref().and_then(level_of_name))
                    {
                        out.insert(id.clone(), level);
                    }
                }
                b"outlineLvl" => {
                    if let (Some(id), Some(l)) =
                        (current.as_ref(), val(&e).and_then(|v| v.parse::<u8>().ok()))
                    {
                        if l < 9 {
                            out.entry(id.clone()).or_insert(l + 1);
                        }
                    }
                }
                _ => {}
            },
            Ok(Event::End(e)) if local(e.name().as_ref()) == b"style" => current = None,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

/// The paragraphs of `word/document.xml`, each marked with its heading level.
fn docx_blocks(xml: &[u8], styles: &HashMap<String, u8>) -> Result<Vec<Block>, KbError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut para: Option<Block> = None;
    let mut in_text = false;
    loop {
        let ev = reader.read_event_into(&mut buf).map_err(|_| bad_docx())?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                match local(e.name().as_ref()) {
                    b"p" if !empty => {
                        para = Some(Block {
                            heading: None,
                            text: String::new(),
                        })
                    }
                    b"pStyle" => {
                        if let (Some(p), Some(id)) = (para.as_mut(), val(e)) {
                            p.heading = styles
                                .get(&id)
                                .copied()
                                .or_else(|| level_of_name(&id.replace("Heading", "heading ")));
                        }
                    }
                    b"outlineLvl" => {
                        if let (Some(p), Some(l)) =
                            (para.as_mut(), val(e).and_then(|v| v.parse::<u8>().ok()))
                        {
                            if l < 9 {
                                p.heading = Some(l + 1);
                            }
                        }
                    }
                    b"t" if !empty => in_text = true,
                    b"tab" => push_text(&mut para, " "),
                    b"br" | b"cr" => push_text(&mut para, "\n"),
                    _ => {}
                }
            }
            Event::Text(t) if in_text => {
                let s = t.unescape().map_err(|_| bad_docx())?;
                push_text(&mut para, &s);
            }
            Event::End(e) => match local(e.name().as_ref()) {
                b"t" => in_text = false,
                b"p" => out.extend(para.take()),
                // A table cell ends a line of the table.
                b"tc" => push_text(&mut para, " "),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

fn push_text(para: &mut Option<Block>, s: &str) {
    if let Some(p) = para.as_mut() {
        p.text.push_str(s);
    }
}

/// The passages of a DOCX, cut at its heading paragraphs.
pub fn docx(body: &[u8]) -> Result<Vec<Chunk>, KbError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(body)).map_err(|_| bad_docx())?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(bad_docx());
    }
    let mut budget = MAX_UNPACKED_BYTES;
    let document = zip_entry(&mut zip, "word/document.xml", &mut budget)?.ok_or_else(bad_docx)?;
    let styles = zip_entry(&mut zip, "word/styles.xml", &mut budget)?
        .map(|s| heading_styles(&s))
        .unwrap_or_default();
    let blocks = docx_blocks(&document, &styles)?;
    Ok(sections::blocks(&blocks))
}

#[cfg(test)]
#[path = "documents_tests.rs"]
pub(crate) mod tests;
