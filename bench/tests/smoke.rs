//! CI smoke run: the bench tool drives an in-process relay for a moment in every mode and
//! reports plausible numbers. Performance itself is measured by `bench/compare.sh`, not here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use supernode_relay::config::Config;
use supernode_relay::{driver, metrics};

fn relay() -> driver::Handle {
    let mut config = Config::default();
    config.listen.udp = vec!["127.0.0.1:0".parse().unwrap()];
    config.listen.tcp = vec![];
    config.auth.secrets = vec!["bench-secret".into()];
    config.peers.allow = vec!["127.0.0.0/8".parse().unwrap()];
    config.relay.min_port = 54_000;
    config.relay.max_port = 54_999;
    config.limits.unauth_rate = 100_000.0;
    config.limits.unauth_burst = 100_000.0;
    let (m, _) = metrics::Metrics::new();
    driver::spawn(
        config.to_server_config().unwrap(),
        driver::Options::from_config(&config),
        m,
    )
    .unwrap()
}

fn bench(server: std::net::SocketAddr, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_supernode-bench"))
        .arg("--server")
        .arg(server.to_string())
        .arg("--server-pid")
        .arg(std::process::id().to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_mode_runs_against_the_relay() {
    let handle = relay();
    let server = handle.udp[0];
    for args in [
        &["relay", "--allocations", "2", "--duration", "0.5"][..],
        &[
            "relay",
            "--allocations",
            "2",
            "--send-indications",
            "--duration",
            "0.5",
        ],
        &[
            "relay",
            "--allocations",
            "2",
            "--rate",
            "2000",
            "--duration",
            "0.5",
        ],
        &["stun", "--duration", "0.5"],
        &["allocate", "--clients", "2", "--duration", "0.5"],
    ] {
        let r = bench(server, args);
        assert!(r["completed"].as_u64().unwrap() > 50, "{args:?}: {r}");
        assert!(r["server_cpu_secs"].as_f64().is_some(), "{args:?}: {r}");
        if args[0] != "allocate" {
            assert!(r["rtt_p99_us"].as_u64().unwrap() > 0, "{args:?}: {r}");
        }
    }
    let r = bench(
        server,
        &["hold", "--allocations", "200", "--settle-secs", "0"],
    );
    assert_eq!(r["allocations"], 200);
    assert!(r["kib_per_allocation"].as_f64().is_some(), "{r}");
    handle.shutdown().unwrap();
}
