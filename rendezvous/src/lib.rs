//! The supernode rendezvous node: STUN and RFC 5780 NAT behaviour discovery, a registry of
//! peers keyed by public-key identity, hole-punch signalling and a relay directory.

pub mod core;
