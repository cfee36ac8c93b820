//! The event loop around the sans-IO core.
//!
//! One thread, one [`mio::Poll`], one [`Server`]. Sockets: the UDP listeners, the TCP and TLS
//! listeners and their connections, and one UDP socket per allocation. The loop waits for
//! readiness or the core's next deadline, reads every ready socket until it would block, hands
//! each message to the core and sends what comes back. The packet buffer has headroom in front,
//! so a peer's datagram is received straight behind the space where the core writes the
//! ChannelData or Data indication header.
//!
//! mio rather than tokio: a relay holds thousands of sockets, and a readiness loop that owns
//! them all keeps the per-packet cost to a hash lookup and two syscalls, with no task wake-ups,
//! channels or locks between the socket and the core.

mod announce;
mod batch;
mod stream;
mod tls;

use crate::metrics::{Gauges, Metrics};
use crate::server::{
    self, AllocId, Event, FiveTuple, Forward, PEER_HEADROOM, Server, Target, Transport,
};
use foldhash::HashMap;
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use stream::Conn;

pub use announce::AnnounceOptions;
pub use tls::load_server_config;

/// Token of the shutdown waker.
const WAKER: Token = Token(0);
/// Token of the socket that talks to the rendezvous.
const ANNOUNCE: Token = Token(TCP_BASE - 1);
/// UDP listener `i` has token `UDP_BASE + i`.
const UDP_BASE: usize = 1;
/// TCP/TLS listener `i` has token `TCP_BASE + i`.
const TCP_BASE: usize = 1 << 10;
/// Connection `i` has token `CONN_BASE + i`.
const CONN_BASE: usize = 1 << 20;
/// The relay socket of allocation index `i` has token `RELAY_BASE + i`.
const RELAY_BASE: usize = 1 << 40;
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// How often counters are copied into the metrics and idle connections reaped.
const TICK: Duration = Duration::from_millis(500);
/// A TCP/TLS connection that holds no allocation is closed after this long.
const STREAM_IDLE: Duration = Duration::from_secs(60);
/// Readiness events handled per poll.
const EVENTS_CAPACITY: usize = 1024;

/// What the driver needs besides the core's configuration.
#[derive(Clone)]
pub struct Options {
    /// UDP listening addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listening addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listening addresses.
    pub tls: Vec<SocketAddr>,
    /// TLS server configuration, required when `tls` is not empty.
    pub tls_config: Option<Arc<rustls::ServerConfig>>,
    /// Receive buffer size of listening sockets.
    pub recv_buffer: usize,
    /// Send buffer size of listening sockets.
    pub send_buffer: usize,
    /// TCP/TLS connections at most.
    pub max_connections: usize,
    /// Joining a rendezvous's relay directory, if configured.
    pub announce: Option<AnnounceOptions>,
}

impl Options {
    /// Listeners, buffer sizes and limits from a configuration; no TLS and no rendezvous
    /// (set `tls_config` and `announce` when wanted).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            udp: config.listen.udp.clone(),
            tcp: config.listen.tcp.clone(),
            tls: config.listen.tls.clone(),
            tls_config: None,
            recv_buffer: config.sockets.recv_buffer,
            send_buffer: config.sockets.send_buffer,
            max_connections: config.limits.max_connections,
            announce: None,
        }
    }
}

/// A running relay: its bound addresses and the means to stop it.
pub struct Handle {
    /// Bound UDP listener addresses (ports resolved when 0 was asked for).
    pub udp: Vec<SocketAddr>,
    /// Bound TCP listener addresses.
    pub tcp: Vec<SocketAddr>,
    /// Bound TLS listener addresses.
    pub tls: Vec<SocketAddr>,
    /// Set to ask the loop to stop.
    stop: Arc<AtomicBool>,
    /// Wakes the loop so it notices `stop`.
    waker: Arc<Waker>,
    /// The loop's thread.
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Handle {
    /// Stops the loop and waits for it; every socket is closed when this returns.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("relay loop panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Binds every listener, then runs the loop on its own thread.
pub fn spawn(config: server::Config, options: Options, metrics: Metrics) -> io::Result<Handle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let mut udp = Vec::new();
    for (i, addr) in options.udp.iter().enumerate() {
        let mut sock = bind_udp(*addr, options.recv_buffer, options.send_buffer)?;
        poll.registry()
            .register(&mut sock, Token(UDP_BASE + i), Interest::READABLE)?;
        let local = sock.local_addr()?;
        udp.push((sock, local));
    }
    let mut tcp = Vec::new();
    let streams = options
        .tcp
        .iter()
        .map(|a| (*a, false))
        .chain(options.tls.iter().map(|a| (*a, true)));
    for (i, (addr, is_tls)) in streams.enumerate() {
        let mut l = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut l, Token(TCP_BASE + i), Interest::READABLE)?;
        let local = l.local_addr()?;
        tcp.push((l, is_tls, local));
    }
    if tcp.iter().any(|(_, t, _)| *t) && options.tls_config.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TLS listener without a TLS configuration",
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handle_udp = udp.iter().map(|(_, a)| *a).collect();
    let handle_tcp = tcp
        .iter()
        .filter(|(_, t, _)| !t)
        .map(|(_, _, a)| *a)
        .collect();
    let handle_tls = tcp
        .iter()
        .filter(|(_, t, _)| *t)
        .map(|(_, _, a)| *a)
        .collect();

    let now = Instant::now();
    let unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let seed: [u8; 32] = rand::random();
    let capacity = config.total_quota;
    let server = Server::new(config, now, unix, seed);
    let announce = match options.announce {
        Some(a) => Some(announce::Announce::new(a, &poll, ANNOUNCE, now, capacity)?),
        None => None,
    };
    let mut driver = Driver {
        poll,
        server,
        udp,
        tcp,
        tls_config: options.tls_config,
        conns: Vec::new(),
        free_conns: Vec::new(),
        conn_by_tuple: HashMap::default(),
        relays: Vec::new(),
        metrics,
        last_stats: server::stats::Stats::default(),
        next_tick: now,
        stop: stop.clone(),
        max_connections: options.max_connections,
        announce,
    };
    let thread = std::thread::Builder::new()
        .name("relay-loop".into())
        .spawn(move || driver.run())?;
    Ok(Handle {
        udp: handle_udp,
        tcp: handle_tcp,
        tls: handle_tls,
        stop,
        waker,
        thread: Some(thread),
    })
}

fn bind_udp(addr: SocketAddr, recv: usize, send: usize) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // Larger buffers ride out bursts; the kernel silently caps them at rmem_max/wmem_max.
    let _ = sock.set_recv_buffer_size(recv);
    let _ = sock.set_send_buffer_size(send);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(UdpSocket::from_std(sock.into()))
}

/// The loop's state. Only the loop's thread touches it.
struct Driver {
    /// Readiness source.
    poll: Poll,
    /// The protocol core.
    server: Server,
    /// UDP listeners and their bound addresses.
    udp: Vec<(UdpSocket, SocketAddr)>,
    /// TCP/TLS listeners: socket, is-TLS, bound address.
    tcp: Vec<(TcpListener, bool, SocketAddr)>,
    /// TLS configuration for accepted TLS connections.
    tls_config: Option<Arc<rustls::ServerConfig>>,
    /// Client connections; `None` is a free slot.
    conns: Vec<Option<Conn>>,
    /// Free connection slots.
    free_conns: Vec<usize>,
    /// Client 5-tuple to connection slot, to deliver responses and data.
    conn_by_tuple: HashMap<FiveTuple, usize>,
    /// Relay sockets by allocation index.
    relays: Vec<Option<(AllocId, UdpSocket)>>,
    /// Where counters go.
    metrics: Metrics,
    /// Counters as of the last sync.
    last_stats: server::stats::Stats,
    /// Next metrics sync and idle sweep.
    next_tick: Instant,
    /// Set by [`Handle`] to stop.
    stop: Arc<AtomicBool>,
    /// Connection limit.
    max_connections: usize,
    /// The relay-directory client, when a rendezvous is configured.
    announce: Option<announce::Announce>,
}

impl Driver {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        // Packet buffers: headroom for the TURN header in front of each, room for the largest
        // datagram and its padding behind.
        let mut batch = batch::Batch::new()?;
        loop {
            let now = Instant::now();
            let mut deadline = match self.server.poll_timeout() {
                Some(t) if t < self.next_tick => t,
                _ => self.next_tick,
            };
            if let Some(a) = &self.announce {
                deadline = deadline.min(a.poll_timeout());
            }
            let timeout = deadline.saturating_duration_since(now);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.stop.load(Ordering::Acquire) {
                tracing::info!("relay loop stopping");
                return Ok(());
            }
            let now = Instant::now();
            for ev in events.iter() {
                let token = ev.token().0;
                if token == WAKER.0 {
                    continue;
                } else if token == ANNOUNCE.0 {
                    if let Some(a) = &mut self.announce {
                        a.readable(now, &self.metrics);
                    }
                } else if token >= RELAY_BASE {
                    self.relay_readable(token - RELAY_BASE, now, &mut batch);
                } else if token >= CONN_BASE {
                    self.conn_ready(
                        token - CONN_BASE,
                        ev.is_readable(),
                        ev.is_writable(),
                        now,
                        batch.buf(0),
                    );
                } else if token >= TCP_BASE {
                    self.accept(token - TCP_BASE, now);
                } else {
                    self.udp_readable(token - UDP_BASE, now, &mut batch);
                }
            }
            self.server.handle_timeout(now);
            self.drain_core(now);
            if let Some(a) = &mut self.announce {
                a.step(now, &self.metrics);
            }
            if now >= self.next_tick {
                self.tick(now);
            }
        }
    }

    fn udp_readable(&mut self, i: usize, now: Instant, batch: &mut batch::Batch) {
        let mut errors = 0;
        loop {
            let Some((sock, local)) = self.udp.get(i) else {
                return;
            };
            let local = *local;
            let Some(n) = batch.recv_ready(sock, 0, &mut errors) else {
                return;
            };
            for j in 0..n {
                let (from, len) = batch.meta(j);
                let ft = FiveTuple {
                    transport: Transport::Udp,
                    client: from,
                    server: local,
                };
                let msg = &batch.buf(j)[..len];
                if let Some(fwd) = self.server.handle_client(now, ft, msg) {
                    self.forward(fwd, msg);
                }
                self.drain_core(now);
            }
            if n < batch::BATCH {
                // A short batch means the queue was empty: no need for a final EAGAIN read.
                return;
            }
        }
    }

    fn relay_readable(&mut self, index: usize, now: Instant, batch: &mut batch::Batch) {
        let mut errors = 0;
        loop {
            let Some(Some((id, sock))) = self.relays.get(index) else {
                return;
            };
            let id = *id;
            let Some(n) = batch.recv_ready(sock, PEER_HEADROOM, &mut errors) else {
                return;
            };
            for j in 0..n {
                let (from, len) = batch.meta(j);
                let buf = batch.buf(j);
                if let Some(fwd) =
                    self.server
                        .handle_peer(now, id, from, &mut buf[..PEER_HEADROOM + len + 3], len)
                {
                    self.forward(fwd, buf);
                }
            }
            if n < batch::BATCH {
                return;
            }
        }
    }

    /// Sends `buf[fwd.range]` where the core said.
    fn forward(&mut self, fwd: Forward, buf: &[u8]) {
        let bytes = &buf[fwd.range];
        match fwd.target {
            Target::Peer { alloc, peer } => {
                if let Some(Some((_, sock))) = self.relays.get(alloc.index()) {
                    if let Err(e) = sock.send_to(bytes, peer) {
                        tracing::trace!(error = %e, %peer, "send to peer failed");
                        self.metrics.send_failed();
                    }
                }
            }
            Target::Client(ft) => self.send_to_client(ft, bytes),
        }
    }

    fn send_to_client(&mut self, ft: FiveTuple, bytes: &[u8]) {
        match ft.transport {
            Transport::Udp => {
                if let Some((sock, _)) = self.udp.iter().find(|(_, a)| *a == ft.server) {
                    if let Err(e) = sock.send_to(bytes, ft.client) {
                        tracing::trace!(error = %e, client = %ft.client, "send to client failed");
                        self.metrics.send_failed();
                    }
                }
            }
            Transport::Tcp | Transport::Tls => {
                let Some(&slot) = self.conn_by_tuple.get(&ft) else {
                    return;
                };
                let result = match self.conns.get_mut(slot).and_then(Option::as_mut) {
                    Some(conn) => conn.send(bytes, self.poll.registry(), Token(CONN_BASE + slot)),
                    None => return,
                };
                match result {
                    Ok(true) => {}
                    Ok(false) => self.metrics.send_failed(),
                    Err(_) => self.close_conn(slot, stream::Close::WriteFailed),
                }
            }
        }
    }

    /// Carries out what the core asked for: relay sockets to open or close, responses to send.
    fn drain_core(&mut self, now: Instant) {
        loop {
            if let Some(ev) = self.server.poll_event() {
                match ev {
                    Event::OpenRelay { alloc, addr } => {
                        let ok = self.open_relay(alloc, addr).is_ok();
                        self.server.handle_relay_opened(alloc, ok, now);
                    }
                    Event::CloseRelay { alloc } => self.close_relay(alloc),
                }
                continue;
            }
            if let Some(t) = self.server.poll_transmit() {
                self.send_to_client(t.to, &t.payload);
                continue;
            }
            return;
        }
    }

    fn open_relay(&mut self, alloc: AllocId, addr: SocketAddr) -> io::Result<()> {
        let domain = socket2::Domain::for_address(addr);
        let sock =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into()).inspect_err(|e| {
            tracing::debug!(error = %e, %addr, "relay port unavailable");
        })?;
        let mut sock = UdpSocket::from_std(sock.into());
        let index = alloc.index();
        self.poll
            .registry()
            .register(&mut sock, Token(RELAY_BASE + index), Interest::READABLE)?;
        if self.relays.len() <= index {
            self.relays.resize_with(index + 1, || None);
        }
        if let Some((_, mut old)) = self.relays[index].replace((alloc, sock)) {
            let _ = self.poll.registry().deregister(&mut old);
        }
        tracing::debug!(%addr, "relay socket open");
        Ok(())
    }

    fn close_relay(&mut self, alloc: AllocId) {
        if let Some(slot) = self.relays.get_mut(alloc.index()) {
            if slot.as_ref().is_some_and(|(id, _)| *id == alloc) {
                if let Some((_, mut sock)) = slot.take() {
                    let _ = self.poll.registry().deregister(&mut sock);
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.next_tick = now + TICK;
        let gauges = Gauges {
            allocations: self.server.allocations_active(),
            permissions: self.server.permissions_active(now),
            channels: self.server.channels_active(now),
            connections: self.conn_by_tuple.len(),
        };
        let before = self.last_stats.bytes.iter().sum::<u64>();
        self.metrics
            .sync(&mut self.last_stats, self.server.stats(), gauges);
        if let Some(a) = &mut self.announce {
            let bytes = self.last_stats.bytes.iter().sum::<u64>() - before;
            a.set_load(
                gauges.allocations,
                bytes * 8 * 1000 / TICK.as_millis() as u64,
            );
        }
        // Connections that hold no allocation for too long are closed, so idle sockets cannot
        // pile up to the connection limit.
        let idle: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .filter(|(_, c)| {
                now.saturating_duration_since(c.last_allocated) > STREAM_IDLE
                    && !self.server.has_allocation(&c.five_tuple)
            })
            .map(|(i, _)| i)
            .collect();
        for slot in idle {
            self.close_conn(slot, stream::Close::Idle);
        }
        for c in self.conns.iter_mut().flatten() {
            if self.server.has_allocation(&c.five_tuple) {
                c.last_allocated = now;
            }
        }
    }
}
