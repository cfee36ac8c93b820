//! Relay announcements: how a relay joins the rendezvous's relay directory.
//!
//! A relay sends `Announce{relay_id, seq, addrs, load, mac}` to the rendezvous every few seconds
//! over UDP. The MAC is HMAC-SHA256 under the secret relays share with the rendezvous (the same
//! secret that signs TURN REST credentials), over a label, the transaction id and every other
//! field. `seq` is the relay's clock in Unix milliseconds, strictly increasing: the rendezvous
//! refuses a sequence number not above the last it accepted and one too far from its own clock,
//! so a captured announcement cannot be replayed.
//!
//! [`Announcer`] is the sans-IO client side, for the relay binary (or a promoted peer) to embed:
//!
//! ```text
//! let mut a = Announcer::new(config, now, unix_ms_now);
//! a.set_load(load);                 // whenever the load changes
//! loop {
//!     while let Some(bytes) = a.poll_transmit() { socket.send_to(&bytes, rendezvous) }
//!     select! {
//!         datagram from rendezvous => a.handle_input(now, &datagram),
//!         sleep_until(a.poll_timeout()) => a.handle_timeout(now),
//!     }
//! }
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng};
use sha2::Sha256;

use super::codec::Writer;
use super::message::{Load, MAC_LEN, RelayAddr, body_announce_fields};
use super::{Envelope, Message, Method, TransactionId};

/// Domain-separation label of the announcement MAC.
pub const LABEL: &[u8] = b"supernode/announce/v1";

/// How many encoded datagrams may wait for the driver.
pub const MAX_QUEUED: usize = 8;

/// Computes the MAC of an announcement.
pub fn mac(
    secret: &[u8],
    transaction_id: &TransactionId,
    relay_id: &str,
    seq: u64,
    addrs: &[RelayAddr],
    load: &Load,
) -> Option<[u8; MAC_LEN]> {
    let mut w = Writer::default();
    w.bytes(LABEL);
    w.bytes(transaction_id);
    body_announce_fields(&mut w, relay_id, seq, addrs, load).ok()?;
    let mut hmac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    hmac.update(&w.buf);
    Some(hmac.finalize().into_bytes().into())
}

/// Checks an announcement's MAC in constant time.
pub fn verify(secret: &[u8], transaction_id: &TransactionId, message: &Message) -> bool {
    let Message::Announce {
        relay_id,
        seq,
        addrs,
        load,
        mac: got,
    } = message
    else {
        return false;
    };
    let mut w = Writer::default();
    w.bytes(LABEL);
    w.bytes(transaction_id);
    if body_announce_fields(&mut w, relay_id, *seq, addrs, load).is_err() {
        return false;
    }
    let Ok(mut hmac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    hmac.update(&w.buf);
    hmac.verify_slice(got).is_ok()
}

/// What the announcer needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// This relay's id in the directory.
    pub relay_id: String,
    /// The shared relay secret.
    pub secret: Vec<u8>,
    /// The public TURN addresses to announce.
    pub addrs: Vec<RelayAddr>,
    /// How often to announce until the rendezvous says otherwise.
    pub interval: Duration,
    /// First retransmission timeout for an unacknowledged announcement.
    pub rto: Duration,
}

/// Something the relay may want to log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The rendezvous acknowledged announcement `seq`.
    Acked {
        /// The sequence number.
        seq: u64,
    },
    /// The rendezvous refused the announcement (bad secret, replay, full directory).
    Refused(super::ErrorCode),
}

/// The relay side of the directory protocol. See the module docs for the run loop.
#[derive(Debug)]
pub struct Announcer {
    /// Static settings.
    config: Config,
    /// Latest load, sent in the next announcement.
    load: Load,
    /// `now` and Unix milliseconds at construction, to derive `seq` without reading a clock.
    start: (Instant, u64),
    /// Last sequence number used, so seq stays strictly increasing.
    last_seq: u64,
    /// When to announce next.
    next_announce: Instant,
    /// The announcement awaiting an ack: transaction id, bytes, next retransmission, its RTO.
    outstanding: Option<(TransactionId, Vec<u8>, Instant, Duration)>,
    /// Interval requested by the rendezvous, overriding the configured one.
    interval: Duration,
    /// Datagrams for the driver to send to the rendezvous.
    transmits: VecDeque<Vec<u8>>,
    /// Events for the embedding relay.
    events: VecDeque<Event>,
    /// Transaction ids must be unpredictable to off-path attackers.
    rng: rand::rngs::StdRng,
}

impl Announcer {
    /// Creates an announcer that announces at once.
    pub fn new(config: Config, now: Instant, unix_ms: u64) -> Self {
        let interval = config.interval;
        Self {
            config,
            load: Load::default(),
            start: (now, unix_ms),
            last_seq: 0,
            next_announce: now,
            outstanding: None,
            interval,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng: rand::rngs::StdRng::from_os_rng(),
        }
    }

    /// Records the current load for the next announcement.
    pub fn set_load(&mut self, load: Load) {
        self.load = load;
    }

    /// Next datagram to send to the rendezvous.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Announcer::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Instant {
        match &self.outstanding {
            Some((_, _, at, _)) => (*at).min(self.next_announce),
            None => self.next_announce,
        }
    }

    /// Sends due announcements and retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_announce {
            self.announce(now);
        } else if let Some((_, bytes, at, rto)) = &mut self.outstanding
            && now >= *at
        {
            *rto = (*rto * 2).min(self.interval);
            *at = now + *rto;
            if self.transmits.len() < MAX_QUEUED {
                self.transmits.push_back(bytes.clone());
            }
        }
    }

    fn announce(&mut self, now: Instant) {
        let elapsed = u64::try_from(now.saturating_duration_since(self.start.0).as_millis())
            .unwrap_or(u64::MAX);
        let seq = self
            .start
            .1
            .saturating_add(elapsed)
            .max(self.last_seq.saturating_add(1));
        self.last_seq = seq;
        let tid: TransactionId = self.rng.random();
        self.next_announce = now + self.interval;
        let c = &self.config;
        let Some(mac) = mac(&c.secret, &tid, &c.relay_id, seq, &c.addrs, &self.load) else {
            return;
        };
        let message = Message::Announce {
            relay_id: c.relay_id.clone(),
            seq,
            addrs: c.addrs.clone(),
            load: self.load,
            mac,
        };
        let Some(bytes) = Envelope::request(tid, message).and_then(|e| e.encode().ok()) else {
            return;
        };
        if self.transmits.len() < MAX_QUEUED {
            self.transmits.push_back(bytes.clone());
        }
        self.outstanding = Some((tid, bytes, now + c.rto, c.rto));
    }

    /// Handles a datagram from the rendezvous; returns false if it was not for this announcer.
    pub fn handle_input(&mut self, _now: Instant, bytes: &[u8]) -> bool {
        let Ok(env) = Envelope::decode(bytes) else {
            return false;
        };
        let Some((tid, _, _, _)) = &self.outstanding else {
            return false;
        };
        if env.method != Method::Announce || env.transaction_id != *tid {
            return false;
        }
        match env.message {
            Message::AnnounceAck { seq, interval_secs } => {
                if interval_secs > 0 {
                    self.interval = Duration::from_secs(u64::from(interval_secs));
                }
                self.events.push_back(Event::Acked { seq });
            }
            Message::Error { code } => self.events.push_back(Event::Refused(code)),
            _ => return false,
        }
        self.outstanding = None;
        true
    }
}

#[cfg(test)]
mod tests;
