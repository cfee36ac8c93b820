use super::*;
use crate::signal::message::NONCE_LEN;

const SERVER: &str = "192.0.2.1:3578";
const OBSERVED: &str = "198.51.100.7:40000";

fn server() -> SocketAddr {
    SERVER.parse().unwrap()
}

fn reply(client: &mut Client, now: Instant, request: &[u8], message: Message) {
    let req = Envelope::decode(request).unwrap();
    let resp = Envelope::response(req.method, req.transaction_id, message);
    assert!(client.handle_input(now, server(), &resp.encode().unwrap()));
}

fn registered(t0: Instant) -> Client {
    let key = Keypair::from_seed([1; 32]);
    let mut c = Client::new(key.clone(), server(), Config::default(), t0, 1_000);
    c.register(t0);
    let hello = c.poll_transmit().unwrap();
    reply(
        &mut c,
        t0,
        &hello,
        Message::Challenge {
            nonce: [9; NONCE_LEN],
            observed: OBSERVED.parse().unwrap(),
        },
    );
    let proof = c.poll_transmit().unwrap();
    let Message::Register {
        peer,
        proof: Some(proof_body),
    } = Envelope::decode(&proof).unwrap().message
    else {
        panic!("expected a proof");
    };
    assert_eq!(peer, key.peer_id());
    assert!(register::verify(
        &peer,
        &proof_body,
        OBSERVED.parse().unwrap()
    ));
    reply(
        &mut c,
        t0,
        &proof,
        Message::Registered {
            observed: OBSERVED.parse().unwrap(),
            session: [5; 16],
            keepalive_secs: 10,
            expiry_secs: 30,
        },
    );
    assert_eq!(
        c.poll_event(),
        Some(Event::Registered {
            observed: OBSERVED.parse().unwrap()
        })
    );
    c
}

#[test]
fn registers_and_keeps_alive() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    assert!(c.is_registered());
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    c.handle_timeout(t0 + Duration::from_secs(10));
    let ka = c.poll_transmit().unwrap();
    assert_eq!(
        Envelope::decode(&ka).unwrap().message,
        Message::Keepalive { session: [5; 16] }
    );
    // The mapping changed: the keepalive answer says so.
    reply(
        &mut c,
        t0 + Duration::from_secs(10),
        &ka,
        Message::KeepaliveAck {
            observed: "198.51.100.7:40001".parse().unwrap(),
        },
    );
    assert!(matches!(c.poll_event(), Some(Event::MappingChanged { .. })));
}

#[test]
fn retransmits_then_gives_up() {
    let t0 = Instant::now();
    let mut c = Client::new(
        Keypair::from_seed([2; 32]),
        server(),
        Config::default(),
        t0,
        0,
    );
    c.register(t0);
    let first = c.poll_transmit().unwrap();
    let mut sent = 1;
    let mut now = t0;
    while let Some(at) = c.poll_timeout() {
        now = at;
        c.handle_timeout(now);
        while let Some(bytes) = c.poll_transmit() {
            if sent < 7 {
                assert_eq!(bytes, first);
            }
            sent += 1;
        }
        if c.poll_event().is_some() {
            break;
        }
    }
    assert_eq!(sent, 8, "seven tries and a fresh registration");
    // 250 + 500 + ... + 16 s of backoff.
    assert_eq!(
        now - t0,
        Duration::from_millis(250 * (1 + 2 + 4 + 8 + 16 + 32 + 64))
    );
    // Datagrams from elsewhere are not ours.
    assert!(!c.handle_input(now, "192.0.2.2:1".parse().unwrap(), &first));
}

#[test]
fn server_requests_are_answered_once() {
    let t0 = Instant::now();
    let mut c = registered(t0);
    let other = Keypair::from_seed([3; 32]).peer_id();
    let punch = Envelope::request(
        [7; 12],
        Message::Punch {
            connect_id: 4,
            peer: other,
            delay_ms: 30,
        },
    )
    .unwrap()
    .encode()
    .unwrap();
    assert!(c.handle_input(t0, server(), &punch));
    let ack = c.poll_transmit().unwrap();
    assert_eq!(
        c.poll_event(),
        Some(Event::Punch {
            connect_id: 4,
            peer: other,
            at: t0 + Duration::from_millis(30)
        })
    );
    assert!(c.handle_input(t0, server(), &punch));
    assert_eq!(c.poll_transmit().unwrap(), ack);
    assert_eq!(c.poll_event(), None);

    let offer = Envelope::request(
        [8; 12],
        Message::Offer {
            connect_id: 5,
            from: other,
            candidates: vec![],
        },
    )
    .unwrap()
    .encode()
    .unwrap();
    assert!(c.handle_input(t0, server(), &offer));
    assert!(matches!(
        c.poll_event(),
        Some(Event::Offer { connect_id: 5, .. })
    ));
    assert_eq!(c.answer(6, true, vec![]), Err(Error::UnknownOffer));
    c.answer(5, false, vec![]).unwrap();
    let answer = Envelope::decode(&c.poll_transmit().unwrap()).unwrap();
    assert_eq!(answer.transaction_id, [8; 12]);
    assert!(matches!(
        answer.message,
        Message::Answer { accept: false, .. }
    ));
}
