//! The relay directory: relays announce themselves and their load; peers get a short list
//! ranked by the round-trip times they measured and the relays' load.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use supernode_proto::signal::message::Load;
use supernode_proto::signal::{RelayAddr, RelayEntry};

/// Round-trip time assumed for a relay the peer has not measured, in milliseconds: worse than
/// any measured nearby relay, so measurements win, but not so bad that load stops mattering.
const UNMEASURED_RTT_MS: f64 = 150.0;

/// Clock skew tolerated between a relay's sequence number (its Unix ms) and ours.
pub(super) const MAX_SKEW_MS: u64 = 60_000;

/// A relay.
#[derive(Debug, Clone)]
struct Relay {
    addrs: Vec<RelayAddr>,
    load: Load,
    last_seq: u64,
    last_seen: Instant,
    /// False once silent too long: kept only to refuse replays of its old announcements.
    active: bool,
}

impl Relay {
    fn load_permille(&self) -> u16 {
        if self.load.capacity == 0 {
            return 1000;
        }
        let permille = u64::from(self.load.allocations) * 1000 / u64::from(self.load.capacity);
        u16::try_from(permille.min(1000)).unwrap_or(1000)
    }
}

/// Why an announcement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Sequence number not newer than the last, or too far from our clock.
    Replay,
    /// No room for another relay.
    Full,
}

/// Known relays, bounded.
#[derive(Debug)]
pub(super) struct Directory {
    relays: HashMap<String, Relay>,
    max: usize,
}

impl Directory {
    pub(super) fn new(max: usize) -> Self {
        Self {
            relays: HashMap::new(),
            max,
        }
    }

    /// Records an authenticated announcement; returns whether the relay is new.
    pub(super) fn announce(
        &mut self,
        now: Instant,
        unix_ms: u64,
        id: &str,
        seq: u64,
        addrs: Vec<RelayAddr>,
        load: Load,
    ) -> Result<bool, Refusal> {
        if seq.abs_diff(unix_ms) > MAX_SKEW_MS {
            return Err(Refusal::Replay);
        }
        if let Some(relay) = self.relays.get_mut(id) {
            if seq <= relay.last_seq {
                return Err(Refusal::Replay);
            }
            let was_active = relay.active;
            *relay = Relay {
                addrs,
                load,
                last_seq: seq,
                last_seen: now,
                active: true,
            };
            return Ok(!was_active);
        }
        if self.relays.len() >= self.max {
            return Err(Refusal::Full);
        }
        self.relays.insert(
            id.to_owned(),
            Relay {
                addrs,
                load,
                last_seq: seq,
                last_seen: now,
                active: true,
            },
        );
        Ok(true)
    }

    /// Removes relays silent for longer than `expiry` from the answers, and forgets them
    /// entirely once their last sequence number is too old to be replayed (beyond
    /// [`MAX_SKEW_MS`]), so that forgetting `last_seq` opens no replay window.
    pub(super) fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<String> {
        let forget = expiry.max(Duration::from_millis(2 * MAX_SKEW_MS));
        self.relays
            .retain(|_, r| now.saturating_duration_since(r.last_seen) <= forget);
        let gone: Vec<String> = self
            .relays
            .iter_mut()
            .filter(|(_, r)| r.active && now.saturating_duration_since(r.last_seen) > expiry)
            .map(|(id, r)| {
                r.active = false;
                id.clone()
            })
            .collect();
        gone
    }

    /// Relays and their load, for metrics.
    pub(super) fn loads(&self) -> Vec<(String, u16)> {
        let mut out: Vec<_> = self
            .relays
            .iter()
            .filter(|(_, r)| r.active)
            .map(|(id, r)| (id.clone(), r.load_permille()))
            .collect();
        out.sort();
        out
    }

    /// The best `n` relays for a peer that measured `latencies` (address, ms).
    ///
    /// Score = RTT × (1 + 2·load): a relay twice as far wins only if the near one is more than
    /// half full. Full relays are left out unless nothing else exists.
    pub(super) fn choose(&self, latencies: &[(SocketAddr, u16)], n: usize) -> Vec<RelayEntry> {
        let mut scored: Vec<(f64, &String, &Relay)> = self
            .relays
            .iter()
            .filter(|(_, r)| r.active)
            .map(|(id, r)| {
                let rtt = r
                    .addrs
                    .iter()
                    .filter_map(|a| latencies.iter().find(|(addr, _)| *addr == a.addr))
                    .map(|(_, ms)| f64::from(*ms))
                    .fold(None, |best: Option<f64>, ms| {
                        Some(best.map_or(ms, |b| b.min(ms)))
                    })
                    .unwrap_or(UNMEASURED_RTT_MS);
                let load = f64::from(r.load_permille()) / 1000.0;
                let full = if load >= 1.0 { 1e9 } else { 0.0 };
                (rtt.max(1.0) * (1.0 + 2.0 * load) + full, id, r)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(n)
            .map(|(_, id, r)| RelayEntry {
                id: id.clone(),
                addrs: r.addrs.clone(),
                load_permille: r.load_permille(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supernode_proto::signal::RelayTransport;

    fn addr(port: u16) -> Vec<RelayAddr> {
        vec![RelayAddr {
            transport: RelayTransport::Udp,
            addr: SocketAddr::from(([192, 0, 2, 1], port)),
        }]
    }

    fn load(allocations: u32) -> Load {
        Load {
            allocations,
            capacity: 100,
            bandwidth_bps: 0,
        }
    }

    #[test]
    fn ranks_by_latency_and_load() {
        let t0 = Instant::now();
        let mut d = Directory::new(3);
        let unix = 1_000_000;
        assert_eq!(
            d.announce(t0, unix, "near", unix, addr(1), load(10)),
            Ok(true)
        );
        assert_eq!(
            d.announce(t0, unix, "far", unix, addr(2), load(0)),
            Ok(true)
        );
        assert_eq!(
            d.announce(t0, unix, "full", unix, addr(3), load(100)),
            Ok(true)
        );
        assert_eq!(
            d.announce(t0, unix, "x", unix, addr(4), load(0)),
            Err(Refusal::Full)
        );
        let lat = [(addr(1)[0].addr, 10), (addr(2)[0].addr, 80)];
        let ids: Vec<_> = d.choose(&lat, 3).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["near", "far", "full"]);
        // The near relay fills up: the far one wins.
        assert_eq!(
            d.announce(t0, unix, "near", unix + 1, addr(1), load(100)),
            Ok(false)
        );
        let ids: Vec<_> = d.choose(&lat, 2).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["far", "near"]);
        // Without measurements, load decides.
        let ids: Vec<_> = d.choose(&[], 1).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["far"]);
    }

    #[test]
    fn refuses_replays_and_skew() {
        let t0 = Instant::now();
        let mut d = Directory::new(3);
        let unix = 10_000_000;
        assert_eq!(d.announce(t0, unix, "r", unix, addr(1), load(1)), Ok(true));
        assert_eq!(
            d.announce(t0, unix, "r", unix, addr(1), load(1)),
            Err(Refusal::Replay)
        );
        assert_eq!(
            d.announce(t0, unix, "r", unix - 5, addr(1), load(1)),
            Err(Refusal::Replay)
        );
        assert_eq!(
            d.announce(t0, unix, "s", unix + MAX_SKEW_MS + 1, addr(1), load(1)),
            Err(Refusal::Replay)
        );
        assert_eq!(
            d.expire(t0 + Duration::from_secs(31), Duration::from_secs(30)),
            ["r"]
        );
        assert!(d.loads().is_empty());
        // Still remembered: an old announcement cannot bring it back.
        assert_eq!(
            d.announce(t0, unix, "r", unix, addr(1), load(1)),
            Err(Refusal::Replay)
        );
        assert_eq!(
            d.announce(t0, unix, "r", unix + 1, addr(1), load(1)),
            Ok(true)
        );
    }
}
