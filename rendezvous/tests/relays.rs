//! The relay directory over real sockets: a relay (the proto announcer, as the relay binary
//! embeds it) announces itself; a peer gets TURN REST credentials bound to its id and the relay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Node;
use supernode_proto::credentials::{RestUsername, rest_password};
use supernode_proto::identity::Keypair;
use supernode_proto::signal::announce::{self, Announcer};
use supernode_proto::signal::client::{self, Client, Event};
use supernode_proto::signal::message::Load;
use supernode_proto::signal::{RelayAddr, RelayTransport};
use tokio::net::UdpSocket;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn announce_once(server: SocketAddr, secret: &[u8]) -> announce::Event {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = announce::Config {
        relay_id: "relay-1".into(),
        secret: secret.to_vec(),
        addrs: vec![RelayAddr {
            transport: RelayTransport::Udp,
            addr: "127.0.0.1:3478".parse().unwrap(),
        }],
        interval: Duration::from_secs(10),
        rto: Duration::from_millis(200),
    };
    let mut a = Announcer::new(config, Instant::now(), unix_ms());
    a.set_load(Load {
        allocations: 25,
        capacity: 100,
        bandwidth_bps: 1_000_000,
    });
    let mut buf = [0u8; 1500];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(e) = a.poll_event() {
                return e;
            }
            while let Some(bytes) = a.poll_transmit() {
                sock.send_to(&bytes, server).await.unwrap();
            }
            let at = a.poll_timeout();
            tokio::select! {
                r = sock.recv_from(&mut buf) => {
                    let (n, _) = r.unwrap();
                    a.handle_input(Instant::now(), &buf[..n]);
                }
                () = tokio::time::sleep_until(at.into()) => a.handle_timeout(Instant::now()),
            }
        }
    })
    .await
    .expect("announcement answered")
}

#[tokio::test]
async fn relays_announce_and_peers_get_credentials() {
    let node = Node::start(false, |c| c.relay_secret = Some("relay-secret".into())).await;
    let server = node.primary();
    assert_eq!(
        announce_once(server, b"wrong").await,
        announce::Event::Refused(supernode_proto::signal::ErrorCode::BadMac)
    );
    assert!(matches!(
        announce_once(server, b"relay-secret").await,
        announce::Event::Acked { .. }
    ));
    node.wait_metric("rendezvous_relays", 1.0).await;
    node.wait_metric("rendezvous_relay_load_permille{relay=\"relay-1\"}", 250.0)
        .await;

    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let key = Keypair::from_seed([6; 32]);
    let id = key.peer_id();
    let mut c = Client::new(
        key,
        server,
        client::Config::default(),
        Instant::now(),
        unix_ms(),
    );
    c.register(Instant::now());
    let mut buf = [0u8; 1500];
    let relays = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            while let Some(e) = c.poll_event() {
                match e {
                    Event::Registered { .. } => c.request_relays(Instant::now(), vec![]).unwrap(),
                    Event::Relays { .. } => return e,
                    _ => {}
                }
            }
            while let Some(bytes) = c.poll_transmit() {
                sock.send_to(&bytes, server).await.unwrap();
            }
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            c.handle_input(Instant::now(), from, &buf[..n]);
        }
    })
    .await
    .expect("relays answer");
    let Event::Relays {
        username,
        password,
        ttl_secs,
        relays,
    } = relays
    else {
        unreachable!()
    };
    let parsed = RestUsername::parse(&username).unwrap();
    assert_eq!(
        parsed.user,
        id.to_string(),
        "credentials bound to the peer id"
    );
    assert!(parsed.is_valid_at(unix_ms() / 1000));
    assert_eq!(ttl_secs, 3600);
    assert_eq!(password, rest_password(b"relay-secret", &username));
    assert_eq!(relays.len(), 1);
    assert_eq!(relays[0].id, "relay-1");
    assert_eq!(relays[0].load_permille, 250);

    // The peer reports what its discovery found; the node counts the class.
    use supernode_proto::signal::NatBehaviour::{AddressDependent, EndpointIndependent};
    c.report_nat(Instant::now(), EndpointIndependent, AddressDependent)
        .unwrap();
    while let Some(bytes) = c.poll_transmit() {
        sock.send_to(&bytes, server).await.unwrap();
    }
    node.wait_metric(
        "rendezvous_nat_reported_total{mapping=\"endpoint-independent\",filtering=\"address-dependent\"}",
        1.0,
    )
    .await;
    node.stop().await;
}
