//! `deploy/docker-compose.yml` brought up with `docker-compose`, as users run it, with the
//! changes a shared test machine needs and nothing else:
//!
//! - only the node services (Prometheus and Grafana images cannot be pulled here; the
//!   Prometheus configuration is exercised by the host's `prometheus` instead);
//! - no published ports (a test must not take the host's 3478 or the relay ranges), so clients
//!   reach the containers on the Docker network;
//! - the network is one the test created (so it knows its range and removes it);
//! - the relays allow peers on that network, where the test's peer lives.
//!
//! Everything else — image, commands, environment, the entrypoint's name resolution of the
//! rendezvous — is the resolved compose file (`docker-compose config`).

use crate::docker::Docker;
use crate::env;
use anyhow::{Context, Result, ensure};
use serde_yaml::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Services of the compose file this test runs.
pub const NODE_SERVICES: [&str; 3] = ["rendezvous", "relay-1", "relay-2"];

/// A compose project, taken down (containers, volumes) on drop.
#[derive(Debug)]
pub struct Project {
    /// Project name (`-p`).
    pub name: String,
    /// The edited, resolved compose file.
    file: PathBuf,
}

impl Project {
    /// Resolves the deploy compose file with `vars`, edits it as described in the module
    /// docs (joining `network`, allowing peers in `subnet`), and starts the node services.
    pub fn up(docker: &Docker, vars: &[(&str, &str)], network: &str, subnet: &str) -> Result<Self> {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(env::deploy_dir())
            .args(["-f", "docker-compose.yml", "config"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().context("docker-compose config")?;
        ensure!(
            out.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut doc: Value = serde_yaml::from_slice(&out.stdout)?;
        let services = doc["services"].as_mapping_mut().context("no services")?;
        services.retain(|k, _| k.as_str().is_some_and(|k| NODE_SERVICES.contains(&k)));
        for (name, s) in services.iter_mut() {
            let s = s.as_mapping_mut().context("service not a mapping")?;
            s.remove("ports");
            s.remove("build");
            s.insert("networks".into(), Value::Sequence(vec!["supernode".into()]));
            if name.as_str().is_some_and(|n| n.starts_with("relay")) {
                let env = s
                    .get_mut("environment")
                    .and_then(Value::as_mapping_mut)
                    .context("relay without environment")?;
                env.insert("SUPERNODE_RELAY_ALLOW_PEERS".into(), subnet.into());
            }
        }
        if let Some(m) = doc.as_mapping_mut() {
            m.remove("volumes");
        }
        let mut net = serde_yaml::Mapping::new();
        net.insert("external".into(), true.into());
        net.insert("name".into(), network.into());
        doc["networks"] = Value::Mapping(
            [(Value::from("supernode"), Value::Mapping(net))]
                .into_iter()
                .collect(),
        );

        let name = docker.name("compose");
        let file = std::env::temp_dir().join(format!("{name}.yml"));
        std::fs::write(&file, serde_yaml::to_string(&doc)?)?;
        let project = Self { name, file };
        let out = project
            .command(&["up", "-d", "--no-build"])
            .args(NODE_SERVICES)
            .output()?;
        ensure!(
            out.status.success(),
            "docker-compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(project)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.file)
            .args(args);
        cmd
    }

    /// The container id of `service`.
    pub fn container(&self, service: &str) -> Result<String> {
        let out = self.command(&["ps", "-q", service]).output()?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        ensure!(!id.is_empty(), "no container for {service}");
        Ok(id)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self
            .command(&["down", "-v", "--remove-orphans", "-t", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.file);
    }
}
