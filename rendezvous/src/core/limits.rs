//! Token-bucket rate limits keyed by source IP and by peer, with bounded tables.
//!
//! Buckets take `now` as an argument so tests drive them with a virtual clock. A table that is
//! full refuses new keys rather than growing; idle buckets (refilled to their burst) carry no
//! information and are swept.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Instant;

use supernode_proto::identity::PeerId;

use super::Config;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets for one kind of key.
#[derive(Debug)]
pub(super) struct Limiter<K> {
    /// Tokens added per second.
    rate: f64,
    /// Bucket size.
    burst: f64,
    /// Bound on `buckets`.
    max: usize,
    buckets: HashMap<K, Bucket>,
    /// Set when a new key was refused for lack of room, until the next sweep.
    full: bool,
}

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub(super) fn new((rate, burst): (f64, f64), max: usize) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            max,
            buckets: HashMap::new(),
            full: false,
        }
    }

    /// Takes one token for `key`; false when the bucket is empty or the table is full.
    pub(super) fn allow(&mut self, now: Instant, key: K) -> bool {
        let len = self.buckets.len();
        let (rate, burst) = (self.rate, self.burst);
        let bucket = match self.buckets.get_mut(&key) {
            Some(b) => b,
            None if len >= self.max => {
                self.full = true;
                return false;
            }
            None => self.buckets.entry(key).or_insert(Bucket {
                tokens: burst,
                last: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets buckets that have refilled: they would behave exactly like a new one.
    pub(super) fn sweep(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + elapsed * rate < burst
        });
        self.full = false;
    }
}

/// The node's limits.
#[derive(Debug)]
pub(super) struct Limits {
    /// Every message, per source IP.
    ip: Limiter<IpAddr>,
    /// Connect requests, per registered peer.
    connect: Limiter<PeerId>,
}

impl Limits {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            ip: Limiter::new(config.ip_rate, config.max_tracked_ips),
            connect: Limiter::new(config.peer_connect_rate, config.max_peers),
        }
    }

    pub(super) fn allow_ip(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.ip.allow(now, ip)
    }

    pub(super) fn ip_table_full(&self) -> bool {
        self.ip.full
    }

    pub(super) fn allow_connect(&mut self, now: Instant, peer: PeerId) -> bool {
        self.connect.allow(now, peer)
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        self.ip.sweep(now);
        self.connect.sweep(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new((10.0, 3.0), 2);
        assert!((0..3).all(|_| l.allow(t0, 1u8)));
        assert!(!l.allow(t0, 1));
        assert!(!l.allow(t0 + Duration::from_millis(50), 1));
        assert!(l.allow(t0 + Duration::from_millis(160), 1));
        assert!(!l.allow(t0 + Duration::from_millis(160), 1));
    }

    #[test]
    fn table_is_bounded_and_swept() {
        let t0 = Instant::now();
        let mut l = Limiter::new((10.0, 2.0), 2);
        assert!(l.allow(t0, 1u8));
        assert!(l.allow(t0, 2));
        assert!(!l.allow(t0, 3));
        assert!(l.full);
        l.sweep(t0 + Duration::from_secs(1));
        assert!(l.buckets.is_empty());
        assert!(l.allow(t0 + Duration::from_secs(1), 3));
    }
}
