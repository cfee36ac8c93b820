//! TURN over TLS (RFC 8656 §3.1), end to end against the relay's TLS listener.
//!
//! Each test makes a self-signed certificate with rcgen, starts the relay in-process with only
//! a TLS listener on `127.0.0.1:0`, and speaks TURN over a rustls client that trusts exactly
//! that certificate. Messages are built with stun-rs and framed on the stream by hand, as any
//! TURN-over-TLS client would. One test relays both ways (Send/Data indications, padded
//! ChannelData) and ends the allocation by closing the connection; the other checks stream
//! framing across and within TLS records and that hostile connections are closed alone.
//! Everything stays on loopback; every read has a deadline.

// Helpers outside #[test] functions unwrap too: any failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prometheus_client::registry::Registry;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use supernode_proto::credentials::{Credentials, long_term_key};
use supernode_proto::stun::{check_integrity, encode};
use supernode_proto::stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, Nonce, Realm, UserName, XorMappedAddress,
};
use supernode_proto::stun_rs::attributes::turn::{
    ChannelNumber, Data, RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use supernode_proto::stun_rs::methods::{
    ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, DATA, SEND,
};
use supernode_proto::stun_rs::{
    HMACKey, MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder, TransactionId, protocols,
};
use supernode_proto::{channel_data, demux, frame};
use supernode_relay::config::{Config, Tls};
use supernode_relay::driver::{self, Handle, Options};
use supernode_relay::metrics::{Metrics, render};

/// The REST shared secret the relay is configured with.
const SECRET: &str = "tls-secret";
/// Relay ports of the relaying test; this file owns 51100-51199, disjoint from other files'.
const PORTS: (u16, u16) = (51_100, 51_149);
/// Upper bound on waiting for any one message.
const STEP: Duration = Duration::from_secs(5);
/// Granularity of blocking reads, so deadlines are checked.
const READ_SLICE: Duration = Duration::from_millis(100);

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "supernode-relay-tls-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, written as PEM into `dir`;
/// returns the certificate's DER for the client's trust store.
fn write_certificate(dir: &TempDir) -> (CertificateDer<'static>, PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = dir.0.join("cert.pem");
    let key = dir.0.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (certified.cert.der().clone(), cert, key)
}

/// Starts a relay with only a TLS listener and loopback peers allowed.
fn start_relay(cert: PathBuf, key: PathBuf, ports: (u16, u16)) -> (Handle, Arc<Registry>) {
    let mut config = Config::default();
    config.listen.udp = vec![];
    config.listen.tcp = vec![];
    config.listen.tls = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls = Some(Tls {
        cert: cert.clone(),
        key: key.clone(),
    });
    config.metrics = None;
    config.relay.min_port = ports.0;
    config.relay.max_port = ports.1;
    config.auth.secrets = vec![SECRET.into()];
    config.peers.allow = vec!["127.0.0.0/8".parse().unwrap()];
    let server_config = config.to_server_config().unwrap();
    let tls_config = driver::load_server_config(&cert, &key).unwrap();
    let (metrics, registry) = Metrics::new();
    let options = Options {
        tls_config: Some(tls_config),
        ..Options::from_config(&config)
    };
    (
        driver::spawn(server_config, options, metrics).unwrap(),
        registry,
    )
}

/// One message read off the stream.
enum Incoming {
    /// A STUN message and its raw bytes (for integrity checks).
    Stun(StunMessage, Vec<u8>),
    /// A ChannelData message: channel, payload, and the bytes it took on the stream.
    ChannelData(u16, Vec<u8>, usize),
}

/// A TURN client over TLS: a rustls stream and the bytes read but not yet framed.
struct TlsClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    rbuf: Vec<u8>,
}

impl TlsClient {
    /// Connects to `addr`, trusting only `cert`, and completes the handshake.
    fn connect(addr: SocketAddr, cert: CertificateDer<'static>) -> Self {
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect_timeout(&addr, STEP).unwrap();
        tcp.set_read_timeout(Some(READ_SLICE)).unwrap();
        tcp.set_write_timeout(Some(STEP)).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        let deadline = Instant::now() + STEP;
        while stream.conn.is_handshaking() {
            assert!(Instant::now() < deadline, "TLS handshake timed out");
            match stream.conn.complete_io(&mut stream.sock) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("TLS handshake failed: {e}"),
            }
        }
        Self {
            stream,
            rbuf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next whole message on the stream, waiting at most [`STEP`].
    fn recv(&mut self) -> Incoming {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(f) = frame::next(&self.rbuf).unwrap() {
                let bytes: Vec<u8> = self.rbuf.drain(..f.consumed).collect();
                return match f.kind {
                    demux::Kind::Stun => {
                        let (msg, _) = MessageDecoderBuilder::default()
                            .build()
                            .decode(&bytes[..f.len])
                            .unwrap();
                        Incoming::Stun(msg, bytes)
                    }
                    _ => {
                        let cd = channel_data::ChannelData::decode(&bytes[..f.len]).unwrap();
                        Incoming::ChannelData(cd.channel, cd.data.to_vec(), f.consumed)
                    }
                };
            }
            assert!(Instant::now() < deadline, "nothing arrived over TLS");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("relay closed the TLS connection"),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("TLS read failed: {e}"),
            }
        }
    }

    fn recv_stun(&mut self) -> (StunMessage, Vec<u8>) {
        match self.recv() {
            Incoming::Stun(msg, raw) => (msg, raw),
            Incoming::ChannelData(ch, ..) => panic!("expected STUN, got ChannelData on {ch:#x}"),
        }
    }

    /// Sends a request and returns its response, checking the transaction id matches.
    fn transact(&mut self, request: &[u8]) -> (StunMessage, Vec<u8>) {
        self.send(request);
        let (msg, raw) = self.recv_stun();
        assert_eq!(
            &raw[8..20],
            &request[8..20],
            "response to another transaction"
        );
        (msg, raw)
    }

    /// The 401 challenge (which must carry REALM and NONCE), then an Allocate signed with REST
    /// credentials for `user`; returns the credentials and the relayed address.
    fn allocate(&mut self, user: &str) -> (Auth, SocketAddr) {
        let transport: StunAttribute = RequestedTrasport::from(protocols::UDP).into();
        let (challenge, _) = self.transact(&request(ALLOCATE, vec![transport.clone()], None));
        assert_eq!(challenge.class(), MessageClass::ErrorResponse);
        assert_eq!(error_code(&challenge), Some(401));
        let realm = challenge.get::<Realm>().expect("401 carries REALM");
        let realm = realm.expect_realm().as_str().to_owned();
        let nonce = challenge.get::<Nonce>().expect("401 carries NONCE");
        let nonce = nonce.expect_nonce().as_str().to_owned();
        assert_eq!(realm, Config::default().realm);

        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let creds = Credentials::rest(SECRET.as_bytes(), user, now.as_secs() + 3600);
        let auth = Auth {
            key: long_term_key(&creds.username, &realm, &creds.password).unwrap(),
            username: creds.username,
            realm,
            nonce,
        };
        let (ok, raw) = self.transact(&request(ALLOCATE, vec![transport], Some(&auth)));
        assert_success(&ok, &raw, ALLOCATE, &auth);
        let relayed = ok.get::<XorRelayedAddress>().expect("XOR-RELAYED-ADDRESS");
        let relayed = *relayed.expect_xor_relayed_address().socket_address();
        (auth, relayed)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Long-term credentials as the client holds them after the 401 challenge.
struct Auth {
    username: String,
    realm: String,
    nonce: String,
    key: HMACKey,
}

/// A request with `attrs`, signed with `auth` when given, always with a FINGERPRINT.
fn request(method: MessageMethod, attrs: Vec<StunAttribute>, auth: Option<&Auth>) -> Vec<u8> {
    let mut b = StunMessageBuilder::new(method, MessageClass::Request)
        .with_transaction_id(TransactionId::default());
    for a in attrs {
        b = b.with_attribute(a);
    }
    if let Some(a) = auth {
        b = b
            .with_attribute(UserName::new(&a.username).unwrap())
            .with_attribute(Realm::new(&a.realm).unwrap())
            .with_attribute(Nonce::new(&a.nonce).unwrap())
            .with_attribute(MessageIntegrity::new(a.key.clone()));
    }
    encode(&b.with_attribute(Fingerprint::default()).build()).unwrap()
}

fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .map(|a| a.as_error_code().unwrap().error_code().error_code())
}

/// Asserts a signed success response to `method`.
fn assert_success(msg: &StunMessage, raw: &[u8], method: MessageMethod, auth: &Auth) {
    assert_eq!(msg.method(), method);
    assert_eq!(
        msg.class(),
        MessageClass::SuccessResponse,
        "error {:?}",
        error_code(msg)
    );
    check_integrity(raw, msg, &auth.key).expect("response must carry our integrity");
}

/// Receives one datagram on `sock` within [`STEP`].
fn recv_udp(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    sock.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut buf).expect("peer datagram");
    (buf[..n].to_vec(), from)
}

/// Waits up to three seconds (metrics sync every 500 ms) until every line of `want` appears
/// in the rendered metrics.
fn wait_for_lines(registry: &Registry, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = render(registry);
        if want.iter().all(|w| text.lines().any(|l| l == *w)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {want:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn turn_over_tls_allocates_and_relays_both_ways() {
    let dir = TempDir::new();
    let (cert_der, cert, key) = write_certificate(&dir);
    let (relay, registry) = start_relay(cert, key, PORTS);
    let mut client = TlsClient::connect(relay.tls[0], cert_der);

    let (auth, relayed) = client.allocate("carol");
    assert_eq!(relayed.ip(), relay.tls[0].ip());
    assert!((PORTS.0..=PORTS.1).contains(&relayed.port()), "{relayed}");

    // Permission for an allow-listed loopback peer, then a Send indication reaches it.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let peer_attr: StunAttribute = XorPeerAddress::from(peer_addr).into();
    let (ok, raw) = client.transact(&request(
        CREATE_PERMMISSION,
        vec![peer_attr.clone()],
        Some(&auth),
    ));
    assert_success(&ok, &raw, CREATE_PERMMISSION, &auth);

    let send = StunMessageBuilder::new(SEND, MessageClass::Indication)
        .with_attribute(peer_attr.clone())
        .with_attribute(Data::new(b"hello over tls"))
        .build();
    client.send(&encode(&send).unwrap());
    let (payload, from) = recv_udp(&peer);
    assert_eq!(payload, b"hello over tls");
    assert_eq!(from, relayed, "peer must see the relayed address");

    // The peer answers the relayed address; the client gets a Data indication over TLS.
    peer.send_to(b"hello back", relayed).unwrap();
    let (data, _) = client.recv_stun();
    assert_eq!(
        (data.method(), data.class()),
        (DATA, MessageClass::Indication)
    );
    let from = *data
        .get::<XorPeerAddress>()
        .expect("XOR-PEER-ADDRESS")
        .expect_xor_peer_address()
        .socket_address();
    assert_eq!(from, peer_addr);
    let body = data.get::<Data>().expect("DATA").expect_data().as_bytes();
    assert_eq!(body, b"hello back");

    // A channel: ChannelData on a stream is padded to four bytes in both directions.
    let (ok, raw) = client.transact(&request(
        CHANNEL_BIND,
        vec![ChannelNumber::new(0x4001).into(), peer_attr],
        Some(&auth),
    ));
    assert_success(&ok, &raw, CHANNEL_BIND, &auth);
    let mut cd = [0u8; 12];
    channel_data::ChannelData {
        channel: 0x4001,
        data: b"abcde",
    }
    .encode(&mut cd)
    .unwrap();
    client.send(&cd);
    let (payload, from) = recv_udp(&peer);
    assert_eq!(payload, b"abcde", "padding must not reach the peer");
    assert_eq!(from, relayed);
    peer.send_to(b"vwxyz", relayed).unwrap();
    match client.recv() {
        Incoming::ChannelData(channel, data, consumed) => {
            assert_eq!(channel, 0x4001);
            assert_eq!(data, b"vwxyz");
            assert_eq!(consumed, 12, "ChannelData on a stream is padded");
        }
        Incoming::Stun(msg, _) => panic!("expected ChannelData, got {:?}", msg.method()),
    }
    // Nothing was left over on the stream after the padded frame.
    assert!(client.rbuf.is_empty());

    // The TLS connection and the relayed packets show in the metrics.
    wait_for_lines(
        &registry,
        &[
            "supernode_relay_connections_total{transport=\"tls\"} 1",
            "supernode_relay_relayed_packets_total{direction=\"client_to_peer\"} 2",
            "supernode_relay_relayed_packets_total{direction=\"peer_to_client\"} 2",
        ],
    );

    // Over a stream the allocation lives as long as the connection (RFC 8656 §3.1).
    drop(client);
    wait_for_lines(
        &registry,
        &[
            "supernode_relay_allocations_active 0",
            "supernode_relay_allocations_closed_total 1",
            "supernode_relay_connections_active 0",
        ],
    );
    relay.shutdown().unwrap();
}

/// True if the other side closes the stream within `within` (EOF or a reset); data that
/// arrives meanwhile is discarded.
fn closed_within(stream: &mut impl Read, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A Binding request answered on `client`: XOR-MAPPED-ADDRESS is the client's TCP address.
fn assert_binding_answer(client: &mut TlsClient, request: &[u8]) {
    let (msg, raw) = client.recv_stun();
    assert_eq!(
        &raw[8..20],
        &request[8..20],
        "answers come in request order"
    );
    assert_eq!(
        (msg.method(), msg.class()),
        (BINDING, MessageClass::SuccessResponse)
    );
    let mapped = msg.get::<XorMappedAddress>().expect("XOR-MAPPED-ADDRESS");
    let mapped = *mapped.expect_xor_mapped_address().socket_address();
    assert_eq!(mapped, client.stream.sock.local_addr().unwrap());
}

#[test]
fn tls_framing_holds_and_hostile_connections_close_alone() {
    let dir = TempDir::new();
    let (cert_der, cert, key) = write_certificate(&dir);
    let (relay, registry) = start_relay(cert, key, (51_150, 51_199));
    let addr = relay.tls[0];
    let mut good = TlsClient::connect(addr, cert_der.clone());
    let (auth, _) = good.allocate("ivan");

    // One message split across two TLS records is reassembled.
    let binding = request(BINDING, vec![], None);
    good.send(&binding[..7]);
    std::thread::sleep(Duration::from_millis(50));
    good.send(&binding[7..]);
    assert_binding_answer(&mut good, &binding);
    // Two messages in one record are both answered, in order.
    let (first, second) = (
        request(BINDING, vec![], None),
        request(BINDING, vec![], None),
    );
    good.send(&[first.as_slice(), second.as_slice()].concat());
    assert_binding_answer(&mut good, &first);
    assert_binding_answer(&mut good, &second);

    // Plaintext STUN on the TLS port: the handshake fails and the connection is closed.
    let mut plain = TcpStream::connect_timeout(&addr, STEP).unwrap();
    plain.set_read_timeout(Some(READ_SLICE)).unwrap();
    plain.write_all(&binding).unwrap();
    assert!(
        closed_within(&mut plain, STEP),
        "plaintext connection left open"
    );
    // Bytes that are neither STUN nor ChannelData inside TLS: that connection is closed.
    let mut garbage = TlsClient::connect(addr, cert_der.clone());
    garbage.send(&[0xFF; 64]);
    assert!(
        closed_within(&mut garbage.stream, STEP),
        "garbage connection left open"
    );
    // Half a message is kept waiting for the rest, and blocks nobody.
    let mut partial = TlsClient::connect(addr, cert_der);
    partial.send(&request(BINDING, vec![], None)[..10]);
    assert!(
        !closed_within(&mut partial.stream, Duration::from_millis(300)),
        "a connection holding half a message must stay open"
    );

    // The well-behaved client's allocation is untouched by all of that.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_attr: StunAttribute = XorPeerAddress::from(peer.local_addr().unwrap()).into();
    let (ok, raw) = good.transact(&request(CREATE_PERMMISSION, vec![peer_attr], Some(&auth)));
    assert_success(&ok, &raw, CREATE_PERMMISSION, &auth);
    wait_for_lines(
        &registry,
        &[
            "supernode_relay_connections_total{transport=\"tls\"} 4",
            "supernode_relay_connections_active 2",
            "supernode_relay_allocations_active 1",
            // Bad input on a stream is counted: the failed handshake and the framing error.
            "supernode_relay_connections_closed_total{reason=\"tls_error\"} 1",
            "supernode_relay_connections_closed_total{reason=\"framing\"} 1",
        ],
    );
    drop((good, partial));
    relay.shutdown().unwrap();
}
