//! coturn's own test client, `turnutils_uclient`, against `supernode-relay`, with coturn's
//! `turnutils_peer` as the UDP echo peer. REST credentials are computed by uclient from the
//! shared secret (`-W`), exactly as it does against coturn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Relay, free_port, require_tool};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs uclient with `mode` flags over IPv4 loopback and returns (sent, received, lost).
fn run_uclient(relay_ports: (u16, u16), mode: &[&str]) -> Option<(u64, u64, u64)> {
    run_uclient_on(
        relay_ports,
        mode,
        "127.0.0.1",
        &["--allow-peer", "127.0.0.0/8"],
    )
}

/// Runs uclient against the relay at `host` (whose relay and peer addresses are `host` too)
/// and returns (sent, received, lost) from its summary.
fn run_uclient_on(
    relay_ports: (u16, u16),
    mode: &[&str],
    host: &str,
    relay_args: &[&str],
) -> Option<(u64, u64, u64)> {
    if !require_tool("turnutils_uclient") || !require_tool("turnutils_peer") {
        return None;
    }
    let relay = Relay::start(relay_ports, relay_args);
    let peer_port = free_port();
    let peer = Peer(
        Command::new("turnutils_peer")
            .args(["-L", host, "-p", &peer_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnutils_peer"),
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new("timeout")
        .arg("60")
        .arg("turnutils_uclient")
        .args(mode)
        .args(["-W", common::SECRET, "-u", "interop"])
        .args(["-e", host, "-r", &peer_port.to_string()])
        .args(["-p", &relay.port.to_string()])
        .args(["-n", "100", "-m", "4", "-l", "120"])
        .arg(host)
        .output()
        .expect("run turnutils_uclient");
    drop(peer);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let field = |key: &str| -> Option<u64> {
        text.lines()
            .rev()
            .find_map(|l| l.split(key).nth(1))
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
    };
    let sent = field("tot_send_msgs=");
    let received = field("tot_recv_msgs=");
    let lost = field("Total lost packets ");
    let (Some(sent), Some(received), Some(lost)) = (sent, received, lost) else {
        panic!("uclient did not finish a run:\n{text}");
    };
    Some((sent, received, lost))
}

#[test]
fn uclient_over_udp_with_channels_loses_nothing() {
    if let Some((sent, received, lost)) = run_uclient((52_000, 52_099), &[]) {
        assert_eq!(sent, 400, "4 clients × 100 messages");
        assert_eq!(received, sent);
        assert_eq!(lost, 0);
    }
}

#[test]
fn uclient_over_tcp_loses_nothing() {
    if let Some((sent, received, lost)) = run_uclient((52_100, 52_199), &["-t"]) {
        assert_eq!(sent, 400);
        assert_eq!(received, sent);
        assert_eq!(lost, 0);
    }
}

#[test]
fn uclient_with_send_indications_loses_nothing() {
    if let Some((sent, received, lost)) = run_uclient((52_200, 52_299), &["-s"]) {
        assert_eq!(sent, 400);
        assert_eq!(received, sent);
        assert_eq!(lost, 0);
    }
}

#[test]
fn uclient_over_ipv6_gets_ipv6_relayed_addresses() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    }
    let args = [
        "--listen-udp",
        "[::1]:{port}",
        "--relay-address",
        "127.0.0.1,::1",
        "--allow-peer",
        "::1/128",
    ];
    if let Some((sent, received, lost)) = run_uclient_on((52_300, 52_399), &[], "::1", &args) {
        assert_eq!(sent, 400);
        assert_eq!(received, sent);
        assert_eq!(lost, 0);
    }
}
