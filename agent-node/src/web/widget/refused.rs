//! Websites the widget refused: an owner who pastes the snippet on a site they forgot to
//! list sees a chat that never opens, and nothing says why. The widget remembers which
//! origins it refused for which agent in the last 24 hours, and the console's Agents page
//! lists them with a hint to add them in the control plane.
//!
//! In process memory, bounded: a hint, not a record. A restart forgets it, and a flood of
//! made-up origins cannot grow it past [`MAX_ENTRIES`] (the oldest are dropped).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long a refusal is remembered.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Most (agent, origin) pairs remembered.
pub const MAX_ENTRIES: usize = 200;
/// Longest origin kept; a longer `Origin` header is not a real site's.
const MAX_ORIGIN_LEN: usize = 200;

/// One refused website for one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `scheme://host[:port]`, as the browser sent it.
    pub origin: String,
    /// Refused requests in the window.
    pub count: u64,
    /// The last one.
    pub last: SystemTime,
}

/// The refusals of the last [`WINDOW`], per agent.
#[derive(Default)]
pub struct RefusedOrigins {
    entries: Mutex<HashMap<(String, String), (u64, SystemTime)>>,
}

impl RefusedOrigins {
    /// Notes that `origin` was refused for `agent_id` now.
    pub fn record(&self, agent_id: &str, origin: &str) {
        self.record_at(agent_id, origin, SystemTime::now());
    }

    fn record_at(&self, agent_id: &str, origin: &str, now: SystemTime) {
        if origin.len() > MAX_ORIGIN_LEN || origin == "null" {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (agent_id.to_owned(), origin.to_owned());
        if !map.contains_key(&key) && map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, last)| fresh(*last, now));
            if map.len() >= MAX_ENTRIES {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        let e = map.entry(key).or_insert((0, now));
        if !fresh(e.1, now) {
            *e = (0, now);
        }
        e.0 += 1;
        e.1 = now;
    }

    /// The websites refused for `agent_id` in the window, most recent first.
    pub fn for_agent(&self, agent_id: &str) -> Vec<Refused> {
        self.for_agent_at(agent_id, SystemTime::now())
    }

    fn for_agent_at(&self, agent_id: &str, now: SystemTime) -> Vec<Refused> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Refused> = map
            .iter()
            .filter(|((a, _), (_, last))| a == agent_id && fresh(*last, now))
            .map(|((_, origin), (count, last))| Refused {
                origin: origin.clone(),
                count: *count,
                last: *last,
            })
            .collect();
        out.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.origin.cmp(&b.origin)));
        out
    }
}

fn fresh(last: SystemTime, now: SystemTime) -> bool {
    now.duration_since(last).map_or(true, |age| age < WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_agent_for_a_day_and_stays_bounded() {
        let r = RefusedOrigins::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        r.record_at("a1", "https://www.smile.example", t0);
        r.record_at(
            "a1",
            "https://www.smile.example",
            t0 + Duration::from_secs(60),
        );
        r.record_at("a1", "https://old.example", t0 - WINDOW);
        r.record_at("a2", "https://other.example", t0);
        r.record_at("a1", "null", t0);
        r.record_at("a1", &format!("https://{}.example", "x".repeat(300)), t0);
        let now = t0 + Duration::from_secs(120);
        let seen = r.for_agent_at("a1", now);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].origin, "https://www.smile.example");
        assert_eq!(seen[0].count, 2);
        assert!(r
            .for_agent_at("a1", t0 + WINDOW + Duration::from_secs(61))
            .is_empty());

        for i in 0..(MAX_ENTRIES * 2) {
            r.record_at(
                "a3",
                &format!("https://s{i}.example"),
                now + Duration::from_secs(i as u64),
            );
        }
        let kept = r.entries.lock().expect("lock").len();
        assert!(kept <= MAX_ENTRIES, "{kept}");
        let newest = r.for_agent_at("a3", now + Duration::from_secs(MAX_ENTRIES as u64 * 2));
        assert_eq!(
            newest[0].origin,
            format!("https://s{}.example", MAX_ENTRIES * 2 - 1)
        );
    }
}
