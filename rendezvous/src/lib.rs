//! The supernode rendezvous node: where peers learn what their NAT does, find each other and
//! agree when to punch.
//!
//! # Architecture
//!
//! - [`core`] is the sans-IO state machine: STUN Binding with RFC 5780 NAT behaviour discovery,
//!   the registry of peers keyed by ed25519 identity (challenge–response registration), the
//!   connect/answer/punch coordination, the relay directory, rate limits and counters. It takes
//!   messages and `now` in, and gives transmits, timers and events out.
//! - [`driver`] is the thin tokio driver: up to four UDP sockets (primary/alternate IP ×
//!   port), a TCP listener, one task owning the core.
//! - The RFC 5780 client that classifies a NAT's mapping and filtering lives in
//!   [`supernode_proto::discover`] (peers need it without this crate); the binary's `discover`
//!   subcommand drives it, and `tests/classify.rs` runs it against this core through simulated
//!   NATs.
//! - [`config`] reads TOML + environment + flags; [`metrics`] and [`http`] export Prometheus
//!   metrics.
//!
//! Wire formats (signalling inside STUN, identities, the peer client and relay announcer) live
//! in [`supernode_proto::signal`] and [`supernode_proto::identity`], so peers and relays do not
//! depend on this crate.
//!
//! # Run loop
//!
//! ```text
//! loop {
//!     send core.poll_transmit() on the socket or connection it names
//!     metrics.sync(&core)        (at most every 100 ms)
//!     select! {
//!         datagram on socket i   => core.handle_datagram(now, Udp { local: i }, from, bytes)
//!         framed message on conn => core.handle_datagram(now, Tcp { conn, .. }, from, bytes)
//!         core.poll_timeout()    => core.handle_timeout(now)
//!         shutdown               => break
//!     }
//! }
//! ```

pub mod config;
pub mod core;
pub mod driver;
pub mod http;
pub mod metrics;
