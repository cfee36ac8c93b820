//! Joining a rendezvous's relay directory: the driver side of `proto::signal::announce`.
//!
//! One extra UDP socket in the loop. The sans-IO [`Announcer`] decides when to announce and
//! retransmit; this module moves its datagrams and reports its load.

use crate::metrics::Metrics;
use mio::net::UdpSocket;
use mio::{Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use supernode_proto::signal::announce::{self, Announcer, Event};
use supernode_proto::signal::message::Load;

/// What to announce, and where.
#[derive(Debug, Clone)]
pub struct AnnounceOptions {
    /// The rendezvous's signalling address.
    pub rendezvous: SocketAddr,
    /// The announcer's settings (id, secret, addresses, interval).
    pub config: announce::Config,
}

/// The announcer and its socket.
pub(super) struct Announce {
    /// The protocol state.
    announcer: Announcer,
    /// Socket connected to nothing; sends to `rendezvous`.
    sock: UdpSocket,
    /// Where announcements go.
    rendezvous: SocketAddr,
    /// Allocations the relay accepts at most, reported as capacity.
    capacity: u32,
}

impl Announce {
    pub(super) fn new(
        options: AnnounceOptions,
        poll: &Poll,
        token: Token,
        now: Instant,
        capacity: usize,
    ) -> io::Result<Self> {
        let bind: SocketAddr = if options.rendezvous.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let mut sock = UdpSocket::bind(bind)?;
        poll.registry()
            .register(&mut sock, token, Interest::READABLE)?;
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut this = Self {
            announcer: Announcer::new(options.config, now, unix_ms),
            sock,
            rendezvous: options.rendezvous,
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
        };
        // The first announcement goes out at once; give it the (empty) load and capacity.
        this.set_load(0, 0);
        Ok(this)
    }

    pub(super) fn poll_timeout(&self) -> Instant {
        self.announcer.poll_timeout()
    }

    pub(super) fn set_load(&mut self, allocations: usize, bandwidth_bps: u64) {
        self.announcer.set_load(Load {
            allocations: u32::try_from(allocations).unwrap_or(u32::MAX),
            capacity: self.capacity,
            bandwidth_bps,
        });
    }

    /// Reads answers from the rendezvous.
    pub(super) fn readable(&mut self, now: Instant, metrics: &Metrics) {
        let mut buf = [0u8; 2048];
        loop {
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) if from == self.rendezvous => {
                    self.announcer.handle_input(now, &buf[..n]);
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        self.step(now, metrics);
    }

    /// Runs due timers, sends what the announcer queued, and reports its events.
    pub(super) fn step(&mut self, now: Instant, metrics: &Metrics) {
        if now >= self.announcer.poll_timeout() {
            self.announcer.handle_timeout(now);
        }
        while let Some(bytes) = self.announcer.poll_transmit() {
            if let Err(e) = self.sock.send_to(&bytes, self.rendezvous) {
                tracing::debug!(error = %e, rendezvous = %self.rendezvous, "announce send failed");
            }
        }
        while let Some(ev) = self.announcer.poll_event() {
            match ev {
                Event::Acked { seq } => {
                    tracing::debug!(seq, "rendezvous acknowledged announcement");
                    metrics.announcement(true);
                }
                Event::Refused(code) => {
                    tracing::warn!(?code, rendezvous = %self.rendezvous, "rendezvous refused announcement");
                    metrics.announcement(false);
                }
            }
        }
    }
}
