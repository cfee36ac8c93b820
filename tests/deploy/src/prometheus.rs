//! A real Prometheus (Debian's package) on loopback, configured from
//! `deploy/prometheus/prometheus.yml` and its rules, and queried through its HTTP API.
//!
//! The deploy configuration names compose services (`relay-1:9641`); the test rewrites only
//! the target hosts (to the containers' IPs) and the intervals (to one second, so a run takes
//! seconds), keeping jobs, paths and rules as users get them.

use crate::{env, http, image, nodes};
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Prometheus may take to start answering.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Prometheus, killed (and its data removed) on drop.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// Its HTTP API address on loopback.
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with the deploy configuration, each target host replaced through
    /// `hosts` (compose service name → address), in directory `name` under the temp dir.
    pub fn start(name: &str, hosts: &BTreeMap<String, String>) -> Result<Self> {
        let dir = image::tempdir(name)?;
        let src = env::deploy_dir().join("prometheus");
        let config = rewrite_config(&src.join("prometheus.yml"), hosts)?;
        std::fs::write(dir.join("prometheus.yml"), config)?;
        std::fs::create_dir_all(dir.join("rules"))?;
        for entry in std::fs::read_dir(src.join("rules"))? {
            let path = entry?.path();
            if let Some(file) = path.file_name() {
                std::fs::copy(&path, dir.join("rules").join(file))?;
            }
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], nodes::free_port()?));
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                dir.join("prometheus.log"),
            )?))
            .spawn()
            .context("starting prometheus")?;
        let mut p = Self { child, dir, addr };
        let deadline = Instant::now() + READY_TIMEOUT;
        while http::get(addr, "/-/ready").is_err() {
            if let Ok(Some(status)) = p.child.try_wait() {
                bail!("prometheus exited ({status}):\n{}", p.log());
            }
            ensure!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(p)
    }

    /// Prometheus' own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`; the `data` of a successful answer.
    pub fn api(&self, path: &str) -> Result<Value> {
        let body = http::get(self.addr, &format!("/api/v1/{path}"))?;
        let v: Value = serde_json::from_str(&body).context("API answer is not JSON")?;
        ensure!(v["status"] == "success", "API {path}: {body}");
        Ok(v["data"].clone())
    }

    /// An instant query: each series' labels and value.
    pub fn query(&self, expr: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let data = self.api(&format!("query?query={}", http::encode(expr)))?;
        let mut out = Vec::new();
        for s in data["result"].as_array().context("no result")? {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let value = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .context("sample without value")?;
            out.push((labels, value));
        }
        Ok(out)
    }

    /// Polls `expr` until `ok` holds for its result, up to `timeout`; the last result.
    pub fn wait_for(
        &self,
        expr: &str,
        timeout: Duration,
        ok: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
    ) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(expr)?;
            if ok(&r) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                bail!("`{expr}` gave {r:?} for {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The deploy configuration with 1 s intervals and target hosts mapped through `hosts`
/// (every target host must be mapped, so a renamed service fails loudly).
pub fn rewrite_config(path: &Path, hosts: &BTreeMap<String, String>) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    doc["global"]["scrape_interval"] = "1s".into();
    doc["global"]["evaluation_interval"] = "1s".into();
    let jobs = doc["scrape_configs"]
        .as_sequence_mut()
        .context("no scrape_configs")?;
    for job in jobs {
        for sc in job["static_configs"]
            .as_sequence_mut()
            .context("job without static_configs")?
        {
            for t in sc["targets"].as_sequence_mut().context("no targets")? {
                let target = t.as_str().context("target not a string")?;
                let (host, port) = target.rsplit_once(':').context("target without port")?;
                let ip = hosts
                    .get(host)
                    .with_context(|| format!("no address for scrape target host {host}"))?;
                *t = format!("{ip}:{port}").into();
            }
        }
    }
    Ok(serde_yaml::to_string(&doc)?)
}
