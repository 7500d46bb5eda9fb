//! The counts of a batch of reports (usage per channel and hour, AI use per day and model,
//! bookings per hour, calls and call minutes per hour), gathered so that each table gets one upsert per batch instead of one
//! or two statements per bucket and report ([`super::store::write_counts`]).
//!
//! A report carries the totals of each period so far, and the stored value of each column
//! is the largest ever reported: an older report arriving after a newer one must not lower
//! what is billed, and a replay must not count twice. The largest is the same whatever
//! the order, so folding a batch's buckets here (largest per key) and writing the result
//! once stores exactly what applying the reports one by one would.

use outpost_protocol::Report;
use std::collections::BTreeMap;

/// The three totals of a row (`inbound, outbound, conversations`; `requests,
/// input_tokens, output_tokens`; `booked, rescheduled, cancelled`).
pub type Totals = [i64; 3];

/// The largest totals seen per row key, for each counts table. Keys are ordered, so rows
/// are written in a stable order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// `usage_counts`: (node, channel bounded to 32 characters, hour).
    pub usage: BTreeMap<(String, String, i64), Totals>,
    /// `ai_counts`: (node, day, model).
    pub ai: BTreeMap<(String, i64, String), Totals>,
    /// `booking_counts`: (node, hour).
    pub booking: BTreeMap<(String, i64), Totals>,
    /// `call_counts`: (node, hour) → `calls, minutes`.
    pub calls: BTreeMap<(String, i64), [i64; 2]>,
}

impl Counts {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.usage.is_empty()
            && self.ai.is_empty()
            && self.booking.is_empty()
            && self.calls.is_empty()
    }

    /// Adds a (validated) report's counts of `node_id`.
    pub fn add(&mut self, node_id: &str, r: &Report) {
        for c in &r.counts {
            let channel: String = c.channel.chars().take(32).collect();
            larger(
                &mut self.usage,
                (node_id.to_owned(), channel, c.hour),
                [c.inbound, c.outbound, c.conversations],
            );
        }
        for c in &r.ai_counts {
            larger(
                &mut self.ai,
                (node_id.to_owned(), c.day, c.model.clone()),
                [c.requests, c.input_tokens, c.output_tokens],
            );
        }
        for c in &r.booking_counts {
            larger(
                &mut self.booking,
                (node_id.to_owned(), c.hour),
                [c.booked, c.rescheduled, c.cancelled],
            );
        }
        for c in &r.call_counts {
            larger(
                &mut self.calls,
                (node_id.to_owned(), c.hour),
                [c.calls, c.minutes],
            );
        }
    }
}

/// Keeps, per column, the larger of what `map` holds for `key` and `totals`.
fn larger<K: Ord, const N: usize>(map: &mut BTreeMap<K, [i64; N]>, key: K, totals: [i64; N]) {
    let held = map.entry(key).or_insert(totals);
    for (h, t) in held.iter_mut().zip(totals) {
        *h = (*h).max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::CountBucket;

    fn report(buckets: &[(&str, i64, i64, i64)]) -> Report {
        let mut r: Report = serde_json::from_value(serde_json::json!({
            "seq": 1, "produced_at": 0, "version": "t", "uptime_s": 0, "checks": [],
            "counts": [], "disk_used_bytes": 0, "queue_depth": 0, "exports": [],
            "retention_sweeps": []
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        r.counts = buckets
            .iter()
            .map(|(channel, hour, inbound, outbound)| CountBucket {
                channel: (*channel).into(),
                hour: *hour,
                inbound: *inbound,
                outbound: *outbound,
                conversations: 1,
            })
            .collect();
        r
    }

    #[test]
    fn each_column_keeps_its_largest_total_whatever_the_order() {
        let (a, b) = (
            report(&[("web", 3600, 7, 4)]),
            report(&[("web", 3600, 5, 6)]),
        );
        let (mut ab, mut ba) = (Counts::default(), Counts::default());
        ab.add("n", &a);
        ab.add("n", &b);
        ba.add("n", &b);
        ba.add("n", &a);
        assert_eq!(ab, ba);
        assert_eq!(ab.usage[&("n".into(), "web".into(), 3600)], [7, 6, 1]);
    }

    #[test]
    fn keys_stay_apart_per_node_channel_and_hour() {
        let mut one = Counts::default();
        one.add("n", &report(&[("web", 3600, 1, 1)]));
        one.add("n", &report(&[("web", 3600, 2, 0), ("web", 7200, 1, 1)]));
        one.add("m", &report(&[("web", 3600, 9, 9)]));
        let rows: Vec<_> = one.usage.into_iter().collect();
        assert_eq!(
            rows,
            [
                (("m".into(), "web".into(), 3600), [9, 9, 1]),
                (("n".into(), "web".into(), 3600), [2, 1, 1]),
                (("n".into(), "web".into(), 7200), [1, 1, 1]),
            ]
        );
    }

    #[test]
    fn a_long_channel_name_is_bounded_like_the_stored_one() {
        let long = "w".repeat(40);
        let mut c = Counts::default();
        c.add("n", &report(&[(&long, 0, 1, 1)]));
        let key = c.usage.keys().next().map(|k| k.1.len());
        assert_eq!(key, Some(32));
    }
}
