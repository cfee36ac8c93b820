//! Two peers on loopback, each with its own UDP socket, register with a node; one asks for a
//! connection; both receive the other's candidates and a synchronised go. A third peer does the
//! same over TCP. Metrics reflect it live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Node;
use supernode_proto::identity::{Keypair, PeerId};
use supernode_proto::signal::client::{self, Client, Event};
use supernode_proto::signal::{Candidate, CandidateKind};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

enum Cmd {
    Connect(PeerId, Vec<Candidate>),
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn host(addr: SocketAddr) -> Candidate {
    Candidate {
        kind: CandidateKind::Host,
        addr,
        priority: 126,
    }
}

/// Runs a peer over UDP: accepts every offer with its host candidate, reports events.
async fn udp_peer(
    seed: u8,
    server: SocketAddr,
) -> (PeerId, mpsc::Sender<Cmd>, mpsc::Receiver<Event>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let key = Keypair::from_seed([seed; 32]);
    let id = key.peer_id();
    let mut c = Client::new(
        key,
        server,
        client::Config::default(),
        Instant::now(),
        unix_ms(),
    );
    let (cmd_tx, mut cmds) = mpsc::channel(8);
    let (ev_tx, events) = mpsc::channel(64);
    tokio::spawn(async move {
        c.register(Instant::now());
        let mut buf = [0u8; 2048];
        loop {
            while let Some(e) = c.poll_event() {
                if let Event::Offer { connect_id, .. } = &e {
                    c.answer(*connect_id, true, vec![host(me)]).unwrap();
                }
                if ev_tx.send(e).await.is_err() {
                    return;
                }
            }
            while let Some(b) = c.poll_transmit() {
                sock.send_to(&b, c.server()).await.unwrap();
            }
            let at = c
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                r = sock.recv_from(&mut buf) => {
                    let (n, from) = r.unwrap();
                    c.handle_input(Instant::now(), from, &buf[..n]);
                }
                () = tokio::time::sleep_until(at.into()) => c.handle_timeout(Instant::now()),
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Connect(target, cands)) => c.connect(Instant::now(), target, cands).unwrap(),
                    None => return,
                },
            }
        }
    });
    (id, cmd_tx, events)
}

/// Runs a peer over TCP, framing STUN messages on the stream.
async fn tcp_peer(seed: u8, server: SocketAddr) -> (PeerId, mpsc::Receiver<Event>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let key = Keypair::from_seed([seed; 32]);
    let id = key.peer_id();
    let mut c = Client::new(
        key,
        server,
        client::Config::default(),
        Instant::now(),
        unix_ms(),
    );
    let (ev_tx, events) = mpsc::channel(64);
    let me = stream.local_addr().unwrap();
    tokio::spawn(async move {
        c.register(Instant::now());
        let mut pending = Vec::new();
        let mut chunk = [0u8; 2048];
        loop {
            while let Some(e) = c.poll_event() {
                if let Event::Offer { connect_id, .. } = &e {
                    c.answer(*connect_id, true, vec![host(me)]).unwrap();
                }
                if ev_tx.send(e).await.is_err() {
                    return;
                }
            }
            while let Some(b) = c.poll_transmit() {
                stream.write_all(&b).await.unwrap();
            }
            let at = c
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                r = stream.read(&mut chunk) => {
                    let n = r.unwrap();
                    if n == 0 { return; }
                    pending.extend_from_slice(&chunk[..n]);
                    while let Ok(Some(f)) = supernode_proto::frame::next(&pending) {
                        let msg: Vec<u8> = pending.drain(..f.consumed).collect();
                        c.handle_input(Instant::now(), server, &msg[..f.len]);
                    }
                }
                () = tokio::time::sleep_until(at.into()) => c.handle_timeout(Instant::now()),
            }
        }
    });
    (id, events)
}

async fn next_matching(events: &mut mpsc::Receiver<Event>, f: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = events.recv().await.expect("peer task alive");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test]
async fn two_udp_peers_get_candidates_and_a_synchronised_go() {
    let node = Node::start(false, |_| {}).await;
    let server = node.primary();
    let (ida, cmd_a, mut ev_a) = udp_peer(1, server).await;
    let (idb, _cmd_b, mut ev_b) = udp_peer(2, server).await;
    for ev in [&mut ev_a, &mut ev_b] {
        next_matching(ev, |e| matches!(e, Event::Registered { .. })).await;
    }
    node.wait_metric("rendezvous_registered_peers", 2.0).await;

    let cand_a = host("127.0.0.1:1111".parse().unwrap());
    cmd_a.send(Cmd::Connect(idb, vec![cand_a])).await.unwrap();
    let Event::Offer {
        from, candidates, ..
    } = next_matching(&mut ev_b, |e| matches!(e, Event::Offer { .. })).await
    else {
        unreachable!()
    };
    assert_eq!((from, candidates), (ida, vec![cand_a]));
    let Event::Accepted {
        peer, candidates, ..
    } = next_matching(&mut ev_a, |e| matches!(e, Event::Accepted { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(peer, idb);
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].kind, CandidateKind::Host);

    let punch_at = |e: Event| match e {
        Event::Punch { at, peer, .. } => (at, peer),
        _ => unreachable!(),
    };
    let (at_a, peer_a) =
        punch_at(next_matching(&mut ev_a, |e| matches!(e, Event::Punch { .. })).await);
    let (at_b, peer_b) =
        punch_at(next_matching(&mut ev_b, |e| matches!(e, Event::Punch { .. })).await);
    assert_eq!((peer_a, peer_b), (idb, ida));
    let skew = if at_a > at_b {
        at_a - at_b
    } else {
        at_b - at_a
    };
    assert!(
        skew < Duration::from_millis(10),
        "go instants {skew:?} apart"
    );

    node.wait_metric("rendezvous_punches_total", 1.0).await;
    assert_eq!(
        node.metric("rendezvous_connect_requests_total{outcome=\"punched\"}")
            .await,
        1.0
    );
    node.stop().await;
}

#[tokio::test]
async fn udp_peer_connects_to_tcp_peer() {
    let node = Node::start(false, |_| {}).await;
    let (ida, cmd_a, mut ev_a) = udp_peer(3, node.primary()).await;
    let (idc, mut ev_c) = tcp_peer(4, node.tcp.unwrap()).await;
    next_matching(&mut ev_a, |e| matches!(e, Event::Registered { .. })).await;
    next_matching(&mut ev_c, |e| matches!(e, Event::Registered { .. })).await;
    node.wait_metric("rendezvous_tcp_connections", 1.0).await;
    cmd_a.send(Cmd::Connect(idc, vec![])).await.unwrap();
    let offer = next_matching(&mut ev_c, |e| matches!(e, Event::Offer { .. })).await;
    assert!(matches!(offer, Event::Offer { from, .. } if from == ida));
    next_matching(&mut ev_a, |e| matches!(e, Event::Punch { .. })).await;
    next_matching(&mut ev_c, |e| matches!(e, Event::Punch { .. })).await;
    node.stop().await;
}
