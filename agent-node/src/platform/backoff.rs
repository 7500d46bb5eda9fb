//! Full-jitter exponential backoff (DESIGN §3): the n-th retry waits a uniformly random
//! time in `[0, min(cap, base · 2ⁿ)]`, so a fleet of nodes reconnecting after a CP outage
//! spreads out instead of arriving in waves.

use rand::Rng as _;
use std::time::Duration;

/// Shortest wait, so that a run of tiny random draws cannot become a busy loop.
const FLOOR: Duration = Duration::from_millis(50);

/// Backoff state for one retry loop.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next retry; each call doubles the ceiling up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(self.attempt.min(30)))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=ms)).max(FLOOR)
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// `d` scaled by a random factor in `[1 − spread, 1 + spread]`.
pub fn jittered(d: Duration, spread: f64) -> Duration {
    let factor = rand::thread_rng().gen_range((1.0 - spread)..=(1.0 + spread));
    d.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_growing_ceiling_and_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        for n in 0..20u32 {
            let ceiling = Duration::from_secs(1u64 << n.min(10)).min(Duration::from_secs(5));
            assert!(b.next_delay() <= ceiling.max(FLOOR));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(30), 0.2);
            assert!(j >= Duration::from_secs(24) && j <= Duration::from_secs(36));
        }
    }
}
