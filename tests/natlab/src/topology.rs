//! The short description a test writes to ask for a lab.
//!
//! ```
//! use supernode_natlab::{Link, NatKind, Public, Site, Topology};
//! let topology = Topology::new()
//!     .public(Public::new("rv").addrs(2))
//!     .public(Public::new("relay"))
//!     .site(Site::new("a", NatKind::EimApdf))
//!     .site(Site::new("b", NatKind::ApdmRandom).hosts(2).wan(Link::delay_ms(20)));
//! assert_eq!(topology.host_names(), ["a1", "b1", "b2"]);
//! ```
//!
//! Public nodes sit on the "internet" segment with addresses from 203.0.113.0/24
//! (TEST-NET-3). Each site is a router namespace running a NAT of its [`NatKind`] with hosts
//! `<site>1`, `<site>2`, … behind it on `10.0.n.0/24`; a [`NatKind::Public`] site has no router
//! and its hosts get public addresses.

use anyhow::{Result, bail, ensure};
use std::collections::HashSet;

use crate::link::Link;
use crate::nat::NatKind;

/// Longest node name accepted; names end up in namespace names and log lines.
pub const MAX_NAME_LEN: usize = 32;

/// Most addresses a single public node may ask for.
pub const MAX_ADDRS_PER_NODE: usize = 8;

/// Most hosts behind one site's router.
pub const MAX_HOSTS_PER_SITE: usize = 32;

/// A node on the internet segment: a rendezvous, a relay, a reflector.
#[derive(Debug, Clone)]
pub struct Public {
    /// Unique name, e.g. `rv`.
    pub(crate) name: String,
    /// How many public addresses it gets (2 for an RFC 5780 server).
    pub(crate) addrs: usize,
    /// Conditions of its link to the internet.
    pub(crate) link: Link,
}

impl Public {
    /// A public node with one address and a perfect link.
    pub fn new(name: &str) -> Self {
        Public {
            name: name.to_owned(),
            addrs: 1,
            link: Link::default(),
        }
    }

    /// Gives the node `n` public addresses.
    pub fn addrs(mut self, n: usize) -> Self {
        self.addrs = n;
        self
    }

    /// Sets the conditions of the node's link to the internet.
    pub fn link(mut self, link: Link) -> Self {
        self.link = link;
        self
    }
}

/// A site: a NAT router and the hosts behind it.
#[derive(Debug, Clone)]
pub struct Site {
    /// Unique name; hosts are named `<name>1`, `<name>2`, ….
    pub(crate) name: String,
    /// The NAT between the hosts and the internet.
    pub(crate) kind: NatKind,
    /// Number of hosts.
    pub(crate) hosts: usize,
    /// Whether hosts reach each other via the public address.
    pub(crate) hairpin: bool,
    /// Conditions of the router's link to the internet.
    pub(crate) wan: Link,
    /// Conditions of each host's link to the router.
    pub(crate) lan: Link,
}

impl Site {
    /// A site with one host, hairpinning off and perfect links.
    pub fn new(name: &str, kind: NatKind) -> Self {
        Site {
            name: name.to_owned(),
            kind,
            hosts: 1,
            hairpin: false,
            wan: Link::default(),
            lan: Link::default(),
        }
    }

    /// Puts `n` hosts behind the router.
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }

    /// Switches hairpinning on or off (only for endpoint-independent-mapping kinds).
    pub fn hairpin(mut self, on: bool) -> Self {
        self.hairpin = on;
        self
    }

    /// Sets the conditions of the router's link to the internet.
    pub fn wan(mut self, link: Link) -> Self {
        self.wan = link;
        self
    }

    /// Sets the conditions of each host's link to its router.
    pub fn lan(mut self, link: Link) -> Self {
        self.lan = link;
        self
    }
}

/// A whole lab: public nodes and sites.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Public nodes, in declaration order (which is also address order).
    pub(crate) publics: Vec<Public>,
    /// Sites, in declaration order.
    pub(crate) sites: Vec<Site>,
}

impl Topology {
    /// An empty topology: just the internet segment.
    pub fn new() -> Self {
        Topology::default()
    }

    /// Adds a public node.
    pub fn public(mut self, node: Public) -> Self {
        self.publics.push(node);
        self
    }

    /// Adds a site.
    pub fn site(mut self, site: Site) -> Self {
        self.sites.push(site);
        self
    }

    /// Names of all hosts behind sites, in order.
    pub fn host_names(&self) -> Vec<String> {
        self.sites
            .iter()
            .flat_map(|s| (1..=s.hosts).map(move |i| format!("{}{i}", s.name)))
            .collect()
    }

    /// Checks names, counts and options, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let mut names = HashSet::new();
        let mut claim = |name: &str| -> Result<()> {
            ensure!(
                !name.is_empty()
                    && name.len() <= MAX_NAME_LEN
                    && name.bytes().all(|b| b.is_ascii_alphanumeric()),
                "node name {name:?} must be 1..={MAX_NAME_LEN} ASCII letters or digits"
            );
            ensure!(
                names.insert(name.to_owned()),
                "duplicate node name {name:?}"
            );
            Ok(())
        };
        for p in &self.publics {
            claim(&p.name)?;
            ensure!(
                (1..=MAX_ADDRS_PER_NODE).contains(&p.addrs),
                "public node {:?}: addrs must be 1..={MAX_ADDRS_PER_NODE}",
                p.name
            );
            p.link.validate()?;
        }
        for s in &self.sites {
            claim(&s.name)?;
            ensure!(
                (1..=MAX_HOSTS_PER_SITE).contains(&s.hosts),
                "site {:?}: hosts must be 1..={MAX_HOSTS_PER_SITE}",
                s.name
            );
            if s.hairpin && !s.kind.supports_hairpin() {
                bail!(
                    "site {:?}: hairpin needs an endpoint-independent mapping, not {}",
                    s.name,
                    s.kind.name()
                );
            }
            s.wan.validate()?;
            s.lan.validate()?;
        }
        for host in self.host_names() {
            claim(&host)?;
        }
        // Router and carrier-grade NAT namespaces are nodes too.
        for s in self.sites.iter().filter(|s| s.kind != NatKind::Public) {
            claim(&format!("{}router", s.name))?;
            if s.kind == NatKind::Double {
                claim(&format!("{}cgn", s.name))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let dup = Topology::new()
            .public(Public::new("a1"))
            .site(Site::new("a", NatKind::EimApdf));
        let err = dup.validate().unwrap_err().to_string();
        assert!(err.contains("duplicate node name \"a1\""), "{err}");

        let hairpin = Topology::new().site(Site::new("s", NatKind::ApdmRandom).hairpin(true));
        let err = hairpin.validate().unwrap_err().to_string();
        assert!(err.contains("hairpin"), "{err}");

        let clash = Topology::new()
            .public(Public::new("arouter"))
            .site(Site::new("a", NatKind::EimApdf));
        assert!(
            clash
                .validate()
                .unwrap_err()
                .to_string()
                .contains("arouter")
        );

        let bad = Topology::new().public(Public::new("r-v"));
        assert!(bad.validate().is_err());
        let zero = Topology::new().site(Site::new("z", NatKind::EimEif).hosts(0));
        assert!(zero.validate().unwrap_err().to_string().contains("hosts"));

        let ok = Topology::new()
            .public(Public::new("rv").addrs(2))
            .site(Site::new("a", NatKind::EimApdf).hosts(2).hairpin(true));
        ok.validate().unwrap();
    }
}
