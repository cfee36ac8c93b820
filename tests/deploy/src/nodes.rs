//! The relay and rendezvous binaries on loopback, for reading the metrics they really export
//! without Docker.

use crate::http;
use anyhow::{Context, Result, bail};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to serve its metrics endpoint.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A node process, killed on drop.
#[derive(Debug)]
pub struct Node {
    child: Child,
    /// Its metrics endpoint.
    pub metrics: SocketAddr,
}

impl Node {
    /// Starts `bin` with `args` and waits until `GET path` on `metrics` answers.
    pub fn start(bin: &Path, args: &[String], metrics: SocketAddr, path: &str) -> Result<Self> {
        let child = Command::new(bin)
            .args(args)
            .env("SUPERNODE_LOG", "error")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut node = Self { child, metrics };
        let deadline = Instant::now() + START_TIMEOUT;
        while http::get(metrics, path).is_err() {
            if let Ok(Some(status)) = node.child.try_wait() {
                bail!("{} exited: {status}", bin.display());
            }
            if Instant::now() > deadline {
                bail!("{} serves no {path} on {metrics}", bin.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(node)
    }

    /// Its current metrics text.
    pub fn scrape(&self) -> Result<String> {
        http::get(self.metrics, "/metrics")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP right now.
pub fn free_port() -> Result<u16> {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1")
}

/// A free range of `n` consecutive UDP ports on 127.0.0.1 (first, last).
pub fn free_range(n: u16) -> Result<(u16, u16)> {
    // Start where another process's search is unlikely to be.
    let offset = u16::try_from(std::process::id() % 100).unwrap_or(0) * 100;
    'next: for start in (40000 + offset..60000).step_by(usize::from(n) + 7) {
        let mut held = Vec::new();
        for p in start..start + n {
            match UdpSocket::bind(("127.0.0.1", p)) {
                Ok(s) => held.push(s),
                Err(_) => continue 'next,
            }
        }
        return Ok((start, start + n - 1));
    }
    bail!("no free range of {n} UDP ports")
}
