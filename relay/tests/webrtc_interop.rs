//! Interop with an independent TURN client: the webrtc-rs `turn` crate.
//!
//! Each test starts the relay in-process on `127.0.0.1:0` (UDP only) with its own relay port
//! range, lets the webrtc-rs client allocate with TURN REST credentials, and talks to a plain
//! tokio UDP socket playing the peer. Everything stays on loopback, every wait is bounded.
//!
//! What the client exercises on the relay: Binding, the 401 challenge and the authenticated
//! Allocate, CreatePermission (and its 403 under the default peer policy, its 438 once the
//! nonce is stale), Send indications (its first packets to a peer), ChannelBind and
//! ChannelData (the packets after the binding), Data indications and ChannelData back, and
//! Refresh with LIFETIME 0. Results are also read from the relay's metrics, which must move
//! while the allocation is open. This file owns relay ports 51000-51099, split per test.

// Helpers outside #[test] functions unwrap too: any failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use supernode_proto::credentials::Credentials;
use supernode_relay::config::Config;
use supernode_relay::driver::{self, Handle, Options};
use supernode_relay::metrics::{Metrics, render};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

/// The REST shared secret the relay is configured with.
const SECRET: &str = "interop-secret";
/// Messages sent through the relay in the round-trip test.
const MESSAGES: usize = 20;
/// Upper bound on any single network wait.
const STEP: Duration = Duration::from_secs(5);
/// How long metrics may take to show a change (the driver syncs every 500 ms).
const METRICS_WAIT: Duration = Duration::from_secs(3);
/// Relayed-packets counter, client to peer.
const C2P: &str = "supernode_relay_relayed_packets_total{direction=\"client_to_peer\"}";
/// Relayed-packets counter, peer to client.
const P2C: &str = "supernode_relay_relayed_packets_total{direction=\"peer_to_client\"}";
/// Successful Allocate requests.
const ALLOC_OK: &str = "supernode_relay_allocations_total{result=\"ok\"}";
/// Peer packets dropped for want of a permission.
const NO_PERMISSION: &str = "supernode_relay_dropped_packets_total{reason=\"no_permission\"}";
/// Requests that carried an expired nonce (answered 438).
const STALE_NONCE: &str = "supernode_relay_auth_failures_total{reason=\"stale_nonce\"}";
/// Requests whose MESSAGE-INTEGRITY did not match the credentials.
const BAD_INTEGRITY: &str = "supernode_relay_auth_failures_total{reason=\"bad_integrity\"}";

/// A relay running in this process.
struct Relay {
    /// Keeps the relay loop alive; dropping it stops the loop.
    handle: Handle,
    /// The relay's metrics, rendered by the tests.
    registry: Arc<Registry>,
}

impl Relay {
    /// Starts a UDP-only relay whose relay sockets use `ports`, after `tweak` has had its say
    /// on the configuration.
    fn start(ports: (u16, u16), tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::default();
        config.listen.udp = vec!["127.0.0.1:0".parse().unwrap()];
        config.listen.tcp = vec![];
        config.metrics = None;
        config.relay.min_port = ports.0;
        config.relay.max_port = ports.1;
        config.auth.secrets = vec![SECRET.into()];
        tweak(&mut config);
        let server_config = config.to_server_config().unwrap();
        let (metrics, registry) = Metrics::new();
        let options = Options::from_config(&config);
        let handle = driver::spawn(server_config, options, metrics).unwrap();
        Self { handle, registry }
    }

    fn addr(&self) -> SocketAddr {
        self.handle.udp[0]
    }

    fn metrics(&self) -> String {
        render(&self.registry)
    }
}

/// Lets the relay talk to loopback peers, which the default policy refuses.
fn allow_loopback(config: &mut Config) {
    config.peers.allow = vec!["127.0.0.0/8".parse().unwrap()];
}

/// REST credentials valid for an hour.
fn credentials(secret: &str, user: &str) -> Credentials {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Credentials::rest(secret.as_bytes(), user, now.as_secs() + 3600)
}

/// A webrtc-rs client bound to a fresh loopback socket, listening, not yet allocated; and the
/// socket's address.
async fn turn_client(relay: SocketAddr, creds: &Credentials) -> (Client, SocketAddr) {
    let conn = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = conn.local_addr().unwrap();
    let client = Client::new(ClientConfig {
        stun_serv_addr: relay.to_string(),
        turn_serv_addr: relay.to_string(),
        username: creds.username.clone(),
        password: creds.password.clone(),
        // Learnt from the 401 challenge.
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(conn),
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    (client, local)
}

/// Awaits `fut` for at most [`STEP`], failing the test with `what` otherwise.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The value of the sample whose series is exactly `series` in OpenMetrics `text`.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls the metrics text until `ok` holds, failing the test with `what` after
/// [`METRICS_WAIT`]; returns the text that satisfied it.
async fn wait_for_metrics(relay: &Relay, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + METRICS_WAIT;
    loop {
        let text = relay.metrics();
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Closes the allocation (Refresh with LIFETIME 0) and then the client.
async fn close(relayed: impl Conn, client: Client) {
    bounded("close relayed conn", relayed.close())
        .await
        .unwrap();
    bounded("close client", client.close()).await.unwrap();
}

/// A UDP socket on 127.0.0.1 and its address.
async fn udp_peer() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    (sock, addr)
}

/// Runs a UDP peer that echoes each datagram, prefixed with `echo:`, back to its sender and
/// reports `(payload, sender)`. It stops after a bounded number of datagrams or when aborted.
fn spawn_echo(peer: UdpSocket) -> (JoinHandle<()>, mpsc::Receiver<(String, SocketAddr)>) {
    let (tx, rx) = mpsc::channel(4 * MESSAGES);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        for _ in 0..4 * MESSAGES {
            let Ok((n, from)) = peer.recv_from(&mut buf).await else {
                return;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let reply = format!("echo:{text}");
            // Report before echoing, so a test that has its echo also has the report.
            if tx.send((text, from)).await.is_err() {
                return;
            }
            let _ = peer.send_to(reply.as_bytes(), from).await;
        }
    });
    (task, rx)
}

/// Sends `count` distinct messages tagged `tag` through `relayed` to `peer`, then collects
/// replies (each must come from `peer`) for at most [`STEP`]. Returns what was sent and what
/// came back.
async fn exchange(
    relayed: &impl Conn,
    peer: SocketAddr,
    tag: &str,
    count: usize,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let sent: BTreeSet<String> = (0..count)
        .map(|i| format!("{tag} message {i:02}"))
        .collect();
    for msg in &sent {
        // The count is what went to the relay: the payload plus its TURN framing.
        let n = bounded("send through relay", relayed.send_to(msg.as_bytes(), peer))
            .await
            .unwrap();
        assert!(n >= msg.len(), "short send: {n} < {}", msg.len());
    }
    let mut replies = BTreeSet::new();
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + STEP;
    while replies.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(r) = timeout(left, relayed.recv_from(&mut buf)).await else {
            break;
        };
        let (n, from) = r.unwrap();
        assert_eq!(from, peer, "reply attributed to the wrong peer");
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(replies.insert(reply), "duplicate reply");
    }
    (sent, replies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_client_relays_round_trip_with_allow_list() {
    let relay = Relay::start((51_000, 51_029), allow_loopback);
    let before = relay.metrics();
    assert_eq!(sample(&before, C2P), Some(0), "{before}");
    assert_eq!(sample(&before, P2C), Some(0), "{before}");

    let creds = credentials(SECRET, "alice");
    let (client, local) = turn_client(relay.addr(), &creds).await;
    // A STUN Binding on the TURN port reflects the client's own address.
    let mapped = bounded("binding", client.send_binding_request())
        .await
        .unwrap();
    assert_eq!(mapped, local);
    let relayed = bounded("allocate", client.allocate()).await.unwrap();
    let relayed_addr = relayed.local_addr().unwrap();
    assert_eq!(relayed_addr.ip(), relay.addr().ip());
    assert!(
        (51_000..=51_029).contains(&relayed_addr.port()),
        "relayed port {relayed_addr} outside the configured range"
    );

    // The first send waits for CreatePermission; the client then sends Send indications
    // while its ChannelBind is in flight and ChannelData afterwards.
    let (peer, peer_addr) = udp_peer().await;
    let (echo, mut seen) = spawn_echo(peer);
    let (sent, replies) = exchange(&relayed, peer_addr, "interop", MESSAGES).await;
    let expected: BTreeSet<String> = sent.iter().map(|m| format!("echo:{m}")).collect();
    assert_eq!(replies, expected, "replies received through the relay");

    // The peer saw every message exactly once, each from the relayed address.
    let mut at_peer = BTreeSet::new();
    while let Ok((payload, from)) = seen.try_recv() {
        assert_eq!(from, relayed_addr, "peer saw a packet not from the relay");
        assert!(at_peer.insert(payload), "peer saw a duplicate");
    }
    assert_eq!(at_peer, sent);

    // Counters move while the allocation is open. The client bound a channel after its first
    // Send indication, so the gauges show one permission and one channel.
    let text = wait_for_metrics(&relay, "metrics did not show the relayed traffic", |text| {
        sample(text, C2P) >= Some(MESSAGES as u64)
            && sample(text, P2C) >= Some(MESSAGES as u64)
            && sample(text, "supernode_relay_permissions_active") == Some(1)
            && sample(text, "supernode_relay_channels_active") == Some(1)
    })
    .await;
    assert_eq!(
        sample(&text, "supernode_relay_allocations_active"),
        Some(1),
        "{text}"
    );

    // Closing sends a Refresh with LIFETIME 0; the relay ends the allocation.
    echo.abort();
    bounded("close relayed conn", relayed.close())
        .await
        .unwrap();
    wait_for_metrics(&relay, "the allocation did not end after close", |text| {
        sample(text, "supernode_relay_allocations_active") == Some(0)
            && sample(text, "supernode_relay_allocations_closed_total") == Some(1)
    })
    .await;
    bounded("close client", client.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_per_ip_and_strangers_are_dropped() {
    let relay = Relay::start((51_050, 51_069), allow_loopback);
    let creds = credentials(SECRET, "dave");
    let (client, _) = turn_client(relay.addr(), &creds).await;
    let relayed = bounded("allocate", client.allocate()).await.unwrap();
    let relayed_addr = relayed.local_addr().unwrap();

    // Sending to the peer installs a permission for 127.0.0.1.
    let (peer, peer_addr) = udp_peer().await;
    bounded("send to peer", relayed.send_to(b"open", peer_addr))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = bounded("peer receive", peer.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"open"[..], relayed_addr));

    // A stranger on another loopback address has no permission: dropped and counted.
    let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    stranger.send_to(b"stranger", relayed_addr).await.unwrap();
    wait_for_metrics(&relay, "the stranger's packet was not counted", |text| {
        sample(text, NO_PERMISSION) >= Some(1)
    })
    .await;

    // Another port on the permitted IP gets through (permissions are per IP, RFC 8656 §9),
    // as a Data indication since no channel is bound to it.
    let (sibling, sibling_addr) = udp_peer().await;
    sibling.send_to(b"sibling", relayed_addr).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let (n, from) = bounded("receive from sibling", relayed.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"sibling"[..], sibling_addr),
        "the stranger's packet must not have been delivered"
    );

    close(relayed, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_nonce_is_renewed_by_the_client() {
    // Nonces live two seconds, so one issued at the Allocate is stale ~2 s later.
    let relay = Relay::start((51_070, 51_089), |c| {
        allow_loopback(c);
        c.auth.nonce_lifetime_secs = 2;
    });
    let creds = credentials(SECRET, "erin");
    let (client, _) = turn_client(relay.addr(), &creds).await;
    let relayed = bounded("allocate", client.allocate()).await.unwrap();
    let relayed_addr = relayed.local_addr().unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;

    // CreatePermission gets 438 with a fresh NONCE; the client retries with it and succeeds.
    let (peer, peer_addr) = udp_peer().await;
    bounded(
        "send after the nonce went stale",
        relayed.send_to(b"late", peer_addr),
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = bounded("peer receive", peer.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"late"[..], relayed_addr));
    wait_for_metrics(&relay, "no stale nonce was counted", |text| {
        sample(text, STALE_NONCE) >= Some(1)
    })
    .await;

    close(relayed, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_refuses_loopback_peer() {
    let relay = Relay::start((51_030, 51_049), |_| {});
    let creds = credentials(SECRET, "bob");
    let (client, _) = turn_client(relay.addr(), &creds).await;
    let relayed = bounded("allocate", client.allocate()).await.unwrap();

    let (peer, peer_addr) = udp_peer().await;

    // CreatePermission for a loopback peer is refused with 403, so the send fails.
    let err = bounded(
        "send to forbidden peer",
        relayed.send_to(b"hello", peer_addr),
    )
    .await
    .expect_err("the relay must refuse a permission for a loopback peer");
    assert!(err.to_string().contains("403"), "unexpected error: {err}");

    // And nothing reaches the peer.
    let mut buf = [0u8; 64];
    let got = timeout(Duration::from_millis(700), peer.recv_from(&mut buf)).await;
    assert!(got.is_err(), "peer received {got:?} despite the refusal");

    // Once the metrics show the allocation, they must show nothing relayed.
    let text = wait_for_metrics(&relay, "allocation never showed in the metrics", |text| {
        sample(text, ALLOC_OK) == Some(1)
    })
    .await;
    assert_eq!(sample(&text, C2P), Some(0), "{text}");

    close(relayed, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_allocations_are_kept_apart() {
    let relay = Relay::start((51_090, 51_094), allow_loopback);
    let (peer, peer_addr) = udp_peer().await;
    let (echo, mut seen) = spawn_echo(peer);
    let (a, _) = turn_client(relay.addr(), &credentials(SECRET, "frank")).await;
    let (b, _) = turn_client(relay.addr(), &credentials(SECRET, "grace")).await;
    let ra = bounded("allocate a", a.allocate()).await.unwrap();
    let rb = bounded("allocate b", b.allocate()).await.unwrap();
    let (addr_a, addr_b) = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
    assert_ne!(addr_a, addr_b);

    // Both talk to the same peer at once; each gets back only its own echoes.
    let half = MESSAGES / 2;
    let ((sent_a, got_a), (sent_b, got_b)) = tokio::join!(
        exchange(&ra, peer_addr, "a", half),
        exchange(&rb, peer_addr, "b", half)
    );
    let echoed = |sent: &BTreeSet<String>| -> BTreeSet<String> {
        sent.iter().map(|m| format!("echo:{m}")).collect()
    };
    assert_eq!(got_a, echoed(&sent_a));
    assert_eq!(got_b, echoed(&sent_b));

    // And the peer saw each client's messages from that client's relayed address.
    let mut at_peer = 0;
    while let Ok((payload, from)) = seen.try_recv() {
        let want = if payload.starts_with("a ") {
            addr_a
        } else {
            addr_b
        };
        assert_eq!(from, want, "{payload} came from the wrong relayed address");
        at_peer += 1;
    }
    assert_eq!(at_peer, 2 * half);
    wait_for_metrics(&relay, "metrics did not show two allocations", |text| {
        sample(text, "supernode_relay_allocations_active") == Some(2)
            && sample(text, C2P) == Some(2 * half as u64)
    })
    .await;

    echo.abort();
    for (relayed, client) in [(ra, a), (rb, b)] {
        close(relayed, client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused() {
    let relay = Relay::start((51_095, 51_099), allow_loopback);
    let creds = credentials("not-the-secret", "mallory");
    let (client, _) = turn_client(relay.addr(), &creds).await;
    let err = bounded("allocate with bad credentials", client.allocate())
        .await
        .err()
        .expect("allocate with a wrong secret must fail");
    assert!(err.to_string().contains("401"), "unexpected error: {err}");
    let text = wait_for_metrics(&relay, "the refusal never showed in the metrics", |text| {
        sample(text, BAD_INTEGRITY) >= Some(1)
    })
    .await;
    assert_eq!(sample(&text, ALLOC_OK), Some(0), "{text}");
    bounded("close client", client.close()).await.unwrap();
}
