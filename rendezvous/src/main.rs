//! `supernode-rendezvous`: runs a rendezvous node, or probes one.
//!
//! - `supernode-rendezvous [run] [--config FILE] [flags]` runs a node (the default).
//! - `supernode-rendezvous discover --server ADDR [--json]` classifies this host's NAT with
//!   RFC 5780 tests against any RFC 5780 server.
//! - `supernode-rendezvous keygen --out FILE` writes a new peer key (mode 0600) and prints the
//!   peer id.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use supernode_proto::discover::Classifier;
use supernode_rendezvous::config::Config;
use supernode_rendezvous::{driver, http, metrics};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "supernode rendezvous node: STUN/RFC 5780, peer registry, hole-punch signalling, relay directory"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a rendezvous node (the default).
    Run(RunArgs),
    /// Classify this host's NAT mapping and filtering behaviour (RFC 5780).
    Discover {
        /// The RFC 5780 server, e.g. 192.0.2.1:3578.
        #[arg(long)]
        server: SocketAddr,
        /// Local address to bind (default: any address, any port).
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Generate a peer key file (mode 0600) and print the peer id.
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Args, Default)]
struct RunArgs {
    /// TOML configuration file.
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_CONFIG")]
    config: Option<PathBuf>,
    /// Primary UDP/TCP address.
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Second port for RFC 5780 change-port answers.
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_ALTERNATE_PORT")]
    alternate_port: Option<u16>,
    /// Second IP for RFC 5780 change-IP answers.
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_ALTERNATE_IP")]
    alternate_ip: Option<IpAddr>,
    /// Prometheus endpoint address.
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_METRICS")]
    metrics: Option<SocketAddr>,
    /// Shared relay secret (TURN REST static-auth-secret).
    #[arg(long, env = "SUPERNODE_RELAY_SECRET", hide_env_values = true)]
    relay_secret: Option<String>,
    /// Do not accept TCP.
    #[arg(long)]
    no_tcp: bool,
    /// Accept TLS on this address (with --tls-cert and --tls-key).
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "SUPERNODE_RENDEZVOUS_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Log filter, e.g. `info` or `supernode_rendezvous=debug`.
    #[arg(long, env = "SUPERNODE_LOG")]
    log: Option<String>,
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.alternate_port {
            c.alternate_port = v;
        }
        if let Some(v) = self.alternate_ip {
            c.alternate_ip = Some(v);
        }
        if let Some(v) = self.metrics {
            c.metrics = Some(v);
        }
        if let Some(v) = &self.relay_secret {
            c.relay_secret = Some(v.clone());
        }
        if self.no_tcp {
            c.tcp = false;
        }
        if let Some(v) = self.tls_listen {
            c.tls_listen = Some(v);
        }
        if let Some(v) = &self.tls_cert {
            c.tls_cert = Some(v.clone());
        }
        if let Some(v) = &self.tls_key {
            c.tls_key = Some(v.clone());
        }
        if let Some(v) = &self.log {
            c.log = v.clone();
        }
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Keygen { out, force }) => keygen(&out, force),
        Some(Command::Discover { server, bind, json }) => {
            init_logging("warn");
            runtime()?.block_on(discover(server, bind, json))
        }
        Some(Command::Run(args)) => run(&args),
        None => run(&cli.run),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    init_logging(&config.log);
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    let core = config.core(secret)?;
    let tls = match config.tls()? {
        Some((addr, cert, key)) => Some((addr, driver::tls::acceptor(cert, key)?)),
        None => None,
    };
    let options = driver::Options {
        core,
        tcp: config.tcp,
        max_tcp_connections: config.max_tcp_connections,
        tls,
    };
    runtime()?.block_on(async move {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = metrics::Metrics::new(&mut registry);
        let server = driver::Server::bind(options, metrics)
            .await
            .with_context(|| format!("binding {} (config field `listen`)", config.listen))?;
        let _http = match config.metrics {
            Some(addr) => {
                let (bound, task) =
                    http::serve(addr, Arc::new(registry))
                        .await
                        .with_context(|| {
                            format!("binding metrics endpoint {addr} (config field `metrics`)")
                        })?;
                tracing::info!(%bound, "metrics on http://{bound}/metrics");
                Some(task)
            }
            None => None,
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        // On a worker thread, the loop polls the I/O driver itself instead of being woken
        // across threads for every datagram.
        tokio::spawn(server.run(shutdown))
            .await
            .context("rendezvous task")?
            .context("running the rendezvous")
    })
}

async fn discover(server: SocketAddr, bind: Option<SocketAddr>, json: bool) -> anyhow::Result<()> {
    let bind = bind.unwrap_or_else(|| {
        if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        }
    });
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    // The address the OS would use towards the server tells whether a NAT is in the way.
    let local = {
        let probe = std::net::UdpSocket::bind(SocketAddr::new(bind.ip(), 0))?;
        probe
            .connect(server)
            .ok()
            .and_then(|_| probe.local_addr().ok())
    }
    .map(|a| SocketAddr::new(a.ip(), sock.local_addr().map(|l| l.port()).unwrap_or(0)));
    let mut c = Classifier::new(server, local, Instant::now());
    let mut buf = [0u8; 2048];
    // Bounded: every test ends after its retries; this guards against a clock stall.
    let give_up = Instant::now() + Duration::from_secs(30);
    while c.report().is_none() && Instant::now() < give_up {
        while let Some((dest, bytes)) = c.poll_transmit() {
            let _ = sock.send_to(&bytes, dest).await;
        }
        let Some(at) = c.poll_timeout() else { break };
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    c.handle_input(Instant::now(), from, &buf[..n]);
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => c.handle_timeout(Instant::now()),
        }
    }
    let report = c.report().context("discovery did not finish")?;
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string());
    if json {
        let value = serde_json::json!({
            "server": report.server.to_string(),
            "local": addr(report.local),
            "mapped": addr(report.mapped),
            "other_address": addr(report.other_address),
            "alternate_ip": report.alternate_ip,
            "udp_blocked": report.udp_blocked,
            "nat": report.nat,
            "mapping": report.mapping.name(),
            "filtering": report.filtering.name(),
        });
        println!("{value}");
    } else {
        let dash = |a: Option<String>| a.unwrap_or_else(|| "-".into());
        println!("server:       {}", report.server);
        println!("mapped:       {}", dash(addr(report.mapped)));
        println!("other:        {}", dash(addr(report.other_address)));
        println!("udp blocked:  {}", report.udp_blocked);
        println!(
            "nat:          {}",
            report.nat.map_or("unknown".into(), |n| n.to_string())
        );
        println!("mapping:      {}", report.mapping.name());
        println!("filtering:    {}", report.filtering.name());
        if !report.alternate_ip {
            println!(
                "note:         server has one IP; address- vs endpoint-independence not distinguishable"
            );
        }
    }
    Ok(())
}

fn keygen(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let key = supernode_proto::identity::Keypair::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("creating key file {}", out.display()))?;
    file.write_all(key.to_file_string().as_bytes())?;
    println!("{}", key.peer_id());
    Ok(())
}
