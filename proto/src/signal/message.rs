//! Signalling message bodies.
//!
//! Each body starts with a one-byte tag. The flow of a connection between peers A and B:
//!
//! ```text
//! A → R  Connect{target B, A's candidates}        R → A  ConnectAck{connect_id} | Error
//! R → B  Offer{from A, A's candidates}            B → R  Answer{accept, B's candidates}
//! R → A  Accepted{from B, B's candidates}         A → R  Ack        (or Refused / Ack)
//! R → A  Punch{peer B, delay}   and   R → B  Punch{peer A, delay}   both → R  Ack
//! ```
//!
//! R measures its round-trip time to each side on the Offer and Accepted transactions, then
//! sends both Punches at once with delays that make both sides start probing at the same
//! instant (each delay shortened by that side's one-way time).

use std::net::SocketAddr;

use super::codec::{Reader, Writer};
use super::{Class, DecodeError, EncodeError, MAX_PAYLOAD_LEN, Method};
use crate::identity::{PeerId, SIGNATURE_LEN};

/// Largest number of candidates in one message.
pub const MAX_CANDIDATES: usize = 16;
/// Largest number of relays in a [`Message::Relays`] answer.
pub const MAX_RELAYS: usize = 8;
/// Largest number of addresses one relay announces.
pub const MAX_RELAY_ADDRS: usize = 6;
/// Largest number of latency reports in a [`Message::RelaysRequest`].
pub const MAX_LATENCIES: usize = 16;
/// Longest relay id, username or password.
pub const MAX_NAME_LEN: usize = 128;
/// Length of the registration challenge nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the session token a registered peer presents.
pub const SESSION_LEN: usize = 16;
/// Length of the relay announcement MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;

/// How a candidate address was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateKind {
    /// An address of a local interface.
    Host = 0,
    /// Server-reflexive: the NAT mapping seen by the rendezvous.
    Srflx = 1,
    /// An address allocated on a TURN relay.
    Relay = 2,
    /// A port mapping obtained from the NAT (PCP, NAT-PMP, UPnP).
    Mapped = 3,
}

/// One address at which a peer may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// How it was learned.
    pub kind: CandidateKind,
    /// The transport address.
    pub addr: SocketAddr,
    /// ICE-style priority: higher is tried first.
    pub priority: u32,
}

/// The transport a relay address speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayTransport {
    /// TURN over UDP.
    Udp = 0,
    /// TURN over TCP.
    Tcp = 1,
    /// TURN over TLS.
    Tls = 2,
}

/// A public TURN address of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayAddr {
    /// Its transport.
    pub transport: RelayTransport,
    /// Its address.
    pub addr: SocketAddr,
}

/// A relay handed to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayEntry {
    /// The relay's id.
    pub id: String,
    /// Where to reach it.
    pub addrs: Vec<RelayAddr>,
    /// Its load in thousandths of its capacity.
    pub load_permille: u16,
}

/// Explicit refusals carried by error responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The payload did not make sense here.
    BadRequest = 1,
    /// The session token is unknown or was not issued to this address: register again.
    NotRegistered = 2,
    /// The proof of key possession is invalid.
    BadSignature = 3,
    /// The challenge nonce expired or was not issued to this address.
    StaleNonce = 4,
    /// The registration was already used, or is older than the current one.
    Replayed = 5,
    /// The target peer is not registered.
    UnknownPeer = 6,
    /// The target peer refused.
    Refused = 7,
    /// The sender exceeded a rate limit; try later.
    RateLimited = 8,
    /// A table is full; try later.
    Overloaded = 9,
    /// The relay announcement's MAC is invalid.
    BadMac = 10,
    /// The target did not answer in time.
    Timeout = 11,
}

impl ErrorCode {
    const ALL: [ErrorCode; 11] = [
        ErrorCode::BadRequest,
        ErrorCode::NotRegistered,
        ErrorCode::BadSignature,
        ErrorCode::StaleNonce,
        ErrorCode::Replayed,
        ErrorCode::UnknownPeer,
        ErrorCode::Refused,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::BadMac,
        ErrorCode::Timeout,
    ];

    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Self::ALL
            .into_iter()
            .find(|c| *c as u8 == v)
            .ok_or(DecodeError::BadValue("error code"))
    }
}

/// A NAT behaviour class (RFC 4787), as a peer's RFC 5780 discovery found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatBehaviour {
    /// Not determined.
    Unknown = 0,
    /// Endpoint-independent.
    EndpointIndependent = 1,
    /// Address-dependent.
    AddressDependent = 2,
    /// Address-and-port-dependent.
    AddressAndPortDependent = 3,
}

impl NatBehaviour {
    /// Every class, for exporting.
    pub const ALL: [NatBehaviour; 4] = [
        NatBehaviour::Unknown,
        NatBehaviour::EndpointIndependent,
        NatBehaviour::AddressDependent,
        NatBehaviour::AddressAndPortDependent,
    ];

    /// The RFC 4787 name, as metric label.
    pub fn label(self) -> &'static str {
        match self {
            NatBehaviour::Unknown => "unknown",
            NatBehaviour::EndpointIndependent => "endpoint-independent",
            NatBehaviour::AddressDependent => "address-dependent",
            NatBehaviour::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

/// Proof that a registering peer holds its secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// The challenge nonce the rendezvous issued to this address.
    pub nonce: [u8; NONCE_LEN],
    /// The peer's clock, Unix milliseconds, covered by the signature.
    pub timestamp_ms: u64,
    /// Signature over [`super::register::signed_data`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// A relay's load report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Live allocations.
    pub allocations: u32,
    /// Allocations it accepts at most.
    pub capacity: u32,
    /// Current relayed bandwidth, bits per second.
    pub bandwidth_bps: u64,
}

/// A signalling message body. See the module docs for the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Request: register `peer`; without a proof it asks for a challenge.
    Register {
        /// The identity being registered.
        peer: PeerId,
        /// Absent in the first round trip.
        proof: Option<Proof>,
    },
    /// Response: sign this nonce together with the observed address.
    Challenge {
        /// Stateless, address-bound, expiring nonce.
        nonce: [u8; NONCE_LEN],
        /// The source address the rendezvous saw.
        observed: SocketAddr,
    },
    /// Response: registration accepted.
    Registered {
        /// The source address the rendezvous saw.
        observed: SocketAddr,
        /// Token to present in later requests.
        session: [u8; SESSION_LEN],
        /// How often to send keepalives, seconds.
        keepalive_secs: u16,
        /// Registration expires after this much silence, seconds.
        expiry_secs: u16,
    },
    /// Request: hold the registration and the NAT mapping.
    Keepalive {
        /// The session token.
        session: [u8; SESSION_LEN],
    },
    /// Response to a keepalive.
    KeepaliveAck {
        /// The source address the rendezvous saw (changes when the NAT remaps).
        observed: SocketAddr,
    },
    /// Request: connect to `target`.
    Connect {
        /// The caller's session token.
        session: [u8; SESSION_LEN],
        /// The callee.
        target: PeerId,
        /// The caller's candidates.
        candidates: Vec<Candidate>,
    },
    /// Response: the connect request was forwarded.
    ConnectAck {
        /// Identifies this connection attempt in later messages.
        connect_id: u64,
    },
    /// Request: relays and TURN credentials, please.
    RelaysRequest {
        /// The session token.
        session: [u8; SESSION_LEN],
        /// Round-trip times the peer measured to relays, milliseconds.
        latencies: Vec<(SocketAddr, u16)>,
    },
    /// Response: relays chosen for this peer and credentials bound to its id.
    Relays {
        /// TURN REST username (`<expiry>:<peer id>`).
        username: String,
        /// TURN REST password.
        password: String,
        /// Credential lifetime, seconds.
        ttl_secs: u32,
        /// Best relays first.
        relays: Vec<RelayEntry>,
    },
    /// Request to the callee: `from` wants to connect.
    Offer {
        /// The attempt.
        connect_id: u64,
        /// The caller.
        from: PeerId,
        /// The caller's candidates.
        candidates: Vec<Candidate>,
    },
    /// The callee's response to an offer.
    Answer {
        /// The callee's session token.
        session: [u8; SESSION_LEN],
        /// The attempt.
        connect_id: u64,
        /// Accept or refuse.
        accept: bool,
        /// The callee's candidates (empty when refusing).
        candidates: Vec<Candidate>,
    },
    /// Request to the caller: the callee accepted.
    Accepted {
        /// The attempt.
        connect_id: u64,
        /// The callee.
        from: PeerId,
        /// The callee's candidates.
        candidates: Vec<Candidate>,
    },
    /// Request to the caller: the callee refused or did not answer.
    Refused {
        /// The attempt.
        connect_id: u64,
        /// The callee.
        from: PeerId,
        /// Why.
        code: ErrorCode,
    },
    /// Request to both sides: start probing `peer` after `delay_ms` from receipt.
    Punch {
        /// The attempt.
        connect_id: u64,
        /// The other side.
        peer: PeerId,
        /// Milliseconds to wait after receiving this message.
        delay_ms: u16,
    },
    /// Response to Accepted, Refused and Punch.
    Ack {
        /// The responder's session token.
        session: [u8; SESSION_LEN],
        /// The attempt.
        connect_id: u64,
    },
    /// Request from a relay: here I am, and my load.
    Announce {
        /// The relay's id.
        relay_id: String,
        /// Strictly increasing per relay (Unix milliseconds); refuses replays.
        seq: u64,
        /// Its public TURN addresses.
        addrs: Vec<RelayAddr>,
        /// Its load.
        load: Load,
        /// HMAC-SHA256 with the shared relay secret; see [`super::announce`].
        mac: [u8; MAC_LEN],
    },
    /// Response to an announcement.
    AnnounceAck {
        /// The sequence number acknowledged.
        seq: u64,
        /// When to announce again, seconds.
        interval_secs: u16,
    },
    /// Request: the NAT behaviour this peer discovered, for the operators' statistics.
    NatReport {
        /// The session token.
        session: [u8; SESSION_LEN],
        /// Mapping behaviour.
        mapping: NatBehaviour,
        /// Filtering behaviour.
        filtering: NatBehaviour,
    },
    /// Response to a NAT report.
    NatReportAck,
    /// Error response body.
    Error {
        /// What went wrong.
        code: ErrorCode,
    },
}

mod body;

impl Message {
    /// The method and class this body travels with, or `None` for [`Message::Ack`] and
    /// [`Message::Error`], whose method is that of the request they answer.
    pub fn method_class(&self) -> Option<(Method, Class)> {
        use Class::{Request as Req, Success as Ok};
        Some(match self {
            Message::Register { .. } => (Method::Register, Req),
            Message::Challenge { .. } | Message::Registered { .. } => (Method::Register, Ok),
            Message::Keepalive { .. } => (Method::Keepalive, Req),
            Message::KeepaliveAck { .. } => (Method::Keepalive, Ok),
            Message::Connect { .. } => (Method::Connect, Req),
            Message::ConnectAck { .. } => (Method::Connect, Ok),
            Message::RelaysRequest { .. } => (Method::Relays, Req),
            Message::Relays { .. } => (Method::Relays, Ok),
            Message::Offer { .. } => (Method::Offer, Req),
            Message::Answer { .. } => (Method::Offer, Ok),
            Message::Accepted { .. } => (Method::Accepted, Req),
            Message::Refused { .. } => (Method::Refused, Req),
            Message::Punch { .. } => (Method::Punch, Req),
            Message::Announce { .. } => (Method::Announce, Req),
            Message::AnnounceAck { .. } => (Method::Announce, Ok),
            Message::NatReport { .. } => (Method::Report, Req),
            Message::NatReportAck => (Method::Report, Ok),
            Message::Ack { .. } | Message::Error { .. } => return None,
        })
    }

    /// Encodes the body, checking every bound.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::default();
        body::encode(self, &mut w)?;
        if w.buf.len() > MAX_PAYLOAD_LEN {
            return Err(EncodeError::TooLarge);
        }
        Ok(w.buf)
    }

    /// Decodes a body; every byte must be consumed.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_PAYLOAD_LEN {
            return Err(DecodeError::TooLong("payload"));
        }
        let mut r = Reader::new(bytes);
        let message = body::decode(&mut r)?;
        r.finish()?;
        Ok(message)
    }
}

pub(crate) fn error_code_from_u8(v: u8) -> Result<ErrorCode, DecodeError> {
    ErrorCode::from_u8(v)
}

pub(crate) use body::announce_fields as body_announce_fields;
