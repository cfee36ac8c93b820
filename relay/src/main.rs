//! `supernode-relay`: the TURN relay binary.
//!
//! Reads the configuration (file, then environment, then flags), starts the relay loop and the
//! metrics endpoint, and stops both on Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};
use supernode_proto::credentials::Credentials;
use supernode_proto::signal::announce;
use supernode_proto::signal::{RelayAddr, RelayTransport};
use supernode_relay::config::{Config, Metrics as MetricsConfig, Rendezvous, Tls};
use supernode_relay::server::Transport;
use supernode_relay::{driver, metrics};

/// supernode TURN relay (RFC 8656): UDP, TCP and TLS clients, UDP relaying, TURN REST
/// credentials, Prometheus metrics.
///
/// Settings come from a TOML file (--config), then SUPERNODE_RELAY_* environment variables, then
/// flags; later ones win. With nothing set it listens on 127.0.0.1:3478 (UDP and TCP), relays
/// from 127.0.0.1, serves metrics on 127.0.0.1:9641 and, having no credentials configured,
/// makes up a REST secret and prints it.
#[derive(Debug, Parser)]
#[command(name = "supernode-relay", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// TOML configuration file (see docs/relay.md for every key).
    #[arg(short, long, env = "SUPERNODE_RELAY_CONFIG", global = true)]
    config: Option<PathBuf>,

    /// REALM for long-term credentials.
    #[arg(long, env = "SUPERNODE_RELAY_REALM")]
    realm: Option<String>,

    /// UDP listening address(es), e.g. 0.0.0.0:3478. Replaces the file's list.
    #[arg(long, env = "SUPERNODE_RELAY_LISTEN_UDP", value_delimiter = ',')]
    listen_udp: Vec<SocketAddr>,

    /// TCP listening address(es). Replaces the file's list.
    #[arg(long, env = "SUPERNODE_RELAY_LISTEN_TCP", value_delimiter = ',')]
    listen_tcp: Vec<SocketAddr>,

    /// TLS listening address(es), e.g. 0.0.0.0:5349; needs --tls-cert and --tls-key.
    #[arg(long, env = "SUPERNODE_RELAY_LISTEN_TLS", value_delimiter = ',')]
    listen_tls: Vec<SocketAddr>,

    /// TLS certificate chain (PEM).
    #[arg(long, env = "SUPERNODE_RELAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "SUPERNODE_RELAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Local address(es) relay sockets bind to: one IPv4 and/or one IPv6, never 0.0.0.0.
    #[arg(long, env = "SUPERNODE_RELAY_ADDRESS", value_delimiter = ',')]
    relay_address: Vec<IpAddr>,

    /// Address(es) to advertise in XOR-RELAYED-ADDRESS instead of the relay address: the public
    /// IP of a relay behind 1:1 NAT or in a container.
    #[arg(long, env = "SUPERNODE_RELAY_EXTERNAL", value_delimiter = ',')]
    external_address: Vec<IpAddr>,

    /// First port of the relay port range.
    #[arg(long, env = "SUPERNODE_RELAY_MIN_PORT")]
    min_port: Option<u16>,

    /// Last port of the relay port range.
    #[arg(long, env = "SUPERNODE_RELAY_MAX_PORT")]
    max_port: Option<u16>,

    /// TURN REST shared secret(s) (as coturn's static-auth-secret); several for rotation.
    #[arg(
        long = "secret",
        env = "SUPERNODE_RELAY_SECRETS",
        value_delimiter = ','
    )]
    secrets: Vec<String>,

    /// Static user as NAME:PASSWORD (repeatable).
    #[arg(long = "user", env = "SUPERNODE_RELAY_USERS", value_delimiter = ',')]
    users: Vec<String>,

    /// Peer range(s) to permit even if internal, e.g. 127.0.0.0/8 for local testing.
    #[arg(
        long = "allow-peer",
        env = "SUPERNODE_RELAY_ALLOW_PEERS",
        value_delimiter = ','
    )]
    allow_peers: Vec<ipnet::IpNet>,

    /// Peer range(s) to refuse in addition to the built-in internal ranges.
    #[arg(
        long = "deny-peer",
        env = "SUPERNODE_RELAY_DENY_PEERS",
        value_delimiter = ','
    )]
    deny_peers: Vec<ipnet::IpNet>,

    /// Metrics HTTP address (serves /metrics and /healthz).
    #[arg(long, env = "SUPERNODE_RELAY_METRICS")]
    metrics: Option<SocketAddr>,

    /// Turn the metrics endpoint off.
    #[arg(long, conflicts_with = "metrics")]
    no_metrics: bool,

    /// Allocations one user may hold.
    #[arg(long, env = "SUPERNODE_RELAY_USER_QUOTA")]
    user_quota: Option<usize>,

    /// Allocations the relay holds at most.
    #[arg(long, env = "SUPERNODE_RELAY_TOTAL_QUOTA")]
    total_quota: Option<usize>,

    /// Per-allocation bandwidth cap, bytes per second.
    #[arg(long, env = "SUPERNODE_RELAY_BANDWIDTH")]
    bandwidth_bps: Option<u64>,

    /// Unauthenticated requests per second allowed from one source IP.
    #[arg(long, env = "SUPERNODE_RELAY_UNAUTH_RATE")]
    unauth_rate: Option<f64>,

    /// Burst of unauthenticated requests allowed from one source IP.
    #[arg(long, env = "SUPERNODE_RELAY_UNAUTH_BURST")]
    unauth_burst: Option<f64>,

    /// Join the relay directory of the rendezvous at this UDP address (uses the first --secret).
    #[arg(long, env = "SUPERNODE_RELAY_RENDEZVOUS")]
    rendezvous: Option<SocketAddr>,

    /// This relay's name in the rendezvous's directory.
    #[arg(long, env = "SUPERNODE_RELAY_ID")]
    relay_id: Option<String>,

    /// Log filter (tracing env-filter syntax), e.g. `info` or `supernode_relay=debug`.
    #[arg(long, env = "SUPERNODE_LOG", default_value = "info", global = true)]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the effective configuration as checked, then exit.
    CheckConfig,
    /// Mint TURN REST credentials with a shared secret and print them.
    Credentials {
        /// The shared secret.
        #[arg(long, env = "SUPERNODE_RELAY_SECRET")]
        secret: String,
        /// The user the credentials are for.
        #[arg(long, default_value = "user")]
        user: String,
        /// Validity in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
}

impl Cli {
    /// Applies environment and flags over the file's values.
    fn apply(&self, c: &mut Config) -> anyhow::Result<()> {
        if let Some(r) = &self.realm {
            c.realm = r.clone();
        }
        if !self.listen_udp.is_empty() {
            c.listen.udp = self.listen_udp.clone();
        }
        if !self.listen_tcp.is_empty() {
            c.listen.tcp = self.listen_tcp.clone();
        }
        if !self.listen_tls.is_empty() {
            c.listen.tls = self.listen_tls.clone();
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            c.tls = Some(Tls {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        if !self.relay_address.is_empty() {
            c.relay.addresses = self.relay_address.clone();
        }
        if !self.external_address.is_empty() {
            c.relay.external = self.external_address.clone();
        }
        if let Some(p) = self.min_port {
            c.relay.min_port = p;
        }
        if let Some(p) = self.max_port {
            c.relay.max_port = p;
        }
        if !self.secrets.is_empty() {
            c.auth.secrets = self.secrets.clone();
        }
        for u in &self.users {
            let (name, password) = u
                .split_once(':')
                .with_context(|| format!("--user {u:?}: expected NAME:PASSWORD"))?;
            c.auth.users.insert(name.to_owned(), password.to_owned());
        }
        c.peers.allow.extend(self.allow_peers.iter().copied());
        c.peers.deny.extend(self.deny_peers.iter().copied());
        if self.no_metrics {
            c.metrics = None;
        } else if let Some(m) = self.metrics {
            c.metrics = Some(MetricsConfig { listen: m });
        }
        if let Some(q) = self.user_quota {
            c.limits.user_quota = q;
        }
        if let Some(q) = self.total_quota {
            c.limits.total_quota = q;
        }
        if let Some(b) = self.bandwidth_bps {
            c.relay.bandwidth_bps = Some(b);
        }
        if let Some(r) = self.unauth_rate {
            c.limits.unauth_rate = r;
        }
        if let Some(b) = self.unauth_burst {
            c.limits.unauth_burst = b;
        }
        if let Some(address) = self.rendezvous {
            let mut r = c.rendezvous.take().unwrap_or(Rendezvous {
                address,
                relay_id: None,
                interval_secs: 10,
            });
            r.address = address;
            c.rendezvous = Some(r);
        }
        if let (Some(id), Some(r)) = (&self.relay_id, c.rendezvous.as_mut()) {
            r.relay_id = Some(id.clone());
        }
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();

    if let Some(Command::Credentials { secret, user, ttl }) = &cli.command {
        let c = Credentials::rest(secret.as_bytes(), user, unix_now() + ttl);
        println!("username: {}\npassword: {}", c.username, c.password);
        return Ok(());
    }

    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    cli.apply(&mut config)?;
    if config.auth.secrets.is_empty() && config.auth.users.is_empty() {
        // A relay nobody can use is no default; make up a secret and say so.
        let secret: [u8; 16] = rand::random();
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let example = Credentials::rest(secret.as_bytes(), "demo", unix_now() + 86_400);
        tracing::warn!(
            %secret,
            username = %example.username,
            password = %example.password,
            "no credentials configured: generated a TURN REST secret for this run"
        );
        config.auth.secrets.push(secret);
    }
    let server_config = config.to_server_config()?;
    if matches!(cli.command, Some(Command::CheckConfig)) {
        println!("{config:#?}");
        return Ok(());
    }

    // Every allocation holds a socket: lift the soft descriptor limit to the hard one, as a
    // relay with the usual 1024 would refuse allocations long before its quota.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }
    let tls_config = match &config.tls {
        Some(t) => Some(driver::load_server_config(&t.cert, &t.key)?),
        None => None,
    };
    let announce = config.rendezvous.as_ref().map(|r| {
        let addrs: Vec<RelayAddr> = config
            .advertised_addresses()
            .into_iter()
            .map(|(t, addr)| RelayAddr {
                transport: match t {
                    Transport::Udp => RelayTransport::Udp,
                    Transport::Tcp => RelayTransport::Tcp,
                    Transport::Tls => RelayTransport::Tls,
                },
                addr,
            })
            .collect();
        let relay_id = r.relay_id.clone().unwrap_or_else(|| match addrs.first() {
            Some(a) => format!("relay-{}", a.addr),
            None => "relay".to_owned(),
        });
        tracing::info!(rendezvous = %r.address, %relay_id, "joining the relay directory");
        driver::AnnounceOptions {
            rendezvous: r.address,
            config: announce::Config {
                relay_id,
                secret: config
                    .auth
                    .secrets
                    .first()
                    .cloned()
                    .unwrap_or_default()
                    .into_bytes(),
                addrs,
                interval: Duration::from_secs(r.interval_secs),
                rto: Duration::from_millis(500),
            },
        }
    });
    let (metrics, registry) = metrics::Metrics::new();
    let handle = driver::spawn(
        server_config,
        driver::Options {
            tls_config,
            announce,
            ..driver::Options::from_config(&config)
        },
        metrics,
    )
    .context("starting the relay")?;
    tracing::info!(
        udp = ?handle.udp,
        tcp = ?handle.tcp,
        tls = ?handle.tls,
        relay = ?config.relay.addresses,
        ports = %format!("{}-{}", config.relay.min_port, config.relay.max_port),
        "supernode-relay running"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let server = match &config.metrics {
            Some(m) => {
                let listener = tokio::net::TcpListener::bind(m.listen)
                    .await
                    .with_context(|| format!("metrics.listen {}", m.listen))?;
                tracing::info!(addr = %listener.local_addr()?, "metrics endpoint");
                let mut rx = rx.clone();
                Some(tokio::spawn(metrics::serve(
                    listener,
                    registry,
                    async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    },
                )))
            }
            None => None,
        };
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
        if let Some(s) = server {
            let _ = s.await;
        }
        drop(rx);
        anyhow::Ok(())
    })?;
    handle.shutdown()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
