//! The pool of relay ports.
//!
//! Ports are handed out from a shuffled queue and returned to its back, so a port freed by one
//! allocation is not immediately reused by the next (late packets from the old peer would
//! otherwise reach a new client).

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// How far into the queue to look for an even port (EVEN-PORT, RFC 8656 §7.1).
const EVEN_SEARCH: usize = 64;

/// Free relay ports.
#[derive(Debug)]
pub struct PortPool {
    /// Free ports in the order they will be handed out.
    free: VecDeque<u16>,
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
        Self { free: ports.into() }
    }

    /// Takes a free port, an even one if asked.
    pub fn take(&mut self, even: bool) -> Option<u16> {
        if even {
            let idx = self
                .free
                .iter()
                .take(EVEN_SEARCH)
                .position(|p| p % 2 == 0)?;
            return self.free.remove(idx);
        }
        self.free.pop_front()
    }

    /// Returns a port to the pool.
    pub fn give_back(&mut self, port: u16) {
        self.free.push_back(port);
    }

    /// Free ports left.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_port_once() {
        let mut pool = PortPool::new(50_000..=50_009, 7);
        let mut seen: Vec<u16> = (0..10).filter_map(|_| pool.take(false)).collect();
        assert_eq!(pool.take(false), None);
        seen.sort_unstable();
        assert_eq!(seen, (50_000..=50_009).collect::<Vec<_>>());
        pool.give_back(50_003);
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.take(true), None);
        pool.give_back(50_004);
        assert_eq!(pool.take(true), Some(50_004));
    }
}
