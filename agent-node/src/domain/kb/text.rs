//! Turning uploads into plain text and passages: HTML and Markdown stripping, CSV
//! parsing, and chunking on paragraph and sentence boundaries.
//!
//! Deliberately small: the node does not need a full HTML parser to index a help page,
//! and every extra parser is attack surface for uploaded files.

/// Target size of one passage, bytes. Passages are cut on paragraph, then sentence, then
/// word boundaries, so they can end up shorter; only a single "word" longer than this is
/// ever cut in the middle.
pub const CHUNK_TARGET: usize = 800;

/// Decodes the HTML entities that appear in ordinary documents. Unknown or malformed
/// entities are kept as written.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        // Entities are short; look for the ';' within a small window only.
        let end = rest
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i);
        let decoded = end.and_then(|end| decode_one(&rest[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_one(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        // NUL and invalid code points become the replacement character, as browsers do.
        return Some(
            char::from_u32(code)
                .filter(|&c| c != '\0')
                .unwrap_or('\u{FFFD}'),
        );
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "copy" => '©',
        "reg" => '®',
        "euro" => '€',
        _ => return None,
    })
}

/// Tags after which the text continues in a new paragraph.
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "aside",
    "nav",
    "main",
    "blockquote",
    "pre",
    "hr",
    "title",
    "form",
    "figure",
    "figcaption",
    "details",
    "summary",
];

/// Plain text of an HTML document: tags removed, `script`/`style` (and comments) dropped
/// with their content, entities decoded, block elements turned into paragraph breaks.
pub fn html_to_text(html: &str) -> String {
    html_to_marked_text(html, false)
}

/// Starts a heading paragraph in the output of [`html_to_marked_text`], followed by the
/// heading's level (`0` for the page title, `1`..`6`). A control character, removed from
/// the input first, so no document can forge one.
pub(crate) const HEADING_MARK: char = '\u{1}';

/// [`html_to_text`], with each heading (and the page title) made a paragraph of its own
/// starting with [`HEADING_MARK`] and its level when `marks` is set.
pub(crate) fn html_to_marked_text(html: &str, marks: bool) -> String {
    let cleaned;
    let html = if marks && html.contains(HEADING_MARK) {
        cleaned = html.replace(HEADING_MARK, " ");
        cleaned.as_str()
    } else {
        html
    };
    let mut out = String::with_capacity(html.len() / 2);
    let bytes = html.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    while i < bytes.len() {
        // A '<' not followed by a tag start ("a < b") is text.
        let starts_tag = bytes[i] == b'<'
            && bytes
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'/' | b'!' | b'?'));
        if !starts_tag {
            i += 1;
            continue;
        }
        out.push_str(&decode_entities(&html[text_start..i]));
        let rest = &html[i..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map_or(bytes.len(), |e| i + e + 3);
            text_start = i;
            continue;
        }
        let end = tag_end(bytes, i);
        let inner = html[i + 1..end]
            .strip_suffix('>')
            .unwrap_or(&html[i + 1..end]);
        let closing = inner.starts_with('/');
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        i = end;
        if !closing && (name == "script" || name == "style") {
            // Skip to the matching close tag; its content is never text.
            let close = format!("</{name}");
            let lower = html[i..].to_ascii_lowercase();
            i = match lower.find(&close) {
                Some(p) => tag_end(bytes, i + p),
                None => bytes.len(),
            };
        } else if name == "br" {
            out.push('\n');
        } else if BLOCK_TAGS.contains(&name.as_str()) {
            out.push_str("\n\n");
            if marks && !closing {
                if let Some(level) = heading_level(&name) {
                    out.push(HEADING_MARK);
                    out.push(level);
                }
            }
        } else if matches!(name.as_str(), "td" | "th") {
            out.push(' ');
        }
        text_start = i;
    }
    if text_start < bytes.len() {
        out.push_str(&decode_entities(&html[text_start..]));
    }
    normalize_whitespace(&out)
}

/// The level of a heading tag (`title` is `0`).
fn heading_level(tag: &str) -> Option<char> {
    match tag.as_bytes() {
        b"title" => Some('0'),
        [b'h', d @ b'1'..=b'6'] => Some(char::from(*d)),
        _ => None,
    }
}

/// Index just past the `>` closing the tag opened at `start`, honouring quoted attribute
/// values; the end of input when the tag never closes.
fn tag_end(bytes: &[u8], start: usize) -> usize {
    let mut quote: Option<u8> = None;
    let mut j = start + 1;
    while j < bytes.len() {
        let b = bytes[j];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return j + 1,
            None => {}
        }
        j += 1;
    }
    bytes.len()
}

/// Plain text of a Markdown document: headings, emphasis, code fences, list and quote
/// markers removed; links and images reduced to their text.
pub fn markdown_to_text(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    for line in md.lines() {
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            continue;
        }
        if t.len() >= 3
            && (t.chars().all(|c| c == '-' || c == ' ')
                || t.chars().all(|c| c == '*' || c == ' ')
                || t.chars().all(|c| c == '_' || c == ' ')
                || t.chars().all(|c| c == '='))
        {
            // Horizontal rules and setext underlines.
            out.push('\n');
            continue;
        }
        let mut t = t.trim_start_matches('#').trim_start();
        while let Some(r) = t.strip_prefix('>') {
            t = r.trim_start();
        }
        for marker in ["- ", "* ", "+ "] {
            if let Some(r) = t.strip_prefix(marker) {
                t = r;
                break;
            }
        }
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            if let Some(r) = t[digits..].strip_prefix(". ") {
                t = r;
            }
        }
        out.push_str(&strip_inline_markdown(t));
        out.push('\n');
    }
    normalize_whitespace(&out)
}

/// `[text](url)` and `![alt](url)` → text; `*`, `` ` `` and `__` removed.
fn strip_inline_markdown(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let link_start = if rest.starts_with("![") {
            Some(2)
        } else if rest.starts_with('[') {
            Some(1)
        } else {
            None
        };
        if let Some(skip) = link_start {
            if let Some(close) = rest.find("](") {
                if let Some(paren) = rest[close + 2..].find(')') {
                    out.push_str(&strip_inline_markdown(&rest[skip..close]));
                    rest = &rest[close + 2 + paren + 1..];
                    continue;
                }
            }
        }
        if let Some(r) = rest.strip_prefix("__") {
            rest = r;
            continue;
        }
        let mut chars = rest.chars();
        let c = chars.next().unwrap_or_default();
        if c != '*' && c != '`' {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// Collapses runs of spaces/tabs within lines, trims lines, and keeps at most one empty
/// line between paragraphs. Newlines inside a paragraph are kept.
pub fn normalize_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(&collapsed);
    }
    out
}

/// Why a CSV upload was refused (never quotes the content).
#[derive(Debug, PartialEq, Eq)]
pub struct CsvError(pub String);

pub(crate) fn is_qa_header(row: &[String]) -> bool {
    let norm = |i: usize| {
        row.get(i)
            .map(|s| s.trim().to_lowercase())
            .unwrap_or_default()
    };
    matches!(norm(0).as_str(), "question" | "q" | "questions")
        && matches!(norm(1).as_str(), "answer" | "a" | "answers")
}

/// Rows of CSV (RFC 4180: commas, `"` quoting with `""` escapes, CRLF or LF).
pub(crate) fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, CsvError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut line = 1;
    let mut quote_line = 0;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
                quote_line = line;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(CsvError(format!(
            "A quoted field opened on line {quote_line} is never closed."
        )));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Splits text into passages of at most [`CHUNK_TARGET`] bytes, on paragraph boundaries
/// where possible, else sentence, else word boundaries.
pub fn chunk(text: &str) -> Vec<String> {
    let mut packer = Packer::default();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if para.len() <= CHUNK_TARGET {
            packer.push(para, "\n\n");
            continue;
        }
        for sentence in sentences(para) {
            if sentence.len() <= CHUNK_TARGET {
                packer.push(sentence, " ");
                continue;
            }
            for word in sentence.split_whitespace() {
                if word.len() <= CHUNK_TARGET {
                    packer.push(word, " ");
                } else {
                    for piece in hard_split(word, CHUNK_TARGET) {
                        packer.push(piece, "");
                    }
                }
            }
        }
    }
    packer.finish()
}

#[derive(Default)]
struct Packer {
    out: Vec<String>,
    cur: String,
}

impl Packer {
    fn push(&mut self, piece: &str, sep: &str) {
        if !self.cur.is_empty() && self.cur.len() + sep.len() + piece.len() > CHUNK_TARGET {
            self.out.push(std::mem::take(&mut self.cur));
        }
        if !self.cur.is_empty() {
            self.cur.push_str(sep);
        }
        self.cur.push_str(piece);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.cur.is_empty() {
            self.out.push(self.cur);
        }
        self.out
    }
}

/// Sentences of a paragraph: cut after `.`, `!` or `?` followed by whitespace.
fn sentences(para: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_end = false;
    for (i, c) in para.char_indices() {
        if prev_end && c.is_whitespace() {
            let s = para[start..i].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = i;
        }
        prev_end = matches!(c, '.' | '!' | '?');
    }
    let s = para[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// Cuts `s` into pieces of at most `max` bytes on char boundaries.
fn hard_split(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            decode_entities("a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39; f&nbsp;g"),
            "a & b <c> \"d\" 'e' f g"
        );
        assert_eq!(decode_entities("&#233;t&#xE9; &#X41;"), "été A");
        assert_eq!(
            decode_entities("AT&T & co &bogus; &#xZZ; &"),
            "AT&T & co &bogus; &#xZZ; &"
        );
        assert_eq!(decode_entities("&#0;"), "\u{FFFD}");
    }

    #[test]
    fn html_is_stripped() {
        let html = r#"<!doctype html><html><head><title>Opening hours</title>
            <style>body { color: red }</style><script>alert("x < y")</script></head>
            <body><h1>Hours</h1><p>We open at <b>9&nbsp;am</b> &amp; close at 5.<br>Sat: closed</p>
            <!-- hidden comment --><a href="/x" title="a > b">Book</a> now</body></html>"#;
        let t = html_to_text(html);
        assert_eq!(
            t,
            "Opening hours\n\nHours\n\nWe open at 9 am & close at 5.\nSat: closed\n\nBook now"
        );
        assert!(!t.contains("alert") && !t.contains("color") && !t.contains("hidden"));
    }

    #[test]
    fn html_edge_cases() {
        assert_eq!(html_to_text("a < b and c"), "a < b and c");
        assert_eq!(html_to_text("<SCRIPT>x()</SCRIPT>ok"), "ok");
        assert_eq!(html_to_text("unterminated <b"), "unterminated");
        assert_eq!(html_to_text("<script>never closed"), "");
        assert_eq!(html_to_text("<td>a</td><td>b</td>"), "a b");
    }

    #[test]
    fn markdown_is_stripped() {
        let md = "# Prices\n\nA **cleaning** costs *80 €*, see [our list](https://x.y/p).\n\n\
                  - item `one`\n1. first\n> quoted\n```\ncode\n```\n---\n![logo](l.png) snake_case";
        assert_eq!(
            markdown_to_text(md),
            "Prices\n\nA cleaning costs 80 €, see our list.\n\nitem one\nfirst\nquoted\ncode\n\nlogo snake_case"
        );
    }

    #[test]
    fn chunks_respect_boundaries_and_size() {
        assert!(chunk("").is_empty());
        assert_eq!(chunk("one\n\ntwo"), vec!["one\n\ntwo".to_owned()]);
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let long = sentence.repeat(60); // ~2.7 KB, one paragraph
        let chunks = chunk(&long);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        for c in &chunks {
            assert!(c.len() <= CHUNK_TARGET, "{}", c.len());
            assert!(c.ends_with("dog."), "cut on a sentence boundary: {c:?}");
            assert!(c.starts_with("The "));
        }
        // Paragraphs are packed until the target, never cut when they fit.
        let para = "word ".repeat(100); // 500 bytes
        let text = format!("{para}\n\n{para}\n\n{para}");
        let chunks = chunk(&text);
        assert_eq!(chunks.len(), 3);
        // A sentence longer than the target is cut between words.
        let words = "abcdefghi ".repeat(200);
        for c in chunk(&words) {
            assert!(c.len() <= CHUNK_TARGET);
            assert!(c.split(' ').all(|w| w == "abcdefghi"), "no mid-word cut");
        }
        // One giant word is cut on char boundaries.
        let giant = "é".repeat(1000);
        let chunks = chunk(&giant);
        assert_eq!(chunks.concat(), giant);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_TARGET));
    }

    #[test]
    fn whitespace_is_normalized() {
        assert_eq!(
            normalize_whitespace("  a   b \n\n\n\n c\t d\n e "),
            "a b\n\nc d\ne"
        );
    }
}
