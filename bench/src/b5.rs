//! B5 — knowledge-base retrieval: `KnowledgeBase::search` (tokenize, blind the terms,
//! FTS5 BM25 over the contentless blind index, join, decrypt the passages) on a KB of
//! generated documents, against a raw FTS5 table holding the same plaintext passages,
//! queried through rusqlite with the same words (`ORDER BY rank LIMIT 5`).
//! Target: subject p99 ≤ 1.2× reference p99.
//!
//! The corpus is deterministic: words made of consonant-vowel syllables (so they end in
//! a vowel and the KB's light stemmer leaves them alone, and both sides match the same
//! passages), drawn from a Zipf distribution. Queries are 2–3 such words. Each round runs
//! every query on both sides, alternating which goes first, so background load falls on
//! both alike. Every query must return as many passages on both sides, or the run fails.

use crate::output::{self, RunInfo};
use agent_node::domain::kb::{DocKind, KnowledgeBase};
use agent_node::platform::keys::MasterKey;
use agent_node::platform::store::Store;
use anyhow::Context as _;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// What one B5 run found.
pub struct B5Result {
    /// Subject p50/p99, microseconds.
    pub subject: (f64, f64),
    /// Reference p50/p99, microseconds.
    pub reference: (f64, f64),
    /// subject p99 / reference p99.
    pub ratio: f64,
    /// Whether the ratio is within the target.
    pub met: bool,
    /// Why the benchmark could not be trusted (result-count mismatches, no hits).
    pub problem: Option<String>,
}

/// Target: subject p99 at most this multiple of the reference p99.
const MAX_RATIO: f64 = 1.2;
const RESULTS: usize = 5;

/// xorshift64*: deterministic, good enough for a synthetic corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn vocabulary(rng: &mut Rng, n: usize) -> Vec<String> {
    const C: &[&str] = &[
        "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "t", "v", "z", "br", "st", "tr",
    ];
    const V: &[&str] = &["a", "e", "i", "o", "u"];
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let syllables = 2 + rng.below(3);
        let w: String = (0..syllables)
            .map(|_| format!("{}{}", C[rng.below(C.len())], V[rng.below(V.len())]))
            .collect();
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

/// Zipf(1) sampler over `n` ranks.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize) -> Self {
        let mut acc = 0.0;
        let cdf = (0..n)
            .map(|r| {
                acc += 1.0 / (r as f64 + 1.0);
                acc
            })
            .collect::<Vec<_>>();
        let total = acc;
        Self(cdf.into_iter().map(|c| c / total).collect())
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

fn document(rng: &mut Rng, vocab: &[String], zipf: &Zipf) -> String {
    let words = 80 + rng.below(120);
    let mut text = String::new();
    let mut in_sentence = 0;
    for i in 0..words {
        let w = &vocab[zipf.sample(rng)];
        if in_sentence == 0 {
            let mut cs = w.chars();
            if let Some(c) = cs.next() {
                text.extend(c.to_uppercase());
                text.push_str(cs.as_str());
            }
        } else {
            text.push_str(w);
        }
        in_sentence += 1;
        if in_sentence >= 8 + rng.below(10) || i + 1 == words {
            text.push('.');
            in_sentence = 0;
            if rng.below(4) == 0 {
                text.push_str("\n\n");
                continue;
            }
        }
        text.push(' ');
    }
    text.trim().to_owned()
}

/// The `p` quantile of sorted samples (nearest rank).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Runs B5, prints its section and writes `target/bench/b5.json`.
pub fn run(run: &RunInfo, docs: usize, queries: usize, rounds: u32) -> anyhow::Result<B5Result> {
    println!();
    println!("B5 — knowledge-base retrieval: KnowledgeBase::search vs raw FTS5 through rusqlite");
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = Arc::new(Store::open(&dir.path().join("node.db")).context("opening node.db")?);
    let kb = KnowledgeBase::new(store.clone(), &MasterKey::from_bytes([42; 32]));

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocab = vocabulary(&mut rng, 5000);
    let zipf = Zipf::new(vocab.len());

    let reference = rusqlite::Connection::open(dir.path().join("reference.db"))?;
    reference.pragma_update(None, "journal_mode", "WAL")?;
    // The same page cache as the node's connection (store.rs), so both sides compare alike.
    reference.pragma_update(None, "cache_size", -32 * 1024)?;
    reference.execute_batch("CREATE VIRTUAL TABLE ref USING fts5(body);")?;

    let started = Instant::now();
    let mut passages = 0usize;
    let tx = reference.unchecked_transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO ref (rowid, body) VALUES (?1, ?2)")?;
        for i in 0..docs {
            let text = document(&mut rng, &vocab, &zipf);
            let doc = kb
                .add_document(
                    &format!("Document {i}"),
                    DocKind::Text,
                    text.as_bytes(),
                    None,
                )
                .context("adding a document")?;
            let (_, chunks) = kb
                .document(&doc.id)
                .context("reading a document back")?
                .context("document missing")?;
            for c in chunks {
                passages += 1;
                insert.execute(rusqlite::params![passages as i64, c])?;
            }
        }
    }
    tx.commit()?;
    let setup_secs = started.elapsed().as_secs_f64();
    // Measure as a node serves after a restart: the build connections are closed (which
    // checkpoints and removes the WAL) and fresh ones opened. Queries on the connection
    // that had just written 10,000 transactions were several times slower on both sides.
    drop(kb);
    store.close();
    drop(reference);
    let store = Arc::new(Store::open(&dir.path().join("node.db")).context("reopening node.db")?);
    let kb = KnowledgeBase::new(store.clone(), &MasterKey::from_bytes([42; 32]));
    let reference = rusqlite::Connection::open(dir.path().join("reference.db"))?;
    println!(
        "  corpus: {docs} documents, {passages} passages, {} words of vocabulary; built in {setup_secs:.1} s",
        vocab.len()
    );

    // Queries skip the 20 most frequent words, which behave like stopwords.
    let query_words: Vec<Vec<&str>> = (0..queries)
        .map(|_| {
            let n = 2 + rng.below(2);
            (0..n)
                .map(|_| vocab[(zipf.sample(&mut rng) + 20).min(vocab.len() - 1)].as_str())
                .collect()
        })
        .collect();
    let ref_exprs: Vec<String> = query_words
        .iter()
        .map(|ws| {
            ws.iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" OR ")
        })
        .collect();
    let kb_queries: Vec<String> = query_words.iter().map(|ws| ws.join(" ")).collect();

    let mut ref_stmt = reference
        .prepare("SELECT rowid, body, rank FROM ref WHERE ref MATCH ?1 ORDER BY rank LIMIT ?2")?;
    let mut run_ref = |expr: &str| -> anyhow::Result<usize> {
        let rows = ref_stmt
            .query_map(rusqlite::params![expr, RESULTS as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, f64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.len())
    };
    let run_kb = |q: &str| -> anyhow::Result<usize> { Ok(kb.search(q, RESULTS)?.len()) };

    // Warm-up: page cache and statement caches on both sides.
    let warm = queries.min(200);
    for i in 0..warm {
        run_kb(&kb_queries[i])?;
        run_ref(&ref_exprs[i])?;
    }

    let mut subject_us = Vec::with_capacity(queries * rounds as usize);
    let mut reference_us = Vec::with_capacity(queries * rounds as usize);
    let mut mismatches = 0usize;
    let mut with_hits = 0usize;
    for round in 0..rounds {
        let mut counts_kb = Vec::with_capacity(queries);
        let mut counts_ref = Vec::with_capacity(queries);
        for side in 0..2 {
            let kb_side = (side + round) % 2 == 0;
            for i in 0..queries {
                let t = Instant::now();
                if kb_side {
                    counts_kb.push(run_kb(&kb_queries[i])?);
                    subject_us.push(t.elapsed().as_secs_f64() * 1e6);
                } else {
                    counts_ref.push(run_ref(&ref_exprs[i])?);
                    reference_us.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        if round == 0 {
            mismatches = counts_kb
                .iter()
                .zip(&counts_ref)
                .filter(|(a, b)| a != b)
                .count();
            with_hits = counts_kb.iter().filter(|&&n| n > 0).count();
        }
    }
    subject_us.sort_by(f64::total_cmp);
    reference_us.sort_by(f64::total_cmp);
    let subject = (percentile(&subject_us, 0.50), percentile(&subject_us, 0.99));
    let reference_p = (
        percentile(&reference_us, 0.50),
        percentile(&reference_us, 0.99),
    );
    let ratio = if reference_p.1 > 0.0 {
        subject.1 / reference_p.1
    } else {
        0.0
    };
    let met = ratio > 0.0 && ratio <= MAX_RATIO;
    let problem = if mismatches > 0 {
        Some(format!(
            "{mismatches} of {queries} queries returned a different number of passages on the two sides"
        ))
    } else if with_hits == 0 {
        Some("no query matched any passage".to_owned())
    } else {
        None
    };

    println!(
        "  {queries} queries × {rounds} rounds per side, {RESULTS} results each; {with_hits} of {queries} queries have hits"
    );
    println!("  {:<44} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    for (label, (p50, p99)) in [
        ("KnowledgeBase::search (blind index, AES-GCM)", subject),
        ("raw FTS5 via rusqlite (plaintext)", reference_p),
    ] {
        println!("  {label:<44} {:>9.3} {:>9.3}", p50 / 1000.0, p99 / 1000.0);
    }
    println!(
        "  p99 ratio {ratio:.2}×   target ≤ {MAX_RATIO:.1}× reference p99   B5 {}{}",
        if met { "MET" } else { "NOT MET" },
        if run.smoke {
            "  [smoke: not a measurement]"
        } else {
            ""
        }
    );
    if let Some(p) = &problem {
        println!("  PROBLEM: {p}");
    }

    let json = serde_json::json!({
        "id": "B5",
        "title": "knowledge-base retrieval vs raw FTS5 through rusqlite",
        "params": {
            "documents": docs,
            "passages": passages,
            "vocabulary": vocab.len(),
            "queries": queries,
            "rounds": rounds,
            "limit": RESULTS,
            "setup_secs": crate::load::round2(setup_secs),
        },
        "subject": { "label": "KnowledgeBase::search", "p50_ms": subject.0 / 1000.0, "p99_ms": subject.1 / 1000.0, "samples": subject_us.len() },
        "reference": { "label": "raw FTS5 (rusqlite)", "p50_ms": reference_p.0 / 1000.0, "p99_ms": reference_p.1 / 1000.0, "samples": reference_us.len() },
        "ratio_p99": crate::load::round2(ratio),
        "target": format!("≤ {MAX_RATIO:.1}× reference p99"),
        "met": met,
        "problem": problem,
        "smoke": run.smoke,
        "cores": run.cores,
        "machine": run.machine,
    });
    let path = output::write_json("b5", &json)?;
    println!("  written: {}", path.display());
    drop(ref_stmt);
    store.close();
    Ok(B5Result {
        subject,
        reference: reference_p,
        ratio,
        met,
        problem,
    })
}
