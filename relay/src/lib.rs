//! supernode's TURN relay (RFC 8656), as a library and as the `supernode-relay` binary.
//!
//! # Architecture
//!
//! - [`server`] is the sans-IO core. It owns every allocation, permission and channel, checks
//!   credentials and policy, and decides what to send where. Time comes in as an argument;
//!   sockets never appear. Its data path returns ranges of the caller's buffer, so relaying a
//!   packet neither copies nor allocates.
//! - [`driver`] is the thin event loop around it: the listening sockets (UDP, TCP, TLS), one UDP
//!   socket per allocation, and a readiness loop (mio) that moves bytes between them and the
//!   core. It is the only place that knows about sockets and the clock.
//! - [`config`] reads TOML, environment and flags into a validated configuration.
//! - [`metrics`] turns the core's counters into Prometheus metrics served over HTTP.
//!
//! The run loop, in one sentence: wait for readiness or the core's next deadline; for each
//! readable socket, read datagrams and hand them to the core; send what it returns; open and
//! close relay sockets it asks for; every so often copy its counters into the metrics.

pub mod config;
pub mod driver;
pub mod metrics;
pub mod server;
