//! Deterministic tests of the core: a virtual clock, clients built from stun-rs, no sockets.

use super::*;
use proptest::prelude::*;
use stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, Nonce, Realm, UserName, XorMappedAddress,
};
use stun_rs::attributes::turn::{
    ChannelNumber, Data, LifeTime, RequestedAddressFamily, RequestedTrasport, XorPeerAddress,
    XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH, SEND};
use stun_rs::{
    MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder, TransactionId,
};
use supernode_proto::credentials::{Credentials, long_term_key};
use supernode_proto::stun::encode;

const SECRET: &str = "rest-secret";
const UNIX0: u64 = 1_800_000_000;

fn config() -> Config {
    Config {
        realm: "supernode.test".into(),
        rest_secrets: vec!["old-secret".into(), SECRET.into()],
        users: vec![("alice".into(), "wonderland".into())],
        relay_v4: Some("192.0.2.10".parse().unwrap()),
        relay_v6: None,
        external_v4: Some("203.0.113.10".parse().unwrap()),
        external_v6: None,
        port_range: 50_000..=50_099,
        max_lifetime: Duration::from_secs(3600),
        nonce_lifetime: Duration::from_secs(600),
        user_quota: 3,
        total_quota: 5,
        bandwidth_bps: None,
        allowed_peers: vec![],
        denied_peers: vec![],
        unauth_rate: 10.0,
        unauth_burst: 20.0,
        own_addresses: vec!["192.0.2.10".parse().unwrap()],
    }
}

fn client(n: u16) -> FiveTuple {
    FiveTuple {
        transport: Transport::Udp,
        client: SocketAddr::from(([198, 51, 100, 1], 40_000 + n)),
        server: SocketAddr::from(([192, 0, 2, 10], 3478)),
    }
}

const PEER: &str = "198.51.100.200:7000";

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

/// A TURN client's view: credentials and the nonce it last got.
struct Creds {
    username: String,
    password: String,
    nonce: String,
}

struct Lab {
    server: Server,
    now: Instant,
}

impl Lab {
    fn new(config: Config) -> Self {
        let now = Instant::now();
        Self {
            server: Server::new(config, now, UNIX0, [9; 32]),
            now,
        }
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.server.handle_timeout(self.now);
    }

    fn unix(&self) -> u64 {
        UNIX0 + (self.now - self.server.clock.start).as_secs()
    }

    /// Sends a message and returns the responses it produced, after opening any relay
    /// sockets the server asked for.
    fn exchange(&mut self, from: FiveTuple, raw: &[u8]) -> Vec<StunMessage> {
        let fwd = self.server.handle_client(self.now, from, raw);
        assert!(fwd.is_none(), "a request must not forward data");
        self.open_all(true);
        self.responses()
    }

    fn open_all(&mut self, ok: bool) {
        let mut opened = vec![];
        while let Some(ev) = self.server.poll_event() {
            if let Event::OpenRelay { alloc, .. } = ev {
                opened.push(alloc);
            }
        }
        for id in opened {
            self.server.handle_relay_opened(id, ok, self.now);
        }
    }

    fn responses(&mut self) -> Vec<StunMessage> {
        let mut out = vec![];
        while let Some(t) = self.server.poll_transmit() {
            out.push(
                MessageDecoderBuilder::default()
                    .build()
                    .decode(&t.payload)
                    .unwrap()
                    .0,
            );
        }
        out
    }

    fn rest(&self, user: &str, ttl: u64) -> Creds {
        let c = Credentials::rest(SECRET.as_bytes(), user, self.unix() + ttl);
        Creds {
            username: c.username,
            password: c.password,
            nonce: String::new(),
        }
    }

    /// Runs the 401 challenge and then the authenticated Allocate.
    fn allocate(&mut self, from: FiveTuple, creds: &mut Creds) -> StunMessage {
        let first = request(
            ALLOCATE,
            vec![RequestedTrasport::from(stun_rs::protocols::UDP).into()],
            None,
        );
        let resp = self.exchange(from, &first);
        assert_eq!(error_code(&resp[0]), Some(401));
        creds.nonce = nonce_of(&resp[0]);
        let raw = request(
            ALLOCATE,
            vec![RequestedTrasport::from(stun_rs::protocols::UDP).into()],
            Some(creds),
        );
        let mut resp = self.exchange(from, &raw);
        assert_eq!(resp.len(), 1);
        resp.remove(0)
    }

    fn alloc_id(&self, from: FiveTuple) -> AllocId {
        self.server.by_client[&from]
    }
}

fn request(method: MessageMethod, attrs: Vec<StunAttribute>, creds: Option<&Creds>) -> Vec<u8> {
    request_with_tid(method, attrs, creds, rand::random())
}

fn request_with_tid(
    method: MessageMethod,
    attrs: Vec<StunAttribute>,
    creds: Option<&Creds>,
    tid: [u8; 12],
) -> Vec<u8> {
    let mut b = StunMessageBuilder::new(method, MessageClass::Request)
        .with_transaction_id(TransactionId::from(tid));
    for a in attrs {
        b = b.with_attribute(a);
    }
    if let Some(c) = creds {
        let key = long_term_key(&c.username, "supernode.test", &c.password).unwrap();
        b = b
            .with_attribute(UserName::new(&c.username).unwrap())
            .with_attribute(Realm::new("supernode.test").unwrap())
            .with_attribute(Nonce::new(&c.nonce).unwrap())
            .with_attribute(MessageIntegrity::new(key));
    }
    encode(&b.with_attribute(Fingerprint::default()).build()).unwrap()
}

fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .map(|a| a.as_error_code().unwrap().error_code().error_code())
}

fn nonce_of(msg: &StunMessage) -> String {
    msg.get::<Nonce>()
        .unwrap()
        .as_nonce()
        .unwrap()
        .as_str()
        .to_owned()
}

fn udp() -> StunAttribute {
    RequestedTrasport::from(stun_rs::protocols::UDP).into()
}

fn permission(lab: &mut Lab, from: FiveTuple, creds: &Creds, peer: SocketAddr) -> Option<u16> {
    let raw = request(
        CREATE_PERMMISSION,
        vec![XorPeerAddress::from(peer).into()],
        Some(creds),
    );
    let resp = lab.exchange(from, &raw);
    error_code(&resp[0])
}

fn bind(
    lab: &mut Lab,
    from: FiveTuple,
    creds: &Creds,
    number: u16,
    peer: SocketAddr,
) -> Option<u16> {
    let raw = request(
        CHANNEL_BIND,
        vec![
            ChannelNumber::new(number).into(),
            XorPeerAddress::from(peer).into(),
        ],
        Some(creds),
    );
    let resp = lab.exchange(from, &raw);
    error_code(&resp[0])
}

fn channel_data(number: u16, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4 + data.len()];
    supernode_proto::channel_data::ChannelData {
        channel: number,
        data,
    }
    .encode(&mut out)
    .unwrap();
    out
}

/// Delivers a peer datagram through `handle_peer` and returns the bytes for the client.
fn from_peer(
    lab: &mut Lab,
    id: AllocId,
    from: SocketAddr,
    data: &[u8],
) -> Option<(Target, Vec<u8>)> {
    let mut buf = vec![0u8; PEER_HEADROOM + data.len() + 3];
    buf[PEER_HEADROOM..PEER_HEADROOM + data.len()].copy_from_slice(data);
    let fwd = lab
        .server
        .handle_peer(lab.now, id, from, &mut buf, data.len())?;
    Some((fwd.target, buf[fwd.range].to_vec()))
}

#[test]
fn unauthenticated_allocate_is_challenged() {
    let mut lab = Lab::new(config());
    let resp = lab.exchange(client(1), &request(ALLOCATE, vec![udp()], None));
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].class(), MessageClass::ErrorResponse);
    assert_eq!(error_code(&resp[0]), Some(401));
    assert!(resp[0].get::<Realm>().is_some());
    assert_eq!(nonce_of(&resp[0]).len(), 24);
    assert_eq!(lab.server.allocations_active(), 0);
    assert_eq!(
        lab.server.stats().allocations[stats::AllocResult::Unauthorized as usize],
        1
    );
}

#[test]
fn rest_allocation_succeeds_and_advertises_external_address() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("peer-1", 3600);
    let resp = lab.allocate(client(1), &mut creds);
    assert_eq!(resp.class(), MessageClass::SuccessResponse, "{resp:?}");
    let relayed = *resp
        .get::<XorRelayedAddress>()
        .unwrap()
        .as_xor_relayed_address()
        .unwrap()
        .socket_address();
    assert_eq!(relayed.ip().to_string(), "203.0.113.10");
    assert!((50_000..=50_099).contains(&relayed.port()));
    let mapped = *resp
        .get::<XorMappedAddress>()
        .unwrap()
        .as_xor_mapped_address()
        .unwrap()
        .socket_address();
    assert_eq!(mapped, client(1).client);
    let lifetime = resp
        .get::<LifeTime>()
        .unwrap()
        .as_life_time()
        .unwrap()
        .as_u32();
    assert_eq!(lifetime, 600);
    assert!(resp.get::<MessageIntegrity>().is_some());
    assert_eq!(lab.server.allocations_active(), 1);
    let id = lab.alloc_id(client(1));
    assert_eq!(
        lab.server.relay_addr(id).unwrap().ip().to_string(),
        "192.0.2.10"
    );
}

#[test]
fn static_user_and_bad_credentials() {
    let mut lab = Lab::new(config());
    let mut alice = Creds {
        username: "alice".into(),
        password: "wonderland".into(),
        nonce: String::new(),
    };
    assert_eq!(
        lab.allocate(client(1), &mut alice).class(),
        MessageClass::SuccessResponse
    );

    let mut wrong = Creds {
        username: "alice".into(),
        password: "nope".into(),
        nonce: String::new(),
    };
    assert_eq!(error_code(&lab.allocate(client(2), &mut wrong)), Some(401));

    let mut expired = lab.rest("peer", 0);
    assert_eq!(
        error_code(&lab.allocate(client(3), &mut expired)),
        Some(401)
    );

    let mut forged = lab.rest("peer", 100);
    forged.password = Credentials::rest(b"other-secret", "peer", lab.unix() + 100).password;
    assert_eq!(error_code(&lab.allocate(client(4), &mut forged)), Some(401));

    let s = lab.server.stats();
    assert_eq!(
        s.auth_failures[stats::AuthFailure::BadIntegrity as usize],
        2
    );
    assert_eq!(s.auth_failures[stats::AuthFailure::Expired as usize], 1);
    assert_eq!(lab.server.allocations_active(), 1);
}

#[test]
fn retransmitted_allocate_is_answered_identically_and_new_one_mismatches() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    lab.allocate(client(1), &mut creds);
    let _ = lab.exchange(client(1), &request(ALLOCATE, vec![udp()], None));
    let tid = [7u8; 12];
    let raw = request_with_tid(ALLOCATE, vec![udp()], Some(&creds), tid);
    // A first Allocate on another 5-tuple with a fixed tid, then its retransmission.
    let mut creds2 = lab.rest("q", 3600);
    let challenge = lab.exchange(client(2), &request(ALLOCATE, vec![udp()], None));
    creds2.nonce = nonce_of(&challenge[0]);
    let first = request_with_tid(ALLOCATE, vec![udp()], Some(&creds2), tid);
    lab.server.handle_client(lab.now, client(2), &first);
    lab.open_all(true);
    let a = lab.server.poll_transmit().unwrap().payload;
    lab.server.handle_client(lab.now, client(2), &first);
    let b = lab.server.poll_transmit().unwrap().payload;
    assert_eq!(a, b);
    assert_eq!(lab.server.allocations_active(), 2);
    // A different Allocate on an allocated 5-tuple is a mismatch.
    let resp = lab.exchange(client(1), &raw);
    assert_eq!(error_code(&resp[0]), Some(437));
}

#[test]
fn allocation_expires_unless_refreshed() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 100_000);
    lab.allocate(client(1), &mut creds);
    lab.advance(500);
    let raw = request(REFRESH, vec![LifeTime::new(600).into()], Some(&creds));
    let resp = lab.exchange(client(1), &raw);
    assert_eq!(resp[0].class(), MessageClass::SuccessResponse);
    lab.advance(500);
    assert_eq!(lab.server.allocations_active(), 1, "refresh extended it");
    lab.advance(101);
    assert_eq!(lab.server.allocations_active(), 0);
    let mut closed = false;
    while let Some(ev) = lab.server.poll_event() {
        closed |= matches!(ev, Event::CloseRelay { .. });
    }
    assert!(closed, "driver told to close the relay socket");
    assert_eq!(lab.server.stats().allocations_closed, 1);
}

#[test]
fn refresh_to_zero_deletes_and_port_returns() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    lab.allocate(client(1), &mut creds);
    let free = lab.server.ports.available();
    let raw = request(REFRESH, vec![LifeTime::new(0).into()], Some(&creds));
    let resp = lab.exchange(client(1), &raw);
    assert_eq!(resp[0].class(), MessageClass::SuccessResponse);
    assert_eq!(lab.server.allocations_active(), 0);
    assert_eq!(lab.server.ports.available(), free + 1);
    // Refreshing a deleted allocation: 437.
    let resp = lab.exchange(client(1), &request(REFRESH, vec![], Some(&creds)));
    assert_eq!(error_code(&resp[0]), Some(437));
}

#[test]
fn stale_nonce_gets_438_then_works_with_new_nonce() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 100_000);
    lab.allocate(client(1), &mut creds);
    lab.advance(601);
    // The allocation itself expired with the default lifetime; make a new one.
    let mut creds = lab.rest("p", 100_000);
    lab.allocate(client(1), &mut creds);
    lab.advance(590);
    let raw = request(REFRESH, vec![], Some(&creds));
    assert_eq!(
        lab.exchange(client(1), &raw)[0].class(),
        MessageClass::SuccessResponse
    );
    lab.advance(20);
    let resp = lab.exchange(client(1), &request(REFRESH, vec![], Some(&creds)));
    assert_eq!(error_code(&resp[0]), Some(438));
    creds.nonce = nonce_of(&resp[0]);
    let resp = lab.exchange(client(1), &request(REFRESH, vec![], Some(&creds)));
    assert_eq!(resp[0].class(), MessageClass::SuccessResponse);
    assert_eq!(
        lab.server.stats().auth_failures[stats::AuthFailure::StaleNonce as usize],
        1
    );
}

#[test]
fn wrong_user_on_allocation_gets_441() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    lab.allocate(client(1), &mut creds);
    let mut other = lab.rest("q", 3600);
    other.nonce = creds.nonce.clone();
    let resp = lab.exchange(client(1), &request(REFRESH, vec![], Some(&other)));
    assert_eq!(error_code(&resp[0]), Some(441));
}

#[test]
fn quotas_per_user_and_total() {
    let mut lab = Lab::new(config());
    for i in 0..3 {
        let mut c = lab.rest("same-user", 3600);
        assert_eq!(
            lab.allocate(client(i), &mut c).class(),
            MessageClass::SuccessResponse
        );
    }
    let mut c = lab.rest("same-user", 3600);
    assert_eq!(error_code(&lab.allocate(client(3), &mut c)), Some(486));
    for i in 4..6 {
        let mut c = lab.rest(&format!("u{i}"), 3600);
        assert_eq!(
            lab.allocate(client(i), &mut c).class(),
            MessageClass::SuccessResponse
        );
    }
    let mut c = lab.rest("another", 3600);
    assert_eq!(error_code(&lab.allocate(client(7), &mut c)), Some(486));
    let s = lab.server.stats();
    assert_eq!(s.quota[stats::QuotaKind::User as usize], 1);
    assert_eq!(s.quota[stats::QuotaKind::Total as usize], 1);
    assert_eq!(s.allocations[stats::AllocResult::Quota as usize], 2);
}

#[test]
fn permissions_gate_data_and_expire() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 100_000);
    lab.allocate(client(1), &mut creds);
    let id = lab.alloc_id(client(1));

    // No permission yet: a peer's packet is dropped.
    assert!(from_peer(&mut lab, id, peer(), b"early").is_none());
    assert_eq!(permission(&mut lab, client(1), &creds, peer()), None);
    assert_eq!(lab.server.permissions_active(lab.now), 1);

    // Peer → client without a channel: a Data indication.
    let (target, bytes) = from_peer(&mut lab, id, peer(), b"hello").unwrap();
    assert_eq!(target, Target::Client(client(1)));
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(&bytes)
        .unwrap();
    assert_eq!(msg.class(), MessageClass::Indication);
    let data = msg
        .get::<Data>()
        .unwrap()
        .as_data()
        .unwrap()
        .as_bytes()
        .to_vec();
    assert_eq!(data, b"hello");

    // Client → peer with a Send indication.
    let send = encode(
        &StunMessageBuilder::new(SEND, MessageClass::Indication)
            .with_attribute(XorPeerAddress::from(peer()))
            .with_attribute(Data::new(b"ping"))
            .build(),
    )
    .unwrap();
    let fwd = lab.server.handle_client(lab.now, client(1), &send).unwrap();
    assert_eq!(
        fwd.target,
        Target::Peer {
            alloc: id,
            peer: peer()
        }
    );
    assert_eq!(&send[fwd.range], b"ping");

    // Same IP, other port: the permission is per IP (RFC 8656 §9).
    let other_port = SocketAddr::new(peer().ip(), 9);
    assert!(from_peer(&mut lab, id, other_port, b"x").is_some());

    lab.advance(301);
    assert_eq!(lab.server.permissions_active(lab.now), 0);
    assert!(from_peer(&mut lab, id, peer(), b"late").is_none());
    assert!(
        lab.server
            .handle_client(lab.now, client(1), &send)
            .is_none()
    );
    assert!(lab.server.stats().drops[stats::Drop::NoPermission as usize] >= 3);
}

#[test]
fn channels_carry_data_both_ways_and_expire() {
    let mut cfg = config();
    cfg.nonce_lifetime = Duration::from_secs(10_000);
    let mut lab = Lab::new(cfg);
    let mut creds = lab.rest("p", 100_000);
    lab.allocate(client(1), &mut creds);
    let id = lab.alloc_id(client(1));
    assert_eq!(bind(&mut lab, client(1), &creds, 0x4001, peer()), None);
    assert_eq!(lab.server.channels_active(lab.now), 1);
    assert_eq!(lab.server.permissions_active(lab.now), 1);

    let cd = channel_data(0x4001, b"to peer");
    let fwd = lab.server.handle_client(lab.now, client(1), &cd).unwrap();
    assert_eq!(
        fwd.target,
        Target::Peer {
            alloc: id,
            peer: peer()
        }
    );
    assert_eq!(&cd[fwd.range], b"to peer");

    let (_, bytes) = from_peer(&mut lab, id, peer(), b"to client").unwrap();
    assert_eq!(bytes, channel_data(0x4001, b"to client"));
    assert_eq!(lab.server.stats().packets, [1, 1]);
    assert_eq!(lab.server.stats().bytes, [7, 9]);

    // Conflicting bindings are refused.
    assert_eq!(bind(&mut lab, client(1), &creds, 0x4002, peer()), Some(400));
    let other: SocketAddr = "198.51.100.201:7000".parse().unwrap();
    assert_eq!(bind(&mut lab, client(1), &creds, 0x4001, other), Some(400));
    assert_eq!(bind(&mut lab, client(1), &creds, 0x3FFF, other), Some(400));
    assert_eq!(bind(&mut lab, client(1), &creds, 0x8000, other), Some(400));

    // Keep the allocation alive; let the channel lapse.
    lab.advance(299);
    assert_eq!(permission(&mut lab, client(1), &creds, peer()), None);
    let resp = lab.exchange(
        client(1),
        &request(REFRESH, vec![LifeTime::new(3600).into()], Some(&creds)),
    );
    assert_eq!(resp[0].class(), MessageClass::SuccessResponse);
    lab.advance(302);
    assert_eq!(lab.server.channels_active(lab.now), 0);
    assert!(lab.server.handle_client(lab.now, client(1), &cd).is_none());
    assert!(lab.server.stats().drops[stats::Drop::NoChannel as usize] >= 1);
    // During the cool-down the number cannot go to another peer.
    assert_eq!(bind(&mut lab, client(1), &creds, 0x4001, other), Some(400));
    lab.advance(300);
    assert_eq!(bind(&mut lab, client(1), &creds, 0x4001, other), None);
}

#[test]
fn loopback_peers_refused_by_default_allowed_by_list() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    lab.allocate(client(1), &mut creds);
    let lo: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    assert_eq!(permission(&mut lab, client(1), &creds, lo), Some(403));
    assert_eq!(bind(&mut lab, client(1), &creds, 0x4000, lo), Some(403));
    let private: SocketAddr = "10.1.1.1:9999".parse().unwrap();
    assert_eq!(permission(&mut lab, client(1), &creds, private), Some(403));
    let own: SocketAddr = "192.0.2.10:3478".parse().unwrap();
    assert_eq!(permission(&mut lab, client(1), &creds, own), Some(403));

    let mut cfg = config();
    cfg.allowed_peers = vec!["127.0.0.0/8".parse().unwrap()];
    let mut lab = Lab::new(cfg);
    let mut creds = lab.rest("p", 3600);
    lab.allocate(client(1), &mut creds);
    assert_eq!(permission(&mut lab, client(1), &creds, lo), None);
    assert_eq!(permission(&mut lab, client(1), &creds, private), Some(403));
}

#[test]
fn ipv6_allocations_need_an_ipv6_relay_address() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    let challenge = lab.exchange(client(1), &request(ALLOCATE, vec![udp()], None));
    creds.nonce = nonce_of(&challenge[0]);
    let v6 = RequestedAddressFamily::new(stun_rs::AddressFamily::IPv6);
    let resp = lab.exchange(
        client(1),
        &request(ALLOCATE, vec![udp(), v6.clone().into()], Some(&creds)),
    );
    assert_eq!(error_code(&resp[0]), Some(440));

    let mut cfg = config();
    cfg.relay_v6 = Some("2001:db8::10".parse().unwrap());
    let mut lab = Lab::new(cfg);
    let mut creds = lab.rest("p", 3600);
    let challenge = lab.exchange(client(1), &request(ALLOCATE, vec![udp()], None));
    creds.nonce = nonce_of(&challenge[0]);
    let resp = lab.exchange(
        client(1),
        &request(ALLOCATE, vec![udp(), v6.into()], Some(&creds)),
    );
    let relayed = *resp[0]
        .get::<XorRelayedAddress>()
        .unwrap()
        .as_xor_relayed_address()
        .unwrap()
        .socket_address();
    assert!(relayed.is_ipv6());
    // An IPv4 peer on an IPv6 allocation: 443.
    assert_eq!(permission(&mut lab, client(1), &creds, peer()), Some(443));
}

#[test]
fn failed_socket_bind_tries_another_port_then_gives_508() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    let challenge = lab.exchange(client(1), &request(ALLOCATE, vec![udp()], None));
    creds.nonce = nonce_of(&challenge[0]);
    lab.server.handle_client(
        lab.now,
        client(1),
        &request(ALLOCATE, vec![udp()], Some(&creds)),
    );
    // First bind fails, the retry succeeds.
    lab.open_all(false);
    lab.open_all(true);
    let resp = lab.responses();
    assert_eq!(resp[0].class(), MessageClass::SuccessResponse);

    let mut creds = lab.rest("q", 3600);
    creds.nonce = nonce_of(&challenge[0]);
    let free = lab.server.ports.available();
    lab.server.handle_client(
        lab.now,
        client(2),
        &request(ALLOCATE, vec![udp()], Some(&creds)),
    );
    for _ in 0..8 {
        lab.open_all(false);
    }
    let resp = lab.responses();
    assert_eq!(error_code(&resp[0]), Some(508));
    assert_eq!(lab.server.allocations_active(), 1);
    assert_eq!(lab.server.ports.available(), free, "ports all returned");
}

#[test]
fn tcp_close_ends_allocation() {
    let mut lab = Lab::new(config());
    let mut tcp = client(1);
    tcp.transport = Transport::Tcp;
    let mut creds = lab.rest("p", 3600);
    lab.allocate(tcp, &mut creds);
    assert_eq!(lab.server.allocations_active(), 1);
    lab.server.handle_client_closed(tcp);
    assert_eq!(lab.server.allocations_active(), 0);
}

#[test]
fn bandwidth_cap_drops_excess() {
    let mut cfg = config();
    cfg.bandwidth_bps = Some(1000);
    let mut lab = Lab::new(cfg);
    let mut creds = lab.rest("p", 3600);
    lab.allocate(client(1), &mut creds);
    let id = lab.alloc_id(client(1));
    assert_eq!(bind(&mut lab, client(1), &creds, 0x4000, peer()), None);
    let cd = channel_data(0x4000, &[0u8; 400]);
    let passed = (0..5)
        .filter(|_| lab.server.handle_client(lab.now, client(1), &cd).is_some())
        .count();
    assert_eq!(passed, 2);
    assert!(from_peer(&mut lab, id, peer(), &[0u8; 400]).is_none());
    lab.advance(1);
    assert!(lab.server.handle_client(lab.now, client(1), &cd).is_some());
    assert_eq!(lab.server.stats().drops[stats::Drop::Bandwidth as usize], 4);
}

#[test]
fn flood_of_unauthenticated_allocates_is_rate_limited() {
    let mut lab = Lab::new(config());
    let raw = request(ALLOCATE, vec![udp()], None);
    for _ in 0..1000 {
        lab.server.handle_client(lab.now, client(1), &raw);
    }
    let answered = lab.responses().len();
    assert_eq!(answered, 20, "the burst is answered, the rest dropped");
    assert_eq!(
        lab.server.stats().drops[stats::Drop::RateLimited as usize],
        980
    );
    assert_eq!(lab.server.allocations_active(), 0);
    // Another source is unaffected.
    let mut elsewhere = client(2);
    elsewhere.client = "198.51.100.2:5000".parse().unwrap();
    assert_eq!(lab.exchange(elsewhere, &raw).len(), 1);
}

#[test]
fn binding_answers_with_xor_mapped_address() {
    let mut lab = Lab::new(config());
    let resp = lab.exchange(client(5), &request(BINDING, vec![], None));
    let mapped = *resp[0]
        .get::<XorMappedAddress>()
        .unwrap()
        .as_xor_mapped_address()
        .unwrap()
        .socket_address();
    assert_eq!(mapped, client(5).client);
    assert_eq!(lab.server.stats().binding_requests, 1);
}

#[test]
fn forged_and_truncated_packets_are_dropped_and_counted() {
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    lab.allocate(client(1), &mut creds);
    let mut raw = request(REFRESH, vec![], Some(&creds));
    // Wrong fingerprint.
    let n = raw.len();
    raw[n - 1] ^= 0xff;
    assert!(lab.exchange(client(1), &raw).is_empty());
    // Wrong integrity (fingerprint recomputed so only the HMAC is wrong).
    let mut forged = creds_with_password(&creds, "guess");
    forged.nonce = creds.nonce.clone();
    let resp = lab.exchange(client(1), &request(REFRESH, vec![], Some(&forged)));
    assert_eq!(error_code(&resp[0]), Some(401));
    // Truncated.
    let good = request(REFRESH, vec![], Some(&creds));
    assert!(lab.exchange(client(1), &good[..good.len() - 3]).is_empty());
    // ChannelData for an unknown 5-tuple, garbage bytes.
    assert!(
        lab.server
            .handle_client(lab.now, client(9), &channel_data(0x4000, b"x"))
            .is_none()
    );
    assert!(
        lab.server
            .handle_client(lab.now, client(1), &[0xff; 10])
            .is_none()
    );
    let s = lab.server.stats();
    assert_eq!(s.drops[stats::Drop::BadFingerprint as usize], 1);
    assert!(s.drops[stats::Drop::Malformed as usize] >= 2);
    assert_eq!(s.drops[stats::Drop::NoAllocation as usize], 1);
    assert_eq!(
        s.auth_failures[stats::AuthFailure::BadIntegrity as usize],
        1
    );
}

fn creds_with_password(c: &Creds, password: &str) -> Creds {
    Creds {
        username: c.username.clone(),
        password: password.into(),
        nonce: c.nonce.clone(),
    }
}

proptest! {
    #[test]
    fn arbitrary_client_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut lab = Lab::new(config());
        let mut creds = lab.rest("p", 3600);
        lab.allocate(client(1), &mut creds);
        let id = lab.alloc_id(client(1));
        let _ = lab.server.handle_client(lab.now, client(1), &bytes);
        let _ = lab.server.handle_client(lab.now, client(2), &bytes);
        let mut buf = vec![0u8; PEER_HEADROOM + bytes.len() + 3];
        buf[PEER_HEADROOM..PEER_HEADROOM + bytes.len()].copy_from_slice(&bytes);
        let _ = lab.server.handle_peer(lab.now, id, peer(), &mut buf, bytes.len());
        lab.responses();
    }

    #[test]
    fn mutated_requests_never_panic(flip in 0usize..120, value: u8) {
        let mut lab = Lab::new(config());
        let mut creds = lab.rest("p", 3600);
        lab.allocate(client(1), &mut creds);
        let mut raw = request(
            CHANNEL_BIND,
            vec![ChannelNumber::new(0x4000).into(), XorPeerAddress::from(peer()).into()],
            Some(&creds),
        );
        let i = flip % raw.len();
        raw[i] = value;
        let _ = lab.server.handle_client(lab.now, client(1), &raw);
        lab.open_all(true);
        lab.responses();
    }
}

#[test]
fn even_port_reservation_is_claimed_by_token() {
    use stun_rs::attributes::turn::{EvenPort, ReservationToken};
    let mut lab = Lab::new(config());
    let mut creds = lab.rest("p", 3600);
    let challenge = lab.exchange(client(1), &request(ALLOCATE, vec![udp()], None));
    creds.nonce = nonce_of(&challenge[0]);
    let free = lab.server.ports.available();
    let raw = request(
        ALLOCATE,
        vec![udp(), EvenPort::new(true).into()],
        Some(&creds),
    );
    let resp = lab.exchange(client(1), &raw);
    let rtp = *resp[0]
        .get::<XorRelayedAddress>()
        .unwrap()
        .as_xor_relayed_address()
        .unwrap()
        .socket_address();
    assert_eq!(rtp.port() % 2, 0);
    let token = resp[0]
        .get::<ReservationToken>()
        .unwrap()
        .as_reservation_token()
        .unwrap()
        .token()
        .to_vec();
    assert_eq!(lab.server.ports.available(), free - 2);
    let token: [u8; 8] = token.try_into().unwrap();
    let raw = request(
        ALLOCATE,
        vec![udp(), ReservationToken::from(token).into()],
        Some(&creds),
    );
    let resp = lab.exchange(client(2), &raw);
    let rtcp = *resp[0]
        .get::<XorRelayedAddress>()
        .unwrap()
        .as_xor_relayed_address()
        .unwrap()
        .socket_address();
    assert_eq!(rtcp.port(), rtp.port() + 1);
    // The token is single use.
    let resp = lab.exchange(
        client(3),
        &request(
            ALLOCATE,
            vec![udp(), ReservationToken::from(token).into()],
            Some(&creds),
        ),
    );
    assert_eq!(error_code(&resp[0]), Some(508));

    // An unclaimed reservation returns its port after 30 s.
    let raw = request(
        ALLOCATE,
        vec![udp(), EvenPort::new(true).into()],
        Some(&creds),
    );
    lab.exchange(client(4), &raw);
    let before = lab.server.ports.available();
    lab.advance(31);
    assert_eq!(lab.server.ports.available(), before + 1);
}
