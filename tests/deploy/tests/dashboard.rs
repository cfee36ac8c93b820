//! The Grafana dashboard and the alert rules query only metrics (and labels) that the relay
//! and rendezvous binaries really export, and Grafana's provisioning files fit the dashboard
//! and the compose file.
//!
//! The exported names are read from the binaries themselves: a rendezvous and a relay that
//! joins its directory run on loopback, a client allocates and relays data, and junk datagrams
//! make the drop counters appear; then both `/metrics` pages are scraped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use supernode_deploy_tests::exposition::{self, Exported};
use supernode_deploy_tests::nodes::{self, Node};
use supernode_deploy_tests::{env, turn};

const SECRET: &str = "deploy-test-secret";

fn dashboard() -> serde_json::Value {
    let path = env::deploy_dir().join("grafana/dashboards/supernode.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard is JSON")
}

fn yaml(rel: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(env::deploy_dir().join(rel)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Relays data client → peer → client through `relay`, with the peer on 127.0.0.1.
fn relay_round_trip(relay: SocketAddr) {
    let mut client = turn::Client::new(relay, SECRET, "supernode", "dashboard").unwrap();
    let relayed = client.allocate().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    client.permit(peer.local_addr().unwrap()).unwrap();
    client
        .send(peer.local_addr().unwrap(), b"to the peer")
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"to the peer"[..], relayed));
    peer.send_to(b"to the client", relayed).unwrap();
    let (from, data) = client.receive(Duration::from_secs(2)).unwrap();
    assert_eq!(
        (from, data.as_slice()),
        (peer.local_addr().unwrap(), &b"to the client"[..])
    );
}

#[test]
fn dashboard_and_rules_query_only_exported_metrics() {
    let (relay_bin, rendezvous_bin) = env::node_binaries().expect("node binaries");
    let rdv_port = nodes::free_port().unwrap();
    let rdv_metrics = SocketAddr::from(([127, 0, 0, 1], nodes::free_port().unwrap()));
    let rdv_alt = nodes::free_port().unwrap();
    let rdv = Node::start(
        &rendezvous_bin,
        &[
            format!("--listen=127.0.0.1:{rdv_port}"),
            format!("--alternate-port={rdv_alt}"),
            format!("--metrics={rdv_metrics}"),
            format!("--relay-secret={SECRET}"),
        ],
        rdv_metrics,
        "/metrics",
    )
    .unwrap();
    let relay_port = nodes::free_port().unwrap();
    let relay_addr = SocketAddr::from(([127, 0, 0, 1], relay_port));
    let relay_metrics = SocketAddr::from(([127, 0, 0, 1], nodes::free_port().unwrap()));
    let (min, max) = nodes::free_range(8).unwrap();
    let relay = Node::start(
        &relay_bin,
        &[
            format!("--listen-udp={relay_addr}"),
            format!("--listen-tcp={relay_addr}"),
            format!("--metrics={relay_metrics}"),
            format!("--secret={SECRET}"),
            format!("--min-port={min}"),
            format!("--max-port={max}"),
            "--allow-peer=127.0.0.0/8".into(),
            format!("--rendezvous=127.0.0.1:{rdv_port}"),
            "--relay-id=dashboard-relay".into(),
        ],
        relay_metrics,
        "/healthz",
    )
    .unwrap();

    relay_round_trip(relay_addr);
    // Junk for the drop counters of both nodes.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        junk.send_to(&[0xFF; 40], relay_addr).unwrap();
        junk.send_to(&[0xFF; 40], ("127.0.0.1", rdv_port)).unwrap();
        junk.send_to(&[0x00, 0x01, 0x00, 0x00, 1, 2, 3], ("127.0.0.1", rdv_port))
            .unwrap();
    }
    // Not STUN on the rendezvous's TCP port: the driver's drop counter.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", rdv_port)).unwrap();
    std::io::Write::write_all(&mut tcp, &[0xFF; 40]).unwrap();
    drop(tcp);

    // Counters reach /metrics within a sync period, the directory within an announcement.
    let deadline = Instant::now() + Duration::from_secs(15);
    let exported = loop {
        let mut e = Exported::default();
        e.add(&relay.scrape().unwrap());
        e.add(&rdv.scrape().unwrap());
        let ready = [
            "supernode_relay_relayed_bytes_total",
            "rendezvous_relay_load_permille",
            "rendezvous_dropped_total",
            "rendezvous_driver_dropped_total",
        ]
        .iter()
        .all(|m| e.metrics.contains(*m));
        if ready || Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("exported: {:?}", exported.metrics);

    let mut problems = Vec::new();
    let exprs = exposition::dashboard_exprs(&dashboard()).unwrap();
    assert!(exprs.len() > 10, "dashboard has {} queries", exprs.len());
    for (place, expr) in &exprs {
        problems.extend(exported.check_expr(place, expr));
    }
    for entry in std::fs::read_dir(env::deploy_dir().join("prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        for (place, expr) in exposition::rule_exprs(&path).unwrap() {
            problems.extend(exported.check_expr(&place, &expr));
        }
    }
    assert!(
        problems.is_empty(),
        "queries of names nobody exports:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_panel_querying_a_missing_metric_fails_the_check() {
    let mut d = dashboard();
    let mut e = Exported::default();
    // Every metric the dashboard names, as if exported: the unmodified dashboard passes.
    for (_, expr) in exposition::dashboard_exprs(&d).unwrap() {
        let refs = supernode_deploy_tests::promql::refs(&expr);
        for m in refs.metrics {
            let labels: Vec<String> = refs.labels.iter().map(|l| format!("{l}=\"x\"")).collect();
            e.add(&format!("{m}{{{}}} 1\n", labels.join(",")));
        }
    }
    let problems: Vec<String> = exposition::dashboard_exprs(&d)
        .unwrap()
        .iter()
        .flat_map(|(p, x)| e.check_expr(p, x))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    d["panels"][3]["targets"][0]["expr"] = "rate(supernode_relay_relayed_bits_total[5m])".into();
    let problems: Vec<String> = exposition::dashboard_exprs(&d)
        .unwrap()
        .iter()
        .flat_map(|(p, x)| e.check_expr(p, x))
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("supernode_relay_relayed_bits_total"),
        "{problems:?}"
    );
}

#[test]
fn grafana_provisioning_fits_dashboard_and_compose() {
    let ds = yaml("grafana/provisioning/datasources/prometheus.yml");
    let ds = &ds["datasources"][0];
    assert_eq!(ds["type"].as_str(), Some("prometheus"));
    let uid = ds["uid"].as_str().expect("datasource uid");
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    // The datasource URL names the compose service Prometheus runs as.
    let url = ds["url"].as_str().unwrap();
    let host = url.trim_start_matches("http://").split(':').next().unwrap();
    assert!(
        services.contains_key(host),
        "datasource points at {url}, not a service"
    );

    // Every datasource reference in the dashboard is the provisioned one.
    let d = dashboard();
    let text = serde_json::to_string(&d).unwrap();
    let refs = text.matches("\"uid\":\"").count() - 1; // the dashboard's own uid
    let ours = text.matches(&format!("\"uid\":\"{uid}\"")).count();
    assert!(
        ours > 0 && ours == refs,
        "{ours} of {refs} references use datasource {uid}"
    );
    assert!(d["uid"].is_string() && d["title"].is_string());
    let ids: std::collections::BTreeSet<u64> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        d["panels"].as_array().unwrap().len(),
        "panel ids repeat"
    );
    // Panels fit the 24-column grid and do not overlap.
    let boxes: Vec<(u64, u64, u64, u64)> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let g = &p["gridPos"];
            let n = |k: &str| g[k].as_u64().unwrap();
            (n("x"), n("y"), n("w"), n("h"))
        })
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        assert!(a.0 + a.2 <= 24, "panel {i} wider than the grid: {a:?}");
        for b in &boxes[i + 1..] {
            let apart =
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
            assert!(apart, "panels overlap: {a:?} {b:?}");
        }
    }

    // The dashboard provider reads the folder compose mounts the dashboards into.
    let provider = yaml("grafana/provisioning/dashboards/supernode.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let grafana = &compose["services"]["grafana"];
    let mounts: Vec<&str> = grafana["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./grafana/dashboards:") && m.contains(&format!(":{path}"))),
        "no volume mounts ./grafana/dashboards at {path}: {mounts:?}"
    );
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./grafana/provisioning:/etc/grafana/provisioning")),
        "provisioning not mounted: {mounts:?}"
    );
}
