//! The built-in retrieval responder: no model, no key, no network. It answers by quoting
//! the best passage: the one to three sentences of it that share the most words with the
//! question, in their original order, introduced by the document's title. With no
//! passage it has no answer ([`LlmError::NoAnswer`]) and the runtime says the fallback.

use super::{ChatRequest, LlmError, LlmProvider, Usage};
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use tokio::sync::mpsc;

/// The retrieval responder.
pub struct Retrieval;

fn words(s: &str) -> HashSet<String> {
    crate::domain::kb::index::tokenize(s).into_iter().collect()
}

/// Splits a passage into sentences (keeping their punctuation).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        cur.push(*c);
        let end = matches!(c, '.' | '!' | '?' | '\n')
            && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
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

/// The answer for `question` from `title`/`text`, or `None` if no sentence shares a word.
pub fn compose(question: &str, title: &str, text: &str) -> Option<String> {
    let q = words(question);
    let sents = sentences(text);
    let mut scored: Vec<(usize, usize)> = sents
        .iter()
        .enumerate()
        .map(|(i, s)| (i, words(s).intersection(&q).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    if scored.is_empty() {
        return None;
    }
    scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let best = scored[0].1;
    let mut picked: Vec<usize> = scored
        .iter()
        .take(3)
        .filter(|(_, n)| *n * 2 >= best)
        .map(|(i, _)| *i)
        .collect();
    picked.sort_unstable();
    let quote = picked
        .iter()
        .map(|i| sents[*i].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Some(format!("From \"{title}\": {quote}"))
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
            let answer = req
                .grounding
                .iter()
                .find_map(|g| compose(question, &g.title, &g.text))
                .ok_or(LlmError::NoAnswer)?;
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

    #[test]
    fn quotes_the_sentences_that_answer() {
        let a = compose("Where can I park?", "hours.md", DOC).expect("answer");
        assert_eq!(
            a,
            "From \"hours.md\": Free parking is available behind the building on Elm Street."
        );
        let a = compose("Are you open on Saturdays?", "hours.md", DOC).expect("answer");
        assert!(a.contains("On Saturdays we open from 9am to 1pm"), "{a}");
        assert!(compose("bicycles", "hours.md", DOC).is_none());
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
        };
        let (tx, mut rx) = mpsc::channel(64);
        let r = req(vec![super::super::Grounding {
            title: "hours.md".into(),
            text: DOC.into(),
        }]);
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
