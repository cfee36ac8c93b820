//! Signalling requests from peers and relays: registration, keepalive, connect, relays and
//! relay announcements. Responses from peers to our own requests are in [`super::connect`].

use std::net::SocketAddr;
use std::time::Instant;

use supernode_proto::credentials::Credentials;
use supernode_proto::identity::PeerId;
use supernode_proto::signal::message::Proof;
use supernode_proto::signal::{
    Candidate, Class, Envelope, ErrorCode, Message, Method, TransactionId, announce, register,
};

use super::registry::{Peer, Route};
use super::relays::Refusal;
use super::{ConnectOutcome, Core, DropReason, Event, Transport, nonce};

impl Core {
    pub(super) fn handle_signal(
        &mut self,
        now: Instant,
        transport: Transport,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let Ok(env) = Envelope::decode(data) else {
            self.stats.drop(DropReason::MalformedSignal);
            return;
        };
        let route = (transport, remote);
        if env.class != Class::Request {
            self.handle_peer_response(now, route, env);
            return;
        }
        let tid = env.transaction_id;
        match env.message {
            Message::Register { peer, proof: None } => {
                let _ = peer;
                let nonce = nonce::issue(&self.config.secret, self.start.0, now, remote);
                let challenge = Message::Challenge {
                    nonce,
                    observed: remote,
                };
                self.reply(route, Method::Register, tid, challenge);
            }
            Message::Register {
                peer,
                proof: Some(proof),
            } => self.register(now, route, tid, peer, proof),
            Message::Keepalive { session } => {
                if self.registry.authenticate(now, &session, route).is_some() {
                    let ack = Message::KeepaliveAck { observed: remote };
                    self.reply(route, Method::Keepalive, tid, ack);
                } else {
                    self.refuse(route, Method::Keepalive, tid, DropReason::UnknownSession);
                }
            }
            Message::Connect {
                session,
                target,
                candidates,
            } => match self.registry.authenticate(now, &session, route) {
                Some(caller) => self.connect_request(now, route, tid, caller, target, candidates),
                None => self.refuse(route, Method::Connect, tid, DropReason::UnknownSession),
            },
            Message::RelaysRequest { session, latencies } => {
                match self.registry.authenticate(now, &session, route) {
                    Some(peer) => self.relays_request(now, route, tid, peer, &latencies),
                    None => self.refuse(route, Method::Relays, tid, DropReason::UnknownSession),
                }
            }
            Message::NatReport {
                session,
                mapping,
                filtering,
            } => match self.registry.authenticate(now, &session, route) {
                Some(peer) => {
                    let class = (mapping, filtering);
                    if let Some(p) = self.registry.get_mut(&peer)
                        && p.nat != Some(class)
                    {
                        p.nat = Some(class);
                        self.stats.nat_report(mapping, filtering);
                    }
                    self.reply(route, Method::Report, tid, Message::NatReportAck);
                }
                None => self.refuse(route, Method::Report, tid, DropReason::UnknownSession),
            },
            Message::Announce {
                relay_id,
                seq,
                addrs,
                load,
                mac,
            } => {
                let message = Message::Announce {
                    relay_id,
                    seq,
                    addrs,
                    load,
                    mac,
                };
                self.announce(now, route, tid, message);
            }
            _ => self.stats.drop(DropReason::Unexpected),
        }
    }

    pub(super) fn reply(&mut self, route: Route, method: Method, tid: TransactionId, m: Message) {
        match Envelope::response(method, tid, m).encode() {
            Ok(bytes) => self.send(route.0, route.1, bytes),
            Err(_) => self.stats.drop(DropReason::QueueFull),
        }
    }

    /// Counts the drop and answers with the matching explicit error.
    fn refuse(&mut self, route: Route, method: Method, tid: TransactionId, reason: DropReason) {
        self.stats.drop(reason);
        let code = match reason {
            DropReason::UnknownSession => ErrorCode::NotRegistered,
            DropReason::BadSignature => ErrorCode::BadSignature,
            DropReason::StaleNonce => ErrorCode::StaleNonce,
            DropReason::Replayed | DropReason::RelayReplay => ErrorCode::Replayed,
            DropReason::RateLimitedPeer => ErrorCode::RateLimited,
            DropReason::BadRelayMac => ErrorCode::BadMac,
            DropReason::PeerTableFull
            | DropReason::AttemptTableFull
            | DropReason::RelayTableFull => ErrorCode::Overloaded,
            _ => ErrorCode::BadRequest,
        };
        self.reply(route, method, tid, Message::Error { code });
    }

    fn register(&mut self, now: Instant, route: Route, tid: TransactionId, id: PeerId, p: Proof) {
        let c = &self.config;
        let issued = match nonce::check(
            &c.secret,
            self.start.0,
            now,
            c.nonce_lifetime,
            route.1,
            &p.nonce,
        ) {
            Ok(issued) => issued,
            Err(_) => return self.refuse(route, Method::Register, tid, DropReason::StaleNonce),
        };
        if !register::verify(&id, &p, route.1) {
            return self.refuse(route, Method::Register, tid, DropReason::BadSignature);
        }
        let session = nonce::session(&self.config.secret, &id, &p.nonce);
        if let Some(existing) = self.registry.get(&id) {
            let retransmission = existing.nonce == p.nonce && existing.route == route;
            if !retransmission && issued <= existing.nonce_issued {
                return self.refuse(route, Method::Register, tid, DropReason::Replayed);
            }
            if retransmission {
                // Our answer was lost; the same proof gets the same answer and changes nothing.
                return self.registered(route, tid, session);
            }
        }
        let (rtt, nat) = match self.registry.get(&id) {
            Some(p) => (p.rtt, p.nat),
            None => (None, None),
        };
        let peer = Peer {
            route,
            session,
            nonce: p.nonce,
            nonce_issued: issued,
            last_seen: now,
            rtt,
            nat,
        };
        match self.registry.insert(id, peer) {
            Ok(_) => {
                self.stats.registrations += 1;
                self.push_event(Event::Registered {
                    peer: id,
                    remote: route.1,
                });
                self.registered(route, tid, session);
            }
            Err(_) => self.refuse(route, Method::Register, tid, DropReason::PeerTableFull),
        }
    }

    fn registered(&mut self, route: Route, tid: TransactionId, session: [u8; 16]) {
        let secs = |d: std::time::Duration| u16::try_from(d.as_secs()).unwrap_or(u16::MAX);
        let m = Message::Registered {
            observed: route.1,
            session,
            keepalive_secs: secs(self.config.keepalive),
            expiry_secs: secs(self.config.expiry),
        };
        self.reply(route, Method::Register, tid, m);
    }

    fn connect_request(
        &mut self,
        now: Instant,
        route: Route,
        tid: TransactionId,
        caller: PeerId,
        target: PeerId,
        candidates: Vec<Candidate>,
    ) {
        let refuse = |core: &mut Self, reason, outcome| {
            core.stats.connect(outcome);
            core.push_event(Event::Connect {
                caller,
                callee: target,
                outcome,
            });
            core.refuse(route, Method::Connect, tid, reason);
        };
        if !self.limits.allow_connect(now, caller) {
            return refuse(
                self,
                DropReason::RateLimitedPeer,
                ConnectOutcome::RateLimited,
            );
        }
        if target == caller {
            return refuse(self, DropReason::Unexpected, ConnectOutcome::Rejected);
        }
        if self.registry.get(&target).is_none() {
            self.stats.connect(ConnectOutcome::UnknownPeer);
            self.push_event(Event::Connect {
                caller,
                callee: target,
                outcome: ConnectOutcome::UnknownPeer,
            });
            let error = Message::Error {
                code: ErrorCode::UnknownPeer,
            };
            return self.reply(route, Method::Connect, tid, error);
        }
        match self.start_attempt(now, caller, target, candidates) {
            Some(connect_id) => self.reply(
                route,
                Method::Connect,
                tid,
                Message::ConnectAck { connect_id },
            ),
            None => refuse(self, DropReason::AttemptTableFull, ConnectOutcome::Rejected),
        }
    }

    fn relays_request(
        &mut self,
        now: Instant,
        route: Route,
        tid: TransactionId,
        peer: PeerId,
        latencies: &[(SocketAddr, u16)],
    ) {
        let relays = self.relays.choose(latencies, self.config.relays_per_answer);
        let ttl = self.config.credential_ttl;
        // Without a relay secret there is nothing to sign with: the answer says so by carrying
        // no credentials and no relays.
        let m = match &self.config.relay_secret {
            Some(secret) => {
                let expiry = self.unix_ms(now) / 1000 + ttl.as_secs();
                let creds = Credentials::rest(secret, &peer.to_string(), expiry);
                Message::Relays {
                    username: creds.username,
                    password: creds.password,
                    ttl_secs: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
                    relays,
                }
            }
            None => Message::Relays {
                username: String::new(),
                password: String::new(),
                ttl_secs: 0,
                relays: Vec::new(),
            },
        };
        self.reply(route, Method::Relays, tid, m);
    }

    fn announce(&mut self, now: Instant, route: Route, tid: TransactionId, m: Message) {
        let authentic = match &self.config.relay_secret {
            Some(secret) => announce::verify(secret, &tid, &m),
            None => false,
        };
        if !authentic {
            return self.refuse(route, Method::Announce, tid, DropReason::BadRelayMac);
        }
        let Message::Announce {
            relay_id,
            seq,
            addrs,
            load,
            ..
        } = m
        else {
            return;
        };
        let unix = self.unix_ms(now);
        match self.relays.announce(now, unix, &relay_id, seq, addrs, load) {
            Ok(new) => {
                self.stats.announcements += 1;
                if new {
                    self.push_event(Event::RelayJoined { id: relay_id });
                }
                let interval_secs =
                    u16::try_from(self.config.relay_interval.as_secs()).unwrap_or(u16::MAX);
                let ack = Message::AnnounceAck { seq, interval_secs };
                self.reply(route, Method::Announce, tid, ack);
            }
            Err(Refusal::Replay) => {
                self.refuse(route, Method::Announce, tid, DropReason::RelayReplay)
            }
            Err(Refusal::Full) => {
                self.refuse(route, Method::Announce, tid, DropReason::RelayTableFull)
            }
        }
    }
}
