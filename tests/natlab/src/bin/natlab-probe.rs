//! `natlab-probe`: the lab's independent NAT behaviour probe.
//!
//! ```text
//! natlab-probe reflect --ips A[,B] --ports P[,Q] [--tcp 443,80]   serve (prints {"ready":[…]})
//! natlab-probe classify --primary A:P --alternate B:Q [--tcp 443,80]   measure, print a report
//! natlab-probe echo --via A:P [--seconds N]   learn own mapping via a reflector, then answer
//! natlab-probe send --to X:Y                  one request; prints whether it was answered
//! natlab-probe rtt --to X:Y [--count N] [--timeout-ms T]   single-shot round trips (µs), lost count
//! ```
//!
//! Every command prints one JSON object per line on stdout; errors go to stderr with a
//! non-zero exit.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use supernode_natlab::probe::client::{self, Servers};
use supernode_natlab::probe::reflector::{Config, Reflector};

/// Longest an echo server may be asked to run.
const MAX_ECHO_SECONDS: u64 = 600;
/// Most round trips `rtt` may be asked for.
const MAX_RTT_COUNT: usize = 1000;
/// Longest `rtt` waits for one answer.
const MAX_RTT_TIMEOUT_MS: u64 = 10_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        bail!("usage: natlab-probe reflect|classify|echo|send|rtt [--flag value]…");
    };
    let flags = parse_flags(rest)?;
    match command.as_str() {
        "reflect" => reflect(&flags),
        "classify" => {
            let servers = Servers {
                primary: flag(&flags, "primary")?,
                alternate: flag(&flags, "alternate")?,
            };
            let report = client::measure(servers, &list(&flags, "tcp")?)?;
            println!("{}", report.to_json());
            Ok(())
        }
        "echo" => echo(&flags),
        "send" => {
            let to: SocketAddr = flag(&flags, "to")?;
            let resp = client::transact(&client::fresh_socket()?, to, false, false)?;
            println!(
                "{}",
                json!({
                    "reached": resp.is_some(),
                    "seen": resp.map(|r| r.seen.to_string()),
                    "from": resp.map(|r| r.from.to_string()),
                })
            );
            Ok(())
        }
        "rtt" => {
            let to: SocketAddr = flag(&flags, "to")?;
            let count = flags
                .get("count")
                .map(|c| c.parse::<usize>())
                .transpose()
                .context("--count must be a number")?
                .unwrap_or(10)
                .min(MAX_RTT_COUNT);
            let timeout_ms = flags
                .get("timeout-ms")
                .map(|c| c.parse::<u64>())
                .transpose()
                .context("--timeout-ms must be a number")?
                .unwrap_or(1000)
                .min(MAX_RTT_TIMEOUT_MS);
            let (rtts, lost) = client::rtts(to, count, Duration::from_millis(timeout_ms))?;
            let us: Vec<u128> = rtts.iter().map(Duration::as_micros).collect();
            println!("{}", json!({ "rtt_us": us, "lost": lost }));
            Ok(())
        }
        other => bail!("unknown command {other:?}"),
    }
}

/// Serves as a reflector until killed.
fn reflect(flags: &HashMap<String, String>) -> Result<()> {
    let config = Config {
        ips: list(flags, "ips")?,
        ports: list(flags, "ports")?,
        tcp_ports: list(flags, "tcp")?,
    };
    let reflector = Reflector::bind(&config)?;
    let ready: Vec<String> = reflector
        .udp_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!("{}", json!({ "ready": ready }));
    reflector.serve()
}

/// Learns this socket's mapped address, prints it, then answers requests on it.
fn echo(flags: &HashMap<String, String>) -> Result<()> {
    let via: SocketAddr = flag(flags, "via")?;
    let seconds = flags
        .get("seconds")
        .map(|s| s.parse::<u64>())
        .transpose()
        .context("--seconds must be a number")?
        .unwrap_or(30)
        .min(MAX_ECHO_SECONDS);
    let socket = client::fresh_socket()?;
    let resp = client::transact(&socket, via, false, false)?
        .with_context(|| format!("no answer from reflector {via}"))?;
    println!(
        "{}",
        json!({"local": socket.local_addr()?.to_string(), "mapped": resp.seen.to_string()})
    );
    std::thread::spawn(move || Reflector::single(socket).serve());
    std::thread::sleep(Duration::from_secs(seconds));
    Ok(())
}

/// Parses `--name value` pairs.
fn parse_flags(args: &[String]) -> Result<HashMap<String, String>> {
    let mut flags = HashMap::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let key = name
            .strip_prefix("--")
            .with_context(|| format!("expected --flag, got {name:?}"))?;
        let value = it
            .next()
            .with_context(|| format!("--{key} needs a value"))?;
        flags.insert(key.to_owned(), value.clone());
    }
    Ok(flags)
}

/// A required flag, parsed.
fn flag<T: std::str::FromStr>(flags: &HashMap<String, String>, name: &str) -> Result<T> {
    flags
        .get(name)
        .with_context(|| format!("--{name} is required"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("--{name} is not valid"))
}

/// An optional comma-separated list flag.
fn list<T: std::str::FromStr>(flags: &HashMap<String, String>, name: &str) -> Result<Vec<T>> {
    let Some(v) = flags.get(name) else {
        return Ok(Vec::new());
    };
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| anyhow::anyhow!("--{name}: {s:?} is not valid"))
        })
        .collect()
}
