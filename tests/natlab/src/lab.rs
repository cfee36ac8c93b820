//! A running lab: its namespaces, nodes and sites, and their teardown.
//!
//! [`Lab::start`] builds a [`Topology`] (in the private `build` module); dropping the [`Lab`]
//! — normally, or while a panicking test unwinds — kills every process inside its namespaces
//! and deletes them. Leftovers of a run that was killed outright are removed by the next run's
//! [`crate::names::sweep_stale`].

use anyhow::{Context, Result};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use crate::nat::NatKind;
use crate::process::{Finished, Proc};
use crate::topology::Topology;
use crate::{build, names};

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The namespace holding the internet segment's bridge.
    Internet,
    /// A node with public addresses on the internet segment.
    Public,
    /// A host behind a site's router (or a public host of a [`NatKind::Public`] site).
    Host,
    /// A site's NAT router.
    Router,
    /// The carrier-grade NAT in front of a [`NatKind::Double`] site's router.
    Cgn,
    /// A userspace link emulator in the middle of a conditioned segment (see
    /// [`crate::emulator`]).
    Emulator,
}

/// One namespace of the lab.
#[derive(Debug, Clone)]
pub struct Node {
    /// Name within the lab (`rv`, `a1`, `a-router`).
    pub(crate) name: String,
    /// The namespace's name on the system.
    pub(crate) netns: String,
    /// What it is for.
    pub(crate) role: Role,
    /// Its IPv4 addresses, primary first (on a router: WAN first).
    pub(crate) addrs: Vec<Ipv4Addr>,
}

impl Node {
    /// Name within the lab.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace name, for `ip netns exec`.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// What the node is for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its primary address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addrs.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// All its addresses.
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }

    /// A command that runs `program` inside this node's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, program]);
        c
    }

    /// Starts `argv` inside the namespace with output captured; killed when the handle drops.
    pub fn spawn<S: AsRef<str>>(&self, argv: &[S]) -> Result<Proc> {
        let (program, args) = argv.split_first().context("empty command line")?;
        let mut c = self.command(program.as_ref());
        c.args(argv[1..].iter().map(AsRef::as_ref));
        let label = format!(
            "`{} {}` in {}",
            program.as_ref(),
            args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
            self.name
        );
        Proc::spawn(c, label)
    }

    /// Runs `argv` to completion inside the namespace, killing it after `timeout`.
    pub fn run<S: AsRef<str>>(&self, argv: &[S], timeout: Duration) -> Result<Finished> {
        self.spawn(argv)?.wait(timeout)
    }
}

/// One site as built.
#[derive(Debug, Clone)]
pub struct SiteInfo {
    /// Site name.
    pub(crate) name: String,
    /// Its NAT kind.
    pub(crate) kind: NatKind,
    /// Whether hairpinning is on.
    pub(crate) hairpin: bool,
    /// The address the site's traffic appears from on the internet.
    pub(crate) public_addr: Ipv4Addr,
    /// Names of its hosts.
    pub(crate) hosts: Vec<String>,
    /// Name of its router node, if it has one.
    pub(crate) router: Option<String>,
    /// Name of its carrier-grade NAT node, for [`NatKind::Double`].
    pub(crate) cgn: Option<String>,
}

impl SiteInfo {
    /// Site name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its NAT kind.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// Whether hairpinning is on.
    pub fn hairpin(&self) -> bool {
        self.hairpin
    }

    /// The public address its hosts' traffic is translated to (for a public site, its first
    /// host's address; for a double NAT, the carrier-grade NAT's).
    pub fn public_addr(&self) -> Ipv4Addr {
        self.public_addr
    }

    /// Names of its hosts.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Name of its router node, if any.
    pub fn router(&self) -> Option<&str> {
        self.router.as_deref()
    }

    /// Name of its carrier-grade NAT node, if any.
    pub fn cgn(&self) -> Option<&str> {
        self.cgn.as_deref()
    }
}

/// A built lab. Dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    /// The unique prefix of every namespace of this lab.
    pub(crate) prefix: String,
    /// Every node, the internet namespace first.
    pub(crate) nodes: Vec<Node>,
    /// Every site.
    pub(crate) sites: Vec<SiteInfo>,
    /// Userspace link emulators, when the kernel lacks netem.
    /// (Behind a mutex so that a `Lab` can be shared by measuring threads.)
    pub(crate) emulators: std::sync::Mutex<Vec<Proc>>,
}

impl Lab {
    /// Builds `topology`. Needs root; see [`crate::require_root`].
    pub fn start(topology: &Topology) -> Result<Lab> {
        topology.validate()?;
        names::sweep_stale();
        let mut lab = Lab {
            prefix: names::lab_prefix(),
            nodes: Vec::new(),
            sites: Vec::new(),
            emulators: std::sync::Mutex::default(),
        };
        // On error `lab` drops here and removes whatever was already created.
        build::build(&mut lab, topology)?;
        Ok(lab)
    }

    /// The prefix of this lab's namespaces.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every node.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every site.
    pub fn sites(&self) -> &[SiteInfo] {
        &self.sites
    }

    /// The node called `name`, if any.
    pub fn try_node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node called `name` (a host, public node or router).
    ///
    /// # Panics
    /// When there is no such node: a test asking for one has a typo.
    pub fn node(&self, name: &str) -> &Node {
        self.try_node(name)
            .unwrap_or_else(|| panic!("lab has no node {name:?}"))
    }

    /// Same as [`Lab::node`], reads better for hosts.
    pub fn host(&self, name: &str) -> &Node {
        self.node(name)
    }

    /// The site called `name`.
    ///
    /// # Panics
    /// When there is no such site.
    pub fn site(&self, name: &str) -> &SiteInfo {
        self.sites
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("lab has no site {name:?}"))
    }

    /// Names of the namespaces this lab owns, from the system's view.
    pub fn namespaces(&self) -> Vec<String> {
        names::lab_namespaces()
            .into_iter()
            .filter(|n| owned_by(n, &self.prefix))
            .collect()
    }

    /// The system name for node `name` of this lab.
    pub(crate) fn netns_name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }
}

/// Whether `netns` belongs to the lab with `prefix` (and not, say, to `prefix` followed by
/// more digits).
fn owned_by(netns: &str, prefix: &str) -> bool {
    netns
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('-'))
}

impl Drop for Lab {
    fn drop(&mut self) {
        let emulators = match self.emulators.get_mut() {
            Ok(e) => std::mem::take(e),
            Err(poisoned) => std::mem::take(poisoned.into_inner()),
        };
        for emulator in emulators {
            emulator.kill();
        }
        for netns in self.namespaces().iter().rev() {
            if let Err(e) = names::delete_namespace(netns) {
                eprintln!("natlab: could not delete {netns}: {e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_exact() {
        assert!(owned_by("snl1x1-a1", "snl1x1"));
        assert!(!owned_by("snl1x10-a1", "snl1x1"));
        assert!(!owned_by("snl1x1", "snl1x1"));
    }
}
