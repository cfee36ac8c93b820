//! The sans-IO TURN server core.
//!
//! [`Server`] owns every allocation and makes every protocol decision, but never touches a
//! socket or a clock. The driver feeds it:
//!
//! - [`Server::handle_client`]: a datagram (or a framed stream message) from a client;
//! - [`Server::handle_peer`]: a datagram that arrived on an allocation's relay socket;
//! - [`Server::handle_relay_opened`]: the result of opening a relay socket it asked for;
//! - [`Server::handle_client_closed`]: a TCP/TLS client went away;
//! - [`Server::handle_timeout`]: the time it asked for in [`Server::poll_timeout`] has come;
//!
//! and drains [`Server::poll_transmit`] (control responses) and [`Server::poll_event`] (open or
//! close a relay socket). Data-path calls return a [`Forward`] naming a range of the caller's own
//! buffer, so relaying a packet copies nothing and allocates nothing.

mod allocation;
mod auth;
mod data;
mod handlers;
pub mod limits;
pub mod policy;
pub mod ports;
pub mod stats;

pub use allocation::{CHANNEL_LIFETIME, MAX_CHANNELS, MAX_PERMISSIONS, PERMISSION_LIFETIME};
pub use supernode_proto::turn::DATA_HEADROOM as PEER_HEADROOM;

use allocation::Allocation;
use auth::Auth;
use foldhash::HashMap;
use ipnet::IpNet;
use limits::SourceLimiter;
use policy::PeerPolicy;
use ports::PortPool;
use stats::Stats;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::time::{Duration, Instant};

/// Control responses waiting for the driver. The driver drains after every call, so this only
/// fills if it stops doing so; further responses are then dropped and counted.
pub const MAX_PENDING_TRANSMITS: usize = 4096;

/// Ports held for RESERVATION-TOKENs at once.
pub const MAX_RESERVATIONS: usize = 4096;

/// How long a reserved port waits for its Allocate (RFC 8656 §7.2: about 30 seconds).
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// Default allocation lifetime (RFC 8656 §7).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// Client transport protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// True for stream transports, where ChannelData is padded and allocations end with the
    /// connection.
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// A client's 5-tuple: the allocation's key on the client side (RFC 8656 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// Transport between client and relay.
    pub transport: Transport,
    /// The client's address as the relay sees it.
    pub client: SocketAddr,
    /// The relay's listening address the client talks to.
    pub server: SocketAddr,
}

/// Identifies an allocation to the driver (its relay socket's token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocId {
    /// Slot in the allocation table.
    index: u32,
    /// Bumped each time the slot is reused, so a stale id never matches a new allocation.
    generation: u32,
}

impl AllocId {
    /// Packs the id into a `u64` (for use as an event-loop token).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The slot index: small, dense, and unique among live allocations (drivers index their
    /// socket tables with it).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// Unpacks an id made by [`AllocId::to_u64`].
    pub fn from_u64(v: u64) -> Self {
        Self {
            index: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

/// Where a forwarded packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Out of the allocation's relay socket to a peer.
    Peer {
        /// The allocation whose relay socket sends.
        alloc: AllocId,
        /// The peer.
        peer: SocketAddr,
    },
    /// Out of a listener to a client.
    Client(FiveTuple),
}

/// A packet to forward: `range` of the buffer the caller passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Destination.
    pub target: Target,
    /// The bytes to send, within the caller's buffer.
    pub range: Range<usize>,
}

/// A control message to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The client.
    pub to: FiveTuple,
    /// The encoded STUN message.
    pub payload: Vec<u8>,
}

/// Something the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Open a UDP relay socket bound to `addr` for `alloc`, then call
    /// [`Server::handle_relay_opened`].
    OpenRelay {
        /// The allocation.
        alloc: AllocId,
        /// The address to bind.
        addr: SocketAddr,
    },
    /// Close the relay socket of `alloc`; the allocation is gone.
    CloseRelay {
        /// The allocation.
        alloc: AllocId,
    },
}

/// Everything the core needs to know, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// REALM for long-term credentials.
    pub realm: String,
    /// TURN REST shared secrets.
    pub rest_secrets: Vec<String>,
    /// Static users and passwords.
    pub users: Vec<(String, String)>,
    /// Local IPv4 address relay sockets bind to, if IPv4 allocations are offered.
    pub relay_v4: Option<IpAddr>,
    /// Local IPv6 address relay sockets bind to, if IPv6 allocations are offered.
    pub relay_v6: Option<IpAddr>,
    /// Address advertised instead of `relay_v4` (1:1 NAT, containers).
    pub external_v4: Option<IpAddr>,
    /// Address advertised instead of `relay_v6`.
    pub external_v6: Option<IpAddr>,
    /// Ports relay sockets use.
    pub port_range: RangeInclusive<u16>,
    /// Largest lifetime granted.
    pub max_lifetime: Duration,
    /// How long a nonce stays fresh.
    pub nonce_lifetime: Duration,
    /// Allocations one user may hold.
    pub user_quota: usize,
    /// Allocations the relay holds at most.
    pub total_quota: usize,
    /// Per-allocation cap in bytes per second, both directions together.
    pub bandwidth_bps: Option<u64>,
    /// Peer ranges always permitted.
    pub allowed_peers: Vec<IpNet>,
    /// Peer ranges refused in addition to the defaults.
    pub denied_peers: Vec<IpNet>,
    /// Unauthenticated requests per second per source IP.
    pub unauth_rate: f64,
    /// Burst of unauthenticated requests per source IP.
    pub unauth_burst: f64,
    /// Addresses the relay listens on, refused as peers.
    pub own_addresses: Vec<IpAddr>,
}

/// Wall-clock seconds derived from the monotonic `now`: REST expiries and nonces need Unix time,
/// which the driver gives once at start.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The `Instant` at which the Unix time was `unix_at_start`.
    start: Instant,
    /// Unix time at `start`.
    unix_at_start: u64,
}

impl Clock {
    fn unix(&self, now: Instant) -> u64 {
        self.unix_at_start + now.saturating_duration_since(self.start).as_secs()
    }
}

/// A relay port held for a later Allocate carrying RESERVATION-TOKEN (EVEN-PORT with R set).
#[derive(Debug, Clone, Copy)]
struct Reservation {
    /// The reserved relay address.
    addr: SocketAddr,
    /// When the port goes back to the pool.
    expires: Instant,
}

/// The TURN server state machine.
pub struct Server {
    /// Validated configuration.
    config: Config,
    /// Unix time source.
    clock: Clock,
    /// Credentials and nonces.
    auth: Auth,
    /// Peer address filter.
    policy: PeerPolicy,
    /// Unauthenticated request limiter.
    limiter: SourceLimiter,
    /// Free relay ports.
    ports: PortPool,
    /// Allocation slots; `None` is a free slot.
    slots: Vec<Option<Allocation>>,
    /// Generation of each slot.
    generations: Vec<u32>,
    /// Free slot indexes.
    free_slots: Vec<u32>,
    /// Client 5-tuple to allocation.
    by_client: HashMap<FiveTuple, AllocId>,
    /// Allocations per user, for the per-user quota.
    per_user: HashMap<String, usize>,
    /// Expiry deadlines (lazily invalidated: an entry counts only if it matches the
    /// allocation's `scheduled`).
    timers: BinaryHeap<Reverse<(Instant, AllocId)>>,
    /// Control messages for the driver.
    transmits: VecDeque<Transmit>,
    /// Socket work for the driver; at most two per allocation, so bounded by the quota.
    events: VecDeque<Event>,
    /// Counters.
    stats: Stats,
    /// Reserved ports by token, bounded by [`MAX_RESERVATIONS`].
    reservations: HashMap<[u8; 8], Reservation>,
    /// Earliest reservation expiry, if any.
    reservation_deadline: Option<Instant>,
    /// Source of transaction ids and reservation tokens.
    tid_counter: u64,
}

impl Server {
    /// Creates a server. `unix_now` is the Unix time at `now`; `seed` keys nonces and shuffles
    /// ports (random in production, fixed in tests).
    pub fn new(config: Config, now: Instant, unix_now: u64, seed: [u8; 32]) -> Self {
        let users = config.users.iter().cloned().collect();
        let secrets = config
            .rest_secrets
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let auth = Auth::new(
            config.realm.clone(),
            secrets,
            users,
            seed,
            config.nonce_lifetime.as_secs(),
        );
        let mut own = config.own_addresses.clone();
        own.extend(config.relay_v4);
        own.extend(config.relay_v6);
        own.extend(config.external_v4);
        own.extend(config.external_v6);
        let policy = PeerPolicy::new(&config.allowed_peers, &config.denied_peers, &own);
        let limiter = SourceLimiter::new(config.unauth_rate, config.unauth_burst, now);
        let port_seed = u64::from_le_bytes([
            seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6], seed[7],
        ]);
        let ports = PortPool::new(config.port_range.clone(), port_seed);
        Self {
            config,
            clock: Clock {
                start: now,
                unix_at_start: unix_now,
            },
            auth,
            policy,
            limiter,
            ports,
            slots: Vec::new(),
            generations: Vec::new(),
            free_slots: Vec::new(),
            by_client: HashMap::default(),
            per_user: HashMap::default(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            reservations: HashMap::default(),
            reservation_deadline: None,
            tid_counter: port_seed,
        }
    }

    /// The next control message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next socket operation for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let alloc = self.timers.peek().map(|Reverse((t, _))| *t);
        match (alloc, self.reservation_deadline) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// Expires allocations, permissions and channels whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reservation_deadline.is_some_and(|d| d <= now) {
            self.sweep_reservations(now);
        }
        while let Some(&Reverse((deadline, id))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(alloc) = self.get_mut(id) else {
                continue;
            };
            if alloc.scheduled != Some(deadline) {
                continue;
            }
            alloc.scheduled = None;
            if alloc.expires <= now {
                self.remove(id);
            } else {
                self.sweep(id, now);
            }
        }
    }

    /// A TCP or TLS client's connection closed: its allocation ends (RFC 8656 §3.1).
    pub fn handle_client_closed(&mut self, five_tuple: FiveTuple) {
        if let Some(id) = self.by_client.get(&five_tuple).copied() {
            self.remove(id);
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Allocations that exist (gauge).
    pub fn allocations_active(&self) -> usize {
        self.by_client.len()
    }

    /// Permissions active at `now`, over all allocations (gauge; a scan, meant for a metrics
    /// tick rather than the packet path).
    pub fn permissions_active(&self, now: Instant) -> usize {
        self.allocations().map(|a| a.active_permissions(now)).sum()
    }

    /// Channels active at `now`, over all allocations (gauge; a scan like the above).
    pub fn channels_active(&self, now: Instant) -> usize {
        self.allocations().map(|a| a.active_channels(now)).sum()
    }

    fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.slots.iter().flatten()
    }

    /// True if the 5-tuple has an allocation.
    pub fn has_allocation(&self, five_tuple: &FiveTuple) -> bool {
        self.by_client.contains_key(five_tuple)
    }

    /// The allocation's relayed (local) address, if it exists.
    pub fn relay_addr(&self, id: AllocId) -> Option<SocketAddr> {
        self.get(id).map(|a| a.relay)
    }

    fn get(&self, id: AllocId) -> Option<&Allocation> {
        let i = id.index as usize;
        if self.generations.get(i) != Some(&id.generation) {
            return None;
        }
        self.slots.get(i).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, id: AllocId) -> Option<&mut Allocation> {
        let i = id.index as usize;
        if self.generations.get(i) != Some(&id.generation) {
            return None;
        }
        self.slots.get_mut(i).and_then(Option::as_mut)
    }

    fn insert(&mut self, alloc: Allocation) -> AllocId {
        let five_tuple = alloc.five_tuple;
        let index = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(alloc);
                i
            }
            None => {
                self.slots.push(Some(alloc));
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let id = AllocId {
            index,
            generation: self.generations[index as usize],
        };
        self.by_client.insert(five_tuple, id);
        id
    }

    /// Deletes an allocation and releases everything it held.
    fn remove(&mut self, id: AllocId) {
        let i = id.index as usize;
        if self.generations.get(i) != Some(&id.generation) {
            return;
        }
        let Some(alloc) = self.slots.get_mut(i).and_then(Option::take) else {
            return;
        };
        self.generations[i] = self.generations[i].wrapping_add(1);
        self.free_slots.push(id.index);
        self.by_client.remove(&alloc.five_tuple);
        if let Some(n) = self.per_user.get_mut(&alloc.user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&alloc.user);
            }
        }
        if alloc.relay.port() != 0 {
            self.ports.give_back(alloc.relay.port());
        }
        if matches!(alloc.state, allocation::State::Open) {
            self.stats.allocations_closed += 1;
        }
        self.events.push_back(Event::CloseRelay { alloc: id });
    }

    /// Purges an allocation's expired permissions and channels and re-arms its timer.
    fn sweep(&mut self, id: AllocId, now: Instant) {
        let Some(alloc) = self.get_mut(id) else {
            return;
        };
        alloc.sweep(now);
        self.schedule(id, now);
    }

    /// Makes sure the timer heap holds this allocation's next deadline.
    fn schedule(&mut self, id: AllocId, now: Instant) {
        let Some(alloc) = self.get_mut(id) else {
            return;
        };
        let next = alloc.next_deadline(now);
        if alloc.scheduled.is_some_and(|s| s <= next) {
            return;
        }
        alloc.scheduled = Some(next);
        self.timers.push(Reverse((next, id)));
    }

    /// Returns expired reservations' ports to the pool.
    fn sweep_reservations(&mut self, now: Instant) {
        let ports = &mut self.ports;
        self.reservations.retain(|_, r| {
            let keep = r.expires > now;
            if !keep {
                ports.give_back(r.addr.port());
            }
            keep
        });
        self.reservation_deadline = self.reservations.values().map(|r| r.expires).min();
    }

    /// Holds `addr` for a later Allocate; returns the token, or `None` when the table is full.
    fn reserve(&mut self, addr: SocketAddr, now: Instant) -> Option<[u8; 8]> {
        if self.reservations.len() >= MAX_RESERVATIONS {
            self.sweep_reservations(now);
            if self.reservations.len() >= MAX_RESERVATIONS {
                return None;
            }
        }
        let mut token = [0u8; 8];
        token.copy_from_slice(&self.next_tid()[..8]);
        let expires = now + RESERVATION_LIFETIME;
        self.reservations
            .insert(token, Reservation { addr, expires });
        if self.reservation_deadline.is_none_or(|d| expires < d) {
            self.reservation_deadline = Some(expires);
        }
        Some(token)
    }

    /// Claims a reserved address.
    fn claim_reservation(&mut self, token: &[u8], now: Instant) -> Option<SocketAddr> {
        let token: [u8; 8] = token.try_into().ok()?;
        let r = self.reservations.remove(&token)?;
        if r.expires <= now {
            self.ports.give_back(r.addr.port());
            return None;
        }
        Some(r.addr)
    }

    fn queue(&mut self, to: FiveTuple, payload: Vec<u8>) {
        if self.transmits.len() >= MAX_PENDING_TRANSMITS {
            self.stats.drop(stats::Drop::QueueFull);
            return;
        }
        self.transmits.push_back(Transmit { to, payload });
    }

    fn next_tid(&mut self) -> [u8; 12] {
        // A counter through a cheap mixer: unique per indication, not predictable from the
        // previous one without the seed. Data indications need no secrecy.
        self.tid_counter = self.tid_counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.tid_counter;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&z.to_le_bytes());
        tid[8..].copy_from_slice(&(self.tid_counter as u32).to_le_bytes());
        tid
    }

    fn relay_ip_for(&self, v6: bool) -> Option<(IpAddr, IpAddr)> {
        if v6 {
            self.config
                .relay_v6
                .map(|ip| (ip, self.config.external_v6.unwrap_or(ip)))
        } else {
            self.config
                .relay_v4
                .map(|ip| (ip, self.config.external_v4.unwrap_or(ip)))
        }
    }
}

#[cfg(test)]
mod tests;
