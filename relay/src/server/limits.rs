//! Token buckets: the per-source limit on unauthenticated requests and per-allocation bandwidth.
//!
//! Time is always an argument, so the limits are tested with a virtual clock.

use foldhash::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources tracked at once by [`SourceLimiter`]. A flood from more sources than this shares one
/// overflow bucket rather than growing the table.
pub const MAX_TRACKED_SOURCES: usize = 65_536;

/// A token bucket refilled continuously at `rate` tokens per second up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    /// Tokens available now (fractional so that slow rates still refill).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            updated: now,
        }
    }

    /// Takes `cost` tokens if available.
    pub fn try_take(&mut self, cost: f64, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
    }

    /// True when the bucket would be full at `now`: its state carries no information.
    fn is_idle(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * rate >= burst
    }
}

/// Per-source-IP limit on requests that have not authenticated.
#[derive(Debug)]
pub struct SourceLimiter {
    /// Requests per second per source.
    rate: f64,
    /// Burst per source.
    burst: f64,
    /// One bucket per recently seen source, bounded by [`MAX_TRACKED_SOURCES`].
    buckets: HashMap<IpAddr, TokenBucket>,
    /// Shared by new sources while the table is full of active ones.
    overflow: TokenBucket,
    /// Last time idle buckets were swept.
    swept: Instant,
}

impl SourceLimiter {
    /// A limiter allowing `rate` requests/s with bursts of `burst` per source.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            buckets: HashMap::default(),
            overflow: TokenBucket::new(burst, now),
            swept: now,
        }
    }

    /// Whether a request from `ip` may be processed now.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        if let Some(bucket) = self.buckets.get_mut(&ip) {
            return bucket.try_take(1.0, rate, burst, now);
        }
        if self.buckets.len() >= MAX_TRACKED_SOURCES {
            self.sweep(now);
        }
        if self.buckets.len() >= MAX_TRACKED_SOURCES {
            return self.overflow.try_take(1.0, rate, burst, now);
        }
        let mut bucket = TokenBucket::new(burst, now);
        let allowed = bucket.try_take(1.0, rate, burst, now);
        self.buckets.insert(ip, bucket);
        allowed
    }

    /// Forgets sources whose buckets have refilled; at most once a second.
    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < Duration::from_secs(1) {
            return;
        }
        self.swept = now;
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| !b.is_idle(rate, burst, now));
    }

    /// Sources currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_with_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert!(b.try_take(1.0, 1.0, 2.0, t0));
        assert!(b.try_take(1.0, 1.0, 2.0, t0));
        assert!(!b.try_take(1.0, 1.0, 2.0, t0));
        assert!(b.try_take(1.0, 1.0, 2.0, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn limiter_is_per_source_and_bounded() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(1.0, 3.0, t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| l.allow(a, t0)));
        assert!(!l.allow(a, t0));
        assert!(l.allow(b, t0));
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 100) {
            l.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(l.tracked(), MAX_TRACKED_SOURCES);
        // After the buckets refill, a sweep makes room again.
        let later = t0 + Duration::from_secs(10);
        assert!(l.allow("203.0.113.1".parse().unwrap(), later));
        assert!(l.tracked() < MAX_TRACKED_SOURCES);
    }
}
