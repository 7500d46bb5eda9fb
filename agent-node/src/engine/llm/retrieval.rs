//! The built-in retrieval responder: no model, no key, no network. It answers with the
//! sentence (or two) of the retrieved passages that holds what the question asks for, in
//! the words of the business's documents, and nothing else: no file name, no title.
//!
//! The question is read as groups of terms ([`Query`]): one per thing asked, with the
//! words a business uses for it ("where" asks for an address, "how much" for a price).
//! Every sentence of the best passages is weighed by the groups it answers, in its own
//! words or through its heading path (a sentence under "Address" answers "where"); the
//! best one is said, with its neighbour when it is only a lead-in ("Our prices:") or
//! continues it ("It is free."). When no sentence answers at least half of what was
//! asked, it has no answer ([`LlmError::NoAnswer`]) and the runtime says the fallback.

use super::{ChatRequest, Grounding, LlmError, LlmProvider, Usage};
use crate::domain::kb::index::tokenize;
use crate::domain::kb::query::{markers, Group, Query};
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use tokio::sync::mpsc;

/// The retrieval responder.
pub struct Retrieval;

/// Weight of a group answered by the passage's heading path rather than the sentence.
const CONTEXT_WEIGHT: f64 = 0.7;

/// Share of what the question asks (by weight) an answer must hold; below it the
/// responder has no answer and the visitor gets the fallback.
const MIN_COVERAGE: f64 = 0.5;

/// Terms of a text as the index sees them: words and markers.
fn terms(s: &str) -> HashSet<String> {
    tokenize(s).into_iter().chain(markers(s)).collect()
}

/// Words after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "st", "prof", "no", "approx", "incl", "e.g", "i.e", "etc", "vs",
];

/// Splits a passage into sentences (keeping their punctuation): after `.`, `!`, `?` or a
/// line break, unless the period closes an abbreviation (`Dr.`) or a lowercase word
/// follows (`9 a.m. to 5`).
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        cur.push(*c);
        let end = match c {
            '\n' => true,
            '.' | '!' | '?' => {
                let next_ws = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
                let next_word = chars[i + 1..].iter().find(|n| !n.is_whitespace());
                let last_word = cur
                    .trim_end_matches(['.', '!', '?'])
                    .rsplit(char::is_whitespace)
                    .next()
                    .unwrap_or("")
                    .to_lowercase();
                next_ws
                    && !(*c == '.' && ABBREVIATIONS.contains(&last_word.as_str()))
                    && !next_word.is_some_and(|n| n.is_lowercase())
            }
            _ => false,
        };
        if end {
            let s = cur.trim().to_owned();
            if !s.is_empty() {
                out.push(s);
            }
            cur.clear();
        }
    }
    let s = cur.trim().to_owned();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// The best-answering run of sentences found so far.
struct Pick {
    score: f64,
    passage: usize,
    start: usize,
    len: usize,
}

/// The answer to `question` from the passages (best first), or `None` when no sentence
/// answers at least [`MIN_COVERAGE`] of what the question asks.
pub fn compose(question: &str, grounding: &[Grounding]) -> Option<String> {
    let query = Query::parse(question);
    let groups = &query.groups;
    if groups.is_empty() {
        return None;
    }
    let split: Vec<Vec<String>> = grounding.iter().map(|g| sentences(&g.text)).collect();
    let contexts: Vec<HashSet<String>> = grounding.iter().map(|g| terms(&g.context)).collect();
    let sentence_terms: Vec<Vec<HashSet<String>>> = split
        .iter()
        .map(|ss| ss.iter().map(|s| terms(s)).collect())
        .collect();
    let hits = |g: &Group, set: &HashSet<String>| g.terms.iter().any(|t| set.contains(t));
    // A group found in every passage tells them apart less than one found in one, so
    // when choosing the sentence, weights fall with the share of passages holding the
    // group. For the threshold only a group found in every one of several passages
    // counts less (a word of the business's name, in every heading path, says nothing
    // of what was asked). Unknown words keep their full weight.
    let n = grounding.len() as f64;
    let (weights, needs): (Vec<f64>, Vec<f64>) = groups
        .iter()
        .map(|g| {
            let df = (0..grounding.len())
                .filter(|&p| hits(g, &contexts[p]) || sentence_terms[p].iter().any(|s| hits(g, s)))
                .count() as f64;
            let rarity = if df == 0.0 {
                1.0
            } else {
                ((1.0 + n / df).ln() / (1.0 + n).ln()).min(1.0)
            };
            let need = if n >= 3.0 && df == n { rarity } else { 1.0 };
            (g.weight() * rarity, g.weight() * need)
        })
        .unzip();
    let total: f64 = needs.iter().sum();
    // A question word names the kind of answer wanted ("where": a place). When some
    // sentence is of that kind (in its words or under its heading), only those answer.
    let kinds: Vec<&Group> = groups.iter().filter(|g| g.kind_only).collect();
    let of_kind = |p: usize, i: usize| {
        kinds
            .iter()
            .all(|g| hits(g, &sentence_terms[p][i]) || hits(g, &contexts[p]))
    };
    let kind_known = !kinds.is_empty()
        && (0..grounding.len()).any(|p| (0..sentence_terms[p].len()).any(|i| of_kind(p, i)));
    let mut best: Option<Pick> = None;
    for rank in 0..grounding.len() {
        let sents = &sentence_terms[rank];
        let in_sentence = |g: &Group, i: usize| hits(g, &sents[i]);
        for start in 0..sents.len() {
            for len in 1..=2 {
                if start + len > sents.len() {
                    break;
                }
                let window = start..start + len;
                if kind_known && !window.clone().any(|i| of_kind(rank, i)) {
                    continue;
                }
                let said = |g: &Group| window.clone().any(|i| in_sentence(g, i));
                if len == 2 {
                    // The second sentence must answer something the first does not.
                    let first = groups.iter().filter(|g| in_sentence(g, start)).count();
                    let second = groups.iter().filter(|g| in_sentence(g, start + 1)).count();
                    let both = groups.iter().filter(|g| said(g)).count();
                    if both <= first || both <= second {
                        continue;
                    }
                }
                let mut covered = 0.0;
                let mut score = 0.0;
                for ((g, w), need) in groups.iter().zip(&weights).zip(&needs) {
                    if said(g) {
                        covered += need;
                        score += w;
                    } else if hits(g, &contexts[rank]) {
                        covered += need;
                        score += w * CONTEXT_WEIGHT;
                    }
                }
                if covered <= 0.0 || covered < MIN_COVERAGE * total {
                    continue;
                }
                // Better passages first, then earlier sentences, then shorter answers.
                score -= 0.05 * rank as f64 + 0.01 * start as f64 + 0.1 * (len - 1) as f64;
                if best.as_ref().is_none_or(|b| score > b.score) {
                    best = Some(Pick {
                        score,
                        passage: rank,
                        start,
                        len,
                    });
                }
            }
        }
    }
    let pick = best?;
    let sents = &split[pick.passage];
    let (mut from, mut to) = (pick.start, pick.start + pick.len);
    // A lead-in ("Our prices:") or a fragment needs the sentence after it.
    let first = &sents[from];
    if to - from == 1
        && to < sents.len()
        && (first.ends_with(':') || first.split_whitespace().count() < 4)
    {
        to += 1;
    }
    // A sentence that continues the one before ("It is free.") needs it.
    const CONTINUES: &[&str] = &[
        "it", "this", "that", "they", "these", "those", "he", "she", "also",
    ];
    let opener = sents[from]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_lowercase();
    if from > 0 && CONTINUES.contains(&opener.trim_matches(|c: char| !c.is_alphanumeric())) {
        from -= 1;
    }
    Some(sents[from..to].join(" "))
}

impl LlmProvider for Retrieval {
    fn name(&self) -> &'static str {
        "retrieval"
    }

    fn stream<'a>(
        &'a self,
        req: &'a ChatRequest,
        tx: mpsc::Sender<String>,
    ) -> BoxFuture<'a, Result<Usage, LlmError>> {
        Box::pin(async move {
            let question = req.question();
            let answer = compose(question, &req.grounding).ok_or(LlmError::NoAnswer)?;
            // Stream in groups of a few words, as a model would.
            let mut group = String::new();
            for (i, w) in answer.split_inclusive(' ').enumerate() {
                group.push_str(w);
                if i % 4 == 3 {
                    let _ = tx.send(std::mem::take(&mut group)).await;
                }
            }
            if !group.is_empty() {
                let _ = tx.send(group).await;
            }
            Ok(Usage::default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "Acme Dental is open Monday to Friday from 8am to 6pm. On Saturdays we open from 9am to 1pm for emergencies only.\n\nFree parking is available behind the building on Elm Street.";

    fn g(context: &str, text: &str) -> Grounding {
        Grounding {
            context: context.into(),
            text: text.into(),
        }
    }

    #[test]
    fn says_the_sentence_that_answers() {
        let kb = [g("Acme Dental", DOC)];
        assert_eq!(
            compose("Where can I park?", &kb).expect("answer"),
            "Free parking is available behind the building on Elm Street."
        );
        let a = compose("Are you open on Saturdays?", &kb).expect("answer");
        assert_eq!(
            a,
            "On Saturdays we open from 9am to 1pm for emergencies only."
        );
        assert!(compose("bicycles", &kb).is_none());
    }

    #[test]
    fn a_heading_answers_for_its_section_and_titles_stay_out() {
        let kb = [
            g("Harbour Dental", "Family dentistry since 1990."),
            g(
                "Harbour Dental › Address",
                "12 Harbour Street, Brighton BN1 2AB. Enter by the blue door.",
            ),
        ];
        assert_eq!(
            compose("What is your address?", &kb).expect("answer"),
            "12 Harbour Street, Brighton BN1 2AB."
        );
        assert_eq!(
            compose("Where are you?", &kb).expect("answer"),
            "12 Harbour Street, Brighton BN1 2AB."
        );
    }

    #[test]
    fn neighbours_join_when_needed_and_half_an_answer_is_none() {
        let kb = [g(
            "Prices",
            "Our prices:\nCleaning €80.\nParking is behind us. It is free on Sundays.",
        )];
        assert_eq!(
            compose("Is it free on Sundays?", &kb).expect("answer"),
            "Parking is behind us. It is free on Sundays."
        );
        // Two things asked, one known: no answer.
        assert!(compose("How much is a root canal?", &kb).is_none());
        assert_eq!(
            sentences("Dr. Lee sees you at 9 a.m. on Mondays. Call us!"),
            vec!["Dr. Lee sees you at 9 a.m. on Mondays.", "Call us!"]
        );
    }

    #[tokio::test]
    async fn streams_the_answer_or_has_none() {
        let req = |grounding| ChatRequest {
            model: String::new(),
            system: String::new(),
            grounding,
            history: vec![super::super::Turn {
                role: super::super::Role::User,
                text: "Is there parking?".into(),
            }],
            max_tokens: 100,
            tools: vec![],
            rounds: vec![],
        };
        let (tx, mut rx) = mpsc::channel(64);
        let r = req(vec![g("Acme Dental", DOC)]);
        Retrieval.stream(&r, tx).await.expect("answer");
        let mut got = String::new();
        let mut parts = 0;
        while let Some(d) = rx.recv().await {
            got.push_str(&d);
            parts += 1;
        }
        assert!(parts > 1, "streamed in parts");
        assert!(got.ends_with("Elm Street."), "{got}");
        let (tx, _rx) = mpsc::channel(4);
        assert_eq!(
            Retrieval.stream(&req(vec![]), tx).await,
            Err(LlmError::NoAnswer)
        );
    }
}
