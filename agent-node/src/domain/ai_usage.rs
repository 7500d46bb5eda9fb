//! AI use per day and model: requests sent to a model and the tokens the provider
//! counted. Counts only (the model's name, numbers); they go into reports
//! ([`outpost_protocol::AiCount`]) and the CP shows them next to messages.

use crate::platform::store::{self, Store};
use outpost_protocol::AiCount;
use rusqlite::params;

/// Migration adding the table (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE ai_counts (
    day INTEGER NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model)
);
"#;

/// Start of the UTC day of `at` (unix seconds).
pub fn day_of(at: i64) -> i64 {
    at.div_euclid(86_400) * 86_400
}

/// Counts one request to `model` at `at`, with the tokens the provider reported. A name
/// that is not a valid model name ([`outpost_protocol::valid_model_name`]) is counted as
/// `other`, so a report never carries one the CP refuses.
pub fn record(
    store: &Store,
    model: &str,
    input_tokens: u64,
    output_tokens: u64,
    at: i64,
) -> store::Result<()> {
    let model = if outpost_protocol::valid_model_name(model) {
        model
    } else {
        "other"
    };
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    store.with(|c| {
        c.execute(
            "INSERT INTO ai_counts (day, model, requests, input_tokens, output_tokens)
             VALUES (?1, ?2, 1, ?3, ?4)
             ON CONFLICT (day, model) DO UPDATE SET
               requests = requests + 1,
               input_tokens = input_tokens + excluded.input_tokens,
               output_tokens = output_tokens + excluded.output_tokens",
            params![
                day_of(at),
                model,
                tokens(input_tokens),
                tokens(output_tokens)
            ],
        )?;
        Ok(())
    })
}

/// The counts of the days from `since_day` on, oldest first, at most
/// [`outpost_protocol::MAX_AI_COUNTS`] rows (the newest).
pub fn since(store: &Store, since_day: i64) -> store::Result<Vec<AiCount>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT day, model, requests, input_tokens, output_tokens FROM ai_counts
             WHERE day >= ?1 ORDER BY day DESC, requests DESC, model LIMIT ?2",
        )?;
        let mut rows = stmt
            .query_map(
                params![since_day, outpost_protocol::MAX_AI_COUNTS as i64],
                |r| {
                    Ok(AiCount {
                        day: r.get(0)?,
                        model: r.get(1)?,
                        requests: r.get(2)?,
                        input_tokens: r.get(3)?,
                        output_tokens: r.get(4)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.reverse();
        Ok(rows)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_tokens_add_up_per_day_and_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("node.db")).expect("db");
        let day = 20_000 * 86_400;
        record(&store, "gpt-4o-mini", 100, 20, day + 10).expect("record");
        record(&store, "gpt-4o-mini", 50, 5, day + 86_399).expect("record");
        record(&store, "claude-3-5-haiku", 7, 3, day + 60).expect("record");
        record(&store, "gpt-4o-mini", 1, 1, day + 86_400).expect("record");
        // Not a model name: counted, under `other`.
        record(&store, "bad name\nwith text", 1, 1, day).expect("record");
        let got = since(&store, day).expect("since");
        let find = |d: i64, m: &str| {
            got.iter()
                .find(|c| c.day == d && c.model == m)
                .map(|c| (c.requests, c.input_tokens, c.output_tokens))
        };
        assert_eq!(find(day, "gpt-4o-mini"), Some((2, 150, 25)));
        assert_eq!(find(day, "claude-3-5-haiku"), Some((1, 7, 3)));
        assert_eq!(find(day, "other"), Some((1, 1, 1)));
        assert_eq!(find(day + 86_400, "gpt-4o-mini"), Some((1, 1, 1)));
        assert_eq!(got.len(), 4);
        assert_eq!(since(&store, day + 86_400).expect("since").len(), 1);
    }
}
