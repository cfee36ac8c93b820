//! Bad input: malformed STUN and signalling, unknown transactions, floods.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use supernode_proto::signal::{Envelope, Message};

use super::sim::{Sim, config, server};
use crate::core::{Core, DropReason, Transport};

#[test]
fn malformed_messages_are_dropped_and_counted() {
    let mut sim = Sim::new(config());
    let from: SocketAddr = "198.51.100.1:1".parse().unwrap();
    sim.inject(from, b"hello, world");
    sim.inject(from, &[0, 1, 0, 0]);
    // A STUN header claiming more attributes than present.
    let mut truncated = vec![0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42];
    truncated.extend_from_slice(&[0; 12]);
    sim.inject(from, &truncated);
    // A signalling message with a garbage body.
    let mut bad = Envelope::request([1; 12], Message::Keepalive { session: [0; 16] })
        .unwrap()
        .encode()
        .unwrap();
    bad[24] = 0xff;
    sim.inject(from, &bad);
    // A response to a transaction we never started.
    let stray = Envelope::response(
        supernode_proto::signal::Method::Punch,
        [9; 12],
        Message::Ack {
            session: [0; 16],
            connect_id: 1,
        },
    );
    sim.inject(from, &stray.encode().unwrap());
    let s = sim.core.stats();
    assert_eq!(s.drops(DropReason::NotStun), 1);
    assert_eq!(s.drops(DropReason::MalformedStun), 2);
    assert_eq!(s.drops(DropReason::MalformedSignal), 1);
    assert_eq!(s.drops(DropReason::UnknownTransaction), 1);
    assert!(sim.core.poll_transmit().is_none(), "no answer to garbage");
}

#[test]
fn floods_from_one_ip_are_cut_off_and_recover() {
    let mut sim = Sim::new(config());
    let hello = Envelope::request(
        [1; 12],
        Message::Register {
            peer: supernode_proto::identity::Keypair::from_seed([1; 32]).peer_id(),
            proof: None,
        },
    )
    .unwrap()
    .encode()
    .unwrap();
    let from: SocketAddr = "198.51.100.1:1".parse().unwrap();
    for _ in 0..1000 {
        sim.inject(from, &hello);
    }
    // Burst of 200 answered (statelessly), the rest dropped.
    assert_eq!(sim.core.stats().drops(DropReason::RateLimitedIp), 800);
    let mut answered = 0;
    while sim.core.poll_transmit().is_some() {
        answered += 1;
    }
    assert_eq!(answered, 200);
    // Another IP is unaffected; the flooder recovers at the configured rate.
    sim.inject("198.51.100.2:1".parse().unwrap(), &hello);
    assert!(sim.core.poll_transmit().is_some());
    sim.run_for(Duration::from_secs(1));
    sim.inject(from, &hello);
    assert!(sim.core.poll_transmit().is_some());
}

#[test]
fn source_ip_table_is_bounded() {
    let mut cfg = config();
    cfg.max_tracked_ips = 100;
    let mut sim = Sim::new(cfg);
    for i in 0..300u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        sim.inject(SocketAddr::from((ip, 1)), b"x");
    }
    assert_eq!(sim.core.stats().drops(DropReason::IpTableFull), 200);
    assert_eq!(sim.core.stats().drops(DropReason::NotStun), 100);
    // Idle buckets are swept; new sources get room again.
    sim.run_for(Duration::from_secs(5));
    sim.inject("10.9.9.9:1".parse().unwrap(), b"x");
    assert_eq!(sim.core.stats().drops(DropReason::NotStun), 101);
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20),
        stunlike in any::<bool>(),
    ) {
        let t0 = std::time::Instant::now();
        let mut core = Core::new(config(), t0, 0);
        let from: SocketAddr = "198.51.100.1:1".parse().unwrap();
        for mut d in datagrams {
            if stunlike && d.len() >= 20 {
                // Make it pass the cheap header checks so the decoders see it.
                d[0] &= 0x03;
                d[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes());
                let len = ((d.len() - 20) / 4 * 4) as u16;
                d.truncate(20 + usize::from(len));
                d[2..4].copy_from_slice(&len.to_be_bytes());
            }
            core.handle_datagram(t0, Transport::Udp { local: server() }, from, &d);
        }
        while core.poll_transmit().is_some() {}
        core.handle_timeout(t0 + Duration::from_secs(60));
    }
}
