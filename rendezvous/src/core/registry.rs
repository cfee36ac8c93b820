//! The table of registered peers.
//!
//! A peer is reachable only along the route (socket and remote address) from which it proved
//! possession of its key. Its session token authenticates later requests, which must arrive
//! along the same route; a peer whose NAT remaps registers again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use supernode_proto::identity::PeerId;
use supernode_proto::signal::NatBehaviour;
use supernode_proto::signal::message::{NONCE_LEN, SESSION_LEN};

use super::{ConnId, Transport};

/// Where a peer is: the transport (socket or connection) and its address.
pub(super) type Route = (Transport, SocketAddr);

/// A registered peer.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    /// Where to send its messages.
    pub route: Route,
    /// Token it presents in later requests.
    pub session: [u8; SESSION_LEN],
    /// The nonce of the proof behind this registration: a retransmitted proof is recognised
    /// by it, an older one refused by its issue time.
    pub nonce: [u8; NONCE_LEN],
    /// Issue time of that nonce, ms since start.
    pub nonce_issued: u64,
    /// Last message from it.
    pub last_seen: Instant,
    /// Smoothed round-trip time, measured on our requests to it.
    pub rtt: Option<Duration>,
    /// The NAT behaviour it last reported, so a repeated report is not counted twice.
    pub nat: Option<(NatBehaviour, NatBehaviour)>,
}

/// The table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Full;

/// Registered peers, bounded.
#[derive(Debug)]
pub(super) struct Registry {
    peers: HashMap<PeerId, Peer>,
    /// Session token to peer, for authenticating requests.
    sessions: HashMap<[u8; SESSION_LEN], PeerId>,
    /// Bound on `peers`.
    max: usize,
}

impl Registry {
    pub(super) fn new(max: usize) -> Self {
        Self {
            peers: HashMap::new(),
            sessions: HashMap::new(),
            max,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn get(&self, peer: &PeerId) -> Option<&Peer> {
        self.peers.get(peer)
    }

    pub(super) fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(peer)
    }

    /// The peer holding `session`, if the request came along its route.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        session: &[u8; SESSION_LEN],
        route: Route,
    ) -> Option<PeerId> {
        let id = *self.sessions.get(session)?;
        let peer = self.peers.get_mut(&id)?;
        if peer.route != route {
            return None;
        }
        peer.last_seen = now;
        Some(id)
    }

    /// Inserts or replaces a registration. Returns whether the peer is new.
    pub(super) fn insert(&mut self, id: PeerId, peer: Peer) -> Result<bool, Full> {
        let session = peer.session;
        let new = match self.peers.insert(id, peer) {
            Some(old) => {
                self.sessions.remove(&old.session);
                false
            }
            None if self.peers.len() > self.max => {
                self.peers.remove(&id);
                return Err(Full);
            }
            None => true,
        };
        self.sessions.insert(session, id);
        Ok(new)
    }

    fn remove(&mut self, id: &PeerId) {
        if let Some(old) = self.peers.remove(id) {
            self.sessions.remove(&old.session);
        }
    }

    /// Removes peers silent for longer than `expiry`.
    pub(super) fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<PeerId> {
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) > expiry)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    /// Removes peers registered over a stream connection that closed.
    pub(super) fn remove_conn(&mut self, conn: ConnId) -> Vec<PeerId> {
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| matches!(p.route.0, Transport::Tcp { conn: c, .. } if c == conn))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }
}
