//! What a customer's question asks, as groups of terms: one group per thing asked, each
//! holding the word used and the words a business would use for it. "Where are you?" has
//! no searchable word at all, but asks for a location: one group (address, located,
//! street…). "How much is a cleaning?" asks for a price (price, cost, fee… and any amount
//! of money, see [`markers`]) and for "cleaning".
//!
//! Documents are indexed with their own words plus [`markers`]; questions are expanded
//! here. Retrieval ORs every term of every group; the built-in responder counts how many
//! groups a sentence answers.

use super::index::{stem, tokenize};

/// Words of the same meaning for customer questions. A question word in one class
/// searches for all of them.
const CLASSES: &[&[&str]] = &[
    &[
        "price",
        "prices",
        "cost",
        "costs",
        "fee",
        "fees",
        "charge",
        "charges",
        "expensive",
        "cheap",
        "rate",
        "rates",
        "tariff",
    ],
    &[
        "hour", "hours", "open", "opening", "close", "closing", "closed", "time", "times",
    ],
    &[
        "address",
        "located",
        "location",
        "find",
        "street",
        "situated",
        "directions",
        "based",
        "map",
    ],
    &[
        "phone",
        "telephone",
        "call",
        "ring",
        "number",
        "tel",
        "contact",
    ],
    &["email", "mail"],
    &[
        "book",
        "booking",
        "appointment",
        "appointments",
        "reserve",
        "reservation",
        "schedule",
    ],
    &["pay", "payment", "payments", "card", "cards", "cash"],
    &["cancel", "cancellation", "cancelling", "reschedule"],
    &["child", "children", "kid", "kids", "baby", "babies"],
    &[
        "wheelchair",
        "accessible",
        "accessibility",
        "disabled",
        "step",
        "steps",
        "lift",
        "elevator",
        "ramp",
    ],
    &["park", "parking", "car"],
    &["deliver", "delivery", "ship", "shipping"],
    &["voucher", "vouchers", "gift"],
    &["refund", "refunds", "return", "returns"],
    &["speak", "language", "languages"],
    &["emergency", "emergencies", "urgent", "urgently", "pain"],
    &["long", "duration", "minute", "minutes", "last"],
];

/// Words that stand for others, one way only: "weekend" asks about Saturday, but
/// "Saturday" does not ask about Sunday.
const ONE_WAY: &[(&str, &[&str])] = &[
    ("weekend", &["saturday", "sunday"]),
    (
        "weekday",
        &["monday", "tuesday", "wednesday", "thursday", "friday"],
    ),
];

/// Words of a question that say nothing about what is asked ("can you tell me…", "do you
/// sell…"), and the words a visitor uses for the business itself ("where is the
/// clinic?"). Documents keep them; only questions drop them.
const NOISE: &[&str] = &[
    "accept",
    "any",
    "anything",
    "also",
    "available",
    "business",
    "buy",
    "clinic",
    "company",
    "office",
    "place",
    "practice",
    "premises",
    "purchase",
    "restaurant",
    "salon",
    "sell",
    "shop",
    "store",
    "studio",
    "come",
    "could",
    "currently",
    "get",
    "go",
    "hello",
    "hey",
    "hi",
    "ins",
    "just",
    "know",
    "like",
    "many",
    "much",
    "need",
    "now",
    "offer",
    "ok",
    "ons",
    "outs",
    "please",
    "provide",
    "really",
    "should",
    "some",
    "something",
    "still",
    "take",
    "tell",
    "thank",
    "thanks",
    "today",
    "tomorrow",
    "ups",
    "want",
];

/// A question's groups of stemmed terms, in the order asked, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// One group per thing asked.
    pub groups: Vec<Group>,
}

/// One thing a question asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Stemmed terms any of which answers it.
    pub terms: Vec<String>,
    /// Asked by a question word only ("where", "how much"): the kind of answer wanted,
    /// which weighs less than the things named.
    pub kind_only: bool,
}

impl Group {
    /// How much answering it counts, before rarity.
    pub fn weight(&self) -> f64 {
        if self.kind_only {
            0.5
        } else {
            1.0
        }
    }
}

fn class_of(term: &str) -> Option<Vec<String>> {
    CLASSES
        .iter()
        .find(|class| class.iter().any(|w| stem((*w).to_owned()) == term))
        .map(|class| {
            let mut out: Vec<String> = Vec::new();
            for w in *class {
                let s = stem((*w).to_owned());
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            out
        })
}

fn class_containing(word: &str) -> Vec<String> {
    class_of(&stem(word.to_owned())).unwrap_or_default()
}

impl Query {
    /// Analyses a customer's question.
    pub fn parse(question: &str) -> Self {
        let mut q = Query::default();
        // An e-mail or web address is not where the business is.
        let lower = question
            .to_lowercase()
            .replace("email address", "email")
            .replace("e-mail address", "email")
            .replace("mail address", "email")
            .replace("web address", "website");
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |w: &str| words.contains(&w);
        let pair = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
        // What the question word asks for.
        if has("where") {
            q.add(class_containing("address"), true);
        }
        if has("when") || pair("what", "time") || pair("which", "days") {
            q.add(class_containing("hours"), true);
        }
        if pair("how", "much") || pair("how", "expensive") {
            q.add(class_containing("price"), true);
        }
        if pair("how", "long") {
            q.add(class_containing("duration"), true);
        }
        for term in tokenize(&lower) {
            if NOISE.iter().any(|n| stem((*n).to_owned()) == term) {
                continue;
            }
            let mut group = class_of(&term).unwrap_or_else(|| vec![term.clone()]);
            for (word, stands_for) in ONE_WAY {
                if stem((*word).to_owned()) == term {
                    group.extend(stands_for.iter().map(|w| stem((*w).to_owned())));
                }
            }
            q.add(group, false);
        }
        q
    }

    /// Adds a group; one already asked is asked once, and named if named now.
    fn add(&mut self, terms: Vec<String>, kind_only: bool) {
        if terms.is_empty() {
            return;
        }
        match self.groups.iter_mut().find(|g| g.terms == terms) {
            Some(g) => g.kind_only &= kind_only,
            None => self.groups.push(Group { terms, kind_only }),
        }
    }

    /// Every term of every group, once.
    pub fn terms(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in self.groups.iter().flat_map(|g| &g.terms) {
            if !out.contains(&t.as_str()) {
                out.push(t);
            }
        }
        out
    }
}

/// Terms a text earns by what it holds rather than by its words, so that questions
/// asking for that kind of thing find it: an amount of money is a `price`, a time of day
/// an `hour`, an e-mail address an `email`, a phone number a `phone`. Added to documents
/// when indexed and to sentences when the responder weighs them.
pub fn markers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = text.to_lowercase();
    if text.contains(['€', '$', '£', '¥'])
        || has_word(
            &lower,
            &[
                "eur", "euro", "euros", "usd", "dollars", "gbp", "pounds", "chf",
            ],
        )
    {
        out.push("price".to_owned());
    }
    if has_time_of_day(&lower) {
        out.push("hour".to_owned());
    }
    if lower
        .split_whitespace()
        .any(|w| w.contains('@') && w.contains('.'))
    {
        out.push("email".to_owned());
    }
    if has_phone_number(text) {
        out.push("phone".to_owned());
    }
    out
}

fn has_word(lower: &str, words: &[&str]) -> bool {
    lower
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| words.contains(&w))
}

/// `9am`, `9 pm`, `9:30`, `18:00`, `9h30`.
fn has_time_of_day(lower: &str) -> bool {
    let b = lower.as_bytes();
    for i in 0..b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j - i > 2 {
            continue;
        }
        let rest = &lower[j..];
        let rest_trim = rest.trim_start();
        if rest_trim.starts_with("am")
            || rest_trim.starts_with("pm")
            || rest_trim.starts_with("a.m")
            || rest_trim.starts_with("p.m")
        {
            let after = rest_trim[2..].chars().next();
            if after.is_none_or(|c| !c.is_alphabetic() || c == '.') {
                return true;
            }
        }
        let rb = rest.as_bytes();
        if rb.len() >= 3
            && (rb[0] == b':' || rb[0] == b'h')
            && rb[1].is_ascii_digit()
            && rb[2].is_ascii_digit()
        {
            return true;
        }
    }
    false
}

/// Seven or more digits in one run of digits, spaces, dots, dashes, parentheses and a
/// leading `+`, with no letter inside.
fn has_phone_number(text: &str) -> bool {
    let mut digits = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits >= 7 {
                return true;
            }
        } else if !matches!(c, ' ' | '.' | '-' | '(' | ')' | '+' | '\u{a0}') {
            digits = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(q: &str) -> Vec<Vec<String>> {
        Query::parse(q)
            .groups
            .into_iter()
            .map(|g| g.terms)
            .collect()
    }

    #[test]
    fn question_words_ask_for_kinds_of_facts() {
        let g = groups("Where are you?");
        assert_eq!(g.len(), 1);
        assert!(g[0].contains(&"address".to_owned()) && g[0].contains(&"locat".to_owned()));
        let g = groups("How much is a cleaning?");
        assert_eq!(g.len(), 2, "{g:?}");
        assert!(g[0].contains(&"price".to_owned()) && g[0].contains(&"cost".to_owned()));
        assert_eq!(g[1], vec!["clean".to_owned()]);
        // "price" asked twice is one group, and named.
        let q = Query::parse("How much does it cost, what price?");
        assert_eq!(q.groups.len(), 1);
        assert!(!q.groups[0].kind_only);
        assert!(Query::parse("How much?").groups[0].kind_only);
        // An e-mail address is not a street address; the weekend is Saturday and Sunday.
        assert_eq!(
            groups("What's your email address?"),
            vec![vec!["email", "mail"]]
        );
        let g = groups("Open at the weekend?");
        assert!(g[1].contains(&"sunday".to_owned()), "{g:?}");
        assert!(!groups("Open on Sunday?")[1].contains(&"saturday".to_owned()));
        assert!(groups("the of a").is_empty());
    }

    #[test]
    fn filler_words_are_dropped_from_questions() {
        assert_eq!(
            groups("Hi, can you please tell me if you take walk-ins?"),
            vec![vec!["walk".to_owned()]]
        );
    }

    #[test]
    fn markers_name_what_a_text_holds() {
        assert_eq!(markers("A cleaning costs €80."), vec!["price"]);
        assert_eq!(markers("Open 8:00–18:00, Sat 9am to 1 pm"), vec!["hour"]);
        assert_eq!(
            markers("Write to hello@harbour.example or call +44 1273 555 010."),
            vec!["email", "phone"]
        );
        assert!(markers("We opened in 1990 at 12 Harbour Street, BN1 2AB.").is_empty());
        assert!(markers("Sam loves apples").is_empty());
    }
}
