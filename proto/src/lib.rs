//! Wire formats shared by every supernode component.
//!
//! Everything here is *sans-IO*: pure functions and plain data over byte slices. No sockets, no
//! clocks, no async. The relay, the rendezvous and the client SDK all build on it.
//!
//! - [`demux`] tells what a datagram on a shared UDP socket is by its first byte (RFC 7983).
//! - [`channel_data`] frames TURN ChannelData messages (RFC 8656 §12.4), which the STUN codec
//!   does not cover.
//! - [`frame`] splits a TCP/TLS byte stream into STUN and ChannelData messages (RFC 8656 §12.5).
//! - [`stun`] holds helpers around the [`stun_rs`] codec: cheap header checks, encoding, and
//!   building error responses.
//! - [`discover`] is a sans-IO RFC 5780 client that classifies a NAT's mapping and filtering.
//! - [`identity`] holds peer identities: ed25519 keys and printable peer ids.
//! - [`signal`] carries signalling (registration, connect, punch, relay directory) inside STUN
//!   messages, with sans-IO peer and relay clients.
//! - [`turn`] parses Send and writes Data indications on the relay's hot path without allocating.
//! - [`credentials`] implements TURN REST ephemeral credentials (the scheme of coturn's
//!   `static-auth-secret`) and long-term credential keys (RFC 8489 §9.2).
//!
//! The [`stun_rs`] crate is re-exported so that every component uses the same codec version.

pub mod channel_data;
pub mod credentials;
pub mod demux;
pub mod discover;
pub mod frame;
pub mod identity;
pub mod signal;
pub mod stun;
pub mod turn;

pub use stun_rs;
