//! Signalling between peers, relays and the rendezvous.
//!
//! Signalling rides inside STUN messages so that it can share the UDP socket a peer uses for its
//! data: the first byte is 0–3, so RFC 7983 demultiplexing ([`crate::demux`]) files it with STUN,
//! and the rendezvous sees exactly the NAT mapping a later hole punch will use. The STUN
//! transaction id matches responses to requests and makes retransmissions idempotent.
//!
//! A signalling message is a STUN header with one of the [`Method`]s below (unassigned methods
//! 0x0E1–0x0EA: only methods below 0x100 keep the first byte in 0–3) and exactly one attribute,
//! [`SIGNAL_ATTRIBUTE`]
//! (comprehension-required, so a plain STUN server answers 420 rather than misreading it), whose
//! value is a compact binary [`Message`]. Payloads are at most [`MAX_PAYLOAD_LEN`] bytes and every
//! list in them is bounded; [`Envelope::decode`] never panics on arbitrary bytes.
//!
//! - [`message`]: the message bodies and their encoding.
//! - [`register`]: what a peer signs to prove it holds its key.
//! - [`client`]: a sans-IO peer-side client (register, keepalive, connect, answer, punch).
//! - [`announce`]: a sans-IO relay announcer, so relays join the rendezvous's directory.

pub mod announce;
pub mod client;
mod codec;
pub mod message;
pub mod register;

pub use message::{
    Candidate, CandidateKind, ErrorCode, Message, NatBehaviour, RelayAddr, RelayEntry,
    RelayTransport,
};

use crate::stun::{self, HEADER_LEN, MAGIC_COOKIE};

/// The STUN attribute type that carries a signalling payload.
pub const SIGNAL_ATTRIBUTE: u16 = 0x7F5E;

/// Largest signalling payload, chosen so a whole message fits in a 1280-byte IPv6 datagram.
pub const MAX_PAYLOAD_LEN: usize = 1200;

/// Largest encoded signalling message: header, attribute header and padded payload.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + 4 + MAX_PAYLOAD_LEN;

/// STUN transaction id.
pub type TransactionId = [u8; 12];

/// The STUN methods signalling uses, one per kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Method {
    /// Peer registration (challenge, then proof).
    Register = 0x0E1,
    /// Keepalive that holds the registration and the NAT mapping.
    Keepalive = 0x0E2,
    /// A peer asks to connect to another.
    Connect = 0x0E3,
    /// A peer asks for relays and TURN credentials.
    Relays = 0x0E4,
    /// The rendezvous offers an incoming connection to the callee.
    Offer = 0x0E5,
    /// The rendezvous tells the caller that the callee accepted.
    Accepted = 0x0E6,
    /// The rendezvous tells the caller that the callee refused.
    Refused = 0x0E7,
    /// The rendezvous tells both sides when to punch.
    Punch = 0x0E8,
    /// A relay announces itself and its load.
    Announce = 0x0E9,
    /// A peer reports the NAT behaviour it discovered (RFC 5780).
    Report = 0x0EA,
}

impl Method {
    /// Every method, for decoding.
    pub const ALL: [Method; 10] = [
        Method::Register,
        Method::Keepalive,
        Method::Connect,
        Method::Relays,
        Method::Offer,
        Method::Accepted,
        Method::Refused,
        Method::Punch,
        Method::Announce,
        Method::Report,
    ];

    /// Looks a 12-bit STUN method number up.
    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|m| *m as u16 == v)
    }
}

/// The STUN message class of a signalling message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Expects a response; retransmitted until one arrives.
    Request,
    /// Answers a request with the same transaction id.
    Success,
    /// Refuses a request with the same transaction id; the body is [`Message::Error`].
    Error,
}

/// Why bytes are not a valid signalling message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a STUN message, or a STUN message that is not signalling.
    #[error("not a signalling message")]
    NotSignal,
    /// A field runs past the end of the payload.
    #[error("truncated signalling payload")]
    Truncated,
    /// A list or string is longer than its bound.
    #[error("{0} exceeds its bound")]
    TooLong(&'static str),
    /// A field holds a value outside its domain.
    #[error("invalid {0}")]
    BadValue(&'static str),
    /// Bytes left over after the last field.
    #[error("trailing bytes after signalling payload")]
    TrailingBytes,
    /// The body does not belong with the header's method and class.
    #[error("message body does not match its method or class")]
    Mismatch,
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The payload exceeds [`MAX_PAYLOAD_LEN`] or a list exceeds its bound.
    #[error("signalling payload too large")]
    TooLarge,
}

/// A whole signalling message: STUN framing plus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The STUN method.
    pub method: Method,
    /// Request, success or error.
    pub class: Class,
    /// Matches responses to requests.
    pub transaction_id: TransactionId,
    /// The payload.
    pub message: Message,
}

impl Envelope {
    /// A request carrying `message`, with the method the message implies.
    pub fn request(transaction_id: TransactionId, message: Message) -> Option<Self> {
        let (method, Class::Request) = message.method_class()? else {
            return None;
        };
        Some(Self {
            method,
            class: Class::Request,
            transaction_id,
            message,
        })
    }

    /// A response to a request with `method` and `transaction_id`; the class follows from the
    /// message (an [`Message::Error`] makes an error response).
    pub fn response(method: Method, transaction_id: TransactionId, message: Message) -> Self {
        let class = if matches!(message, Message::Error { .. }) {
            Class::Error
        } else {
            Class::Success
        };
        Self {
            method,
            class,
            transaction_id,
            message,
        }
    }

    /// Encodes the message as STUN bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let payload = self.message.encode()?;
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(EncodeError::TooLarge);
        }
        let padded = payload.len().div_ceil(4) * 4;
        let mut out = Vec::with_capacity(HEADER_LEN + 4 + padded);
        out.extend_from_slice(&message_type(self.method, self.class).to_be_bytes());
        out.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id);
        out.extend_from_slice(&SIGNAL_ATTRIBUTE.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&payload);
        out.resize(HEADER_LEN + 4 + padded, 0);
        Ok(out)
    }

    /// Decodes one signalling message occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let header = stun::header(bytes).ok_or(DecodeError::NotSignal)?;
        let method = Method::from_u16(header.method()).ok_or(DecodeError::NotSignal)?;
        let class = match header.class() {
            stun_rs::MessageClass::Request => Class::Request,
            stun_rs::MessageClass::SuccessResponse => Class::Success,
            stun_rs::MessageClass::ErrorResponse => Class::Error,
            stun_rs::MessageClass::Indication => return Err(DecodeError::NotSignal),
        };
        let attrs = &bytes[HEADER_LEN..];
        let head: [u8; 4] = attrs
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::Truncated)?;
        if u16::from_be_bytes([head[0], head[1]]) != SIGNAL_ATTRIBUTE {
            return Err(DecodeError::NotSignal);
        }
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if len > MAX_PAYLOAD_LEN {
            return Err(DecodeError::TooLong("payload"));
        }
        // Exactly one attribute: its padded length must fill the message.
        if 4 + len.div_ceil(4) * 4 != attrs.len() {
            return Err(DecodeError::TrailingBytes);
        }
        let message = Message::decode(&attrs[4..4 + len])?;
        let consistent = match (&message, class) {
            (Message::Error { .. }, Class::Error) => true,
            (Message::Ack { .. }, Class::Success) => {
                matches!(method, Method::Accepted | Method::Refused | Method::Punch)
            }
            (m, c) => m.method_class() == Some((method, c)),
        };
        if !consistent {
            return Err(DecodeError::Mismatch);
        }
        Ok(Self {
            method,
            class,
            transaction_id: header.transaction_id,
            message,
        })
    }
}

/// True when `bytes` start like a signalling message (a STUN header with a signalling method),
/// so a socket shared with STUN Binding and TURN can route it without a full decode.
pub fn is_signal(bytes: &[u8]) -> bool {
    stun::header_prefix(bytes).is_some_and(|h| Method::from_u16(h.method()).is_some())
}

/// Interleaves method and class bits into the 14-bit STUN message type (RFC 8489 §5).
fn message_type(method: Method, class: Class) -> u16 {
    let m = method as u16;
    let (c1, c0) = match class {
        Class::Request => (0, 0),
        Class::Success => (1, 0),
        Class::Error => (1, 1),
    };
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | (c0 << 4) | (c1 << 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_matches_stun_layout() {
        let env = Envelope::request([9; 12], Message::Keepalive { session: [1; 16] }).unwrap();
        let bytes = env.encode().unwrap();
        let h = stun::header(&bytes).unwrap();
        assert_eq!(h.method(), Method::Keepalive as u16);
        assert_eq!(h.class(), stun_rs::MessageClass::Request);
        assert_eq!(h.transaction_id, [9; 12]);
        assert_eq!(crate::demux::classify(&bytes), crate::demux::Kind::Stun);
        assert!(is_signal(&bytes));
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        let err = Envelope::response(
            Method::Connect,
            [3; 12],
            Message::Error {
                code: ErrorCode::UnknownPeer,
            },
        );
        let bytes = err.encode().unwrap();
        assert_eq!(
            stun::header(&bytes).unwrap().class(),
            stun_rs::MessageClass::ErrorResponse
        );
        assert_eq!(Envelope::decode(&bytes).unwrap(), err);
    }

    #[test]
    fn every_method_demuxes_as_stun() {
        for m in Method::ALL {
            for c in [Class::Request, Class::Success, Class::Error] {
                let first = message_type(m, c).to_be_bytes()[0];
                assert!(first <= 3, "{m:?} {c:?} starts with {first}");
            }
        }
    }

    #[test]
    fn binding_is_not_signal() {
        let binding = crate::stun::encode(
            &stun_rs::StunMessageBuilder::new(
                stun_rs::methods::BINDING,
                stun_rs::MessageClass::Request,
            )
            .build(),
        )
        .unwrap();
        assert!(!is_signal(&binding));
        assert_eq!(Envelope::decode(&binding), Err(DecodeError::NotSignal));
    }

    #[test]
    fn mismatched_class_is_refused() {
        let env = Envelope::request([1; 12], Message::Keepalive { session: [1; 16] }).unwrap();
        let mut bytes = env.encode().unwrap();
        // Flip the class to success response.
        bytes[0] |= 0x01;
        assert_eq!(Envelope::decode(&bytes), Err(DecodeError::Mismatch));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Envelope::decode(&bytes);
            let _ = is_signal(&bytes);
        }

        #[test]
        fn arbitrary_payloads_never_panic(
            method in 0usize..10,
            class in 0u8..3,
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            // A valid STUN frame around random payload bytes reaches the body decoder.
            let m = Method::ALL[method];
            let c = [Class::Request, Class::Success, Class::Error][usize::from(class)];
            let padded = payload.len().div_ceil(4) * 4;
            let mut bytes = message_type(m, c).to_be_bytes().to_vec();
            bytes.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
            bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            bytes.extend_from_slice(&[0; 12]);
            bytes.extend_from_slice(&SIGNAL_ATTRIBUTE.to_be_bytes());
            bytes.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&payload);
            bytes.resize(HEADER_LEN + 4 + padded, 0);
            if let Ok(env) = Envelope::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes.
                prop_assert_eq!(env.encode().unwrap(), bytes);
            }
        }
    }
}
