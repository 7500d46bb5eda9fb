//! Per-key token buckets: per visitor and per client address on the node's widget API,
//! per API token and per client address on the control plane, and one bucket for all CSR
//! signing (a single fixed key). In process memory: a node serves one workspace, a
//! restart merely refills the buckets, and a limit meant to hold across several CP
//! replicas would need shared state this type does not have.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before idle ones are dropped.
const MAX_KEYS: usize = 50_000;

/// A keyed token bucket: `burst` tokens, refilled at `per_minute` per minute.
pub struct KeyedLimiter {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl KeyedLimiter {
    /// A limiter allowing `burst` at once and `per_minute` sustained.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_sec: f64::from(per_minute) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            // Drop the buckets that have refilled completely: they carry no state.
            let full = self.burst / self.per_sec;
            map.retain(|_, (_, t)| now.duration_since(*t).as_secs_f64() < full);
        }
        let (tokens, last) = map.entry(key.to_owned()).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_per_key() {
        let l = KeyedLimiter::new(3, 60);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("a", t0).is_ok());
        }
        let wait = l.check_at("a", t0).expect_err("bucket empty");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(l.check_at("b", t0).is_ok(), "keys are independent");
        assert!(l.check_at("a", t0 + Duration::from_millis(1100)).is_ok());
        assert!(l.check_at("a", t0 + Duration::from_millis(1200)).is_err());
    }
}
