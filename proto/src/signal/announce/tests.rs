use super::*;
use crate::signal::RelayTransport;

fn config() -> Config {
    Config {
        relay_id: "relay-a".into(),
        secret: b"shared".to_vec(),
        addrs: vec![RelayAddr {
            transport: RelayTransport::Udp,
            addr: "192.0.2.10:3478".parse().unwrap(),
        }],
        interval: Duration::from_secs(10),
        rto: Duration::from_millis(500),
    }
}

fn decode(bytes: &[u8]) -> Envelope {
    Envelope::decode(bytes).unwrap()
}

#[test]
fn announces_signed_and_retransmits_until_acked() {
    let t0 = Instant::now();
    let mut a = Announcer::new(config(), t0, 1_000_000);
    a.set_load(Load {
        allocations: 5,
        capacity: 100,
        bandwidth_bps: 1_000,
    });
    assert_eq!(a.poll_timeout(), t0);
    a.handle_timeout(t0);
    let first = decode(&a.poll_transmit().unwrap());
    assert!(verify(b"shared", &first.transaction_id, &first.message));
    assert!(!verify(b"other", &first.transaction_id, &first.message));
    assert!(!verify(b"shared", &[0; 12], &first.message));
    let Message::Announce { seq, load, .. } = &first.message else {
        panic!("not an announcement");
    };
    assert_eq!(*seq, 1_000_000);
    assert_eq!(load.allocations, 5);
    assert!(a.poll_transmit().is_none());

    // No ack: retransmitted after the RTO, same transaction.
    let t1 = a.poll_timeout();
    assert_eq!(t1, t0 + Duration::from_millis(500));
    a.handle_timeout(t1);
    assert_eq!(decode(&a.poll_transmit().unwrap()), first);

    // A response with another transaction id is not ours.
    let wrong = Envelope::response(
        Method::Announce,
        [0; 12],
        Message::AnnounceAck {
            seq: 1,
            interval_secs: 5,
        },
    );
    assert!(!a.handle_input(t1, &wrong.encode().unwrap()));
    let ack = Envelope::response(
        Method::Announce,
        first.transaction_id,
        Message::AnnounceAck {
            seq: 1_000_000,
            interval_secs: 5,
        },
    );
    assert!(a.handle_input(t1, &ack.encode().unwrap()));
    assert_eq!(a.poll_event(), Some(Event::Acked { seq: 1_000_000 }));
    // Next announcement follows the configured interval from the first send; afterwards the
    // interval the rendezvous asked for.
    assert_eq!(a.poll_timeout(), t0 + Duration::from_secs(10));
    a.handle_timeout(t0 + Duration::from_secs(10));
    let second = decode(&a.poll_transmit().unwrap());
    let Message::Announce { seq: seq2, .. } = second.message else {
        panic!("not an announcement");
    };
    assert_eq!(seq2, 1_010_000);
    assert_eq!(
        a.poll_timeout(),
        t0 + Duration::from_secs(10) + Duration::from_millis(500)
    );
    let refuse = Envelope::response(
        Method::Announce,
        second.transaction_id,
        Message::Error {
            code: crate::signal::ErrorCode::BadMac,
        },
    );
    assert!(a.handle_input(t1, &refuse.encode().unwrap()));
    assert_eq!(
        a.poll_event(),
        Some(Event::Refused(crate::signal::ErrorCode::BadMac))
    );
    assert_eq!(a.poll_timeout(), t0 + Duration::from_secs(15));
}
