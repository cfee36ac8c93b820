//! Which peer addresses an allocation may talk to.
//!
//! A TURN relay is an open proxy into whatever network it sits in. By default supernode refuses
//! peers in loopback, private, shared (CGNAT), link-local, unspecified, multicast and broadcast
//! ranges, and the relay's own addresses, so that a client cannot reach the operator's internal
//! services through it. Operators widen this with an allow-list (tests on loopback do) and can
//! narrow it further with a deny-list. The allow-list wins.

use ipnet::IpNet;
use std::net::IpAddr;

/// Ranges refused unless allow-listed.
const DEFAULT_DENIED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// The peer address filter.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    /// Ranges that are always permitted, checked first.
    allowed: Vec<IpNet>,
    /// Ranges refused: the defaults, the operator's additions and the relay's own addresses.
    denied: Vec<IpNet>,
}

impl PeerPolicy {
    /// Builds the policy from the operator's lists and the relay's own addresses.
    pub fn new(allowed: &[IpNet], denied: &[IpNet], own: &[IpAddr]) -> Self {
        let mut all_denied: Vec<IpNet> = DEFAULT_DENIED
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        all_denied.extend_from_slice(denied);
        all_denied.extend(own.iter().map(|ip| IpNet::from(canonical(*ip))));
        Self {
            allowed: allowed.to_vec(),
            denied: all_denied,
        }
    }

    /// True when data may be relayed to and from `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        !self.denied.iter().any(|net| net.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry, so `::ffff:127.0.0.1`
/// cannot slip past a loopback rule.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_denies_internal_ranges() {
        let p = PeerPolicy::new(&[], &[], &[ip("198.51.100.7")]);
        for denied in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "198.51.100.7",
        ] {
            assert!(!p.permits(ip(denied)), "{denied} should be denied");
        }
        for allowed in ["192.0.2.1", "203.0.113.9", "8.8.8.8", "2001:db8::1"] {
            assert!(p.permits(ip(allowed)), "{allowed} should be allowed");
        }
    }

    #[test]
    fn allow_list_wins_and_deny_list_adds() {
        let p = PeerPolicy::new(
            &["127.0.0.0/8".parse().unwrap()],
            &["203.0.113.0/24".parse().unwrap()],
            &[],
        );
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(!p.permits(ip("203.0.113.5")));
        assert!(!p.permits(ip("10.0.0.1")));
    }
}
