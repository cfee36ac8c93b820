//! Bad input over real sockets: garbage and floods are dropped and counted, the node keeps
//! answering everyone else, nothing panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Node;
use supernode_proto::identity::Keypair;
use supernode_proto::signal::{Envelope, Message};
use supernode_proto::stun_rs::{MessageClass, StunMessageBuilder, methods::BINDING};
use tokio::net::UdpSocket;

#[tokio::test]
async fn garbage_and_floods_are_dropped_and_counted() {
    let node = Node::start(false, |c| {
        c.ip_rate = 50.0;
        c.ip_burst = 100.0;
    })
    .await;
    let server = node.primary();
    let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut hostile: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![],
        vec![0; 20],
        vec![
            0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ],
    ];
    let mut signal = Envelope::request([1; 12], Message::Keepalive { session: [0; 16] })
        .unwrap()
        .encode()
        .unwrap();
    signal[24] = 0xee;
    hostile.push(signal);
    let unknown_session = Envelope::request([2; 12], Message::Keepalive { session: [9; 16] })
        .unwrap()
        .encode()
        .unwrap();
    hostile.push(unknown_session);
    // Bounded flood: 3000 datagrams.
    for i in 0..3000 {
        let d = &hostile[i % hostile.len()];
        let _ = flooder.send_to(d, server).await;
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = node.scrape().await;
    let dropped = |reason: &str| -> f64 {
        let key = format!("rendezvous_dropped_total{{reason=\"{reason}\"}} ");
        page.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(dropped("rate_limited_ip") > 1000.0, "{page}");
    assert!(dropped("not_stun") > 0.0, "{page}");
    assert!(dropped("malformed_stun") > 0.0, "{page}");
    assert!(dropped("malformed_signal") > 0.0, "{page}");
    assert!(dropped("unknown_session") > 0.0, "{page}");

    // Someone else is still served.
    let other = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let req = supernode_proto::stun::encode(
        &StunMessageBuilder::new(BINDING, MessageClass::Request).build(),
    )
    .unwrap();
    other.send_to(&req, server).await.unwrap();
    let mut buf = [0u8; 1500];
    let (_, from) = tokio::time::timeout(Duration::from_secs(5), other.recv_from(&mut buf))
        .await
        .expect("binding answered during a flood")
        .unwrap();
    assert_eq!(from, server);

    // Unknown peers: a connect request without registration is refused explicitly.
    let hello = Envelope::request(
        [3; 12],
        Message::Connect {
            session: [1; 16],
            target: Keypair::from_seed([5; 32]).peer_id(),
            candidates: vec![],
        },
    )
    .unwrap()
    .encode()
    .unwrap();
    other.send_to(&hello, server).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), other.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = Envelope::decode(&buf[..n]).unwrap();
    assert!(matches!(answer.message, Message::Error { .. }));
    node.stop().await;
}

#[tokio::test]
async fn tcp_garbage_closes_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = Node::start(false, |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(node.tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"this is not stun at all").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let page = node.scrape().await;
    assert!(
        page.contains("rendezvous_driver_dropped_total{reason=\"tcp_not_stun\"} 1"),
        "{page}"
    );
    node.wait_metric("rendezvous_tcp_connections", 0.0).await;
    node.stop().await;
}
