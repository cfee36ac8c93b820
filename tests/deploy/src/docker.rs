//! The Docker CLI, with everything a test creates named after one run id and removed on drop.
//!
//! Image builds need BuildKit (the Dockerfile's runtime stage is built alone, skipping the
//! builder stage, which the classic builder cannot do). Recent CLIs bring BuildKit through the
//! buildx plugin; the CLI of Debian's `docker.io` 20.10 has it built in. [`Docker::find`]
//! picks a CLI that can.

use anyhow::{Context, Result, bail, ensure};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where Debian's docker.io puts its CLI, which builds with BuildKit without buildx.
const DEBIAN_DOCKER_CLI: &str = "/usr/bin/docker";
/// Longest a container may take to report healthy.
pub const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);

/// A Docker engine reachable through a CLI, and the objects this run created in it.
#[derive(Debug)]
pub struct Docker {
    /// CLI used for everything.
    cli: PathBuf,
    /// CLI used for `build` (the same, or one with BuildKit built in).
    build_cli: PathBuf,
    /// Prefix of every name this run gives (unique per process and call).
    pub run_id: String,
    /// Created objects, removed in reverse order on drop.
    containers: Vec<String>,
    networks: Vec<String>,
    images: Vec<String>,
}

impl Docker {
    /// A Docker engine that answers and a CLI that can build with BuildKit; `Err` says which
    /// is missing.
    pub fn find() -> Result<Self> {
        let cli = PathBuf::from("docker");
        let info = Command::new(&cli)
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match info {
            Ok(o) if o.status.success() => {}
            Ok(o) => bail!(
                "the Docker engine does not answer: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => bail!("no docker CLI: {e}"),
        }
        let has_buildx = Command::new(&cli)
            .args(["buildx", "version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let build_cli = if has_buildx {
            cli.clone()
        } else if Path::new(DEBIAN_DOCKER_CLI).is_file() && builtin_buildkit(DEBIAN_DOCKER_CLI) {
            PathBuf::from(DEBIAN_DOCKER_CLI)
        } else {
            bail!("no docker CLI that builds with BuildKit (install the buildx plugin)");
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let run_id = format!(
            "sndeploy-{}-{}-{:x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            nanos & 0xffff
        );
        Ok(Self {
            cli,
            build_cli,
            run_id,
            containers: Vec::new(),
            networks: Vec::new(),
            images: Vec::new(),
        })
    }

    /// A name for an object of this run.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.run_id)
    }

    /// Runs the CLI; `Err` carries stderr on failure.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        output_ok(Command::new(&self.cli).args(args).output(), args)
    }

    /// `docker build` with BuildKit; `image` is removed on drop.
    pub fn build(&mut self, image: &str, context: &Path, args: &[&str]) -> Result<()> {
        self.images.push(image.to_owned());
        let mut cmd = Command::new(&self.build_cli);
        cmd.env("DOCKER_BUILDKIT", "1")
            .args(["build", "--progress=plain", "-t", image])
            .args(args)
            .arg(context);
        let out = cmd.output().context("docker build")?;
        if !out.status.success() {
            bail!(
                "docker build {image} failed:\n{}",
                tail(&String::from_utf8_lossy(&out.stderr), 40)
            );
        }
        Ok(())
    }

    /// `docker import` of a root filesystem tar as `image` (removed on drop).
    pub fn import(&mut self, tar: &Path, image: &str) -> Result<()> {
        self.images.push(image.to_owned());
        let path = tar.to_str().context("tar path")?;
        self.run(&["import", path, image]).map(drop)
    }

    /// Creates a bridge network (removed on drop) and returns its subnet.
    pub fn network(&mut self, name: &str) -> Result<String> {
        self.run(&["network", "create", "--driver", "bridge", name])?;
        self.networks.push(name.to_owned());
        let subnet = self.run(&[
            "network",
            "inspect",
            name,
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        ])?;
        Ok(subnet.trim().to_owned())
    }

    /// Starts a detached container (removed on drop) and returns its IPv4 address on `network`.
    pub fn start(&mut self, name: &str, network: &str, args: &[&str]) -> Result<Ipv4Addr> {
        let mut all = vec!["run", "-d", "--name", name, "--network", network];
        all.extend_from_slice(args);
        self.containers.push(name.to_owned());
        self.run(&all)?;
        self.ip(name)
    }

    /// The IPv4 address of container `name` (on its only network).
    pub fn ip(&self, name: &str) -> Result<Ipv4Addr> {
        let ip = self.run(&[
            "inspect",
            name,
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        ])?;
        ip.trim()
            .parse()
            .with_context(|| format!("IP of container {name}: {ip:?}"))
    }

    /// The gateway (the host's address) of network `name`.
    pub fn gateway(&self, name: &str) -> Result<Ipv4Addr> {
        let gw = self.run(&[
            "network",
            "inspect",
            name,
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        ])?;
        gw.trim()
            .parse()
            .with_context(|| format!("gateway of network {name}: {gw:?}"))
    }

    /// Waits until the image's HEALTHCHECK reports the container healthy.
    pub fn wait_healthy(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        loop {
            let state = self.run(&["inspect", name, "--format", "{{.State.Health.Status}}"])?;
            match state.trim() {
                "healthy" => return Ok(()),
                "unhealthy" => bail!("{name} unhealthy:\n{}", self.logs(name)),
                _ if Instant::now() > deadline => {
                    bail!(
                        "{name} not healthy after {HEALTHY_TIMEOUT:?}:\n{}",
                        self.logs(name)
                    )
                }
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// The container's log (stdout and stderr), for failure messages.
    pub fn logs(&self, name: &str) -> String {
        Command::new(&self.cli)
            .args(["logs", "--tail", "50", name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }

    /// Names of this run's objects still present (images, containers and networks), to check
    /// that cleanup worked.
    pub fn leftovers(cli: &str, run_id: &str) -> Result<Vec<String>> {
        let filter = format!("name={run_id}");
        let mut names = Vec::new();
        for args in [
            vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
            vec![
                "network",
                "ls",
                "--filter",
                &filter,
                "--format",
                "{{.Name}}",
            ],
            vec!["images", "--format", "{{.Repository}}"],
        ] {
            let out = output_ok(Command::new(cli).args(&args).output(), &args)?;
            names.extend(
                out.lines()
                    .filter(|l| l.contains(run_id))
                    .map(str::to_owned),
            );
        }
        Ok(names)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new(&self.cli)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        for c in self.containers.iter().rev() {
            quiet(&["rm", "-f", "-v", c]);
        }
        for n in self.networks.iter().rev() {
            quiet(&["network", "rm", n]);
        }
        for i in self.images.iter().rev() {
            quiet(&["rmi", "-f", i]);
        }
    }
}

/// True if the CLI at `path` is older than 23, whose `build` still has BuildKit built in.
fn builtin_buildkit(path: &str) -> bool {
    Command::new(path)
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .ok()
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            v.split('.').next()?.parse::<u32>().ok()
        })
        .is_some_and(|major| (18..23).contains(&major))
}

fn output_ok(out: std::io::Result<Output>, args: &[&str]) -> Result<String> {
    let out = out.with_context(|| format!("docker {args:?}"))?;
    ensure!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
