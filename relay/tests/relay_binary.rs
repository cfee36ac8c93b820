//! `supernode-relay` as a process on loopback: live metrics, the peer address policy, and bad
//! input from the network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Relay, TurnClient, metric};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use supernode_proto::stun::encode;
use supernode_proto::stun_rs::attributes::stun::{
    Fingerprint, MessageIntegrity, Nonce, Realm, UserName,
};
use supernode_proto::stun_rs::attributes::turn::RequestedTrasport;
use supernode_proto::stun_rs::methods::{ALLOCATE, BINDING, REFRESH};
use supernode_proto::stun_rs::{MessageClass, StunMessageBuilder};

fn peer_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind peer");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s
}

/// Polls the metrics until `ok` holds (they sync every 500 ms), or panics with the text.
fn wait_for_metrics(relay: &Relay, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = relay.scrape();
        if ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn metrics_move_while_the_allocation_is_open() {
    let relay = Relay::start((53_000, 53_099), &["--allow-peer", "127.0.0.0/8"]);
    let mut client = TurnClient::new(relay.addr(), "metrics");
    let relayed = client.allocate();
    let peer = peer_socket();
    let peer_addr = peer.local_addr().expect("addr");
    assert_eq!(client.channel_bind(0x4001, peer_addr), None);

    let mut buf = [0u8; 1500];
    for i in 0..10u8 {
        client.send_channel(0x4001, &[i; 100]);
        let (n, from) = peer.recv_from(&mut buf).expect("peer receives");
        assert_eq!(&buf[..n], &[i; 100]);
        assert_eq!(from.port(), relayed.port());
        peer.send_to(&[i + 100; 50], relayed).expect("peer replies");
        let (n, _) = client.sock.recv_from(&mut buf).expect("client receives");
        assert_eq!(&buf[..4], &[0x40, 0x01, 0, 50]);
        assert_eq!(&buf[4..n], &[i + 100; 50]);
    }

    let c2p = "supernode_relay_relayed_packets_total{direction=\"client_to_peer\"}";
    let p2c = "supernode_relay_relayed_bytes_total{direction=\"peer_to_client\"}";
    let text = wait_for_metrics(&relay, "relayed traffic", |t| {
        metric(t, c2p) == Some(10.0) && metric(t, p2c) == Some(500.0)
    });
    assert_eq!(
        metric(&text, "supernode_relay_allocations_active"),
        Some(1.0)
    );
    assert_eq!(metric(&text, "supernode_relay_channels_active"), Some(1.0));
    assert_eq!(
        metric(&text, "supernode_relay_allocations_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "supernode_relay_allocations_total{result=\"unauthorized\"}"
        ),
        Some(1.0)
    );

    // Deallocate: the gauge drops and the close is counted.
    let raw = client.request(
        REFRESH,
        vec![supernode_proto::stun_rs::attributes::turn::LifeTime::new(0).into()],
        true,
    );
    assert_eq!(client.transact(&raw).class(), MessageClass::SuccessResponse);
    wait_for_metrics(&relay, "the allocation closing", |t| {
        metric(t, "supernode_relay_allocations_active") == Some(0.0)
            && metric(t, "supernode_relay_allocations_closed_total") == Some(1.0)
    });
}

#[test]
fn loopback_peers_need_the_allow_list() {
    let peer = peer_socket();
    let peer_addr = peer.local_addr().expect("addr");

    let relay = Relay::start((53_100, 53_149), &[]);
    let mut client = TurnClient::new(relay.addr(), "policy");
    client.allocate();
    assert_eq!(client.create_permission(peer_addr), Some(403));
    assert_eq!(client.channel_bind(0x4000, peer_addr), Some(403));
    client.send_channel(0x4000, b"must not arrive");
    let private: SocketAddr = "10.0.0.1:9".parse().expect("addr");
    assert_eq!(client.create_permission(private), Some(403));
    drop(relay);

    let relay = Relay::start((53_150, 53_199), &["--allow-peer", "127.0.0.0/8"]);
    let mut client = TurnClient::new(relay.addr(), "policy");
    client.allocate();
    assert_eq!(client.create_permission(peer_addr), None);
    assert_eq!(client.channel_bind(0x4000, peer_addr), None);
    client.send_channel(0x4000, b"allowed");
    let mut buf = [0u8; 64];
    let (n, _) = peer
        .recv_from(&mut buf)
        .expect("peer receives only with the allow-list");
    assert_eq!(&buf[..n], b"allowed");
    // The allow-list is for loopback only; private ranges stay refused.
    assert_eq!(client.create_permission(private), Some(403));
}

#[test]
fn bad_input_is_dropped_counted_and_bounded() {
    let relay = Relay::start((53_200, 53_299), &["--allow-peer", "127.0.0.0/8"]);
    let mut client = TurnClient::new(relay.addr(), "victim");
    client.allocate();
    let pid = relay.pid();
    let rss_before = rss_kib(pid);

    let attacker = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let target = relay.addr();
    // Truncated STUN, random bytes, oversize datagrams.
    let binding =
        encode(&StunMessageBuilder::new(BINDING, MessageClass::Request).build()).expect("encode");
    attacker.send_to(&binding[..12], target).expect("send");
    let mut state = 0x1234_5678_u64;
    for _ in 0..2000 {
        let mut junk = [0u8; 64];
        for b in &mut junk {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        junk[0] &= 0x03; // looks like STUN, so it reaches the decoder
        attacker.send_to(&junk, target).expect("send");
    }
    attacker
        .send_to(&vec![0x00; 60_000], target)
        .expect("send oversize");
    // A forged Allocate: right shape, wrong key; and one with a corrupted FINGERPRINT.
    let forged = encode(
        &StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
            .with_attribute(RequestedTrasport::from(
                supernode_proto::stun_rs::protocols::UDP,
            ))
            .with_attribute(UserName::new("4102444800:mallory").expect("u"))
            .with_attribute(Realm::new(common::REALM).expect("r"))
            .with_attribute(Nonce::new("0000000000000000deadbeef").expect("n"))
            .with_attribute(MessageIntegrity::new(
                supernode_proto::credentials::long_term_key(
                    "4102444800:mallory",
                    "supernode",
                    "guess",
                )
                .expect("key"),
            ))
            .with_attribute(Fingerprint::default())
            .build(),
    )
    .expect("encode");
    attacker.send_to(&forged, target).expect("send");
    let mut bad_fp = forged.clone();
    let n = bad_fp.len();
    bad_fp[n - 1] ^= 0xff;
    attacker.send_to(&bad_fp, target).expect("send");
    // A flood of unauthenticated Allocates.
    let allocate = encode(
        &StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
            .with_attribute(RequestedTrasport::from(
                supernode_proto::stun_rs::protocols::UDP,
            ))
            .build(),
    )
    .expect("encode");
    let start = Instant::now();
    let mut sent = 0;
    while sent < 30_000 && start.elapsed() < Duration::from_secs(5) {
        let _ = attacker.send_to(&allocate, target);
        sent += 1;
    }

    let text = wait_for_metrics(&relay, "drop counters", |t| {
        let drops = |r: &str| {
            metric(
                t,
                &format!("supernode_relay_dropped_packets_total{{reason=\"{r}\"}}"),
            )
            .unwrap_or(0.0)
        };
        drops("malformed") >= 1.0 && drops("bad_fingerprint") >= 1.0 && drops("rate_limited") >= 1.0
    });
    assert!(metric(&text, "supernode_relay_rate_limited_total").unwrap_or(0.0) > 0.0);
    assert!(
        metric(
            &text,
            "supernode_relay_auth_failures_total{reason=\"stale_nonce\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the forged nonce was refused"
    );

    // Still serving: the victim's allocation works and memory stayed bounded.
    let peer = peer_socket();
    assert_eq!(
        client.create_permission(peer.local_addr().expect("addr")),
        None
    );
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB under {sent} hostile packets"
    );
}
