//! A full connect exchange between simulated peers, and its failure modes.

use std::time::{Duration, Instant};

use supernode_proto::identity::Keypair;
use supernode_proto::signal::client::Event as ClientEvent;
use supernode_proto::signal::{ErrorCode, Method};

use super::sim::{Sim, candidate, config};
use crate::core::{ConnectOutcome, DropReason};

fn punch_at(events: &[ClientEvent]) -> Option<Instant> {
    events.iter().find_map(|e| match e {
        ClientEvent::Punch { at, .. } => Some(*at),
        _ => None,
    })
}

#[test]
fn connect_exchanges_candidates_and_synchronises_punch() {
    let mut sim = Sim::new(config());
    // Very different latencies: 5 ms and 60 ms one way.
    let a = sim.add_peer(1, "198.51.100.1:40000", 5);
    let b = sim.add_peer(2, "203.0.113.2:50000", 60);
    sim.register_all();
    let (ida, idb) = (sim.peers[a].client.peer_id(), sim.peers[b].client.peer_id());
    let now = sim.now;
    let cand_a = candidate("198.51.100.1:40000".parse().unwrap());
    sim.peers[a].client.connect(now, idb, vec![cand_a]).unwrap();
    sim.run_for(Duration::from_secs(2));

    // B was offered A's candidates; A got B's in the acceptance.
    assert!(sim.peers[b].events.iter().any(|e| matches!(e,
        ClientEvent::Offer { from, candidates, .. } if *from == ida && candidates == &[cand_a])));
    let cand_b = candidate("203.0.113.2:50000".parse().unwrap());
    assert!(
        sim.peers[a].events.iter().any(|e| matches!(e,
        ClientEvent::Accepted { peer, candidates, .. } if *peer == idb && candidates == &[cand_b]))
    );
    assert!(sim.peers[a].events.iter().any(|e| matches!(e,
        ClientEvent::ConnectSent { target, .. } if *target == idb)));

    // Both start probing within a few milliseconds of each other.
    let go_a = punch_at(&sim.peers[a].events).expect("A told to punch");
    let go_b = punch_at(&sim.peers[b].events).expect("B told to punch");
    let skew = if go_a > go_b {
        go_a - go_b
    } else {
        go_b - go_a
    };
    assert!(skew <= Duration::from_millis(3), "skew {skew:?}");
    assert_eq!(sim.core.stats().punches, 1);
    assert_eq!(sim.core.stats().connects(ConnectOutcome::Punched), 1);
    // Everything was acknowledged: the attempt is gone, nothing is retransmitted.
    assert_eq!(sim.core.attempts.in_flight(), (0, 0));
}

#[test]
fn lost_punch_is_retransmitted_with_a_shorter_delay() {
    let mut cfg = config();
    cfg.punch_margin = Duration::from_millis(400);
    let mut sim = Sim::new(cfg);
    let a = sim.add_peer(1, "198.51.100.1:40000", 10);
    let b = sim.add_peer(2, "203.0.113.2:50000", 10);
    sim.register_all();
    let idb = sim.peers[b].client.peer_id();
    let now = sim.now;
    sim.peers[a].client.connect(now, idb, vec![]).unwrap();
    // The punches leave at 50 ms; B is unreachable from 45 to 145 ms, so its first is lost
    // and only the retransmission (at 300 ms, with a shorter delay) reaches it.
    sim.run_for(Duration::from_millis(45));
    sim.peers[b].silent = true;
    sim.run_for(Duration::from_millis(100));
    sim.peers[b].silent = false;
    sim.run_for(Duration::from_secs(2));
    let go_a = punch_at(&sim.peers[a].events).expect("A told to punch");
    let go_b = punch_at(&sim.peers[b].events).expect("B told to punch late");
    assert_eq!(go_a - now, Duration::from_millis(460));
    let skew = if go_a > go_b {
        go_a - go_b
    } else {
        go_b - go_a
    };
    assert!(skew <= Duration::from_millis(3), "skew {skew:?}");
}

#[test]
fn refusal_and_unknown_peer_are_explicit() {
    let mut sim = Sim::new(config());
    let a = sim.add_peer(1, "198.51.100.1:40000", 10);
    let b = sim.add_peer(2, "203.0.113.2:50000", 10);
    sim.peers[b].accept = Some(false);
    sim.register_all();
    let idb = sim.peers[b].client.peer_id();
    let now = sim.now;
    sim.peers[a].client.connect(now, idb, vec![]).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(sim.peers[a].events.iter().any(|e| matches!(e,
        ClientEvent::Refused { peer, code: ErrorCode::Refused, .. } if *peer == idb)));
    assert_eq!(punch_at(&sim.peers[a].events), None);
    assert_eq!(sim.core.stats().connects(ConnectOutcome::Refused), 1);

    let nobody = Keypair::from_seed([77; 32]).peer_id();
    let now = sim.now;
    sim.peers[a].client.connect(now, nobody, vec![]).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(sim.peers[a].events.iter().any(|e| matches!(e,
        ClientEvent::Failed { method: Method::Connect, target: Some(t), code: Some(ErrorCode::UnknownPeer) } if *t == nobody)));
    assert_eq!(sim.core.stats().connects(ConnectOutcome::UnknownPeer), 1);
}

#[test]
fn silent_callee_times_out_explicitly() {
    let mut sim = Sim::new(config());
    let a = sim.add_peer(1, "198.51.100.1:40000", 10);
    let b = sim.add_peer(2, "203.0.113.2:50000", 10);
    sim.peers[b].accept = None; // the application never answers
    sim.register_all();
    let idb = sim.peers[b].client.peer_id();
    let now = sim.now;
    sim.peers[a].client.connect(now, idb, vec![]).unwrap();
    sim.run_for(Duration::from_secs(12));
    assert!(sim.peers[a].events.iter().any(|e| matches!(
        e,
        ClientEvent::Refused {
            code: ErrorCode::Timeout,
            ..
        }
    )));
    assert_eq!(sim.core.stats().connects(ConnectOutcome::Timeout), 1);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.core.attempts.in_flight(), (0, 0));
}

#[test]
fn connect_floods_are_rate_limited_per_peer() {
    let mut sim = Sim::new(config());
    let a = sim.add_peer(1, "198.51.100.1:40000", 10);
    let b = sim.add_peer(2, "203.0.113.2:50000", 10);
    sim.register_all();
    let idb = sim.peers[b].client.peer_id();
    let now = sim.now;
    for _ in 0..30 {
        sim.peers[a].client.connect(now, idb, vec![]).unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    let limited = sim.peers[a]
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Failed {
                    code: Some(ErrorCode::RateLimited),
                    ..
                }
            )
        })
        .count();
    // Burst 20: the other ten are refused, explicitly.
    assert_eq!(limited, 10);
    assert_eq!(sim.core.stats().drops(DropReason::RateLimitedPeer), 10);
    assert_eq!(sim.core.stats().connects(ConnectOutcome::RateLimited), 10);
}
