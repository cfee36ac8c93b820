//! The supernode NAT lab: peers behind real Linux NATs, in network namespaces.
//!
//! A test describes a [`Topology`] — public nodes on an "internet" segment (203.0.113.0/24,
//! existing only inside the lab's namespaces) and sites, each a router namespace running a
//! NAT of a chosen [`NatKind`] with hosts behind it — and [`Lab::start`] builds it: namespaces,
//! veth pairs, bridges, addresses, routes, nftables rules and `tc netem` link conditions.
//! Processes run inside nodes with [`Node::spawn`] / [`Node::run`], their output captured.
//! Dropping the [`Lab`] kills those processes and deletes the namespaces; namespaces of runs
//! that were killed are swept at the next start.
//!
//! ```no_run
//! use supernode_natlab::{Lab, NatKind, Public, Site, Topology, require_root};
//! # fn main() -> anyhow::Result<()> {
//! if !require_root() { return Ok(()); }
//! let lab = Lab::start(
//!     &Topology::new()
//!         .public(Public::new("rv").addrs(2))
//!         .site(Site::new("a", NatKind::EimApdf))
//!         .site(Site::new("b", NatKind::ApdmRandom)),
//! )?;
//! let rv = lab.node("rv").addrs().to_vec();
//! let out = lab.host("a1").run(&["ping", "-c1", &rv[0].to_string()], std::time::Duration::from_secs(5))?;
//! assert!(out.status.success());
//! # Ok(()) }
//! ```
//!
//! The crate also holds an independent NAT behaviour [`probe`] (binary `natlab-probe`), so the
//! lab can verify that each NAT kind behaves as its name claims without relying on the
//! rendezvous under test; [`measure`] runs it inside a lab.
//!
//! Errors are `anyhow` throughout: this is test support, and every error ends a test with the
//! failing command line and its stderr as context.

pub mod behaviour;
mod build;
pub mod emulator;
pub mod lab;
pub mod link;
pub mod measure;
pub mod names;
pub mod nat;
pub mod privilege;
pub mod probe;
pub mod process;
mod sys;
pub mod table;
pub mod topology;

pub use behaviour::{Filtering, Mapping, PortAllocation};
pub use lab::{Lab, Node, Role, SiteInfo};
pub use link::Link;
pub use nat::{Expected, NatKind};
pub use privilege::{in_ci, missing_privilege, require_root};
pub use process::{Finished, Proc};
pub use topology::{Public, Site, Topology};
