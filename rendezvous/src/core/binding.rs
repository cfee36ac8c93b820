//! STUN Binding (RFC 8489) with RFC 5780 NAT behaviour discovery.
//!
//! The node listens on up to four UDP sockets: primary/alternate IP × primary/alternate port.
//! CHANGE-REQUEST makes the response leave from another of them; RESPONSE-ORIGIN names the
//! socket it left from and OTHER-ADDRESS names the alternate IP and port (the primary IP when no
//! alternate IP is configured: clients then see that only change-port tests are possible).
//! Anti-amplification: the response goes only to the source IP of the request (RESPONSE-PORT
//! may change the port, as RFC 5780 §7.5 allows) and is never larger than the request, except
//! that the essential attributes (XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS) are always
//! sent. MAPPED-ADDRESS, SOFTWARE and PADDING (at most [`super::Config::max_padding`]) fill only
//! the room the request's size leaves.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use supernode_proto::stun::{self as sp, Header};
use supernode_proto::stun_rs::attributes::discovery::{
    ChangeRequestFlags, OtherAddress, Padding, ResponseOrigin,
};
use supernode_proto::stun_rs::attributes::stun::{
    Fingerprint, MappedAddress, UnknownAttributes, XorMappedAddress,
};
use supernode_proto::stun_rs::{
    MessageClass, MessageDecoderBuilder, StunAttribute, StunMessage, methods::BINDING,
};

use super::{Core, DropReason, MappingClass, Transport};

/// Source IPs whose recent Binding requests are remembered for mapping observations.
pub(super) const MAX_OBSERVED_IPS: usize = 4096;

/// How long a Binding observation is compared with later ones.
const OBSERVATION_WINDOW: Duration = Duration::from_secs(10);

/// Recent Binding requests per source IP: which of our addresses they went to and which mapped
/// port they came from.
#[derive(Debug, Default)]
pub(super) struct Observations {
    seen: HashMap<IpAddr, (IpAddr, u16, Instant)>,
}

impl Observations {
    /// Records a request from `remote` to our `local` address and classifies the mapping when
    /// the same client earlier probed our other IP.
    fn observe(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<MappingClass> {
        if let Some((ip, port, at)) = self.seen.get(&remote.ip()).copied()
            && now.saturating_duration_since(at) <= OBSERVATION_WINDOW
            && ip != local.ip()
        {
            self.seen.remove(&remote.ip());
            return Some(if port == remote.port() {
                MappingClass::EndpointIndependent
            } else {
                MappingClass::Dependent
            });
        }
        if self.seen.len() < MAX_OBSERVED_IPS || self.seen.contains_key(&remote.ip()) {
            self.seen
                .insert(remote.ip(), (local.ip(), remote.port(), now));
        }
        None
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        self.seen
            .retain(|_, (_, _, at)| now.saturating_duration_since(*at) <= OBSERVATION_WINDOW);
    }
}

/// What a Binding request asked for.
struct Request {
    change_ip: bool,
    change_port: bool,
    response_port: Option<u16>,
    padding: usize,
    fingerprint: bool,
    unknown: Vec<u16>,
}

fn parse(message: &StunMessage, raw: &[u8]) -> Request {
    let mut req = Request {
        change_ip: false,
        change_port: false,
        response_port: None,
        padding: 0,
        fingerprint: sp::check_fingerprint(raw).is_some(),
        unknown: Vec::new(),
    };
    for attr in message.attributes() {
        match attr {
            StunAttribute::ChangeRequest(c) => {
                req.change_ip = c.flags().contains(ChangeRequestFlags::ChangeIp);
                req.change_port = c.flags().contains(ChangeRequestFlags::ChangePort);
            }
            StunAttribute::ResponsePort(p) => req.response_port = Some(p.as_u16()),
            StunAttribute::Padding(p) => req.padding = p.as_str().len(),
            StunAttribute::Unknown(u) if u.attribute_type().is_comprehension_required() => {
                req.unknown.push(u.attribute_type().as_u16());
            }
            _ => {}
        }
    }
    req
}

impl Core {
    pub(super) fn handle_binding(
        &mut self,
        now: Instant,
        transport: Transport,
        remote: SocketAddr,
        raw: &[u8],
        header: Header,
    ) {
        match header.class() {
            MessageClass::Request => {}
            // Indications are keepalives (RFC 8489 §6.3.2): nothing to answer.
            MessageClass::Indication => return,
            _ => {
                self.stats.drop(DropReason::Unexpected);
                return;
            }
        }
        let Ok((message, _)) = MessageDecoderBuilder::default().build().decode(raw) else {
            self.stats.drop(DropReason::MalformedStun);
            return;
        };
        if sp::check_fingerprint(raw) == Some(false) {
            self.stats.drop(DropReason::MalformedStun);
            return;
        }
        let req = parse(&message, raw);
        let tid = *message.transaction_id();
        let error = |code: u16| {
            let mut b = sp::response(BINDING, MessageClass::ErrorResponse, tid);
            if let Some(e) = sp::error_code(code) {
                b = b.with_attribute(e);
            }
            b
        };
        let local = match transport {
            Transport::Udp { local } | Transport::Tcp { local, .. } => local,
        };
        // Size bookkeeping for the anti-amplification budget (see `budget` below).
        let addr_len = |a: SocketAddr| 4 + if a.is_ipv4() { 8 } else { 20 };
        let error_len =
            |code: u16| 4 + (4 + if code == 420 { 17usize } else { 11 }).div_ceil(4) * 4;
        let (builder, mut size, from, to, success) = if !req.unknown.is_empty() {
            let unknown = UnknownAttributes::from(req.unknown.as_slice());
            let size =
                sp::HEADER_LEN + error_len(420) + 4 + (2 * req.unknown.len()).div_ceil(4) * 4;
            (
                error(420).with_attribute(unknown),
                size,
                transport,
                remote,
                false,
            )
        } else if matches!(transport, Transport::Tcp { .. })
            && (req.change_ip || req.change_port || req.response_port.is_some())
        {
            // RFC 5780 §6: CHANGE-REQUEST and RESPONSE-PORT make no sense on a connection.
            (
                error(400),
                sp::HEADER_LEN + error_len(400),
                transport,
                remote,
                false,
            )
        } else if req.change_ip && self.config.alternate_ip.is_none()
            || req.change_port && self.config.alternate_port.is_none()
        {
            // RFC 5780 §7.2: we cannot answer from the requested address.
            let unknown = UnknownAttributes::from(&[0x0003u16][..]);
            let size = sp::HEADER_LEN + error_len(420) + 8;
            (
                error(420).with_attribute(unknown),
                size,
                transport,
                remote,
                false,
            )
        } else {
            let source = self.response_source(local, req.change_ip, req.change_port);
            let to = SocketAddr::new(remote.ip(), req.response_port.unwrap_or(remote.port()));
            let from = match transport {
                Transport::Udp { .. } => Transport::Udp { local: source },
                tcp => tcp,
            };
            let mut b = sp::response(BINDING, MessageClass::SuccessResponse, tid)
                .with_attribute(XorMappedAddress::from(remote))
                .with_attribute(ResponseOrigin::from(source));
            let mut size = sp::HEADER_LEN + addr_len(remote) + addr_len(source);
            if let Some(other) = self.other_address(local) {
                b = b.with_attribute(OtherAddress::from(other));
                size += addr_len(other);
            }
            self.stats.bindings += 1;
            if source != local {
                self.stats.bindings_changed += 1;
            }
            if let Transport::Udp { .. } = transport
                && let Some(class) = self.mappings.observe(now, local, remote)
            {
                self.stats.mapping(class);
            }
            (b, size, from, to, true)
        };
        // Anti-amplification: a response never exceeds the request, except that the essential
        // attributes above are always sent (a bare 20-byte IPv4 request gets at most 56 bytes).
        // Optional attributes are added while they fit; FINGERPRINT, if the client used it,
        // keeps its place at the end.
        let budget = raw.len().max(size);
        let reserve = if req.fingerprint { 8 } else { 0 };
        let mut builder = builder;
        // MAPPED-ADDRESS, for RFC 3489-era clients that ignore XOR-MAPPED-ADDRESS.
        if success && size + addr_len(remote) + reserve <= budget {
            builder = builder.with_attribute(MappedAddress::from(remote));
            size += addr_len(remote);
        }
        if let Some(s) = sp::software() {
            let len = 4 + s.as_str().len().div_ceil(4) * 4;
            if size + len + reserve <= budget {
                builder = builder.with_attribute(s);
                size += len;
            }
        }
        // PADDING makes the response about as large as the request (RFC 5780 §7.6 uses it to
        // probe fragmentation), within the budget and the configured bound.
        let room = budget.saturating_sub(size + reserve + 4) / 4 * 4;
        let pad = req.padding.min(self.config.max_padding).min(room);
        if success
            && pad > 0
            && let Ok(p) = Padding::new("\0".repeat(pad))
        {
            builder = builder.with_attribute(p);
            size += 4 + pad;
        }
        if req.fingerprint {
            builder = builder.with_attribute(Fingerprint::default());
        }
        match sp::encode(&builder.build()) {
            Ok(bytes) => {
                // The bookkeeping is exact, so the budget check above is what was sent.
                debug_assert_eq!(bytes.len(), size + reserve);
                debug_assert!(bytes.len() <= budget, "{} > {budget}", bytes.len());
                self.send(from, to, bytes)
            }
            Err(_) => self.stats.drop(DropReason::MalformedStun),
        }
    }

    /// The socket a response leaves from, given the socket the request arrived on.
    fn response_source(&self, local: SocketAddr, change_ip: bool, change_port: bool) -> SocketAddr {
        let primary = self.config.primary;
        let other_ip = |ip: IpAddr| match self.config.alternate_ip {
            Some(alt) if ip == primary.ip() => alt,
            _ => primary.ip(),
        };
        let other_port = |port: u16| match self.config.alternate_port {
            Some(alt) if port == primary.port() => alt,
            _ => primary.port(),
        };
        let ip = if change_ip {
            other_ip(local.ip())
        } else {
            local.ip()
        };
        let port = if change_port {
            other_port(local.port())
        } else {
            local.port()
        };
        SocketAddr::new(ip, port)
    }

    /// OTHER-ADDRESS for a request received on `local`: the address differing in both IP and
    /// port, or only in port when there is one IP (RFC 5780 §4.2).
    fn other_address(&self, local: SocketAddr) -> Option<SocketAddr> {
        self.config.alternate_port?;
        Some(self.response_source(local, self.config.alternate_ip.is_some(), true))
    }
}

#[cfg(test)]
mod tests;
