//! Configuration: a TOML file, overridden by environment variables and command-line flags.
//!
//! Every field has a default that runs on a laptop, so an empty file (or none) is a working
//! configuration: UDP and TCP on 127.0.0.1:3478, relay sockets on 127.0.0.1, metrics on
//! 127.0.0.1:9641. Unknown keys are errors, and every validation error names its field.

use crate::server;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, naming the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown or mistyped keys.
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field, as in the TOML file.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The whole relay configuration, as in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// REALM of the long-term credentials.
    pub realm: String,
    /// Where to listen for clients.
    pub listen: Listen,
    /// TLS certificate and key; required when `listen.tls` is not empty.
    pub tls: Option<Tls>,
    /// Relay sockets: addresses, ports, lifetimes.
    pub relay: Relay,
    /// Credentials.
    pub auth: Auth,
    /// Quotas and rate limits.
    pub limits: Limits,
    /// Which peers may be relayed to.
    pub peers: Peers,
    /// Prometheus endpoint; `None` turns it off.
    pub metrics: Option<Metrics>,
    /// Socket buffer sizes.
    pub sockets: Sockets,
    /// A rendezvous whose relay directory this relay joins; `None` stays out of any directory.
    pub rendezvous: Option<Rendezvous>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            realm: "supernode".into(),
            listen: Listen::default(),
            tls: None,
            relay: Relay::default(),
            auth: Auth::default(),
            limits: Limits::default(),
            peers: Peers::default(),
            metrics: Some(Metrics::default()),
            sockets: Sockets::default(),
            rendezvous: None,
        }
    }
}

/// Joining a rendezvous's relay directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendezvous {
    /// The rendezvous's UDP signalling address.
    pub address: SocketAddr,
    /// This relay's name in the directory; defaults to `relay-<first advertised address>`.
    #[serde(default)]
    pub relay_id: Option<String>,
    /// Seconds between announcements (the rendezvous may ask for another interval).
    #[serde(default = "default_announce_interval")]
    pub interval_secs: u64,
}

fn default_announce_interval() -> u64 {
    10
}

/// Listening addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// UDP listeners (STUN/TURN over UDP).
    pub udp: Vec<SocketAddr>,
    /// TCP listeners (RFC 8656 over TCP).
    pub tcp: Vec<SocketAddr>,
    /// TLS listeners (RFC 8656 over TLS), usually port 5349 or 443.
    pub tls: Vec<SocketAddr>,
}

impl Default for Listen {
    fn default() -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], 3478));
        Self {
            udp: vec![addr],
            tcp: vec![addr],
            tls: vec![],
        }
    }
}

/// TLS certificate chain and private key, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Relay socket settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// Local addresses relay sockets bind to: at most one IPv4 and one IPv6.
    pub addresses: Vec<IpAddr>,
    /// Addresses to advertise instead (1:1 NAT, containers): at most one per family.
    pub external: Vec<IpAddr>,
    /// First relay port.
    pub min_port: u16,
    /// Last relay port.
    pub max_port: u16,
    /// Longest allocation lifetime granted, in seconds.
    pub max_lifetime_secs: u64,
    /// Per-allocation bandwidth cap in bytes per second; absent means none.
    pub bandwidth_bps: Option<u64>,
}

impl Default for Relay {
    fn default() -> Self {
        Self {
            addresses: vec![IpAddr::from([127, 0, 0, 1])],
            external: vec![],
            min_port: 49_152,
            max_port: 65_535,
            max_lifetime_secs: 3600,
            bandwidth_bps: None,
        }
    }
}

/// Credentials accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// TURN REST shared secrets (coturn's `static-auth-secret`); several for rotation.
    pub secrets: Vec<String>,
    /// Static users: name → password.
    pub users: BTreeMap<String, String>,
    /// Seconds a nonce stays fresh before 438 Stale Nonce.
    pub nonce_lifetime_secs: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            secrets: vec![],
            users: BTreeMap::new(),
            nonce_lifetime_secs: 600,
        }
    }
}

/// Quotas and rate limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Allocations one user may hold.
    pub user_quota: usize,
    /// Allocations the relay holds at most.
    pub total_quota: usize,
    /// Unauthenticated requests per second per source IP.
    pub unauth_rate: f64,
    /// Burst of unauthenticated requests per source IP.
    pub unauth_burst: f64,
    /// TCP/TLS connections at most.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            user_quota: 100,
            total_quota: 20_000,
            unauth_rate: 200.0,
            unauth_burst: 400.0,
            max_connections: 10_000,
        }
    }
}

/// Peer address policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Peers {
    /// Ranges always permitted, even loopback or private ones (e.g. `127.0.0.0/8` in tests).
    pub allow: Vec<IpNet>,
    /// Ranges refused in addition to the built-in internal ranges.
    pub deny: Vec<IpNet>,
}

/// Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// HTTP address serving `/metrics`.
    pub listen: SocketAddr,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9641)),
        }
    }
}

/// Socket buffer sizes, in bytes; the kernel caps them at `net.core.rmem_max`/`wmem_max`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sockets {
    /// Receive buffer of listening sockets.
    pub recv_buffer: usize,
    /// Send buffer of listening sockets.
    pub send_buffer: usize,
}

impl Default for Sockets {
    fn default() -> Self {
        Self {
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Parse { source, .. } => Error::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|source| Error::Parse {
            path: PathBuf::from("<inline>"),
            source: Box::new(source),
        })
    }

    /// Checks consistency and builds the core's configuration.
    pub fn to_server_config(&self) -> Result<server::Config, Error> {
        if self.realm.is_empty() {
            return Err(invalid("realm", "must not be empty"));
        }
        if self.listen.udp.is_empty() && self.listen.tcp.is_empty() && self.listen.tls.is_empty() {
            return Err(invalid("listen", "at least one of udp, tcp, tls is needed"));
        }
        if !self.listen.tls.is_empty() && self.tls.is_none() {
            return Err(invalid(
                "tls",
                "listen.tls is set but [tls] cert and key are not",
            ));
        }
        let (relay_v4, relay_v6) = one_per_family("relay.addresses", &self.relay.addresses)?;
        if relay_v4.is_none() && relay_v6.is_none() {
            return Err(invalid("relay.addresses", "at least one address is needed"));
        }
        for ip in relay_v4.iter().chain(&relay_v6) {
            if ip.is_unspecified() {
                return Err(invalid(
                    "relay.addresses",
                    "must be a concrete address (relayed addresses are given to clients); \
                     use relay.external to advertise another",
                ));
            }
        }
        let (external_v4, external_v6) = one_per_family("relay.external", &self.relay.external)?;
        if (external_v4.is_some() && relay_v4.is_none())
            || (external_v6.is_some() && relay_v6.is_none())
        {
            return Err(invalid(
                "relay.external",
                "an external address needs a relay address of the same family",
            ));
        }
        if self.relay.min_port == 0 || self.relay.min_port > self.relay.max_port {
            return Err(invalid(
                "relay.min_port",
                format!(
                    "port range {}-{} is empty or starts at 0",
                    self.relay.min_port, self.relay.max_port
                ),
            ));
        }
        if self.relay.max_lifetime_secs < 600 {
            return Err(invalid(
                "relay.max_lifetime_secs",
                "must be at least 600 (RFC 8656)",
            ));
        }
        if self.relay.bandwidth_bps == Some(0) {
            return Err(invalid(
                "relay.bandwidth_bps",
                "must be positive; omit it for no cap",
            ));
        }
        if self.auth.nonce_lifetime_secs == 0 {
            return Err(invalid("auth.nonce_lifetime_secs", "must be positive"));
        }
        if self.auth.secrets.iter().any(String::is_empty) {
            return Err(invalid("auth.secrets", "a secret must not be empty"));
        }
        if self.limits.user_quota == 0 || self.limits.total_quota == 0 {
            return Err(invalid("limits.user_quota", "quotas must be positive"));
        }
        if !(self.limits.unauth_rate > 0.0 && self.limits.unauth_burst >= 1.0) {
            return Err(invalid(
                "limits.unauth_rate",
                "rate must be positive and burst at least 1",
            ));
        }
        if let Some(r) = &self.rendezvous {
            if self.auth.secrets.is_empty() {
                return Err(invalid(
                    "rendezvous",
                    "joining a directory needs auth.secrets: the rendezvous mints credentials with it",
                ));
            }
            if r.interval_secs == 0 {
                return Err(invalid("rendezvous.interval_secs", "must be positive"));
            }
        }
        let mut own: Vec<IpAddr> = Vec::new();
        for addr in self
            .listen
            .udp
            .iter()
            .chain(&self.listen.tcp)
            .chain(&self.listen.tls)
        {
            if !addr.ip().is_unspecified() {
                own.push(addr.ip());
            }
        }
        Ok(server::Config {
            realm: self.realm.clone(),
            rest_secrets: self.auth.secrets.clone(),
            users: self.auth.users.clone().into_iter().collect(),
            relay_v4,
            relay_v6,
            external_v4,
            external_v6,
            port_range: self.relay.min_port..=self.relay.max_port,
            max_lifetime: Duration::from_secs(self.relay.max_lifetime_secs),
            nonce_lifetime: Duration::from_secs(self.auth.nonce_lifetime_secs),
            user_quota: self.limits.user_quota,
            total_quota: self.limits.total_quota,
            bandwidth_bps: self.relay.bandwidth_bps,
            allowed_peers: self.peers.allow.clone(),
            denied_peers: self.peers.deny.clone(),
            unauth_rate: self.limits.unauth_rate,
            unauth_burst: self.limits.unauth_burst,
            own_addresses: own,
        })
    }
}

impl Config {
    /// The TURN addresses clients should use, as announced to a rendezvous: each listener with
    /// an unspecified IP replaced by the external (or relay) address of its family.
    pub fn advertised_addresses(&self) -> Vec<(crate::server::Transport, SocketAddr)> {
        use crate::server::Transport;
        let public = |addr: SocketAddr| -> Option<SocketAddr> {
            let same = |ip: &&IpAddr| ip.is_ipv4() == addr.is_ipv4();
            let ip = match (
                self.relay.external.iter().find(same),
                addr.ip().is_unspecified(),
            ) {
                (Some(external), _) => *external,
                (None, false) => addr.ip(),
                (None, true) => *self.relay.addresses.iter().find(same)?,
            };
            Some(SocketAddr::new(ip, addr.port()))
        };
        let listeners = [
            (Transport::Udp, &self.listen.udp),
            (Transport::Tcp, &self.listen.tcp),
            (Transport::Tls, &self.listen.tls),
        ];
        listeners
            .into_iter()
            .flat_map(|(t, addrs)| addrs.iter().filter_map(move |a| public(*a).map(|p| (t, p))))
            .collect()
    }
}

fn one_per_family(
    field: &'static str,
    ips: &[IpAddr],
) -> Result<(Option<IpAddr>, Option<IpAddr>), Error> {
    let v4: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv4).collect();
    let v6: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv6).collect();
    if v4.len() > 1 || v6.len() > 1 {
        return Err(invalid(field, "at most one IPv4 and one IPv6 address"));
    }
    Ok((v4.first().copied(), v6.first().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_a_working_config() {
        let c = Config::from_toml("").unwrap();
        let s = c.to_server_config().unwrap();
        assert_eq!(s.relay_v4, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(s.port_range, 49_152..=65_535);
        assert_eq!(c.metrics.unwrap().listen.port(), 9641);
    }

    #[test]
    fn full_file_parses() {
        let c = Config::from_toml(
            r#"
            realm = "example.org"
            [listen]
            udp = ["0.0.0.0:3478"]
            tcp = []
            tls = ["0.0.0.0:5349"]
            [tls]
            cert = "/etc/supernode/cert.pem"
            key = "/etc/supernode/key.pem"
            [relay]
            addresses = ["10.0.0.5", "2001:db8::5"]
            external = ["203.0.113.5"]
            min_port = 40000
            max_port = 40999
            bandwidth_bps = 1000000
            [auth]
            secrets = ["new", "old"]
            users = { alice = "pw" }
            [limits]
            user_quota = 5
            [peers]
            allow = ["10.0.0.0/8"]
            [metrics]
            listen = "0.0.0.0:9641"
            [rendezvous]
            address = "192.0.2.1:3578"
            "#,
        )
        .unwrap();
        let s = c.to_server_config().unwrap();
        assert_eq!(s.external_v4, Some("203.0.113.5".parse().unwrap()));
        assert!(s.relay_v6.is_some());
        assert_eq!(s.users, vec![("alice".to_string(), "pw".to_string())]);
        assert_eq!(s.user_quota, 5);
        assert_eq!(c.rendezvous.as_ref().unwrap().interval_secs, 10);
        let adv = c.advertised_addresses();
        assert_eq!(adv.len(), 2);
        assert_eq!(adv[0].1.to_string(), "203.0.113.5:3478");
        assert_eq!(adv[1].1.to_string(), "203.0.113.5:5349");
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_toml("[relay]\nmin_prot = 3\n").unwrap_err();
        assert!(e.to_string().contains("min_prot"), "{e}");
        let e = Config::from_toml("[relay]\nmin_port = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("min_port"), "{e}");
        let e = Config::from_toml("[relay]\nmin_port = 9000\nmax_port = 8000\n")
            .unwrap()
            .to_server_config()
            .unwrap_err();
        assert!(e.to_string().contains("relay.min_port"), "{e}");
        let e = Config::from_toml("[listen]\ntls = [\"127.0.0.1:5349\"]\n")
            .unwrap()
            .to_server_config()
            .unwrap_err();
        assert!(e.to_string().contains("`tls`"), "{e}");
        let e = Config::from_toml("[relay]\naddresses = [\"0.0.0.0\"]\n")
            .unwrap()
            .to_server_config()
            .unwrap_err();
        assert!(e.to_string().contains("relay.addresses"), "{e}");
        let e = Config::from_toml("[relay]\nexternal = [\"1.2.3.4\", \"1.2.3.5\"]\n")
            .unwrap()
            .to_server_config()
            .unwrap_err();
        assert!(e.to_string().contains("relay.external"), "{e}");
    }
}
