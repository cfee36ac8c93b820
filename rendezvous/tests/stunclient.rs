//! A STUN client written elsewhere — coturn's `turnutils_stunclient` — against the node on
//! loopback: XOR-MAPPED-ADDRESS over UDP, and RFC 5780 CHANGE-REQUEST answered from the other
//! address. Requires the Debian package `coturn`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Node;

async fn stunclient(port: u16) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut child = std::process::Command::new("turnutils_stunclient")
            .args(["-p", &port.to_string(), "127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnutils_stunclient (Debian package `coturn`) must be installed");
        // It waits forever for a lost answer; bound it, and stop only the child we started.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        out
    })
    .await
    .unwrap()
}

/// Pulls `addr` out of lines like `0: : IPv4. UDP reflexive addr: 127.0.0.1:5000`.
fn addrs(out: &str, label: &str) -> Vec<std::net::SocketAddr> {
    out.lines()
        .filter_map(|l| l.split_once(label))
        .filter_map(|(_, rest)| rest.trim_start_matches([':', ' ']).trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn coturn_stunclient_gets_mapping_and_rfc5780_answers() {
    let node = Node::start(true, |_| {}).await;
    let primary = node.primary();
    let alternate = node.udp[3];
    assert_eq!(alternate.ip().to_string(), "127.0.0.2");
    let out = stunclient(primary.port()).await;

    let reflexive = addrs(&out, "UDP reflexive addr");
    assert!(reflexive.len() >= 2, "no reflexive addresses in:\n{out}");
    // The mapped address is the client's own loopback socket; both answers to requests from
    // the same socket agree.
    assert_eq!(reflexive[0].ip().to_string(), "127.0.0.1", "{out}");
    assert_ne!(reflexive[0].port(), 0);
    assert_eq!(reflexive[0], reflexive[1], "{out}");

    let origins = addrs(&out, "Response origin");
    let others = addrs(&out, "Other addr");
    assert_eq!(origins[0], primary, "{out}");
    assert_eq!(others[0], alternate, "{out}");
    // Response 2 answered the CHANGE-REQUEST (change IP and port) from the other socket.
    assert!(out.contains("RFC 5780 response 2"), "{out}");
    assert!(origins.contains(&alternate), "{out}");
    // Response 2 (change IP and port) and response 3 left from the alternate socket.
    node.wait_metric("rendezvous_binding_changed_origin_total", 2.0)
        .await;
    node.stop().await;
}

#[tokio::test]
async fn single_ip_node_serves_change_port_and_says_so() {
    let node = Node::start(false, |_| {}).await;
    let primary = node.primary();
    let alt_port = node.udp[1];
    // OTHER-ADDRESS keeps the IP: clients can see only port changes are possible.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    use supernode_proto::stun_rs::attributes::discovery::{ChangeRequest, ChangeRequestFlags};
    use supernode_proto::stun_rs::{MessageClass, MessageDecoderBuilder, StunMessageBuilder};
    let req = StunMessageBuilder::new(
        supernode_proto::stun_rs::methods::BINDING,
        MessageClass::Request,
    )
    .with_attribute(ChangeRequest::new(Some(
        ChangeRequestFlags::ChangePort.into(),
    )))
    .build();
    let raw = supernode_proto::stun::encode(&req).unwrap();
    sock.send_to(&raw, primary).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        from, alt_port,
        "the change-port answer comes from the other port"
    );
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(&buf[..n])
        .unwrap();
    let other = msg
        .attributes()
        .iter()
        .find_map(|a| a.as_other_address().ok().map(|o| *o.socket_address()))
        .unwrap();
    assert_eq!(other, alt_port);
    let mapped = msg
        .attributes()
        .iter()
        .find_map(|a| a.as_xor_mapped_address().ok().map(|o| *o.socket_address()))
        .unwrap();
    assert_eq!(mapped, sock.local_addr().unwrap());
    node.stop().await;
}
