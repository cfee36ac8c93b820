//! Running the probe inside a lab: start a reflector on a public node, measure from hosts,
//! check hairpinning, and compare against what a [`NatKind`] promises.

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lab::Lab;
use crate::nat::NatKind;
use crate::probe::classify::Report;
use crate::probe::client::Servers;
use crate::process::Proc;

/// UDP ports the reflector serves on both of its addresses (primary, alternate).
pub const REFLECTOR_PORTS: [u16; 2] = [3478, 3479];
/// TCP ports the reflector serves on its primary address: one a firewall lets through, one
/// it must not.
pub const TCP_PORTS: [u16; 2] = [443, 80];
/// Longest a probe command may run; a full classification against a NAT that drops
/// everything takes about five seconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a server to print that it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the `natlab-probe` binary is: `$NATLAB_PROBE`, or next to the running executable
/// (Cargo puts test binaries in `target/<profile>/deps`, binaries in `target/<profile>`).
pub fn probe_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATLAB_PROBE") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dirs = exe.ancestors().skip(1).take(2);
    for dir in dirs {
        let candidate = dir.join("natlab-probe");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "natlab-probe not found next to {}; set NATLAB_PROBE",
        exe.display()
    )
}

/// A reflector running on a public node.
#[derive(Debug)]
pub struct ReflectorRun {
    /// The reflector process (killed on drop).
    pub proc: Proc,
    /// Its endpoints.
    pub servers: Servers,
}

/// Starts a reflector on `node`, which must have two addresses.
pub fn start_reflector(lab: &Lab, node: &str, probe: &Path) -> Result<ReflectorRun> {
    let n = lab.node(node);
    let [a, b] = n.addrs() else {
        bail!("reflector node {node:?} needs exactly two addresses");
    };
    let ips = format!("{a},{b}");
    let ports = format!("{},{}", REFLECTOR_PORTS[0], REFLECTOR_PORTS[1]);
    let tcp = format!("{},{}", TCP_PORTS[0], TCP_PORTS[1]);
    let mut proc = n.spawn(&[
        probe.to_str().context("probe path")?,
        "reflect",
        "--ips",
        &ips,
        "--ports",
        &ports,
        "--tcp",
        &tcp,
    ])?;
    let line = proc
        .next_line(READY_TIMEOUT)
        .context("reflector did not become ready")?;
    ensure!(
        line.contains("ready"),
        "unexpected reflector output {line:?}"
    );
    Ok(ReflectorRun {
        proc,
        servers: Servers {
            primary: SocketAddrV4::new(*a, REFLECTOR_PORTS[0]),
            alternate: SocketAddrV4::new(*b, REFLECTOR_PORTS[1]),
        },
    })
}

/// Runs `natlab-probe classify` on `host` against `servers`.
pub fn classify_from(lab: &Lab, host: &str, probe: &Path, servers: Servers) -> Result<Report> {
    let tcp = format!("{},{}", TCP_PORTS[0], TCP_PORTS[1]);
    let out = lab.host(host).run(
        &[
            probe.to_str().context("probe path")?,
            "classify",
            "--primary",
            &servers.primary.to_string(),
            "--alternate",
            &servers.alternate.to_string(),
            "--tcp",
            &tcp,
        ],
        PROBE_TIMEOUT,
    )?;
    ensure!(
        out.status.success(),
        "probe failed on {host}: {}",
        out.stderr_text()
    );
    let v: Value = serde_json::from_str(&out.stdout_text())
        .with_context(|| format!("probe output {:?}", out.stdout))?;
    Report::from_json(&v).context("malformed probe report")
}

/// Differences between `report` and what `kind` promises; empty when they agree.
pub fn mismatches(kind: NatKind, report: &Report) -> Vec<String> {
    let e = kind.expected();
    let mut out = Vec::new();
    let mut check = |what: &str, want: String, got: String| {
        if want != got {
            out.push(format!("{what}: expected {want}, measured {got}"));
        }
    };
    check("udp", e.udp.to_string(), report.udp.to_string());
    check(
        "translated",
        e.translated.to_string(),
        report.translated.to_string(),
    );
    check(
        "mapping",
        format!("{:?}", e.mapping),
        format!("{:?}", report.mapping),
    );
    check(
        "filtering",
        format!("{:?}", e.filtering),
        format!("{:?}", report.filtering),
    );
    check(
        "allocation",
        format!("{:?}", e.allocation),
        format!("{:?}", report.allocation),
    );
    check(
        "hops",
        format!("{:?}", e.hops),
        format!("{:?}", report.observations.hops),
    );
    check(
        "tcp 443",
        format!("{:?}", Some(e.tcp_443)),
        format!("{:?}", report.tcp(TCP_PORTS[0])),
    );
    check(
        "tcp 80",
        format!("{:?}", Some(e.tcp_other)),
        format!("{:?}", report.tcp(TCP_PORTS[1])),
    );
    out
}

/// What the hairpin test saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hairpin {
    /// The receiver's mapped (public) address, which the sender targeted.
    pub target: SocketAddr,
    /// Whether the sender got an answer.
    pub reached: bool,
    /// The sender's address as the receiver saw it.
    pub seen: Option<SocketAddr>,
}

/// Sends from `from` to the mapped address of `to` (both behind the same NAT); `to` learns its
/// mapping from the reflector first.
pub fn hairpin(lab: &Lab, from: &str, to: &str, probe: &Path, servers: Servers) -> Result<Hairpin> {
    let probe_str = probe.to_str().context("probe path")?;
    let mut echo = lab.host(to).spawn(&[
        probe_str,
        "echo",
        "--via",
        &servers.primary.to_string(),
        "--seconds",
        "30",
    ])?;
    let line = echo
        .next_line(READY_TIMEOUT)
        .context("echo server did not report its mapping")?;
    let v: Value = serde_json::from_str(&line)?;
    let target: SocketAddr = v
        .get("mapped")
        .and_then(Value::as_str)
        .context("no mapped address")?
        .parse()?;
    let out = lab.host(from).run(
        &[probe_str, "send", "--to", &target.to_string()],
        PROBE_TIMEOUT,
    )?;
    ensure!(out.status.success(), "send failed: {}", out.stderr_text());
    let v: Value = serde_json::from_str(&out.stdout_text())?;
    Ok(Hairpin {
        target,
        reached: v.get("reached").and_then(Value::as_bool).unwrap_or(false),
        seen: v
            .get("seen")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
    })
}

/// Whether `addr` is in the shared address space of carrier-grade NAT (100.64.0.0/10).
pub fn is_cgn_addr(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V4(v4) if v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64)
}

/// Single-shot round trips from `host` to the reflector endpoint `to`: the RTTs of answered
/// requests and the number lost.
pub fn rtt(
    lab: &Lab,
    host: &str,
    probe: &Path,
    to: SocketAddrV4,
    count: usize,
    timeout: Duration,
) -> Result<(Vec<Duration>, usize)> {
    let out = lab.host(host).run(
        &[
            probe.to_str().context("probe path")?,
            "rtt",
            "--to",
            &to.to_string(),
            "--count",
            &count.to_string(),
            "--timeout-ms",
            &timeout.as_millis().to_string(),
        ],
        PROBE_TIMEOUT + timeout * u32::try_from(count).unwrap_or(u32::MAX),
    )?;
    ensure!(
        out.status.success(),
        "rtt failed on {host}: {}",
        out.stderr_text()
    );
    let v: Value = serde_json::from_str(&out.stdout_text())?;
    let rtts = v
        .get("rtt_us")
        .and_then(Value::as_array)
        .context("no rtt_us")?
        .iter()
        .filter_map(Value::as_u64)
        .map(Duration::from_micros)
        .collect();
    let lost = v.get("lost").and_then(Value::as_u64).context("no lost")?;
    Ok((rtts, usize::try_from(lost)?))
}
