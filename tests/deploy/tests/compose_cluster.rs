//! `deploy/docker-compose.yml`, brought up with `docker-compose` (node services only, see
//! `supernode_deploy_tests::compose`), runs a working cluster: the containers report healthy,
//! both relays join the rendezvous's directory under their compose names, advertise the
//! configured external address with ports from their own ranges, and relay data; Prometheus
//! with the deploy configuration scrapes them by service name.
//!
//! Skips without Docker, docker-compose or a Debian base image (fails under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use supernode_deploy_tests::compose::Project;
use supernode_deploy_tests::docker::Docker;
use supernode_deploy_tests::prometheus::Prometheus;
use supernode_deploy_tests::{env, image, turn};

const SECRET: &str = "compose-test-secret";
/// What the relays advertise (TEST-NET-3: never sent to; the peer uses the container IP).
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

#[test]
fn compose_cluster_relays_and_is_scraped() {
    let mut docker = match Docker::find() {
        Ok(d) => d,
        Err(e) => return env::skip(&format!("no usable Docker: {e:#}")),
    };
    for (tool, package) in [
        ("docker-compose", "docker-compose"),
        ("prometheus", "prometheus"),
    ] {
        if let Err(e) = env::ensure_tool(tool, package) {
            return env::skip(&e.to_string());
        }
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
    let external = EXTERNAL.to_string();

    let project = Project::up(
        &docker,
        &[
            ("SUPERNODE_IMAGE", images.runtime.as_str()),
            ("SUPERNODE_SECRET", SECRET),
            ("SUPERNODE_EXTERNAL_IP", external.as_str()),
        ],
        &net,
        &subnet,
    )
    .unwrap();
    let mut ips = BTreeMap::new();
    for service in supernode_deploy_tests::compose::NODE_SERVICES {
        let id = project.container(service).unwrap();
        docker.wait_healthy(&id).unwrap();
        ips.insert(service.to_owned(), docker.ip(&id).unwrap());
    }

    // The ranges the compose file gives the relays.
    for (service, (min, max)) in [("relay-1", (49160, 49179)), ("relay-2", (49180, 49199))] {
        let ip = ips[service];
        let relayed = turn::round_trip(
            SocketAddr::from((ip, 3478)),
            SECRET,
            service,
            IpAddr::V4(gateway),
            // The advertised address is the external one; from the host the relayed socket
            // is reached at the container's IP on the same port.
            |a| SocketAddr::from((ip, a.port())),
            &[0xC3; 64],
        )
        .unwrap();
        assert_eq!(
            relayed.ip(),
            IpAddr::V4(EXTERNAL),
            "{service} advertises the external IP"
        );
        assert!(
            (min..=max).contains(&relayed.port()),
            "{service}: {relayed}"
        );
    }

    let hosts: BTreeMap<String, String> = ips
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let prom = Prometheus::start(&docker.name("prometheus-compose"), &hosts).unwrap();
    let wait = Duration::from_secs(30);
    prom.wait_for("up", wait, |r| {
        r.len() == 3 && r.iter().all(|(_, v)| *v == 1.0)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", prom.log()));
    // Both relays in the directory under the ids compose gives them.
    let load = prom
        .wait_for("rendezvous_relay_load_permille", wait, |r| r.len() == 2)
        .unwrap();
    let mut ids: Vec<&str> = load.iter().map(|(l, _)| l["relay"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["relay-1", "relay-2"]);
    prom.wait_for("sum(supernode_relay_relayed_packets_total)", wait, |r| {
        r.first().is_some_and(|(_, v)| *v >= 4.0)
    })
    .unwrap();

    drop(prom);
    drop(project);
    drop(docker);
    let left = Docker::leftovers("docker", &run_id).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}
