//! `supernode-bench`: drives any TURN/STUN server and reports what it delivered.
//!
//! Subcommands measure one thing each — relayed round trips (`relay`), authenticated
//! allocations per second (`allocate`), STUN Binding requests per second (`stun`) and server
//! memory per allocation (`hold`). Given the server's PID, every report also carries the
//! server's CPU time over the run (utime + stime from `/proc`) and the rate per server
//! CPU-second, which is the fair comparison on a small machine where the load generator
//! saturates before a fast server does. Output is one JSON object per run, for
//! `bench/compare.sh` to tabulate.

mod alloc_load;
mod client;
mod proc_stats;
mod relay_load;
mod report;
mod stun_load;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;

/// Load generator for TURN/STUN servers.
#[derive(Debug, Parser)]
#[command(name = "supernode-bench", version)]
struct Cli {
    /// The server's UDP address.
    #[arg(long, default_value = "127.0.0.1:3478", global = true)]
    server: SocketAddr,
    /// TURN REST shared secret the server accepts.
    #[arg(long, default_value = "bench-secret", global = true)]
    secret: String,
    /// The server's realm.
    #[arg(long, default_value = "supernode", global = true)]
    realm: String,
    /// The server's PID, to report its CPU time and memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// A label for the report (e.g. the server's name).
    #[arg(long, default_value = "", global = true)]
    label: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Relayed round trips: client → relay → echo peer → relay → client.
    Relay(relay_load::Args),
    /// Authenticated allocations per second (Allocate, then Refresh to zero).
    Allocate(alloc_load::Args),
    /// STUN Binding requests per second, each response validated.
    Stun(stun_load::Args),
    /// Server RSS before and after holding N allocations.
    Hold {
        /// Allocations to create and hold.
        #[arg(long, default_value_t = 10_000)]
        allocations: usize,
        /// Seconds to hold them before reading memory (lets the server settle).
        #[arg(long, default_value_t = 2)]
        settle_secs: u64,
    },
}

/// Settings every subcommand shares.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server address.
    pub server: SocketAddr,
    /// REST secret.
    pub secret: String,
    /// Realm.
    pub realm: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let target = Target {
        server: cli.server,
        secret: cli.secret.clone(),
        realm: cli.realm.clone(),
    };
    let cpu = proc_stats::CpuMeter::start(cli.server_pid);
    let mut report = match &cli.command {
        Command::Relay(args) => relay_load::run(&target, args)?,
        Command::Allocate(args) => alloc_load::run(&target, args)?,
        Command::Stun(args) => stun_load::run(&target, args)?,
        Command::Hold {
            allocations,
            settle_secs,
        } => hold(
            &target,
            *allocations,
            Duration::from_secs(*settle_secs),
            cli.server_pid,
        )?,
    };
    report.label = cli.label;
    report.server_cpu_secs = cpu.finish();
    report.finish();
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn hold(
    target: &Target,
    n: usize,
    settle: Duration,
    pid: Option<u32>,
) -> anyhow::Result<report::Report> {
    let before = pid.and_then(proc_stats::rss_kib);
    let mut clients = Vec::with_capacity(n);
    let mut nonce = None;
    for i in 0..n {
        let mut c = client::TurnClient::new(target, &format!("hold{i}"))?;
        c.set_nonce(nonce.clone());
        c.allocate()?;
        nonce = c.nonce();
        clients.push(c);
    }
    std::thread::sleep(settle);
    let after = pid.and_then(proc_stats::rss_kib);
    let mut r = report::Report::new("hold");
    r.allocations = n as u64;
    r.rss_before_kib = before;
    r.rss_after_kib = after;
    Ok(r)
}
