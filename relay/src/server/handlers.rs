//! Control plane: STUN requests from clients (Binding, Allocate, Refresh, CreatePermission,
//! ChannelBind), RFC 8489 authentication and RFC 8656 §7–§11.

use super::allocation::{Allocation, BindError, Pending, State};
use super::auth::{Authenticated, Rejection};
use super::stats::{AllocResult, AuthFailure, Drop, QuotaKind};
use super::{AllocId, DEFAULT_LIFETIME, Event, FiveTuple, Server};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_rs::attributes::stun::{
    Fingerprint, MessageIntegrity, MessageIntegritySha256, Nonce, Realm, UnknownAttributes,
    UserName, XorMappedAddress,
};
use stun_rs::attributes::turn::{
    AdditionalAddressFamily, AddressErrorCode, ChannelNumber, EvenPort, LifeTime,
    RequestedAddressFamily, RequestedTrasport, ReservationToken, XorPeerAddress, XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH};
use stun_rs::{
    AddressFamily, HMACKey, MessageClass, MessageDecoderBuilder, StunMessage, StunMessageBuilder,
};
use supernode_proto::channel_data::ACCEPTED_RANGE;
use supernode_proto::stun::{self as pstun, Integrity, check_fingerprint};

/// Ports tried before an Allocate fails with 508.
const MAX_BIND_ATTEMPTS: u8 = 8;

/// How a response is finished: signed or not, with FINGERPRINT or not.
struct Reply {
    /// The request's method.
    method: stun_rs::MessageMethod,
    /// The request's transaction id.
    tid: stun_rs::TransactionId,
    /// Whether the request carried FINGERPRINT.
    fingerprint: bool,
}

impl Reply {
    fn success(&self) -> StunMessageBuilder {
        pstun::response(self.method, MessageClass::SuccessResponse, self.tid)
    }

    fn error(&self, code: u16) -> StunMessageBuilder {
        let b = pstun::response(self.method, MessageClass::ErrorResponse, self.tid);
        match pstun::error_code(code) {
            Some(attr) => b.with_attribute(attr),
            None => b,
        }
    }

    /// Adds SOFTWARE, integrity and FINGERPRINT, and encodes.
    fn finish(
        &self,
        mut b: StunMessageBuilder,
        key: Option<(&HMACKey, Integrity)>,
    ) -> Option<Vec<u8>> {
        if let Some(software) = pstun::software() {
            b = b.with_attribute(software);
        }
        match key {
            Some((key, Integrity::Sha1)) => {
                b = b.with_attribute(MessageIntegrity::new(key.clone()))
            }
            Some((key, Integrity::Sha256)) => {
                b = b.with_attribute(MessageIntegritySha256::new(key.clone()))
            }
            None => {}
        }
        if self.fingerprint {
            b = b.with_attribute(Fingerprint::default());
        }
        pstun::encode(&b.build()).ok()
    }
}

impl Server {
    /// Handles a STUN request from a client. Indications and responses never get here.
    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        from: FiveTuple,
        raw: &[u8],
        tid: [u8; 12],
    ) {
        let existing = self.by_client.get(&from).copied();
        if let Some(id) = existing {
            // A retransmission gets the same answer as the original (RFC 8656 §7.2).
            if let Some((_, cached)) = self
                .get(id)
                .and_then(|a| a.last_response.as_ref())
                .filter(|(t, _)| *t == tid)
            {
                let cached = cached.clone();
                self.queue(from, cached);
                return;
            }
        } else if !self.limiter.allow(from.client.ip(), now) {
            // Checked before any decoding or cryptography, so a flood costs little.
            self.stats.drop(Drop::RateLimited);
            return;
        }
        let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(raw) else {
            self.stats.drop(Drop::Malformed);
            return;
        };
        let fingerprint = match check_fingerprint(raw) {
            Some(false) => {
                self.stats.drop(Drop::BadFingerprint);
                return;
            }
            present => present.is_some(),
        };
        let reply = Reply {
            method: msg.method(),
            tid: *msg.transaction_id(),
            fingerprint,
        };
        let unknown: Vec<u16> = msg
            .attributes()
            .iter()
            .filter(|a| a.is_unknown() && a.attribute_type().is_comprehension_required())
            .map(|a| a.attribute_type().as_u16())
            .collect();
        if !unknown.is_empty() {
            let b = reply
                .error(420)
                .with_attribute(UnknownAttributes::from(&unknown[..]));
            self.send(from, &reply, b, None);
            return;
        }
        let method = msg.method();
        if method == BINDING {
            self.binding(from, &reply);
        } else if method == ALLOCATE {
            self.allocate(now, from, raw, &msg, &reply, existing);
        } else if method == REFRESH || method == CREATE_PERMMISSION || method == CHANNEL_BIND {
            match existing {
                Some(id) => self.on_allocation(now, from, raw, &msg, &reply, id),
                None => {
                    // RFC 8656 §7.3 etc.: authenticate, then 437 (no allocation).
                    if let Some(auth) = self.authenticate(now, from, raw, &msg, &reply) {
                        self.send(
                            from,
                            &reply,
                            reply.error(437),
                            Some((&auth.key, auth.integrity)),
                        );
                    }
                }
            }
        } else {
            self.send(from, &reply, reply.error(400), None);
        }
    }

    fn binding(&mut self, from: FiveTuple, reply: &Reply) {
        self.stats.binding_requests += 1;
        // No SOFTWARE: a Binding response stays close to the request's size (no amplification).
        let b = reply
            .success()
            .with_attribute(XorMappedAddress::from(from.client));
        let mut b = b;
        if reply.fingerprint {
            b = b.with_attribute(Fingerprint::default());
        }
        if let Ok(bytes) = pstun::encode(&b.build()) {
            self.queue(from, bytes);
        }
    }

    /// Runs RFC 8489 §9.2.4; on failure sends the challenge or error and returns `None`.
    fn authenticate(
        &mut self,
        now: Instant,
        from: FiveTuple,
        raw: &[u8],
        msg: &StunMessage,
        reply: &Reply,
    ) -> Option<Authenticated> {
        let unix = self.clock.unix(now);
        match self.auth.authenticate(raw, msg, from.client.ip(), unix) {
            Ok(auth) => Some(auth),
            Err(rejection) => {
                self.reject(now, from, reply, rejection);
                None
            }
        }
    }

    fn reject(&mut self, now: Instant, from: FiveTuple, reply: &Reply, rejection: Rejection) {
        let (code, failure) = match rejection {
            Rejection::Unauthorized(f) => (401, Some(f)),
            Rejection::StaleNonce => (438, Some(AuthFailure::StaleNonce)),
            Rejection::BadRequest => (400, None),
        };
        if let Some(f) = failure {
            if f != AuthFailure::MissingCredentials {
                self.stats.auth_failure(f);
            }
        }
        if reply.method == ALLOCATE {
            self.stats.alloc(match code {
                401 => AllocResult::Unauthorized,
                438 => AllocResult::StaleNonce,
                _ => AllocResult::BadRequest,
            });
        }
        let mut b = reply.error(code);
        if code != 400 {
            let nonce = self.auth.nonce(from.client.ip(), self.clock.unix(now));
            if let (Ok(realm), Ok(nonce)) = (Realm::new(self.auth.realm()), Nonce::new(nonce)) {
                b = b.with_attribute(realm).with_attribute(nonce);
            }
        }
        self.send(from, reply, b, None);
    }

    fn send(
        &mut self,
        to: FiveTuple,
        reply: &Reply,
        b: StunMessageBuilder,
        key: Option<(&HMACKey, Integrity)>,
    ) -> Option<Vec<u8>> {
        let bytes = reply.finish(b, key)?;
        self.queue(to, bytes.clone());
        Some(bytes)
    }

    fn allocate(
        &mut self,
        now: Instant,
        from: FiveTuple,
        raw: &[u8],
        msg: &StunMessage,
        reply: &Reply,
        existing: Option<AllocId>,
    ) {
        if let Some(id) = existing {
            let opening = self
                .get(id)
                .is_some_and(|a| matches!(a.state, State::Opening(_)));
            if opening {
                // Its response is on the way once the socket opens.
                return;
            }
        }
        let Some(auth) = self.authenticate(now, from, raw, msg, reply) else {
            return;
        };
        let signed = Some((&auth.key, auth.integrity));
        if existing.is_some() {
            self.stats.alloc(AllocResult::Mismatch);
            self.send(from, reply, reply.error(437), signed);
            return;
        }
        let fail = |s: &mut Self, code: u16, result: AllocResult| {
            s.stats.alloc(result);
            s.send(from, reply, reply.error(code), signed);
        };
        match msg
            .get::<RequestedTrasport>()
            .and_then(|a| a.as_requested_trasport().ok())
        {
            None => return fail(self, 400, AllocResult::BadRequest),
            Some(t) if t.protocol() != stun_rs::protocols::UDP => {
                return fail(self, 442, AllocResult::BadRequest);
            }
            Some(_) => {}
        }
        let even = msg
            .get::<EvenPort>()
            .and_then(|a| a.as_even_port().ok())
            .map(|e| e.reserve());
        let token = msg
            .get::<ReservationToken>()
            .and_then(|a| a.as_reservation_token().ok())
            .map(|t| t.token().to_vec());
        let family = msg
            .get::<RequestedAddressFamily>()
            .and_then(|a| a.as_requested_address_family().ok())
            .map(|a| a.family());
        let additional = msg
            .get::<AdditionalAddressFamily>()
            .and_then(|a| a.as_additional_address_family().ok())
            .map(|a| a.family());
        if token.is_some() && (even.is_some() || family.is_some() || additional.is_some()) {
            return fail(self, 400, AllocResult::BadRequest);
        }
        if family.is_some() && additional.is_some() {
            return fail(self, 400, AllocResult::BadRequest);
        }
        if additional == Some(AddressFamily::IPv4) {
            return fail(self, 400, AllocResult::BadRequest);
        }
        let v6 = family == Some(AddressFamily::IPv6);
        let Some((local_ip, _)) = self.relay_ip_for(v6) else {
            return fail(self, 440, AllocResult::BadRequest);
        };
        // Dual allocations are declined: the IPv4 allocation is made and the IPv6 half is
        // reported in ADDRESS-ERROR-CODE (RFC 8656 §7.2).
        let declined_family = additional;

        let user_count = self.per_user.get(&auth.user).copied().unwrap_or(0);
        if user_count >= self.config.user_quota {
            self.stats.quota(QuotaKind::User);
            return fail(self, 486, AllocResult::Quota);
        }
        if self.by_client.len() >= self.config.total_quota {
            self.stats.quota(QuotaKind::Total);
            return fail(self, 486, AllocResult::Quota);
        }
        let mut reservation = None;
        let relay = match (&token, even) {
            (Some(token), _) => match self.claim_reservation(token, now) {
                Some(addr) => addr,
                None => return fail(self, 508, AllocResult::Capacity),
            },
            (None, Some(reserve)) => {
                let Some(port) = self.ports.take_even(reserve) else {
                    return fail(self, 508, AllocResult::Capacity);
                };
                if reserve {
                    let next = SocketAddr::new(local_ip, port + 1);
                    match self.reserve(next, now) {
                        Some(t) => reservation = Some(t),
                        None => {
                            self.ports.give_back(port);
                            self.ports.give_back(port + 1);
                            return fail(self, 508, AllocResult::Capacity);
                        }
                    }
                }
                SocketAddr::new(local_ip, port)
            }
            (None, None) => match self.ports.take() {
                Some(port) => SocketAddr::new(local_ip, port),
                None => return fail(self, 508, AllocResult::Capacity),
            },
        };
        let even_port = even == Some(false);
        let pinned = token.is_some() || reservation.is_some();
        let lifetime = self.granted_lifetime(msg, true);
        let advertised = self.advertised(relay);
        let alloc = Allocation {
            five_tuple: from,
            relay,
            advertised,
            username: auth.username,
            user: auth.user.clone(),
            key: auth.key,
            integrity: auth.integrity,
            expires: now + lifetime,
            permissions: Vec::new(),
            channels: Vec::new(),
            bandwidth: self
                .config
                .bandwidth_bps
                .map(|bps| super::limits::TokenBucket::new(bps as f64, now)),
            last_response: None,
            state: State::Opening(Pending {
                transaction_id: *reply.tid.as_bytes(),
                lifetime,
                fingerprint: reply.fingerprint,
                even_port,
                reservation,
                pinned,
                attempts: 1,
                declined_family,
            }),
            scheduled: None,
        };
        *self.per_user.entry(auth.user).or_insert(0) += 1;
        let id = self.insert(alloc);
        self.events.push_back(Event::OpenRelay {
            alloc: id,
            addr: relay,
        });
    }

    /// The driver opened (or failed to open) the relay socket of a new allocation.
    pub fn handle_relay_opened(&mut self, alloc_id: AllocId, ok: bool, now: Instant) {
        let Some(alloc) = self.get_mut(alloc_id) else {
            return;
        };
        let State::Opening(pending) = &alloc.state else {
            return;
        };
        let pending = pending.clone();
        let reply = Reply {
            method: ALLOCATE,
            tid: stun_rs::TransactionId::from(pending.transaction_id),
            fingerprint: pending.fingerprint,
        };
        let from = alloc.five_tuple;
        let key = alloc.key.clone();
        let integrity = alloc.integrity;
        if !ok {
            // The port is taken by something outside this relay; try another.
            let old = alloc.relay;
            let next = (pending.attempts < MAX_BIND_ATTEMPTS && !pending.pinned)
                .then(|| {
                    if pending.even_port {
                        self.ports.take_even(false)
                    } else {
                        self.ports.take()
                    }
                })
                .flatten();
            self.ports.give_back(old.port());
            if let Some(port) = next {
                let relay = SocketAddr::new(old.ip(), port);
                let advertised = self.advertised(relay);
                if let Some(alloc) = self.get_mut(alloc_id) {
                    alloc.relay = relay;
                    alloc.advertised = advertised;
                    alloc.state = State::Opening(Pending {
                        attempts: pending.attempts + 1,
                        ..pending
                    });
                }
                self.events.push_back(Event::OpenRelay {
                    alloc: alloc_id,
                    addr: relay,
                });
                return;
            }
            if let Some(token) = pending.reservation {
                if let Some(addr) = self.claim_reservation(&token, now) {
                    self.ports.give_back(addr.port());
                }
            }
            // Take the allocation out without giving its port back twice.
            if let Some(alloc) = self.get_mut(alloc_id) {
                alloc.relay.set_port(0);
            }
            self.remove_failed(alloc_id);
            self.stats.alloc(AllocResult::Capacity);
            self.send(from, &reply, reply.error(508), Some((&key, integrity)));
            return;
        }
        let mut b = reply
            .success()
            .with_attribute(XorRelayedAddress::from(alloc.advertised))
            .with_attribute(XorMappedAddress::from(from.client))
            .with_attribute(LifeTime::new(pending.lifetime.as_secs() as u32));
        if let Some(token) = pending.reservation {
            b = b.with_attribute(ReservationToken::from(token));
        }
        if let Some(family) = pending.declined_family {
            if let Ok(code) = stun_rs::ErrorCode::new(440, "Address Family not Supported") {
                b = b.with_attribute(AddressErrorCode::new(family, code));
            }
        }
        alloc.state = State::Open;
        self.stats.alloc(AllocResult::Ok);
        if let Some(bytes) = self.send(from, &reply, b, Some((&key, integrity))) {
            if let Some(alloc) = self.get_mut(alloc_id) {
                alloc.last_response = Some((pending.transaction_id, bytes));
            }
        }
        self.schedule(alloc_id, now);
    }

    /// Removes an allocation whose socket never opened.
    fn remove_failed(&mut self, id: AllocId) {
        self.remove(id);
        // `remove` queued a CloseRelay for a socket that does not exist; drop it.
        if self.events.back() == Some(&Event::CloseRelay { alloc: id }) {
            self.events.pop_back();
        }
    }

    /// The lifetime to grant (RFC 8656 §7.2, §7.3): the request's, capped at the maximum, and
    /// for Allocate at least the default.
    fn granted_lifetime(&self, msg: &StunMessage, allocate: bool) -> Duration {
        let requested = msg
            .get::<LifeTime>()
            .and_then(|a| a.as_life_time().ok())
            .map(|l| Duration::from_secs(u64::from(l.as_u32())));
        let max = self.config.max_lifetime;
        match requested {
            None => DEFAULT_LIFETIME.min(max),
            Some(r) if allocate => r.max(DEFAULT_LIFETIME).min(max),
            Some(r) => r.min(max),
        }
    }

    fn advertised(&self, relay: SocketAddr) -> SocketAddr {
        let external = if relay.is_ipv4() {
            self.config.external_v4
        } else {
            self.config.external_v6
        };
        SocketAddr::new(external.unwrap_or(relay.ip()), relay.port())
    }

    /// Refresh, CreatePermission and ChannelBind on an existing allocation.
    fn on_allocation(
        &mut self,
        now: Instant,
        from: FiveTuple,
        raw: &[u8],
        msg: &StunMessage,
        reply: &Reply,
        id: AllocId,
    ) {
        let Some(alloc) = self.get(id) else {
            return;
        };
        if matches!(alloc.state, State::Opening(_)) {
            return;
        }
        // Requests on an allocation must come from its user (RFC 8656 §6.2) and are checked
        // with the key derived when it was created.
        let username = msg.get::<UserName>().and_then(|a| a.as_user_name().ok());
        let has_integrity = msg.get::<MessageIntegrity>().is_some()
            || msg.get::<MessageIntegritySha256>().is_some();
        if !has_integrity {
            return self.reject(
                now,
                from,
                reply,
                Rejection::Unauthorized(AuthFailure::MissingCredentials),
            );
        }
        let Some(username) = username else {
            return self.reject(now, from, reply, Rejection::BadRequest);
        };
        if username.as_str() != alloc.username {
            self.stats.auth_failure(AuthFailure::WrongCredentials);
            self.send(from, reply, reply.error(441), None);
            return;
        }
        let nonce_ok = msg
            .get::<Nonce>()
            .and_then(|a| a.as_nonce().ok())
            .is_some_and(|n| {
                self.auth
                    .nonce_is_fresh(n.as_str(), from.client.ip(), self.clock.unix(now))
            });
        if !nonce_ok {
            return self.reject(now, from, reply, Rejection::StaleNonce);
        }
        let key = alloc.key.clone();
        let Ok(integrity) = pstun::check_integrity(raw, msg, &key) else {
            return self.reject(
                now,
                from,
                reply,
                Rejection::Unauthorized(AuthFailure::BadIntegrity),
            );
        };
        let signed = (&key, integrity);
        let alloc_v6 = alloc.relay.is_ipv6();
        let result = if msg.method() == REFRESH {
            self.refresh(now, msg, reply, id, alloc_v6)
        } else if msg.method() == CREATE_PERMMISSION {
            self.create_permission(now, msg, reply, id, alloc_v6)
        } else {
            self.channel_bind(now, msg, reply, id, alloc_v6)
        };
        let b = match result {
            Ok(b) => b,
            Err(code) => {
                tracing::debug!(client = %from.client, method = reply.method.as_u16(), code, "request refused");
                tracing::trace!(?msg, "refused request");
                reply.error(code)
            }
        };
        if let Some(bytes) = self.send(from, reply, b, Some(signed)) {
            if let Some(alloc) = self.get_mut(id) {
                alloc.last_response = Some((*reply.tid.as_bytes(), bytes));
            }
        }
    }

    fn refresh(
        &mut self,
        now: Instant,
        msg: &StunMessage,
        reply: &Reply,
        id: AllocId,
        alloc_v6: bool,
    ) -> Result<StunMessageBuilder, u16> {
        if let Some(family) = msg
            .get::<RequestedAddressFamily>()
            .and_then(|a| a.as_requested_address_family().ok())
        {
            if (family.family() == AddressFamily::IPv6) != alloc_v6 {
                return Err(443);
            }
        }
        let lifetime = self.granted_lifetime(msg, false);
        if lifetime.is_zero() {
            self.remove(id);
        } else if let Some(alloc) = self.get_mut(id) {
            alloc.expires = now + lifetime;
        }
        Ok(reply
            .success()
            .with_attribute(LifeTime::new(lifetime.as_secs() as u32)))
    }

    /// Peer addresses in the request, checked against family and policy.
    fn peers(&self, msg: &StunMessage, alloc_v6: bool) -> Result<Vec<SocketAddr>, u16> {
        let peers: Vec<SocketAddr> = msg
            .attributes()
            .iter()
            .filter_map(|a| a.as_xor_peer_address().ok())
            .map(|a| *a.socket_address())
            .collect();
        if peers.is_empty() {
            return Err(400);
        }
        for peer in &peers {
            if peer.is_ipv6() != alloc_v6 {
                return Err(443);
            }
            if !self.policy.permits(peer.ip()) {
                return Err(403);
            }
        }
        Ok(peers)
    }

    fn create_permission(
        &mut self,
        now: Instant,
        msg: &StunMessage,
        reply: &Reply,
        id: AllocId,
        alloc_v6: bool,
    ) -> Result<StunMessageBuilder, u16> {
        let peers = self.peers(msg, alloc_v6)?;
        let Some(alloc) = self.get_mut(id) else {
            return Err(437);
        };
        let all = peers.iter().all(|p| alloc.permit(p.ip(), now));
        self.schedule(id, now);
        if !all {
            self.stats.quota(QuotaKind::PerAllocation);
            return Err(508);
        }
        Ok(reply.success())
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        msg: &StunMessage,
        reply: &Reply,
        id: AllocId,
        alloc_v6: bool,
    ) -> Result<StunMessageBuilder, u16> {
        let number = msg
            .get::<ChannelNumber>()
            .and_then(|a| a.as_channel_number().ok())
            .map(|c| c.number())
            .filter(|n| ACCEPTED_RANGE.contains(n))
            .ok_or(400u16)?;
        if msg.get::<XorPeerAddress>().is_none() {
            return Err(400);
        }
        let peer = *self.peers(msg, alloc_v6)?.first().ok_or(400u16)?;
        let Some(alloc) = self.get_mut(id) else {
            return Err(437);
        };
        let bound = alloc.bind_channel(number, peer, now);
        let permitted = bound.is_ok() && alloc.permit(peer.ip(), now);
        self.schedule(id, now);
        match bound {
            Err(BindError::Conflict) => Err(400),
            Err(BindError::Full) => {
                self.stats.quota(QuotaKind::PerAllocation);
                Err(508)
            }
            Ok(()) if !permitted => {
                self.stats.quota(QuotaKind::PerAllocation);
                Err(508)
            }
            Ok(()) => Ok(reply.success()),
        }
    }
}
