use super::super::*;
use crate::identity::Keypair;
use crate::signal::{Envelope, Method};
use proptest::prelude::*;

fn id(n: u8) -> PeerId {
    Keypair::from_seed([n; 32]).peer_id()
}

fn samples() -> Vec<Message> {
    let c = |port| Candidate {
        kind: CandidateKind::Srflx,
        addr: SocketAddr::from(([192, 0, 2, 7], port)),
        priority: 100,
    };
    let relay_addr = RelayAddr {
        transport: RelayTransport::Tcp,
        addr: "[2001:db8::5]:3478".parse().unwrap(),
    };
    vec![
        Message::Register {
            peer: id(1),
            proof: None,
        },
        Message::Register {
            peer: id(1),
            proof: Some(Proof {
                nonce: [3; NONCE_LEN],
                timestamp_ms: 1_700_000_000_000,
                signature: [4; 64],
            }),
        },
        Message::Challenge {
            nonce: [5; NONCE_LEN],
            observed: "198.51.100.1:40000".parse().unwrap(),
        },
        Message::Registered {
            observed: "198.51.100.1:40000".parse().unwrap(),
            session: [6; SESSION_LEN],
            keepalive_secs: 15,
            expiry_secs: 45,
        },
        Message::Keepalive { session: [7; 16] },
        Message::KeepaliveAck {
            observed: "[::1]:5".parse().unwrap(),
        },
        Message::Connect {
            session: [8; 16],
            target: id(2),
            candidates: vec![c(1), c(2)],
        },
        Message::ConnectAck { connect_id: 9 },
        Message::RelaysRequest {
            session: [1; 16],
            latencies: vec![("192.0.2.9:3478".parse().unwrap(), 12)],
        },
        Message::Relays {
            username: "1700000000:abc".into(),
            password: "pw=".into(),
            ttl_secs: 600,
            relays: vec![RelayEntry {
                id: "relay-1".into(),
                addrs: vec![relay_addr],
                load_permille: 250,
            }],
        },
        Message::Offer {
            connect_id: 10,
            from: id(3),
            candidates: vec![c(3)],
        },
        Message::Answer {
            session: [2; 16],
            connect_id: 10,
            accept: true,
            candidates: vec![],
        },
        Message::Accepted {
            connect_id: 10,
            from: id(4),
            candidates: vec![c(4)],
        },
        Message::Refused {
            connect_id: 10,
            from: id(4),
            code: ErrorCode::Refused,
        },
        Message::Punch {
            connect_id: 10,
            peer: id(4),
            delay_ms: 40,
        },
        Message::Ack {
            session: [3; 16],
            connect_id: 10,
        },
        Message::Announce {
            relay_id: "r".into(),
            seq: 77,
            addrs: vec![relay_addr],
            load: Load {
                allocations: 1,
                capacity: 2,
                bandwidth_bps: 3,
            },
            mac: [9; MAC_LEN],
        },
        Message::AnnounceAck {
            seq: 77,
            interval_secs: 10,
        },
        Message::NatReport {
            session: [4; 16],
            mapping: NatBehaviour::EndpointIndependent,
            filtering: NatBehaviour::AddressAndPortDependent,
        },
        Message::NatReportAck,
        Message::Error {
            code: ErrorCode::RateLimited,
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        let bytes = m.encode().unwrap();
        assert_eq!(Message::decode(&bytes).unwrap(), m, "{m:?}");
        // Truncating any message makes it invalid rather than panicking.
        for cut in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..cut]).is_err(),
                "{m:?} cut at {cut}"
            );
        }
        let env = match m.method_class() {
            Some((method, crate::signal::Class::Request)) => {
                Envelope::request([1; 12], m.clone()).map(|e| (e, method))
            }
            Some((method, _)) => Some((Envelope::response(method, [1; 12], m.clone()), method)),
            None => Some((
                Envelope::response(Method::Punch, [1; 12], m.clone()),
                Method::Punch,
            )),
        };
        let (env, _) = env.unwrap();
        assert_eq!(Envelope::decode(&env.encode().unwrap()).unwrap(), env);
    }
}

#[test]
fn bounds_are_enforced_on_encode() {
    let c = Candidate {
        kind: CandidateKind::Host,
        addr: "10.0.0.1:1".parse().unwrap(),
        priority: 1,
    };
    let too_many = Message::Offer {
        connect_id: 1,
        from: id(1),
        candidates: vec![c; MAX_CANDIDATES + 1],
    };
    assert_eq!(too_many.encode(), Err(EncodeError::TooLarge));
    let long_name = Message::Error {
        code: ErrorCode::BadMac,
    };
    assert!(long_name.encode().is_ok());
    let announce = Message::Announce {
        relay_id: "x".repeat(MAX_NAME_LEN + 1),
        seq: 0,
        addrs: vec![],
        load: Load::default(),
        mac: [0; MAC_LEN],
    };
    assert_eq!(announce.encode(), Err(EncodeError::TooLarge));
}

#[test]
fn hostile_counts_are_refused_before_allocation() {
    let mut bytes = vec![32u8]; // Offer
    bytes.extend_from_slice(&1u64.to_be_bytes());
    bytes.extend_from_slice(id(1).as_bytes());
    bytes.push(255);
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::TooLong("candidates"))
    );
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(m) = Message::decode(&bytes) {
            prop_assert_eq!(m.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_samples_never_panic(index in any::<usize>(), pos in any::<usize>(), byte in any::<u8>()) {
        let all = samples();
        let m = &all[index % all.len()];
        let mut bytes = m.encode().unwrap();
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        let _ = Message::decode(&bytes);
    }
}
