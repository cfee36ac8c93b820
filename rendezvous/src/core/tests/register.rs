//! Registration, keepalive, expiry, replayed and forged registrations.

use std::time::Duration;

use supernode_proto::identity::Keypair;
use supernode_proto::signal::client::Event as ClientEvent;
use supernode_proto::signal::message::Proof;
use supernode_proto::signal::{Envelope, ErrorCode, Message, Method, register};

use super::sim::{Sim, config};
use crate::core::{DropReason, Event, Transport};

#[test]
fn registration_proves_key_and_reports_mapping() {
    let mut sim = Sim::new(config());
    let a = sim.add_peer(1, "198.51.100.1:40000", 20);
    sim.register_all();
    assert_eq!(sim.core.peer_count(), 1);
    assert_eq!(sim.core.stats().registrations, 1);
    let id = sim.peers[a].client.peer_id();
    assert_eq!(
        sim.core_events,
        [Event::Registered {
            peer: id,
            remote: "198.51.100.1:40000".parse().unwrap()
        }]
    );
    assert_eq!(
        sim.peers[a].events,
        [ClientEvent::Registered {
            observed: "198.51.100.1:40000".parse().unwrap()
        }]
    );
    // Two round trips of 40 ms each.
    assert_eq!(sim.core.stats().sent, 2);
}

#[test]
fn keepalives_hold_and_silence_expires() {
    let mut sim = Sim::new(config());
    let a = sim.add_peer(1, "198.51.100.1:40000", 20);
    let b = sim.add_peer(2, "198.51.100.2:40000", 20);
    sim.register_all();
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.core.peer_count(), 2, "keepalives hold registrations");
    assert_eq!(sim.core.stats().expiries, 0);
    sim.peers[b].silent = true;
    sim.run_for(Duration::from_secs(44));
    assert_eq!(sim.core.peer_count(), 2, "not before the expiry");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.core.peer_count(), 1);
    assert_eq!(sim.core.stats().expiries, 1);
    let gone = sim.peers[b].client.peer_id();
    assert!(sim.core_events.contains(&Event::Expired { peer: gone }));
    assert!(sim.peers[a].client.is_registered());
}

/// Runs the challenge by hand, returning the proof message bytes and its transaction id.
fn proof_bytes(sim: &mut Sim, key: &Keypair, from: &str, tid: u8) -> Vec<u8> {
    let from = from.parse().unwrap();
    let hello = Envelope::request(
        [tid; 12],
        Message::Register {
            peer: key.peer_id(),
            proof: None,
        },
    )
    .unwrap();
    sim.inject(from, &hello.encode().unwrap());
    let t = sim.core.poll_transmit().unwrap();
    let Message::Challenge { nonce, observed } = Envelope::decode(&t.data).unwrap().message else {
        panic!("expected a challenge");
    };
    assert_eq!(observed, from);
    let proof = register::prove(key, nonce, observed, 5);
    let msg = Message::Register {
        peer: key.peer_id(),
        proof: Some(proof),
    };
    Envelope::request([tid + 1; 12], msg)
        .unwrap()
        .encode()
        .unwrap()
}

fn answer(sim: &mut Sim, from: &str, bytes: &[u8]) -> Message {
    sim.inject(from.parse().unwrap(), bytes);
    let t = sim.core.poll_transmit().expect("an answer");
    assert_eq!(
        t.transport,
        Transport::Udp {
            local: super::sim::server()
        }
    );
    Envelope::decode(&t.data).unwrap().message
}

#[test]
fn replayed_registrations_are_refused() {
    let mut sim = Sim::new(config());
    let key = Keypair::from_seed([9; 32]);
    let addr = "198.51.100.9:5000";
    let first = proof_bytes(&mut sim, &key, addr, 1);
    assert!(matches!(
        answer(&mut sim, addr, &first),
        Message::Registered { .. }
    ));
    // A retransmission of the same proof gets the same answer and changes nothing.
    assert!(matches!(
        answer(&mut sim, addr, &first),
        Message::Registered { .. }
    ));
    assert_eq!(sim.core.stats().registrations, 1);

    sim.run_for(Duration::from_millis(5));
    let second = proof_bytes(&mut sim, &key, addr, 3);
    assert!(matches!(
        answer(&mut sim, addr, &second),
        Message::Registered { .. }
    ));
    // The older proof, replayed after the newer one, is refused.
    assert_eq!(
        answer(&mut sim, addr, &first),
        Message::Error {
            code: ErrorCode::Replayed
        }
    );
    assert_eq!(sim.core.stats().drops(DropReason::Replayed), 1);

    // Replayed from another address: the nonce was not issued there.
    assert_eq!(
        answer(&mut sim, "203.0.113.66:5000", &second),
        Message::Error {
            code: ErrorCode::StaleNonce
        }
    );
    // Replayed after the nonce lifetime, even from the right address.
    sim.run_for(Duration::from_secs(11));
    assert_eq!(
        answer(&mut sim, addr, &second),
        Message::Error {
            code: ErrorCode::StaleNonce
        }
    );
    assert_eq!(sim.core.stats().drops(DropReason::StaleNonce), 2);
    assert_eq!(sim.core.stats().registrations, 2);
}

#[test]
fn forged_registrations_are_refused() {
    let mut sim = Sim::new(config());
    let victim = Keypair::from_seed([1; 32]);
    let attacker = Keypair::from_seed([2; 32]);
    let addr = "203.0.113.5:6000";
    // The attacker asks for a challenge in the victim's name and signs with its own key.
    let hello = Envelope::request(
        [1; 12],
        Message::Register {
            peer: victim.peer_id(),
            proof: None,
        },
    )
    .unwrap();
    sim.inject(addr.parse().unwrap(), &hello.encode().unwrap());
    let t = sim.core.poll_transmit().unwrap();
    let Message::Challenge { nonce, observed } = Envelope::decode(&t.data).unwrap().message else {
        panic!("expected a challenge");
    };
    let data = register::signed_data(&victim.peer_id(), &nonce, observed, 1);
    let forged = Message::Register {
        peer: victim.peer_id(),
        proof: Some(Proof {
            nonce,
            timestamp_ms: 1,
            signature: attacker.sign(&data),
        }),
    };
    let bytes = Envelope::request([2; 12], forged)
        .unwrap()
        .encode()
        .unwrap();
    assert_eq!(
        answer(&mut sim, addr, &bytes),
        Message::Error {
            code: ErrorCode::BadSignature
        }
    );
    // A made-up nonce.
    let made_up = Message::Register {
        peer: attacker.peer_id(),
        proof: Some(register::prove(
            &attacker,
            [7; 24],
            addr.parse().unwrap(),
            1,
        )),
    };
    let bytes = Envelope::request([3; 12], made_up)
        .unwrap()
        .encode()
        .unwrap();
    assert_eq!(
        answer(&mut sim, addr, &bytes),
        Message::Error {
            code: ErrorCode::StaleNonce
        }
    );
    assert_eq!(sim.core.peer_count(), 0);
    assert_eq!(sim.core.stats().drops(DropReason::BadSignature), 1);
}

#[test]
fn sessions_are_bound_to_the_registered_route() {
    let mut sim = Sim::new(config());
    let a = sim.add_peer(1, "198.51.100.1:40000", 10);
    sim.register_all();
    sim.run_for(Duration::from_secs(16));
    let ka = sim.peers[a]
        .sent
        .iter()
        .find(|b| Envelope::decode(b).unwrap().method == Method::Keepalive)
        .expect("a keepalive was sent")
        .clone();
    // The same keepalive from another address is refused, and counted.
    assert_eq!(
        answer(&mut sim, "203.0.113.9:40000", &ka),
        Message::Error {
            code: ErrorCode::NotRegistered
        }
    );
    assert_eq!(sim.core.stats().drops(DropReason::UnknownSession), 1);
    // From the registered address it is accepted.
    assert!(matches!(
        answer(&mut sim, "198.51.100.1:40000", &ka),
        Message::KeepaliveAck { .. }
    ));
}

#[test]
fn nat_reports_are_counted_once_per_change() {
    use supernode_proto::signal::NatBehaviour::{
        AddressAndPortDependent as Apd, EndpointIndependent as Ei,
    };
    let mut sim = Sim::new(config());
    let a = sim.add_peer(1, "198.51.100.1:40000", 10);
    sim.register_all();
    let now = sim.now;
    sim.peers[a].client.report_nat(now, Ei, Apd).unwrap();
    sim.run_for(Duration::from_millis(100));
    let now = sim.now;
    sim.peers[a].client.report_nat(now, Ei, Apd).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.core.stats().nat_reports(Ei, Apd), 1);
    let now = sim.now;
    sim.peers[a].client.report_nat(now, Ei, Ei).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.core.stats().nat_reports(Ei, Ei), 1);
    // Acknowledged: nothing left to retransmit, no failure reported.
    assert!(
        !sim.peers[a]
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Failed { .. }))
    );
    // An unregistered sender is refused explicitly.
    let report = Envelope::request(
        [1; 12],
        Message::NatReport {
            session: [0; 16],
            mapping: Ei,
            filtering: Ei,
        },
    )
    .unwrap()
    .encode()
    .unwrap();
    assert_eq!(
        answer(&mut sim, "203.0.113.1:1", &report),
        Message::Error {
            code: ErrorCode::NotRegistered
        }
    );
}
