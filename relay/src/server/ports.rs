//! The pool of relay ports.
//!
//! Ports are handed out from a shuffled queue and returned to its back, so a port freed by one
//! allocation is not immediately reused by the next (late packets from the old peer would
//! otherwise reach a new client). A bitmap says which ports are really free: taking a port out
//! of order (the odd half of an EVEN-PORT pair) just clears its bit, and the stale queue entry
//! is skipped when it comes up.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// How far into the queue to look for an even port (EVEN-PORT, RFC 8656 §7.1).
const EVEN_SEARCH: usize = 256;

/// Free relay ports.
#[derive(Debug)]
pub struct PortPool {
    /// Candidate ports in hand-out order; an entry counts only if its bit is set.
    queue: VecDeque<u16>,
    /// One bit per port number: set when free.
    free: Vec<u64>,
    /// Number of set bits.
    available: usize,
}

impl PortPool {
    /// A pool of every port in `range`, shuffled by `seed`.
    pub fn new(range: RangeInclusive<u16>, seed: u64) -> Self {
        let mut ports: Vec<u16> = range.collect();
        // Fisher–Yates with a small xorshift: the order only has to be unpredictable enough
        // that port numbers do not reveal allocation order.
        let mut state = seed | 1;
        for i in (1..ports.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ports.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut pool = Self {
            queue: VecDeque::with_capacity(ports.len()),
            free: vec![0; 1024],
            available: 0,
        };
        for p in ports {
            pool.give_back(p);
        }
        pool
    }

    fn is_free(&self, port: u16) -> bool {
        self.free[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    fn set(&mut self, port: u16, free: bool) {
        let word = &mut self.free[usize::from(port) / 64];
        let bit = 1u64 << (port % 64);
        if free {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    /// Takes a free port.
    pub fn take(&mut self) -> Option<u16> {
        while let Some(p) = self.queue.pop_front() {
            if self.is_free(p) {
                self.set(p, false);
                self.available -= 1;
                return Some(p);
            }
        }
        None
    }

    /// Takes an even port; with `pair`, also the odd port above it (for a reservation).
    pub fn take_even(&mut self, pair: bool) -> Option<u16> {
        let idx = self.queue.iter().take(EVEN_SEARCH).position(|&p| {
            p % 2 == 0 && self.is_free(p) && (!pair || (p < u16::MAX && self.is_free(p + 1)))
        })?;
        let p = self.queue.remove(idx)?;
        self.set(p, false);
        self.available -= 1;
        if pair {
            self.set(p + 1, false);
            self.available -= 1;
        }
        Some(p)
    }

    /// Returns a port to the pool.
    pub fn give_back(&mut self, port: u16) {
        if self.is_free(port) {
            return;
        }
        self.set(port, true);
        self.available += 1;
        self.queue.push_back(port);
    }

    /// Free ports left.
    pub fn available(&self) -> usize {
        self.available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_port_once() {
        let mut pool = PortPool::new(50_000..=50_009, 7);
        let mut seen: Vec<u16> = (0..10).filter_map(|_| pool.take()).collect();
        assert_eq!(pool.take(), None);
        seen.sort_unstable();
        assert_eq!(seen, (50_000..=50_009).collect::<Vec<_>>());
        pool.give_back(50_003);
        pool.give_back(50_003);
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.take_even(false), None);
        pool.give_back(50_004);
        assert_eq!(pool.take_even(false), Some(50_004));
    }

    #[test]
    fn pairs_take_both_ports_and_stale_entries_are_skipped() {
        let mut pool = PortPool::new(50_000..=50_003, 1);
        let even = pool.take_even(true).unwrap();
        assert_eq!(even % 2, 0);
        assert_eq!(pool.available(), 2);
        let rest: Vec<u16> = (0..4).filter_map(|_| pool.take()).collect();
        assert_eq!(rest.len(), 2);
        assert!(!rest.contains(&even) && !rest.contains(&(even + 1)));
        pool.give_back(even + 1);
        assert_eq!(pool.take(), Some(even + 1));
        assert_eq!(pool.take(), None);
    }
}
