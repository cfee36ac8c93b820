//! The image built from `deploy/Dockerfile` runs a cluster: a rendezvous and two relays as
//! containers on a Docker network this test creates; a client on the host allocates on each
//! relay and relays data through it to a peer on the host; a real Prometheus, configured from
//! `deploy/prometheus/`, scrapes the containers, and the relayed bytes are read back through
//! its HTTP API. The dashboard is checked once more against what the containers export.
//!
//! Without Docker (or without a BuildKit-capable CLI) the test skips with the reason, except
//! under `CI=true`, where it fails. Containers, the network and the images are named after a
//! per-run id and removed at the end, also when the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use supernode_deploy_tests::docker::Docker;
use supernode_deploy_tests::exposition::{self, Exported};
use supernode_deploy_tests::prometheus::Prometheus;
use supernode_deploy_tests::{env, http, image, turn};

const SECRET: &str = "cluster-test-secret";
/// Relay port ranges, as in deploy/docker-compose.yml.
const RANGES: [(u16, u16); 2] = [(49160, 49179), (49180, 49199)];
/// Bytes each relayed message carries.
const PAYLOAD: &[u8] = &[0x5A; 100];

#[test]
fn image_runs_a_cluster_that_relays_and_is_scraped_by_prometheus() {
    let mut docker = match Docker::find() {
        Ok(d) => d,
        Err(e) => return env::skip(&format!("no usable Docker: {e:#}")),
    };
    if let Err(e) = env::ensure_tool("prometheus", "prometheus") {
        return env::skip(&e.to_string());
    }
    let rootfs = match image::base_rootfs() {
        Ok(p) => p,
        Err(e) => return env::skip(&format!("no Debian base image: {e:#}")),
    };
    let run_id = docker.run_id.clone();
    let (relay_bin, rendezvous_bin) = env::node_binaries().expect("node binaries");
    let images = image::build(&mut docker, &rootfs, &relay_bin, &rendezvous_bin).unwrap();

    let net = docker.name("net");
    let subnet = docker.network(&net).unwrap();
    let gateway = docker.gateway(&net).unwrap();

    let rdv_name = docker.name("rendezvous");
    let rdv_ip = docker
        .start(
            &rdv_name,
            &net,
            &[
                "-e",
                &format!("SUPERNODE_RELAY_SECRET={SECRET}"),
                "-e",
                "NO_COLOR=1",
                &images.runtime,
                "rendezvous",
            ],
        )
        .unwrap();
    let config = env::deploy_dir().join("config/relay.toml");
    let mut relays = Vec::new();
    for (i, (min, max)) in RANGES.iter().enumerate() {
        let name = docker.name(&format!("relay-{}", i + 1));
        let env = [
            format!("SUPERNODE_RELAY_SECRETS={SECRET}"),
            // By container name, resolved by the entrypoint as compose's service name is.
            format!("SUPERNODE_RELAY_RENDEZVOUS={rdv_name}:3578"),
            format!("SUPERNODE_RELAY_ID=relay-{}", i + 1),
            format!("SUPERNODE_RELAY_MIN_PORT={min}"),
            format!("SUPERNODE_RELAY_MAX_PORT={max}"),
            // The peer is the host on this private network, which the relay refuses unless
            // allowed; production relays must not allow private ranges.
            format!("SUPERNODE_RELAY_ALLOW_PEERS={subnet}"),
        ];
        let mut args = Vec::new();
        for e in &env {
            args.extend(["-e", e.as_str()]);
        }
        // relay-2 reads the example config file (listeners, metrics, quota), as an operator
        // mounting it would; the entrypoint still fills in the relay address it leaves out.
        let mount = format!("{}:/etc/supernode/relay.toml:ro", config.display());
        if i == 1 {
            args.extend([
                "-v",
                &mount,
                "-e",
                "SUPERNODE_RELAY_CONFIG=/etc/supernode/relay.toml",
            ]);
        }
        args.extend([images.runtime.as_str(), "relay"]);
        let ip = docker.start(&name, &net, &args).unwrap();
        relays.push((name, ip));
    }
    docker.wait_healthy(&rdv_name).unwrap();
    for (name, _) in &relays {
        docker.wait_healthy(name).unwrap();
    }
    // The nodes run unprivileged, and the health check fails when the endpoint is not there
    // (here: pointed at a closed port), not only passes.
    assert_eq!(
        docker
            .run(&["exec", &relays[0].0, "id", "-u"])
            .unwrap()
            .trim(),
        "10001"
    );
    assert!(
        docker
            .run(&["exec", &rdv_name, "supernode-healthcheck"])
            .is_ok()
    );
    let broken = docker.run(&[
        "exec",
        "-e",
        "SUPERNODE_HEALTH_ADDR=127.0.0.1:1",
        &relays[0].0,
        "supernode-healthcheck",
    ]);
    assert!(broken.is_err(), "health check passed against a closed port");

    // A client on the host relays through each relay to a peer on the host.
    for (i, (_, ip)) in relays.iter().enumerate() {
        let relayed = turn::round_trip(
            SocketAddr::from((*ip, 3478)),
            SECRET,
            &format!("client{i}"),
            gateway.into(),
            |a| a,
            PAYLOAD,
        )
        .unwrap();
        assert_eq!(relayed.ip(), *ip, "relayed address is the container's");
        let (min, max) = RANGES[i];
        assert!(
            (min..=max).contains(&relayed.port()),
            "{relayed} outside {min}-{max}"
        );
    }

    // Prometheus with the deploy configuration, compose service names mapped to containers.
    let hosts: BTreeMap<String, String> = [
        ("rendezvous".to_owned(), rdv_ip.to_string()),
        ("relay-1".to_owned(), relays[0].1.to_string()),
        ("relay-2".to_owned(), relays[1].1.to_string()),
    ]
    .into();
    let prom = Prometheus::start(&docker.name("prometheus"), &hosts).unwrap();
    let wait = Duration::from_secs(30);
    let up = prom
        .wait_for("up", wait, |r| {
            r.len() == 3 && r.iter().all(|(_, v)| *v == 1.0)
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", prom.log()));
    eprintln!("up: {up:?}");
    for direction in ["client_to_peer", "peer_to_client"] {
        let expr = format!(
            "sum by (instance) (supernode_relay_relayed_bytes_total{{job=\"supernode-relay\",direction=\"{direction}\"}})"
        );
        let r = prom
            .wait_for(&expr, wait, |r| {
                r.len() == 2 && r.iter().all(|(_, v)| *v >= PAYLOAD.len() as f64)
            })
            .unwrap();
        eprintln!("{direction}: {r:?}");
    }
    prom.wait_for("rendezvous_relays", wait, |r| {
        r.first().is_some_and(|(_, v)| *v == 2.0)
    })
    .unwrap();
    // The alert rules load and evaluate without errors against live data.
    let groups = prom.api("rules").unwrap();
    let rules: Vec<&serde_json::Value> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 5, "{groups}");
    for r in &rules {
        assert_ne!(
            r["health"], "err",
            "rule {} fails: {}",
            r["name"], r["lastError"]
        );
    }
    let firing = prom.query("ALERTS{alertstate=\"firing\"}").unwrap();
    assert!(
        firing.is_empty(),
        "alerts firing on a healthy cluster: {firing:?}"
    );

    // The dashboard against what the containers export, once junk has made the drop
    // counters appear (families without samples are not listed).
    let junk = UdpSocket::bind("0.0.0.0:0").unwrap();
    for _ in 0..3 {
        junk.send_to(&[0xFF; 40], (rdv_ip, 3578)).unwrap();
        for (_, ip) in &relays {
            junk.send_to(&[0xFF; 40], (*ip, 3478)).unwrap();
        }
    }
    let mut tcp = std::net::TcpStream::connect((rdv_ip, 3578)).unwrap();
    std::io::Write::write_all(&mut tcp, &[0xFF; 40]).unwrap();
    drop(tcp);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env::deploy_dir().join("grafana/dashboards/supernode.json"))
            .unwrap(),
    )
    .unwrap();
    let exprs = exposition::dashboard_exprs(&dashboard).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut exported = Exported::default();
        exported.add(&http::get(SocketAddr::from((rdv_ip, 9578)), "/metrics").unwrap());
        for (_, ip) in &relays {
            exported.add(&http::get(SocketAddr::from((*ip, 9641)), "/metrics").unwrap());
        }
        let problems: Vec<String> = exprs
            .iter()
            .flat_map(|(p, x)| exported.check_expr(p, x))
            .collect();
        if problems.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            problems.join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    drop(prom);
    drop(docker);
    let left = Docker::leftovers("docker", &run_id).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}
