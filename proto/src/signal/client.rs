//! The peer side of signalling, sans-IO.
//!
//! A [`Client`] talks to one rendezvous over the socket the peer uses for its data. The driver
//! feeds it datagrams from the rendezvous and timeouts, and sends what it returns:
//!
//! ```text
//! client.register(now);
//! loop {
//!     while let Some(bytes) = client.poll_transmit() { socket.send_to(&bytes, client.server()) }
//!     while let Some(event) = client.poll_event() { /* Registered, Offer, Punch, ... */ }
//!     select! {
//!         (bytes, from) = socket.recv_from() => { client.handle_input(now, from, &bytes); }
//!         _ = sleep_until(client.poll_timeout()) => client.handle_timeout(now),
//!     }
//! }
//! ```
//!
//! Requests are retransmitted with exponential backoff until answered or given up. Requests
//! from the rendezvous (Offer, Accepted, Refused, Punch) are answered once; a retransmitted
//! request gets the same answer again and produces no second event.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::message::{Candidate, SESSION_LEN};
use super::{Class, Envelope, Message, Method, TransactionId, register};
use crate::identity::{Keypair, PeerId};

/// Requests in flight at once.
pub const MAX_PENDING: usize = 32;
/// Answers remembered for retransmitted server requests.
pub const MAX_ANSWERED: usize = 32;
/// Offers waiting for the application's answer.
pub const MAX_OFFERS: usize = 16;
/// Datagrams queued for the driver.
pub const MAX_QUEUED: usize = 64;
/// Events queued for the application.
pub const MAX_EVENTS: usize = 64;

/// Retransmission settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// First retransmission timeout.
    pub rto: Duration,
    /// Transmissions of one request before giving up.
    pub max_tries: u32,
}

impl Default for Config {
    fn default() -> Self {
        // RFC 8489 §6.2.1 defaults, shortened: signalling is interactive.
        Self {
            rto: Duration::from_millis(250),
            max_tries: 7,
        }
    }
}

/// Why an API call could not be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not registered yet.
    #[error("not registered with the rendezvous")]
    NotRegistered,
    /// Too many requests in flight.
    #[error("too many requests in flight")]
    Busy,
    /// No pending offer has this id.
    #[error("no pending offer with this connect id")]
    UnknownOffer,
    /// The message exceeds a bound (too many candidates).
    #[error("message too large")]
    TooLarge,
}

/// A request awaiting its response.
#[derive(Debug)]
struct Pending {
    tid: TransactionId,
    method: Method,
    bytes: Vec<u8>,
    next: Instant,
    rto: Duration,
    tries: u32,
    /// The callee of a connect request, to name it in events.
    target: Option<PeerId>,
}

/// The peer side of signalling. See the module docs for the run loop.
#[derive(Debug)]
pub struct Client {
    /// Our identity.
    key: Keypair,
    /// The rendezvous; datagrams from elsewhere are not ours.
    server: SocketAddr,
    /// Retransmission settings.
    config: Config,
    /// `now` and Unix milliseconds at construction, for the signed timestamp.
    start: (Instant, u64),
    /// Token from the last registration.
    session: Option<[u8; SESSION_LEN]>,
    /// Our server-reflexive address.
    observed: Option<SocketAddr>,
    /// Interval between keepalives, from the registration answer.
    keepalive: Duration,
    /// When to send the next keepalive.
    next_keepalive: Option<Instant>,
    /// Requests in flight.
    pending: Vec<Pending>,
    /// Answers to server requests, resent when the request is retransmitted.
    answered: VecDeque<(TransactionId, Vec<u8>)>,
    /// Offers the application has not answered: connect id and request transaction.
    offers: VecDeque<(u64, TransactionId)>,
    /// Datagrams for the driver.
    transmits: VecDeque<Vec<u8>>,
    /// Events for the application.
    events: VecDeque<Event>,
    /// Unpredictable transaction ids.
    rng: rand::rngs::StdRng,
}

mod event;
mod input;

pub use event::Event;

impl Client {
    /// Creates a client for the rendezvous at `server`.
    pub fn new(
        key: Keypair,
        server: SocketAddr,
        config: Config,
        now: Instant,
        unix_ms: u64,
    ) -> Self {
        Self {
            key,
            server,
            config,
            start: (now, unix_ms),
            session: None,
            observed: None,
            keepalive: Duration::from_secs(15),
            next_keepalive: None,
            pending: Vec::new(),
            answered: VecDeque::new(),
            offers: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng: rand::rngs::StdRng::from_os_rng(),
        }
    }

    /// The rendezvous address every transmit goes to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Our identity.
    pub fn peer_id(&self) -> PeerId {
        self.key.peer_id()
    }

    /// Our server-reflexive address, once registered.
    pub fn observed(&self) -> Option<SocketAddr> {
        self.observed
    }

    /// True once registered.
    pub fn is_registered(&self) -> bool {
        self.session.is_some()
    }

    /// Starts (or restarts) registration.
    pub fn register(&mut self, now: Instant) {
        self.pending.retain(|p| p.method != Method::Register);
        let message = Message::Register {
            peer: self.key.peer_id(),
            proof: None,
        };
        let _ = self.send_request(now, message, None);
    }

    /// Asks the rendezvous to connect us to `target`.
    pub fn connect(
        &mut self,
        now: Instant,
        target: PeerId,
        candidates: Vec<Candidate>,
    ) -> Result<(), Error> {
        let session = self.session.ok_or(Error::NotRegistered)?;
        let message = Message::Connect {
            session,
            target,
            candidates,
        };
        self.send_request(now, message, Some(target))
    }

    /// Asks for relays and TURN credentials, reporting measured relay round-trip times.
    pub fn request_relays(
        &mut self,
        now: Instant,
        latencies: Vec<(SocketAddr, u16)>,
    ) -> Result<(), Error> {
        let session = self.session.ok_or(Error::NotRegistered)?;
        self.send_request(now, Message::RelaysRequest { session, latencies }, None)
    }

    /// Tells the rendezvous what NAT behaviour this peer discovered (for its statistics).
    pub fn report_nat(
        &mut self,
        now: Instant,
        mapping: super::NatBehaviour,
        filtering: super::NatBehaviour,
    ) -> Result<(), Error> {
        let session = self.session.ok_or(Error::NotRegistered)?;
        let message = Message::NatReport {
            session,
            mapping,
            filtering,
        };
        self.send_request(now, message, None)
    }

    /// Answers an [`Event::Offer`].
    pub fn answer(
        &mut self,
        connect_id: u64,
        accept: bool,
        candidates: Vec<Candidate>,
    ) -> Result<(), Error> {
        let session = self.session.ok_or(Error::NotRegistered)?;
        let index = self
            .offers
            .iter()
            .position(|(id, _)| *id == connect_id)
            .ok_or(Error::UnknownOffer)?;
        let message = Message::Answer {
            session,
            connect_id,
            accept,
            candidates,
        };
        let tid = self.offers[index].1;
        let bytes = Envelope::response(Method::Offer, tid, message)
            .encode()
            .map_err(|_| Error::TooLarge)?;
        self.offers.remove(index);
        self.remember_answer(tid, bytes);
        Ok(())
    }

    /// Next datagram to send to [`Client::server`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmit = self.pending.iter().map(|p| p.next).min();
        match (retransmit, self.next_keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Retransmits, gives up on dead requests, sends keepalives.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for p in &mut self.pending {
            if now < p.next {
                continue;
            }
            if p.tries >= self.config.max_tries {
                expired.push((p.tid, p.method, p.target));
                continue;
            }
            p.tries += 1;
            p.rto *= 2;
            p.next = now + p.rto;
            if self.transmits.len() < MAX_QUEUED {
                self.transmits.push_back(p.bytes.clone());
            }
        }
        for (tid, method, target) in expired {
            self.pending.retain(|p| p.tid != tid);
            if method == Method::Keepalive || method == Method::Register {
                // The rendezvous is unreachable; start over so we re-register when it returns.
                self.session = None;
                self.next_keepalive = None;
                self.register(now);
            }
            self.push_event(Event::Failed {
                method,
                target,
                code: None,
            });
        }
        if let (Some(at), Some(session)) = (self.next_keepalive, self.session)
            && now >= at
        {
            self.next_keepalive = Some(now + self.keepalive);
            if !self.pending.iter().any(|p| p.method == Method::Keepalive) {
                let _ = self.send_request(now, Message::Keepalive { session }, None);
            }
        }
    }

    fn send_request(
        &mut self,
        now: Instant,
        message: Message,
        target: Option<PeerId>,
    ) -> Result<(), Error> {
        if self.pending.len() >= MAX_PENDING {
            return Err(Error::Busy);
        }
        let tid: TransactionId = self.rng.random();
        let env = Envelope::request(tid, message).ok_or(Error::TooLarge)?;
        let bytes = env.encode().map_err(|_| Error::TooLarge)?;
        if self.transmits.len() < MAX_QUEUED {
            self.transmits.push_back(bytes.clone());
        }
        self.pending.push(Pending {
            tid,
            method: env.method,
            bytes,
            next: now + self.config.rto,
            rto: self.config.rto,
            tries: 1,
            target,
        });
        Ok(())
    }

    fn remember_answer(&mut self, tid: TransactionId, bytes: Vec<u8>) {
        if self.answered.len() >= MAX_ANSWERED {
            self.answered.pop_front();
        }
        if self.transmits.len() < MAX_QUEUED {
            self.transmits.push_back(bytes.clone());
        }
        self.answered.push_back((tid, bytes));
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(event);
        }
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start.0).as_millis();
        self.start
            .1
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    fn prove(
        &self,
        now: Instant,
        nonce: [u8; super::message::NONCE_LEN],
        observed: SocketAddr,
    ) -> Message {
        Message::Register {
            peer: self.key.peer_id(),
            proof: Some(register::prove(
                &self.key,
                nonce,
                observed,
                self.unix_ms(now),
            )),
        }
    }

    /// Whether `class` is one this client handles as a response.
    fn is_response(class: Class) -> bool {
        matches!(class, Class::Success | Class::Error)
    }
}

#[cfg(test)]
mod tests;
