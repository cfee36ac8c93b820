//! Configuration: a TOML file, overridden by environment variables and command-line flags.
//!
//! Every field has a default, so an empty file (or none) runs a node on a laptop: STUN and
//! signalling on 127.0.0.1:3578 over UDP and TCP, RFC 5780 change-port answers from 3579,
//! metrics on 127.0.0.1:9578. The relay's defaults use 3478, so both run side by side.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::core;

/// The configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Primary address for STUN and signalling (UDP, and TCP when `tcp` is on).
    pub listen: SocketAddr,
    /// Answer RFC 5780 CHANGE-REQUEST from a second port (and `alternate_ip`).
    pub rfc5780: bool,
    /// The second port.
    pub alternate_port: u16,
    /// A second IP of this host, for change-IP tests. Without it the node serves change-port
    /// tests only, and says so in OTHER-ADDRESS.
    pub alternate_ip: Option<IpAddr>,
    /// Accept STUN and signalling over TCP on `listen` (for peers whose UDP is blocked).
    pub tcp: bool,
    /// Accept STUN and signalling over TLS on this address (needs `tls_cert` and `tls_key`).
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<std::path::PathBuf>,
    /// Where to serve Prometheus metrics; `None` turns the endpoint off.
    pub metrics: Option<SocketAddr>,
    /// Interval between peer keepalives, seconds.
    pub keepalive_secs: u64,
    /// Silence after which a peer is forgotten, seconds.
    pub expiry_secs: u64,
    /// Shared secret of the relays (TURN REST `static-auth-secret`); relays and TURN
    /// credentials are off without it.
    pub relay_secret: Option<String>,
    /// Lifetime of TURN credentials handed to peers, seconds.
    pub credential_ttl_secs: u64,
    /// Interval relays are asked to announce at, seconds.
    pub relay_interval_secs: u64,
    /// Relays returned to a peer per request.
    pub relays_per_answer: usize,
    /// Margin added before the synchronised punch, milliseconds.
    pub punch_margin_ms: u64,
    /// Registered peers at most.
    pub max_peers: usize,
    /// Connection attempts in progress at most.
    pub max_attempts: usize,
    /// Relays known at most.
    pub max_relays: usize,
    /// Source IPs tracked by the rate limiter at most.
    pub max_tracked_ips: usize,
    /// Open TCP connections at most.
    pub max_tcp_connections: usize,
    /// Messages per second per source IP.
    pub ip_rate: f64,
    /// Burst per source IP.
    pub ip_burst: f64,
    /// Connect requests per second per peer.
    pub peer_connect_rate: f64,
    /// Connect-request burst per peer.
    pub peer_connect_burst: f64,
    /// Longest PADDING echoed in a Binding response, bytes.
    pub max_padding: usize,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        let c = core::Config::new(SocketAddr::from(([127, 0, 0, 1], 3578)));
        Self {
            listen: c.primary,
            rfc5780: true,
            alternate_port: 3579,
            alternate_ip: None,
            tcp: true,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            metrics: Some(SocketAddr::from(([127, 0, 0, 1], 9578))),
            keepalive_secs: c.keepalive.as_secs(),
            expiry_secs: c.expiry.as_secs(),
            relay_secret: None,
            credential_ttl_secs: c.credential_ttl.as_secs(),
            relay_interval_secs: c.relay_interval.as_secs(),
            relays_per_answer: c.relays_per_answer,
            punch_margin_ms: 20,
            max_peers: c.max_peers,
            max_attempts: c.max_attempts,
            max_relays: c.max_relays,
            max_tracked_ips: c.max_tracked_ips,
            max_tcp_connections: 10_000,
            ip_rate: c.ip_rate.0,
            ip_burst: c.ip_rate.1,
            peer_connect_rate: c.peer_connect_rate.0,
            peer_connect_burst: c.peer_connect_rate.1,
            max_padding: c.max_padding,
            log: "info".into(),
        }
    }
}

/// A configuration that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the field).
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A field has a value that cannot work.
    #[error("invalid config: `{field}` {reason}")]
    Invalid {
        /// The field.
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

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|source| Error::Parse {
            path: origin.into(),
            source: Box::new(source),
        })
    }

    /// The TLS address, certificate and key, checked for completeness.
    pub fn tls(&self) -> Result<Option<(SocketAddr, &Path, &Path)>, Error> {
        match (self.tls_listen, &self.tls_cert, &self.tls_key) {
            (None, None, None) => Ok(None),
            (Some(addr), Some(cert), Some(key)) => Ok(Some((addr, cert, key))),
            (None, ..) => Err(invalid(
                "tls_listen",
                "is required when tls_cert or tls_key is set",
            )),
            (Some(_), None, _) => Err(invalid("tls_cert", "is required when tls_listen is set")),
            (Some(_), _, None) => Err(invalid("tls_key", "is required when tls_listen is set")),
        }
    }

    /// Checks every field and builds the core's settings. `secret` keys nonces and sessions.
    pub fn core(&self, secret: [u8; 32]) -> Result<core::Config, Error> {
        if self.keepalive_secs == 0 {
            return Err(invalid("keepalive_secs", "must be at least 1"));
        }
        if self.expiry_secs <= self.keepalive_secs * 2 {
            return Err(invalid(
                "expiry_secs",
                "must exceed twice keepalive_secs, or one lost keepalive expires a peer",
            ));
        }
        let mut c = core::Config::new(self.listen);
        if self.expiry_secs <= c.nonce_lifetime.as_secs() || self.expiry_secs > u64::from(u16::MAX)
        {
            return Err(invalid(
                "expiry_secs",
                format!(
                    "must be between {} and 65535 (longer than a challenge lives, so replays of \
                     an expired peer's registration are already stale)",
                    c.nonce_lifetime.as_secs() + 1
                ),
            ));
        }
        if self.rfc5780 {
            if self.alternate_port == self.listen.port() && self.listen.port() != 0 {
                return Err(invalid(
                    "alternate_port",
                    "must differ from the listen port",
                ));
            }
            c.alternate_port = Some(self.alternate_port);
            if let Some(ip) = self.alternate_ip {
                if ip == self.listen.ip() {
                    return Err(invalid("alternate_ip", "must differ from the listen IP"));
                }
                if ip.is_ipv4() != self.listen.is_ipv4() {
                    return Err(invalid("alternate_ip", "must be of the listen IP's family"));
                }
                if ip.is_unspecified() || self.listen.ip().is_unspecified() {
                    return Err(invalid(
                        "alternate_ip",
                        "needs specific addresses: RESPONSE-ORIGIN must name the socket",
                    ));
                }
                c.alternate_ip = Some(ip);
            }
        } else if self.alternate_ip.is_some() {
            return Err(invalid("alternate_ip", "is set but rfc5780 is off"));
        }
        match &self.relay_secret {
            Some(s) if s.is_empty() => return Err(invalid("relay_secret", "must not be empty")),
            Some(s) => c.relay_secret = Some(s.as_bytes().to_vec()),
            None => {}
        }
        let positive = |field, v: usize| {
            if v == 0 {
                Err(invalid(field, "must be at least 1"))
            } else {
                Ok(v)
            }
        };
        c.max_peers = positive("max_peers", self.max_peers)?;
        c.max_attempts = positive("max_attempts", self.max_attempts)?;
        c.max_relays = positive("max_relays", self.max_relays)?;
        c.max_tracked_ips = positive("max_tracked_ips", self.max_tracked_ips)?;
        c.relays_per_answer = positive("relays_per_answer", self.relays_per_answer)?
            .min(supernode_proto::signal::message::MAX_RELAYS);
        positive("max_tcp_connections", self.max_tcp_connections)?;
        for (field, v) in [
            ("ip_rate", self.ip_rate),
            ("ip_burst", self.ip_burst),
            ("peer_connect_rate", self.peer_connect_rate),
            ("peer_connect_burst", self.peer_connect_burst),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(field, "must be a positive number"));
            }
        }
        if self.credential_ttl_secs == 0 || self.credential_ttl_secs > u64::from(u32::MAX) {
            return Err(invalid(
                "credential_ttl_secs",
                "must be between 1 and 2^32-1",
            ));
        }
        if self.relay_interval_secs == 0 || self.relay_interval_secs > u64::from(u16::MAX) {
            return Err(invalid(
                "relay_interval_secs",
                "must be between 1 and 65535",
            ));
        }
        if self.punch_margin_ms > 10_000 {
            return Err(invalid("punch_margin_ms", "must be at most 10000"));
        }
        c.keepalive = Duration::from_secs(self.keepalive_secs);
        c.expiry = Duration::from_secs(self.expiry_secs);
        c.secret = secret;
        c.credential_ttl = Duration::from_secs(self.credential_ttl_secs);
        c.relay_interval = Duration::from_secs(self.relay_interval_secs);
        c.punch_margin = Duration::from_millis(self.punch_margin_ms);
        c.ip_rate = (self.ip_rate, self.ip_burst);
        c.peer_connect_rate = (self.peer_connect_rate, self.peer_connect_burst);
        c.max_padding = self.max_padding.min(1200);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_laptop_defaults() {
        let c = Config::parse("", "test").unwrap();
        assert_eq!(c, Config::default());
        let core = c.core([0; 32]).unwrap();
        assert_eq!(core.primary, "127.0.0.1:3578".parse().unwrap());
        assert_eq!(core.alternate_port, Some(3579));
        assert_eq!(core.local_addrs().len(), 2);
    }

    #[test]
    fn fields_are_read() {
        let c = Config::parse(
            "listen = \"127.0.0.1:4000\"\nalternate_port = 4001\nalternate_ip = \"127.0.0.2\"\n\
             relay_secret = \"s\"\nmetrics = \"127.0.0.1:9999\"\n",
            "test",
        )
        .unwrap();
        let core = c.core([0; 32]).unwrap();
        assert_eq!(core.local_addrs().len(), 4);
        assert_eq!(core.relay_secret.as_deref(), Some(&b"s"[..]));
    }

    #[test]
    fn tls_needs_all_three_fields() {
        let c = Config::parse("tls_listen = \"127.0.0.1:5349\"", "x").unwrap();
        assert!(c.tls().unwrap_err().to_string().contains("tls_cert"));
        let c = Config::parse("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"", "x").unwrap();
        assert!(c.tls().unwrap_err().to_string().contains("tls_listen"));
        assert!(Config::default().tls().unwrap().is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let err = Config::parse("listen = \"nope\"", "x.toml").unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
        let err = Config::parse("lisen = \"127.0.0.1:1\"", "x.toml").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        for (text, field) in [
            ("alternate_port = 3578", "alternate_port"),
            ("alternate_ip = \"127.0.0.1\"", "alternate_ip"),
            ("alternate_ip = \"::2\"", "alternate_ip"),
            ("expiry_secs = 20", "expiry_secs"),
            ("keepalive_secs = 0", "keepalive_secs"),
            ("relay_secret = \"\"", "relay_secret"),
            ("max_peers = 0", "max_peers"),
            ("ip_rate = -1.0", "ip_rate"),
        ] {
            if text.is_empty() {
                continue;
            }
            let err = Config::parse(text, "x").unwrap().core([0; 32]).unwrap_err();
            assert!(err.to_string().contains(field), "{text}: {err}");
        }
    }
}
