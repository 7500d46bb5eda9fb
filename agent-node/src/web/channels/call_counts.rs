//! Calls and call minutes per hour, for the reports to the control plane (issue 16:
//! "the CP receives counts only: calls and minutes per hour").
//!
//! Counted by triggers on `calls`, like the appointment counts: a call is counted in the
//! hour it comes in, its minutes (rounded up to a whole minute) in the hour Twilio reports
//! its duration. Only the two numbers per hour are kept: no number, no call, no duration
//! of any one call.

use crate::platform::store::{Store, StoreError};
use outpost_protocol::CallCount;

/// Migration adding the call counters (see `MIGRATIONS` in `src/migrations.rs`).
pub const SCHEMA: &str = r#"
CREATE TABLE call_counts (
    hour INTEGER PRIMARY KEY,
    calls INTEGER NOT NULL DEFAULT 0,
    minutes INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER call_count_started AFTER INSERT ON calls
BEGIN
    INSERT INTO call_counts (hour, calls)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER) / 3600 * 3600, 1)
    ON CONFLICT (hour) DO UPDATE SET calls = calls + 1;
END;
CREATE TRIGGER call_count_minutes AFTER UPDATE OF duration_secs ON calls
WHEN OLD.duration_secs IS NULL AND NEW.duration_secs IS NOT NULL AND NEW.duration_secs > 0
BEGIN
    INSERT INTO call_counts (hour, minutes)
    VALUES (CAST(strftime('%s', 'now') AS INTEGER) / 3600 * 3600, (NEW.duration_secs + 59) / 60)
    ON CONFLICT (hour) DO UPDATE SET minutes = minutes + excluded.minutes;
END;
"#;

/// The call counts a report carries at `now`: the current hour and the two before it
/// (as the message counts), oldest first.
pub fn report_counts(store: &Store, now: i64) -> Result<Vec<CallCount>, StoreError> {
    let since_hour = now / 3600 * 3600 - 2 * 3600;
    store.with(|c| {
        let mut st = c.prepare(
            "SELECT hour, calls, minutes FROM call_counts WHERE hour >= ?1 ORDER BY hour",
        )?;
        let rows = st.query_map([since_hour], |r| {
            Ok(CallCount {
                hour: r.get(0)?,
                calls: r.get(1)?,
                minutes: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::channels::testkit::kit;
    use crate::web::channels::ChannelUrls;
    use rusqlite::params;

    #[test]
    fn calls_and_their_minutes_are_counted_per_hour_once_and_nothing_else() {
        let k = kit(ChannelUrls::default());
        let content = k.channels.runtime.content();
        let (conv, _) = content
            .ingest("voice", "+14155550142", None, "a1", "[phone call]")
            .expect("call");
        let end = |sid: &str, secs: i64| {
            k.store
                .with(|c| {
                    c.execute(
                        "UPDATE calls SET duration_secs = COALESCE(duration_secs, ?2), status = 'completed'
                         WHERE sid_hash = ?1",
                        params![sid, secs],
                    )?;
                    Ok(())
                })
                .expect("end")
        };
        for sid in ["s1", "s2"] {
            k.store
                .with(|c| {
                    c.execute(
                        "INSERT INTO calls (conversation_id, sid_hash, started_at, status)
                         VALUES (?1, ?2, 0, 'in-progress')",
                        params![conv.id, sid],
                    )?;
                    Ok(())
                })
                .expect("call");
        }
        end("s1", 61);
        end("s2", 5);
        // Twilio repeats the status callback: the minutes are not added again.
        end("s1", 61);
        let now = crate::platform::store::now();
        let counts = report_counts(&k.store, now).expect("counts");
        assert_eq!(
            counts,
            vec![CallCount {
                hour: now / 3600 * 3600,
                calls: 2,
                minutes: 3
            }]
        );
        // Older hours are not reported again.
        assert!(report_counts(&k.store, now + 3 * 3600)
            .expect("later")
            .is_empty());
    }
}
