//! Per-key token buckets: per visitor and per client address on the node's widget API,
//! per API token and per client address on the control plane, and one bucket for all CSR
//! signing (a single fixed key). In process memory: a node serves one workspace, a
//! restart merely refills the buckets, and a limit meant to hold across several CP
//! replicas would need shared state this type does not have.
//!
//! Bounded: at most [`MAX_KEYS`] buckets, kept in least-recently-used order, so a flood of
//! new keys (one per spoofed address) costs O(1) per request and evicts the key that has
//! been idle longest, never a key in use. Eviction forgets an empty bucket, but that is no
//! way around a limit: each of the fresh keys that pushes a key out was itself allowed a
//! full bucket, so forgetting one hands out fewer requests than the flood already had.
//! Client addresses are keyed by [`address_key`] (an IPv6 client by its /64), so fresh keys
//! cost fresh networks, not fresh addresses from one. Hand-written rather than `governor`'s keyed
//! limiter: that one grows with every key until a periodic `retain_recent` sweep (a scan of
//! every key), so it is bounded only in time, and it brings `dashmap`, `quanta` and
//! friends for what is here a hundred lines.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The key a client address is limited under: an IPv4 address itself, an IPv6 address by
/// its /64 network. One host or home line is commonly given a whole /64, so keyed by full
/// address it could take a fresh bucket for every request. An IPv4 address written as
/// IPv6 (`::ffff:192.0.2.1`, as a dual-stack socket reports it) is its IPv4 address.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Buckets kept; beyond it the least recently used one is dropped. At ~100 bytes a bucket
/// plus its key, a few megabytes at most per limiter.
pub const MAX_KEYS: usize = 50_000;

/// No slot (list ends).
const NIL: usize = usize::MAX;

/// One key's bucket, and its place in the recency list.
struct Slot {
    key: String,
    tokens: f64,
    last: Instant,
    /// Towards the most recently used.
    prev: usize,
    /// Towards the least recently used.
    next: usize,
}

/// Buckets in a slab, indexed by key, linked from most to least recently used.
#[derive(Default)]
struct Buckets {
    index: HashMap<String, usize>,
    slots: Vec<Slot>,
    head: usize,
    tail: usize,
}

impl Buckets {
    fn new() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            ..Default::default()
        }
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        if self.head != NIL {
            self.slots[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// The slot of `key`, made the most recently used; a new key gets a full bucket, in
    /// the least recently used slot once `max` keys are tracked.
    fn touch(&mut self, key: &str, max: usize, full: f64, now: Instant) -> &mut Slot {
        if let Some(&i) = self.index.get(key) {
            if i != self.head {
                self.unlink(i);
                self.push_front(i);
            }
            return &mut self.slots[i];
        }
        let slot = Slot {
            key: key.to_owned(),
            tokens: full,
            last: now,
            prev: NIL,
            next: NIL,
        };
        let i = if self.slots.len() < max {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let i = self.tail;
            self.unlink(i);
            let old = std::mem::replace(&mut self.slots[i], slot);
            self.index.remove(&old.key);
            i
        };
        self.index.insert(key.to_owned(), i);
        self.push_front(i);
        &mut self.slots[i]
    }
}

/// A keyed token bucket: `burst` tokens, refilled at `per_minute` per minute, for at most
/// [`MAX_KEYS`] keys.
pub struct KeyedLimiter {
    burst: f64,
    per_sec: f64,
    max_keys: usize,
    buckets: Mutex<Buckets>,
}

impl KeyedLimiter {
    /// A limiter allowing `burst` at once and `per_minute` sustained.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_sec: f64::from(per_minute) / 60.0,
            max_keys: MAX_KEYS,
            buckets: Mutex::new(Buckets::new()),
        }
    }

    /// Takes a token for `key`; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Keys tracked now (at most [`MAX_KEYS`]).
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .index
            .len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.touch(key, self.max_keys, self.burst, now);
        let refilled = (b.tokens
            + now.saturating_duration_since(b.last).as_secs_f64() * self.per_sec)
            .min(self.burst);
        b.last = now;
        if refilled >= 1.0 {
            b.tokens = refilled - 1.0;
            Ok(())
        } else {
            b.tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_and_ipv4_by_its_address() {
        let key = |s: &str| address_key(s.parse().expect("an address"));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:fffe")
        );
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.1"), "192.0.2.1");
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), "192.0.2.1");
        let l = KeyedLimiter::new(2, 1);
        let t0 = Instant::now();
        assert!(l.check_at(&key("2001:db8::1"), t0).is_ok());
        assert!(l.check_at(&key("2001:db8::2"), t0).is_ok());
        assert!(
            l.check_at(&key("2001:db8::3"), t0).is_err(),
            "a new address in the same /64 is the same client"
        );
    }

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

    /// A flood of distinct keys (one per spoofed address, say) must not grow the limiter
    /// without bound, nor let a hot key out of its limit.
    #[test]
    fn two_hundred_thousand_keys_stay_bounded_and_a_hot_key_stays_limited() {
        let l = KeyedLimiter::new(5, 60);
        let t0 = Instant::now();
        let mut hot_allowed = 0;
        for i in 0..200_000u32 {
            assert!(l.check_at(&format!("flood-{i}"), t0).is_ok());
            if i % 1_000 == 0 && l.check_at("hot", t0).is_ok() {
                hot_allowed += 1;
            }
            assert!(l.len() <= MAX_KEYS, "{} keys after {i}", l.len());
        }
        assert_eq!(hot_allowed, 5, "the hot key keeps its burst of 5, no more");
        assert!(l.check_at("hot", t0).is_err());
        assert_eq!(l.len(), MAX_KEYS);
    }

    #[test]
    fn the_longest_idle_key_is_the_one_dropped() {
        let l = KeyedLimiter {
            max_keys: 3,
            ..KeyedLimiter::new(1, 1)
        };
        let t0 = Instant::now();
        for k in ["a", "b", "c"] {
            assert!(l.check_at(k, t0).is_ok());
        }
        assert!(
            l.check_at("a", t0).is_err(),
            "a is used again: now the newest"
        );
        assert!(l.check_at("d", t0).is_ok(), "d takes b's place");
        assert_eq!(l.len(), 3);
        assert!(l.check_at("a", t0).is_err(), "a kept its empty bucket");
        assert!(l.check_at("c", t0).is_err(), "c kept its empty bucket");
        assert!(
            l.check_at("b", t0).is_ok(),
            "b was forgotten: a full bucket again"
        );
    }
}
