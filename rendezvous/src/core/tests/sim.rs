//! The simulated network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use supernode_proto::identity::Keypair;
use supernode_proto::signal::client::{self, Client, Event as ClientEvent};

use crate::core::{Config, Core, Transport};

pub const SERVER: &str = "192.0.2.1:3578";

pub fn server() -> SocketAddr {
    SERVER.parse().unwrap()
}

pub fn config() -> Config {
    let mut c = Config::new(server());
    c.alternate_port = Some(3579);
    c.secret = [42; 32];
    c.relay_secret = Some(b"relay-secret".to_vec());
    c
}

/// A peer: a signalling client behind a public address, with a one-way latency.
pub struct SimPeer {
    pub client: Client,
    pub addr: SocketAddr,
    pub latency: Duration,
    pub events: Vec<ClientEvent>,
    /// A silent peer receives nothing and sends nothing (crashed, or its NAT dropped us).
    pub silent: bool,
    /// Whether to accept offers automatically, with these candidates.
    pub accept: Option<bool>,
    /// Everything it sent, for replay tests.
    pub sent: Vec<Vec<u8>>,
}

pub struct Sim {
    pub now: Instant,
    pub core: Core,
    pub peers: Vec<SimPeer>,
    /// (deliver at, to peer index or None for the core, from, bytes)
    inflight: Vec<(Instant, Option<usize>, SocketAddr, Vec<u8>)>,
    pub core_events: Vec<crate::core::Event>,
}

impl Sim {
    pub fn new(config: Config) -> Self {
        let t0 = Instant::now();
        Self {
            now: t0,
            core: Core::new(config, t0, 1_700_000_000_000),
            peers: Vec::new(),
            inflight: Vec::new(),
            core_events: Vec::new(),
        }
    }

    pub fn add_peer(&mut self, seed: u8, addr: &str, latency_ms: u64) -> usize {
        let client = Client::new(
            Keypair::from_seed([seed; 32]),
            server(),
            client::Config::default(),
            self.now,
            1_700_000_000_000,
        );
        self.peers.push(SimPeer {
            client,
            addr: addr.parse().unwrap(),
            latency: Duration::from_millis(latency_ms),
            events: Vec::new(),
            silent: false,
            accept: Some(true),
            sent: Vec::new(),
        });
        self.peers.len() - 1
    }

    /// Moves every queued message into the network and answers offers.
    fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            assert_eq!(t.transport, Transport::Udp { local: server() });
            if let Some(i) = self.peers.iter().position(|p| p.addr == t.remote) {
                let at = self.now + self.peers[i].latency;
                self.inflight.push((at, Some(i), server(), t.data));
            }
        }
        while let Some(e) = self.core.poll_event() {
            self.core_events.push(e);
        }
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            while let Some(bytes) = p.client.poll_transmit() {
                if !p.silent {
                    p.sent.push(bytes.clone());
                    self.inflight
                        .push((self.now + p.latency, None, p.addr, bytes));
                }
            }
            while let Some(e) = p.client.poll_event() {
                if let (ClientEvent::Offer { connect_id, .. }, Some(accept)) = (&e, p.accept) {
                    let cands = vec![candidate(p.addr)];
                    // The client keeps a bounded number of offers; older ones may be gone.
                    let _ = p.client.answer(*connect_id, accept, cands);
                }
                p.events.push(e);
            }
            while let Some(bytes) = p.client.poll_transmit() {
                if !p.silent {
                    p.sent.push(bytes.clone());
                    self.inflight
                        .push((self.now + p.latency, None, p.addr, bytes));
                }
            }
        }
    }

    /// Runs until `until`, always stepping whatever is due first.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.flush();
            let mut next = self.core.poll_timeout();
            for p in &self.peers {
                if let Some(t) = p.client.poll_timeout() {
                    next = next.min(t);
                }
            }
            for (at, ..) in &self.inflight {
                next = next.min(*at);
            }
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) =
                self.inflight.drain(..).partition(|(at, ..)| *at <= now);
            self.inflight = rest;
            for (_, to, from, bytes) in due {
                match to {
                    None => self.core.handle_datagram(
                        now,
                        Transport::Udp { local: server() },
                        from,
                        &bytes,
                    ),
                    Some(i) if !self.peers[i].silent => {
                        self.peers[i].client.handle_input(now, from, &bytes);
                    }
                    Some(_) => {}
                }
            }
            if self.core.poll_timeout() <= now {
                self.core.handle_timeout(now);
            }
            for p in &mut self.peers {
                if p.client.poll_timeout().is_some_and(|t| t <= now) {
                    p.client.handle_timeout(now);
                }
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Sends raw bytes to the core from `from`, now.
    pub fn inject(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.core
            .handle_datagram(self.now, Transport::Udp { local: server() }, from, bytes);
    }

    /// Registers every peer.
    pub fn register_all(&mut self) {
        let now = self.now;
        for p in &mut self.peers {
            p.client.register(now);
        }
        self.run_for(Duration::from_secs(1));
        for p in &self.peers {
            assert!(
                p.client.is_registered(),
                "peer at {} not registered",
                p.addr
            );
        }
    }
}

pub fn candidate(addr: SocketAddr) -> supernode_proto::signal::Candidate {
    supernode_proto::signal::Candidate {
        kind: supernode_proto::signal::CandidateKind::Srflx,
        addr,
        priority: 100,
    }
}
