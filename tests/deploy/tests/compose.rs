//! `deploy/docker-compose.yml` is valid for Compose, sets only environment variables the
//! binaries read, publishes each relay's port range on the same numbers it relays from, and
//! mounts the Prometheus files where the configuration expects them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use supernode_deploy_tests::env;

/// `docker-compose config` with `vars` set: the resolved file, or stderr.
fn compose_config(vars: &[(&str, &str)]) -> Result<serde_yaml::Value, String> {
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(env::deploy_dir())
        .args(["-f", "docker-compose.yml", "config"])
        .env_remove("SUPERNODE_SECRET");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run docker-compose");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_yaml::from_slice(&out.stdout).expect("resolved compose file is YAML"))
}

/// The environment variables a binary documents in its `--help` (`[env: NAME=]`).
fn env_vars(bin: &Path) -> BTreeSet<String> {
    let out = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    help.split("[env: ")
        .skip(1)
        .filter_map(|s| s.split(['=', ']']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn compose_file_is_valid_and_matches_the_binaries() {
    if let Err(e) = env::ensure_tool("docker-compose", "docker-compose") {
        return env::skip(&e.to_string());
    }
    // The shared secret is required: no cluster starts with a default one.
    let err = compose_config(&[]).unwrap_err();
    assert!(err.contains("SUPERNODE_SECRET"), "{err}");

    let c = compose_config(&[
        ("SUPERNODE_SECRET", "s3cret"),
        ("SUPERNODE_EXTERNAL_IP", "203.0.113.10"),
    ])
    .unwrap();
    let services = &c["services"];
    for s in ["rendezvous", "relay-1", "relay-2", "prometheus", "grafana"] {
        assert!(services[s].is_mapping(), "service {s} missing");
    }

    let (relay_bin, rendezvous_bin) = env::node_binaries().expect("node binaries");
    // The example config file for containers is one the relay accepts.
    let out = Command::new(&relay_bin)
        .args(["check-config", "--config"])
        .arg(env::deploy_dir().join("config/relay.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relay_env = env_vars(&relay_bin);
    let rdv_env = env_vars(&rendezvous_bin);
    assert!(
        relay_env.contains("SUPERNODE_RELAY_EXTERNAL"),
        "{relay_env:?}"
    );
    // SUPERNODE_RELAY_RENDEZVOUS is read by the relay; names are resolved by the entrypoint.
    let common = ["SUPERNODE_LOG", "NO_COLOR"];
    for (service, known) in [
        ("relay-1", &relay_env),
        ("relay-2", &relay_env),
        ("rendezvous", &rdv_env),
    ] {
        let envs = services[service]["environment"].as_mapping().unwrap();
        for (k, _) in envs {
            let k = k.as_str().unwrap();
            assert!(
                known.contains(k) || common.contains(&k),
                "{service} sets {k}, which its binary does not read"
            );
        }
    }

    // Each relay's range is published 1:1, and ranges do not overlap.
    let mut ranges = Vec::new();
    for service in ["relay-1", "relay-2"] {
        let s = &services[service];
        assert_eq!(
            s["environment"]["SUPERNODE_RELAY_EXTERNAL"].as_str(),
            Some("203.0.113.10")
        );
        assert_eq!(
            s["environment"]["SUPERNODE_RELAY_SECRETS"].as_str(),
            Some("s3cret")
        );
        let min: u16 = s["environment"]["SUPERNODE_RELAY_MIN_PORT"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let max: u16 = s["environment"]["SUPERNODE_RELAY_MAX_PORT"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let quota: u16 = s["environment"]["SUPERNODE_RELAY_TOTAL_QUOTA"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            quota,
            max - min + 1,
            "{service}: total quota should equal the range size"
        );
        let published = s["ports"].as_sequence().unwrap().iter().any(|p| {
            // docker-compose v1 resolves "a-b:a-b/udp" into one entry per port or keeps the
            // string; accept both spellings.
            let text = serde_yaml::to_string(p).unwrap();
            text.contains(&format!("{min}-{max}:{min}-{max}/udp"))
                || (text.contains(&format!("published: {min}"))
                    && text.contains(&format!("target: {min}")))
        });
        assert!(
            published,
            "{service}: range {min}-{max} not published 1:1: {:?}",
            s["ports"]
        );
        ranges.push((min, max));
    }
    assert!(
        ranges[0].1 < ranges[1].0 || ranges[1].1 < ranges[0].0,
        "ranges overlap: {ranges:?}"
    );

    // Prometheus finds its rules where prometheus.yml says (relative to the config file).
    let prom = &services["prometheus"];
    let volumes = serde_yaml::to_string(&prom["volumes"]).unwrap();
    assert!(
        volumes.contains("/etc/prometheus/prometheus.yml"),
        "{volumes}"
    );
    assert!(volumes.contains("/etc/prometheus/rules"), "{volumes}");
    let config: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(env::deploy_dir().join("prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["rule_files"][0].as_str(), Some("rules/*.yml"));
    // Scrape targets are the compose services.
    let targets = serde_yaml::to_string(&config["scrape_configs"]).unwrap();
    for s in ["relay-1:9641", "relay-2:9641", "rendezvous:9578"] {
        assert!(targets.contains(s), "{s} not scraped");
    }
}
