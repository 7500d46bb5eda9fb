//! Documents cut into sections by their headings, and sections into passages that keep
//! their heading path as context: "Clinic › Address" goes with "We are at 12 Harbour
//! Street." so a question about the address finds that sentence, whatever words it uses.
//!
//! Markdown and HTML have real headings; plain text (and documents indexed before
//! sections existed, whose markup is gone) has headings guessed: a short line of its own,
//! without closing punctuation, followed by text. CSV is one passage per row: a
//! question/answer pair (the question is the context), or a table row with its header.

use super::text::{self, CsvError, HEADING_MARK};

/// Bumped whenever what [`chunks`] makes of a document changes; documents chunked by an
/// older version are chunked again when the node starts.
pub const CHUNKER_VERSION: i64 = 3;

/// Separator of the heading path in a passage's context.
pub const PATH_SEPARATOR: &str = " › ";

/// One passage and where in its document it sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Heading path ("Clinic › Address"), the question of a Q&A row, or empty.
    pub context: String,
    /// The passage's text.
    pub text: String,
}

/// A heading path while walking a document.
#[derive(Default)]
struct Path(Vec<(u8, String)>);

impl Path {
    fn enter(&mut self, level: u8, heading: &str) {
        while self.0.last().is_some_and(|(l, _)| *l >= level) {
            self.0.pop();
        }
        let heading = heading.split_whitespace().collect::<Vec<_>>().join(" ");
        if !heading.is_empty() {
            self.0.push((level, heading));
        }
    }

    fn context(&self) -> String {
        self.0
            .iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>()
            .join(PATH_SEPARATOR)
    }
}

/// Passages of `body` under `context`, cut by [`text::chunk`].
fn push_section(out: &mut Vec<Chunk>, context: String, body: &str) {
    for piece in text::chunk(body) {
        out.push(Chunk {
            context: context.clone(),
            text: piece,
        });
    }
}

/// Level of an ATX heading line (`## Prices`) and its text.
fn atx_heading(line: &str) -> Option<(u8, &str)> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim();
    Some((u8::try_from(hashes).unwrap_or(6), text))
}

/// Level of a setext underline (`===` is 1, `---` is 2).
fn setext_level(line: &str) -> Option<u8> {
    let t = line.trim();
    if t.len() >= 2 && t.chars().all(|c| c == '=') {
        Some(1)
    } else if t.len() >= 2 && t.chars().all(|c| c == '-') {
        Some(2)
    } else {
        None
    }
}

/// Markdown cut at its headings (ATX and setext; not inside code fences).
pub fn markdown(md: &str) -> Vec<Chunk> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out = Vec::new();
    let mut path = Path::default();
    let mut body = String::new();
    let mut fenced = false;
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            fenced = !fenced;
        }
        let heading = if fenced {
            None
        } else if let Some((level, h)) = atx_heading(t) {
            Some((level, h, 1))
        } else if !t.is_empty() && body_is_paragraph_start(&body) {
            lines
                .get(i + 1)
                .and_then(|next| setext_level(next))
                .map(|level| (level, t, 2))
        } else {
            None
        };
        match heading {
            Some((level, h, consumed)) => {
                push_section(&mut out, path.context(), &text::markdown_to_text(&body));
                body.clear();
                path.enter(level, &text::markdown_to_text(h));
                i += consumed;
            }
            None => {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
        }
    }
    push_section(&mut out, path.context(), &text::markdown_to_text(&body));
    out
}

/// Whether the next line starts a paragraph (a setext heading is a one-line paragraph).
fn body_is_paragraph_start(body: &str) -> bool {
    body.lines().last().is_none_or(|l| l.trim().is_empty())
}

/// HTML cut at its `h1`–`h6` headings. The page `<title>` is left out: it names the page
/// or the site, and is no heading of the text.
pub fn html(html: &str) -> Vec<Chunk> {
    let marked = text::html_to_marked_text(html, true);
    let mut out = Vec::new();
    let mut path = Path::default();
    let mut body = String::new();
    for para in marked.split("\n\n") {
        if let Some(rest) = para.strip_prefix(HEADING_MARK) {
            let mut chars = rest.chars();
            let level = chars
                .next()
                .and_then(|c| c.to_digit(10))
                .and_then(|d| u8::try_from(d).ok())
                .unwrap_or(6);
            if level == 0 {
                // The page title names the page (often the site): not a heading.
                continue;
            }
            push_section(&mut out, path.context(), &body);
            body.clear();
            path.enter(level, chars.as_str());
            continue;
        }
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(para);
    }
    push_section(&mut out, path.context(), &body);
    out
}

/// A paragraph of a document whose format marks its headings (DOCX heading styles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Heading level (0 for the document's title, 1 the highest heading below it), or
    /// `None` for body text.
    pub heading: Option<u8>,
    /// The paragraph's text.
    pub text: String,
}

/// Paragraphs cut at the ones marked as headings.
pub fn blocks(blocks: &[Block]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut path = Path::default();
    let mut body = String::new();
    for b in blocks {
        let t = b.text.trim();
        if t.is_empty() {
            continue;
        }
        match b.heading {
            Some(level) => {
                push_section(&mut out, path.context(), &body);
                body.clear();
                path.enter(level, t);
            }
            None => {
                if !body.is_empty() {
                    body.push_str("\n\n");
                }
                body.push_str(t);
            }
        }
    }
    push_section(&mut out, path.context(), &body);
    out
}

/// Whether a paragraph of plain text looks like a heading: one short line, a few words,
/// no closing punctuation, no digits ("12 Harbour Street" is a fact, not a title).
fn looks_like_heading(para: &str) -> bool {
    let p = para.trim();
    !p.is_empty()
        && !p.contains('\n')
        && p.chars().count() <= 60
        && p.split_whitespace().count() <= 8
        && !p.ends_with(['.', '!', '?', ':', ';', ','])
        && p.chars().any(char::is_alphabetic)
        && !p.chars().any(|c| c.is_ascii_digit())
}

/// Plain text cut at the paragraphs that look like headings; consecutive ones form a
/// path ("Clinic" then "Address": "Clinic › Address").
pub fn plain(text: &str) -> Vec<Chunk> {
    let text = text::normalize_whitespace(text);
    let paras: Vec<&str> = text.split("\n\n").collect();
    let mut out = Vec::new();
    let mut path: Vec<&str> = Vec::new();
    let mut in_run = false;
    let mut body = String::new();
    for (i, para) in paras.iter().enumerate() {
        let followed = paras.get(i + 1).is_some_and(|n| !n.trim().is_empty());
        if looks_like_heading(para) && followed {
            push_section(&mut out, path.join(PATH_SEPARATOR), &body);
            body.clear();
            if !in_run {
                path.clear();
            }
            path.push(para.trim());
            in_run = true;
            continue;
        }
        in_run = false;
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(para);
    }
    push_section(&mut out, path.join(PATH_SEPARATOR), &body);
    out
}

/// Whether a first CSV row is a table header rather than a first question/answer pair:
/// short labels, no question mark, no digits.
fn is_table_header(row: &[String]) -> bool {
    row.iter().filter(|c| !c.trim().is_empty()).count() >= 2
        && row.iter().all(|c| {
            let c = c.trim();
            !c.is_empty()
                && c.chars().count() <= 40
                && c.split_whitespace().count() <= 4
                && !c.contains('?')
                && !c.chars().any(|ch| ch.is_ascii_digit())
        })
}

/// Header labels of a product catalogue's columns (case-insensitive).
const NAME_LABELS: &[&str] = &["name", "product", "product name", "item", "title"];
const PRICE_LABELS: &[&str] = &["price", "cost", "amount"];
const LINK_LABELS: &[&str] = &["link", "url", "page", "web page", "product page"];
const DESCRIPTION_LABELS: &[&str] = &["description", "details", "summary"];

/// The columns of a product catalogue (name, price, optional description and link), when
/// `header` names them.
fn catalogue_columns(header: &[String]) -> Option<(usize, usize, Option<usize>, Option<usize>)> {
    let find = |labels: &[&str]| {
        header
            .iter()
            .position(|h| labels.contains(&h.trim().to_lowercase().as_str()))
    };
    Some((
        find(NAME_LABELS)?,
        find(PRICE_LABELS)?,
        find(DESCRIPTION_LABELS),
        find(LINK_LABELS),
    ))
}

/// One product of a catalogue: its name is the context (as a Q&A question is), the first
/// line names it with its price and link (one sentence, so "how much is X" is answered
/// with both), the description follows. Labels are the header's own words.
fn product(
    header: &[String],
    row: &[String],
    cols: (usize, usize, Option<usize>, Option<usize>),
) -> Option<Chunk> {
    let (name, price, description, link) = cols;
    let cell = |i: usize| row.get(i).map(|v| one_line(v)).filter(|v| !v.is_empty());
    let label = |i: usize| header[i].trim().to_owned();
    let n = cell(name)?;
    let mut first = n.clone();
    if let Some(p) = cell(price) {
        first.push_str(&format!(" — {}: {p}", label(price)));
    }
    if let Some(l) = link.and_then(cell) {
        first.push_str(&format!(" — {}: {l}", label(link.unwrap_or(0))));
    }
    let mut text = first;
    if let Some(d) = description.and_then(cell) {
        text.push('\n');
        text.push_str(&d);
    }
    Some(Chunk { context: n, text })
}

/// CSV: question/answer pairs (header `question,answer` optional; the question is the
/// passage's context, the answer its text), or, when the first row is a header of
/// labels, one passage per row written `Label: value; Label: value`, or, when those
/// labels name a product catalogue (name and price, with description and link), one
/// passage per product ([`product`]).
pub fn csv(raw: &str) -> Result<Vec<Chunk>, CsvError> {
    let rows: Vec<(usize, Vec<String>)> = text::parse_csv(raw)?
        .into_iter()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|f| !f.trim().is_empty()))
        .collect();
    let Some((_, first)) = rows.first() else {
        return Ok(Vec::new());
    };
    if rows.len() >= 2 && !text::is_qa_header(first) && is_table_header(first) {
        let header: Vec<String> = first.iter().map(|h| h.trim().to_owned()).collect();
        if let Some(cols) = catalogue_columns(&header) {
            return Ok(rows[1..]
                .iter()
                .filter_map(|(_, row)| product(&header, row, cols))
                .collect());
        }
        return Ok(rows[1..]
            .iter()
            .filter_map(|(_, row)| {
                let cells: Vec<String> = header
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !v.trim().is_empty())
                    .map(|(h, v)| format!("{h}: {}", one_line(v)))
                    .collect();
                (!cells.is_empty()).then(|| Chunk {
                    context: String::new(),
                    text: format!("{}.", cells.join("; ").trim_end_matches('.')),
                })
            })
            .collect());
    }
    let mut out = Vec::new();
    for (pos, (n, row)) in rows.iter().enumerate() {
        if pos == 0 && text::is_qa_header(row) {
            continue;
        }
        match row.as_slice() {
            [q, a, ..] if !q.trim().is_empty() && !a.trim().is_empty() => out.push(Chunk {
                context: one_line(q),
                text: text::normalize_whitespace(a),
            }),
            _ => {
                return Err(CsvError(format!(
                    "Row {} needs a question and an answer (two columns).",
                    n + 1
                )))
            }
        }
    }
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Passages of a document stored before sections existed (chunker version 1), from its
/// old passages: Q&A rows were `Q: …\nA: …`; everything else was plain text with the
/// markup already gone, so headings are guessed as in [`plain`].
pub fn from_v1_passages(csv: bool, passages: &[String]) -> Vec<Chunk> {
    if csv {
        return passages
            .iter()
            .map(
                |p| match p.strip_prefix("Q: ").and_then(|r| r.split_once("\nA: ")) {
                    Some((q, a)) => Chunk {
                        context: one_line(q),
                        text: a.trim().to_owned(),
                    },
                    None => Chunk {
                        context: String::new(),
                        text: p.clone(),
                    },
                },
            )
            .collect();
    }
    plain(&passages.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(context: &str, text: &str) -> Chunk {
        Chunk {
            context: context.into(),
            text: text.into(),
        }
    }

    #[test]
    fn markdown_is_cut_at_headings_with_their_path() {
        let md = "# Harbour Dental\n\nFamily dentistry since 1990.\n\n## Address\n\n\
                  We are at **12 Harbour Street**, Brighton.\n\n## Hours\n\n- Mon–Fri: 8:00–18:00\n\
                  - Sat: 9:00–13:00\n\n### Holidays\nClosed on bank holidays.\n\n\
                  Prices\n======\nA cleaning costs €80.\n\n```\n# not a heading\n```\n";
        assert_eq!(
            markdown(md),
            vec![
                c("Harbour Dental", "Family dentistry since 1990."),
                c(
                    "Harbour Dental › Address",
                    "We are at 12 Harbour Street, Brighton."
                ),
                c(
                    "Harbour Dental › Hours",
                    "Mon–Fri: 8:00–18:00\nSat: 9:00–13:00"
                ),
                c(
                    "Harbour Dental › Hours › Holidays",
                    "Closed on bank holidays."
                ),
                c("Prices", "A cleaning costs €80.\n\nnot a heading"),
            ]
        );
        // A rule after a blank line is not a setext heading; hashtags are not headings.
        assert_eq!(
            markdown("Intro.\n\n---\n\n#hashtag text"),
            vec![c("", "Intro.\n\nhashtag text")]
        );
    }

    #[test]
    fn html_is_cut_at_headings_without_the_page_title() {
        let page = "<html><head><title>Harbour Dental</title></head><body>\
            <h1>Our services</h1><p>We offer cleanings.</p><h2>Whitening</h2>\
            <p>Whitening takes <b>one hour</b>.</p><h2>Children</h2><p>Kids are welcome.</p>\
            <h1>Contact</h1><p>Call 01273 555 0100.</p>\u{1}</body></html>";
        assert_eq!(
            html(page),
            vec![
                c("Our services", "We offer cleanings."),
                c("Our services › Whitening", "Whitening takes one hour."),
                c("Our services › Children", "Kids are welcome."),
                c("Contact", "Call 01273 555 0100."),
            ]
        );
    }

    #[test]
    fn plain_text_guesses_headings() {
        let t = "Harbour Dental\n\nAddress\n\nWe are at 12 Harbour Street.\n\nParking\n\n\
                 Park behind the building.\nIt is free.\n\nThanks for reading";
        assert_eq!(
            plain(t),
            vec![
                c("Harbour Dental › Address", "We are at 12 Harbour Street."),
                c(
                    "Parking",
                    "Park behind the building.\nIt is free.\n\nThanks for reading"
                ),
            ]
        );
    }

    #[test]
    fn csv_rows_are_passages() {
        let qa = "question,answer\r\nWhen do you open?,9 am\n\n\"Do you take \"\"cards\"\"?\",\"Yes, all\nof them\"\n";
        assert_eq!(
            csv(qa).expect("csv"),
            vec![
                c("When do you open?", "9 am"),
                c("Do you take \"cards\"?", "Yes, all\nof them")
            ]
        );
        // no header, no trailing newline, extra column ignored
        assert_eq!(csv("a,b,c").expect("csv"), vec![c("a", "b")]);
        assert_eq!(
            csv("q,a\nonly one column\n"),
            Err(CsvError(
                "Row 2 needs a question and an answer (two columns).".into()
            ))
        );
        assert!(csv("\"open,b\nc,d").is_err());
        // A table: one passage per row, with the header's labels.
        let table = "Service,Price,Duration\nCleaning,€80,45 minutes\nWhitening,€250,\n";
        assert_eq!(
            csv(table).expect("csv"),
            vec![
                c("", "Service: Cleaning; Price: €80; Duration: 45 minutes."),
                c("", "Service: Whitening; Price: €250.")
            ]
        );
        // A first row with a question or a number is a pair, not a header.
        assert_eq!(
            csv("Opening hours,9-5\nParking,Behind the building\n").expect("csv"),
            vec![
                c("Opening hours", "9-5"),
                c("Parking", "Behind the building")
            ]
        );
    }

    #[test]
    fn version_1_passages_are_read_back() {
        assert_eq!(
            from_v1_passages(true, &["Q: Is parking free?\nA: Yes, behind us.".into()]),
            vec![c("Is parking free?", "Yes, behind us.")]
        );
        assert_eq!(
            from_v1_passages(
                false,
                &[
                    "Harbour Dental\n\nAddress\n\nWe are at 12 Harbour Street.".into(),
                    "Hours\n\nOpen 8 to 6.".into()
                ]
            ),
            vec![
                c("Harbour Dental › Address", "We are at 12 Harbour Street."),
                c("Hours", "Open 8 to 6."),
            ]
        );
    }
}
