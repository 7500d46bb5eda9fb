//! The blind index: our own tokenizer, and terms replaced by keyed hashes before they
//! reach FTS5, so `node.db` holds no plaintext word of a document (DESIGN §2) while
//! SQLite still ranks with BM25.
//!
//! A blinded term is `HMAC-SHA256(index_key, term)[..8]` in lowercase hex. Equal terms
//! still give equal hashes (that is what makes search work), so term frequencies are
//! visible to someone holding the file; the words themselves are not, and they die with
//! the master key.

use ring::hmac;

/// Common English words that carry no meaning for retrieval.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does",
    "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "to", "too", "us", "was",
    "we", "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you",
    "your",
];

/// Terms of `text`: lowercased (Unicode-aware), split on anything that is not a letter or
/// digit, stopwords and one-character tokens dropped, lightly stemmed.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            let lower = t.to_lowercase();
            if lower.chars().count() < 2 || STOPWORDS.contains(&lower.as_str()) {
                return None;
            }
            Some(stem(lower))
        })
        .collect()
}

/// A deliberately light suffix stemmer: `-ies` → `-y`, and `-ing`, `-ed`, `-s` removed
/// when enough of the word is left (four letters before `-ing`, so "caring" is not
/// "car"). Applied to documents and queries alike, so it only has to be consistent, not
/// linguistically right; a change here changes the index, so it bumps
/// [`CHUNKER_VERSION`](super::sections::CHUNKER_VERSION).
pub fn stem(word: String) -> String {
    let n = word.chars().count();
    if !word.is_ascii() {
        return word;
    }
    if n > 4 && word.ends_with("ies") {
        return format!("{}y", &word[..word.len() - 3]);
    }
    if n > 6 && word.ends_with("ing") {
        return word[..word.len() - 3].to_owned();
    }
    if n > 4 && word.ends_with("ed") {
        return word[..word.len() - 2].to_owned();
    }
    if n > 3 && word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us") {
        return word[..word.len() - 1].to_owned();
    }
    word
}

/// Turns terms into blinded index tokens under one key.
pub struct Blinder {
    key: hmac::Key,
}

impl Blinder {
    /// A blinder keyed with `key` (the master key's `kb-index` sub-key).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// The blinded form of one term: 16 lowercase hex characters.
    pub fn blind(&self, term: &str) -> String {
        let tag = hmac::sign(&self.key, term.as_bytes());
        let mut out = String::with_capacity(16);
        for b in &tag.as_ref()[..8] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// The FTS5 row text of `text`: its blinded terms joined by spaces, in order, then
    /// its [`markers`](super::query::markers).
    pub fn document_terms(&self, text: &str) -> String {
        tokenize(text)
            .into_iter()
            .chain(super::query::markers(text))
            .map(|t| self.blind(&t))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// An FTS5 `MATCH` expression for a question: the distinct blinded terms of all its
    /// groups OR-ed, each quoted (so the query language never sees user input). `None`
    /// when the question has no searchable term.
    pub fn match_expression(&self, query: &super::query::Query) -> Option<String> {
        let mut seen = Vec::new();
        for t in query.terms() {
            let b = self.blind(t);
            if !seen.contains(&b) {
                seen.push(b);
            }
        }
        if seen.is_empty() {
            return None;
        }
        Some(
            seen.iter()
                .map(|b| format!("\"{b}\""))
                .collect::<Vec<_>>()
                .join(" OR "),
        )
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_splits_and_drops_noise() {
        assert_eq!(
            tokenize("The Clinic's OPENING hours: Mon–Fri, 9-5 (x)!"),
            vec!["clinic", "open", "hour", "mon", "fri"]
        );
        assert_eq!(
            tokenize("Zahnärzte ÜBER Straße"),
            vec!["zahnärzte", "über", "straße"]
        );
        assert_eq!(tokenize("canary-kb-7f3a9"), vec!["canary", "kb", "7f3a9"]);
        assert!(tokenize("a I ! ... the of").is_empty());
    }

    #[test]
    fn stemmer_is_light() {
        let s = |w: &str| stem(w.to_owned());
        assert_eq!(s("cleanings"), "cleaning");
        assert_eq!(s("cleaning"), "clean");
        assert_eq!(s("booked"), "book");
        assert_eq!(s("policies"), "policy");
        assert_eq!(s("hours"), "hour");
        assert_eq!(s("glass"), "glass");
        assert_eq!(s("status"), "status");
        assert_eq!(s("bed"), "bed");
        assert_eq!(s("sing"), "sing");
        assert_eq!(s("caring"), "caring", "not car");
        assert_eq!(s("parking"), "park");
        assert_eq!(s("was"), "was");
        // documents and queries meet in the middle
        assert_eq!(tokenize("booking"), tokenize("books"));
    }

    #[test]
    fn blinding_is_keyed_deterministic_and_hex() {
        let a = Blinder::new(&[1; 32]);
        let b = Blinder::new(&[2; 32]);
        let t = a.blind("dentist");
        assert_eq!(t.len(), 16);
        assert!(t
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(t, a.blind("dentist"));
        assert_ne!(t, b.blind("dentist"));
        assert_ne!(t, a.blind("dentists2"));
        assert_eq!(a.document_terms("The dentist").split(' ').count(), 1);
        // An amount of money is also a price.
        assert_eq!(
            a.document_terms("Cleaning €80"),
            format!(
                "{} {} {}",
                a.blind("clean"),
                a.blind("80"),
                a.blind("price")
            )
        );
    }

    #[test]
    fn match_expression_quotes_and_dedups() {
        let a = Blinder::new(&[1; 32]);
        let q = |s: &str| crate::domain::kb::query::Query::parse(s);
        assert_eq!(a.match_expression(&q("the of a")), None);
        let e = a
            .match_expression(&q("Parking? parking\" OR NEAR("))
            .expect("terms");
        let parts: Vec<_> = e.split(" OR ").collect();
        // park, car (its class) and near; "or" is a stopword
        assert_eq!(parts.len(), 3, "{e}");
        assert!(parts.iter().all(|p| p.len() == 18 && p.starts_with('"')));
    }
}
