//! Events the client reports to the application.

use std::net::SocketAddr;
use std::time::Instant;

use crate::identity::PeerId;
use crate::signal::Method;
use crate::signal::message::{Candidate, ErrorCode, RelayEntry};

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Registration succeeded; `observed` is our server-reflexive address.
    Registered {
        /// Our address as the rendezvous sees it.
        observed: SocketAddr,
    },
    /// The NAT mapping changed (seen in a keepalive answer).
    MappingChanged {
        /// The new server-reflexive address.
        observed: SocketAddr,
    },
    /// The rendezvous forwarded our connect request.
    ConnectSent {
        /// The callee.
        target: PeerId,
        /// The attempt.
        connect_id: u64,
    },
    /// Someone wants to connect; answer with [`Client::answer`].
    Offer {
        /// The attempt.
        connect_id: u64,
        /// The caller.
        from: PeerId,
        /// The caller's candidates.
        candidates: Vec<Candidate>,
    },
    /// The callee accepted.
    Accepted {
        /// The attempt.
        connect_id: u64,
        /// The callee.
        peer: PeerId,
        /// The callee's candidates.
        candidates: Vec<Candidate>,
    },
    /// The callee refused or did not answer.
    Refused {
        /// The attempt.
        connect_id: u64,
        /// The callee.
        peer: PeerId,
        /// Why.
        code: ErrorCode,
    },
    /// Start probing `peer` at `at`.
    Punch {
        /// The attempt.
        connect_id: u64,
        /// The other side.
        peer: PeerId,
        /// When to send the first probe.
        at: Instant,
    },
    /// Relays and TURN credentials.
    Relays {
        /// TURN username.
        username: String,
        /// TURN password.
        password: String,
        /// Credential lifetime, seconds.
        ttl_secs: u32,
        /// Best first.
        relays: Vec<RelayEntry>,
    },
    /// A request was refused (`Some(code)`) or never answered (`None`).
    Failed {
        /// Which request.
        method: Method,
        /// The callee, for a connect request.
        target: Option<PeerId>,
        /// The refusal, if any.
        code: Option<ErrorCode>,
    },
}
