//! Signalling over TLS: a peer whose UDP is blocked registers and keeps alive over a TLS
//! stream to the node (self-signed certificate made with rcgen).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Node;
use rustls::pki_types::{CertificateDer, ServerName};
use supernode_proto::identity::Keypair;
use supernode_proto::signal::client::{self, Client, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn peer_registers_over_tls() {
    let dir = std::env::temp_dir().join(format!("rendezvous-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let node = Node::start(false, |c| {
        c.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let addr = node.tls.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(certified.cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();

    let mut c = Client::new(
        Keypair::from_seed([8; 32]),
        addr,
        client::Config::default(),
        Instant::now(),
        0,
    );
    c.register(Instant::now());
    let mut pending = Vec::new();
    let mut chunk = [0u8; 2048];
    let registered = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            while let Some(b) = c.poll_transmit() {
                stream.write_all(&b).await.unwrap();
                stream.flush().await.unwrap();
            }
            if let Some(Event::Registered { observed }) = c.poll_event() {
                return observed;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "node closed the TLS stream");
            pending.extend_from_slice(&chunk[..n]);
            while let Ok(Some(f)) = supernode_proto::frame::next(&pending) {
                let msg: Vec<u8> = pending.drain(..f.consumed).collect();
                c.handle_input(Instant::now(), addr, &msg[..f.len]);
            }
        }
    })
    .await
    .expect("registered over TLS");
    assert_eq!(registered.ip().to_string(), "127.0.0.1");
    node.wait_metric("rendezvous_registered_peers", 1.0).await;
    node.wait_metric("rendezvous_tcp_connections", 1.0).await;

    // A client that does not speak TLS is dropped at the handshake and counted.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(&[0u8; 64]).await.unwrap();
    let mut reply = Vec::new();
    // At most a TLS alert, then the connection closes.
    tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut reply))
        .await
        .expect("closed")
        .ok();
    assert!(reply.len() < 16, "{reply:?}");
    assert!(
        reply.first().is_none_or(|b| *b == 0x15),
        "only an alert: {reply:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let page = node.scrape().await;
    assert!(
        page.contains("rendezvous_driver_dropped_total{reason=\"tls_handshake_failed\"} 1"),
        "{page}"
    );
    node.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
