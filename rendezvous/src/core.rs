//! The sans-IO rendezvous core.
//!
//! [`Core`] owns every table (peers, connection attempts, relays, rate limiters) and never reads
//! a clock or touches a socket. The driver hands it datagrams with [`Core::handle_datagram`] and
//! the time with [`Core::handle_timeout`], and drains [`Core::poll_transmit`] and
//! [`Core::poll_event`]; [`Core::poll_timeout`] says when to call back. Counters live in
//! [`Stats`], which the driver copies into Prometheus metrics.

mod binding;
mod connect;
mod limits;
mod nonce;
mod registry;
mod relays;
mod signal;
mod stats;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use supernode_proto::demux;
use supernode_proto::identity::PeerId;

pub use stats::{ConnectOutcome, DropReason, MappingClass, Stats};

/// Identifies a TCP (or TLS) connection to the driver.
pub type ConnId = u64;

/// Datagrams or events queued for the driver at most.
pub const MAX_QUEUED: usize = 4096;

/// How a message reached us, or how it must leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Over the UDP socket bound to `local`.
    Udp {
        /// The local socket address.
        local: SocketAddr,
    },
    /// Over a stream connection.
    Tcp {
        /// The connection.
        conn: ConnId,
        /// The local address the connection was accepted on.
        local: SocketAddr,
    },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The socket (UDP) or connection (TCP) to send on.
    pub transport: Transport,
    /// The destination.
    pub remote: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Something worth logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer registered (or re-registered from a new address).
    Registered {
        /// Who.
        peer: PeerId,
        /// From where.
        remote: SocketAddr,
    },
    /// A peer went silent and was removed.
    Expired {
        /// Who.
        peer: PeerId,
    },
    /// A connection attempt finished.
    Connect {
        /// The caller.
        caller: PeerId,
        /// The callee.
        callee: PeerId,
        /// How it ended.
        outcome: ConnectOutcome,
    },
    /// A relay announced itself for the first time.
    RelayJoined {
        /// Its id.
        id: String,
    },
    /// A relay went silent and was removed.
    RelayLeft {
        /// Its id.
        id: String,
    },
}

/// Settings of the core; the driver builds them from the configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The primary address (IP and port) for STUN and signalling.
    pub primary: SocketAddr,
    /// A second port on the same IP(s), for RFC 5780 change-port tests.
    pub alternate_port: Option<u16>,
    /// A second IP, for RFC 5780 change-IP tests.
    pub alternate_ip: Option<IpAddr>,
    /// How often registered peers send keepalives.
    pub keepalive: Duration,
    /// Silence after which a peer is forgotten.
    pub expiry: Duration,
    /// Lifetime of a registration challenge.
    pub nonce_lifetime: Duration,
    /// Secret keying challenge nonces and session tokens; random per process.
    pub secret: [u8; 32],
    /// Shared secret of the relays: authenticates announcements, signs TURN credentials.
    pub relay_secret: Option<Vec<u8>>,
    /// Lifetime of TURN credentials handed to peers.
    pub credential_ttl: Duration,
    /// Relays returned per request.
    pub relays_per_answer: usize,
    /// Interval relays are asked to announce at.
    pub relay_interval: Duration,
    /// Extra time added to the slower side's one-way delay before both punch.
    pub punch_margin: Duration,
    /// How long a callee has to answer an offer.
    pub answer_timeout: Duration,
    /// Largest PADDING echoed in a Binding response.
    pub max_padding: usize,
    /// Peers registered at most.
    pub max_peers: usize,
    /// Connection attempts in progress at most.
    pub max_attempts: usize,
    /// Relays known at most.
    pub max_relays: usize,
    /// Per source IP: messages per second, and burst.
    pub ip_rate: (f64, f64),
    /// Per peer: connect requests per second, and burst.
    pub peer_connect_rate: (f64, f64),
    /// Source IPs with a rate-limit bucket at most.
    pub max_tracked_ips: usize,
}

impl Config {
    /// Defaults for a laptop, listening on `primary`.
    pub fn new(primary: SocketAddr) -> Self {
        Self {
            primary,
            alternate_port: None,
            alternate_ip: None,
            keepalive: Duration::from_secs(15),
            expiry: Duration::from_secs(45),
            nonce_lifetime: Duration::from_secs(10),
            // Random unless the caller sets one: a known secret would let anyone forge nonces.
            secret: rand::random(),
            relay_secret: None,
            credential_ttl: Duration::from_secs(3600),
            relays_per_answer: 3,
            relay_interval: Duration::from_secs(10),
            punch_margin: Duration::from_millis(20),
            answer_timeout: Duration::from_secs(10),
            max_padding: 512,
            max_peers: 100_000,
            max_attempts: 10_000,
            max_relays: 256,
            ip_rate: (100.0, 200.0),
            peer_connect_rate: (5.0, 20.0),
            max_tracked_ips: 65_536,
        }
    }

    /// Every address the node listens on: primary first, then alternates (RFC 5780 §4.1).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let ips = std::iter::once(self.primary.ip()).chain(self.alternate_ip);
        let ports = std::iter::once(self.primary.port()).chain(self.alternate_port);
        let ports: Vec<u16> = ports.collect();
        ips.flat_map(|ip| ports.iter().map(move |p| SocketAddr::new(ip, *p)))
            .collect()
    }
}

/// The rendezvous state machine. See the module docs.
#[derive(Debug)]
pub struct Core {
    /// Settings.
    config: Config,
    /// `now` and Unix milliseconds at start, for credentials and relay sequence checks.
    start: (Instant, u64),
    /// Registered peers.
    registry: registry::Registry,
    /// Connection attempts in progress.
    attempts: connect::Attempts,
    /// Known relays.
    relays: relays::Directory,
    /// Per-IP and per-peer rate limits.
    limits: limits::Limits,
    /// Passive NAT mapping observations.
    mappings: binding::Observations,
    /// Counters.
    stats: Stats,
    /// Outgoing messages.
    transmits: VecDeque<Transmit>,
    /// Loggable events.
    events: VecDeque<Event>,
    /// Next sweep of expired peers, relays and limiter buckets.
    next_sweep: Instant,
}

/// Period of the expiry sweep.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Core {
    /// Creates a core; `unix_ms` is the wall clock at `now`.
    pub fn new(config: Config, now: Instant, unix_ms: u64) -> Self {
        Self {
            registry: registry::Registry::new(config.max_peers),
            attempts: connect::Attempts::new(config.max_attempts, config.secret),
            relays: relays::Directory::new(config.max_relays),
            limits: limits::Limits::new(&config),
            mappings: binding::Observations::default(),
            config,
            start: (now, unix_ms),
            stats: Stats::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_sweep: now + SWEEP_INTERVAL,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters and gauges.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Registered peers right now.
    pub fn peer_count(&self) -> usize {
        self.registry.len()
    }

    /// Known relays with their load in thousandths.
    pub fn relay_loads(&self) -> Vec<(String, u16)> {
        self.relays.loads()
    }

    /// Handles one datagram (UDP) or one framed message (TCP).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        if !self.limits.allow_ip(now, remote.ip()) {
            let reason = if self.limits.ip_table_full() {
                DropReason::IpTableFull
            } else {
                DropReason::RateLimitedIp
            };
            self.stats.drop(reason);
            return;
        }
        if demux::classify(data) != demux::Kind::Stun {
            self.stats.drop(DropReason::NotStun);
            return;
        }
        let Some(header) = supernode_proto::stun::header(data) else {
            self.stats.drop(DropReason::MalformedStun);
            return;
        };
        if supernode_proto::signal::is_signal(data) {
            self.handle_signal(now, transport, remote, data);
        } else if header.method() == supernode_proto::stun_rs::methods::BINDING.as_u16() {
            self.handle_binding(now, transport, remote, data, header);
        } else {
            self.stats.drop(DropReason::UnsupportedMethod);
        }
    }

    /// A stream connection closed: peers registered over it can no longer be reached.
    pub fn handle_conn_closed(&mut self, now: Instant, conn: ConnId) {
        for peer in self.registry.remove_conn(conn) {
            self.stats.expiries += 1;
            self.push_event(Event::Expired { peer });
        }
        // Attempts involving the peer time out on their own and tell the other side.
        let _ = now;
    }

    /// When [`Core::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Instant {
        match self.attempts.next_timeout() {
            Some(t) => t.min(self.next_sweep),
            None => self.next_sweep,
        }
    }

    /// Retransmits, times out attempts, expires silent peers and relays.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive_attempts(now);
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL;
            for peer in self.registry.expire(now, self.config.expiry) {
                self.stats.expiries += 1;
                self.push_event(Event::Expired { peer });
            }
            for id in self.relays.expire(now, self.config.relay_interval * 3) {
                self.push_event(Event::RelayLeft { id });
            }
            self.limits.sweep(now);
            self.mappings.sweep(now);
        }
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next loggable event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn send(&mut self, transport: Transport, remote: SocketAddr, data: Vec<u8>) {
        if self.transmits.len() >= MAX_QUEUED {
            self.stats.drop(DropReason::QueueFull);
            return;
        }
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            transport,
            remote,
            data,
        });
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() < MAX_QUEUED {
            self.events.push_back(event);
        }
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start.0).as_millis();
        self.start
            .1
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }
}
