//! Helpers around the [`stun_rs`] codec.
//!
//! stun-rs decodes and encodes whole messages. Servers also need a few cheap, allocation-free
//! checks before paying for a full decode (is this STUN at all? how long is it on a stream?),
//! and integrity checks where the key is only known after reading USERNAME and REALM. Those live
//! here.

use stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, MessageIntegritySha256, Software,
};
use stun_rs::{
    HMACKey, MessageClass, MessageEncoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder, TransactionId,
};

/// The fixed magic cookie of RFC 5389 and later.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Size of the STUN header.
pub const HEADER_LEN: usize = 20;

/// Largest STUN message supernode encodes or accepts; it fits an IPv6 minimum-MTU datagram's
/// worth of attributes plus a full-size DATA attribute.
pub const MAX_MESSAGE_LEN: usize = 65_535 + HEADER_LEN;

/// FINGERPRINT attribute type.
const FINGERPRINT_TYPE: u16 = 0x8028;

/// The fixed fields of a STUN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The 16-bit message type (method and class interleaved).
    pub message_type: u16,
    /// Length of the attributes, excluding the header.
    pub length: usize,
    /// The transaction id.
    pub transaction_id: [u8; 12],
}

impl Header {
    /// Total message length, header included.
    pub fn message_len(&self) -> usize {
        HEADER_LEN + self.length
    }

    /// The message class.
    pub fn class(&self) -> MessageClass {
        match ((self.message_type >> 7) & 0b10) | ((self.message_type >> 4) & 0b01) {
            0b00 => MessageClass::Request,
            0b01 => MessageClass::Indication,
            0b10 => MessageClass::SuccessResponse,
            _ => MessageClass::ErrorResponse,
        }
    }

    /// The 12-bit method number.
    pub fn method(&self) -> u16 {
        let t = self.message_type;
        ((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F)
    }
}

/// Reads a STUN header from the first 20 bytes of `buf`, checking the leading zero bits, the
/// magic cookie and that the length is a multiple of four. Does not require the attributes to
/// be present; see [`header`] for a whole-datagram check.
pub fn header_prefix(buf: &[u8]) -> Option<Header> {
    let head: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    let message_type = u16::from_be_bytes([head[0], head[1]]);
    if message_type & 0xC000 != 0 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if length % 4 != 0 {
        return None;
    }
    if u32::from_be_bytes([head[4], head[5], head[6], head[7]]) != MAGIC_COOKIE {
        return None;
    }
    let mut transaction_id = [0u8; 12];
    transaction_id.copy_from_slice(&head[8..20]);
    Some(Header {
        message_type,
        length,
        transaction_id,
    })
}

/// Reads the header of a datagram that must hold exactly one STUN message.
pub fn header(datagram: &[u8]) -> Option<Header> {
    header_prefix(datagram).filter(|h| h.message_len() == datagram.len())
}

/// Checks the FINGERPRINT attribute if the message ends with one.
///
/// Returns `None` when there is no FINGERPRINT, `Some(true)` when it matches the CRC-32 of the
/// message before it (RFC 8489 §14.7), `Some(false)` when it does not.
pub fn check_fingerprint(message: &[u8]) -> Option<bool> {
    let len = message.len();
    if len < HEADER_LEN + 8 {
        return None;
    }
    let attr = &message[len - 8..];
    if u16::from_be_bytes([attr[0], attr[1]]) != FINGERPRINT_TYPE
        || u16::from_be_bytes([attr[2], attr[3]]) != 4
    {
        return None;
    }
    let value = [attr[4], attr[5], attr[6], attr[7]];
    Some(Fingerprint::from(value).validate(&message[..len - 8]))
}

/// Which MESSAGE-INTEGRITY variant a message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// HMAC-SHA1 (RFC 8489 §14.5).
    Sha1,
    /// HMAC-SHA256 (RFC 8489 §14.6).
    Sha256,
}

/// Why a message failed an integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// Neither MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256 is present.
    #[error("no message integrity attribute")]
    Missing,
    /// The HMAC does not match.
    #[error("message integrity mismatch")]
    Mismatch,
}

/// Checks the message's integrity with `key`, preferring MESSAGE-INTEGRITY-SHA256 when both are
/// present (RFC 8489 §9.2.4).
///
/// `message` is the raw bytes `decoded` came from.
pub fn check_integrity(
    message: &[u8],
    decoded: &StunMessage,
    key: &HMACKey,
) -> Result<Integrity, IntegrityError> {
    if let Some(StunAttribute::MessageIntegritySha256(attr)) =
        decoded.get::<MessageIntegritySha256>()
    {
        let input = stun_rs::get_input_text::<MessageIntegritySha256>(message)
            .ok_or(IntegrityError::Mismatch)?;
        return attr
            .validate(&input, key)
            .then_some(Integrity::Sha256)
            .ok_or(IntegrityError::Mismatch);
    }
    if let Some(StunAttribute::MessageIntegrity(attr)) = decoded.get::<MessageIntegrity>() {
        let input =
            stun_rs::get_input_text::<MessageIntegrity>(message).ok_or(IntegrityError::Mismatch)?;
        return attr
            .validate(&input, key)
            .then_some(Integrity::Sha1)
            .ok_or(IntegrityError::Mismatch);
    }
    Err(IntegrityError::Missing)
}

/// Encodes `message` into a new buffer.
pub fn encode(message: &StunMessage) -> Result<Vec<u8>, stun_rs::error::StunEncodeError> {
    // Responses are small; the largest we build (a Data indication) is bounded by the UDP
    // payload it carries plus a few attributes.
    let mut buf = vec![0u8; 2048];
    let encoder = MessageEncoderBuilder::default().build();
    loop {
        match encoder.encode(&mut buf, message) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if buf.len() < MAX_MESSAGE_LEN => {
                let _ = e;
                let grown = (buf.len() * 4).min(MAX_MESSAGE_LEN);
                buf.resize(grown, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts a response to a request with the given method and transaction id.
pub fn response(
    method: MessageMethod,
    class: MessageClass,
    transaction_id: TransactionId,
) -> StunMessageBuilder {
    StunMessageBuilder::new(method, class).with_transaction_id(transaction_id)
}

/// Builds the ERROR-CODE attribute for `code`, with its RFC reason phrase.
pub fn error_code(code: u16) -> Option<ErrorCode> {
    let reason = match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        486 => "Allocation Quota Reached",
        500 => "Server Error",
        508 => "Insufficient Capacity",
        _ => "Error",
    };
    stun_rs::ErrorCode::new(code, reason)
        .ok()
        .map(ErrorCode::from)
}

/// The SOFTWARE attribute every supernode component sends.
pub fn software() -> Option<Software> {
    Software::new(concat!("supernode ", env!("CARGO_PKG_VERSION"))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::long_term_key;
    use proptest::prelude::*;
    use stun_rs::attributes::stun::{Nonce, Realm, UserName};
    use stun_rs::methods::{ALLOCATE, BINDING};
    use stun_rs::{MessageDecoderBuilder, StunAttributeType};

    fn signed_request(sha256: bool) -> Vec<u8> {
        let key = long_term_key("user", "realm", "pass").unwrap();
        let mut b = StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
            .with_attribute(UserName::new("user").unwrap())
            .with_attribute(Realm::new("realm").unwrap())
            .with_attribute(Nonce::new("nonce").unwrap());
        b = if sha256 {
            b.with_attribute(MessageIntegritySha256::new(key))
        } else {
            b.with_attribute(MessageIntegrity::new(key))
        };
        encode(&b.with_attribute(Fingerprint::default()).build()).unwrap()
    }

    #[test]
    fn header_reads_method_and_class() {
        let raw = signed_request(false);
        let h = header(&raw).unwrap();
        assert_eq!(h.method(), ALLOCATE.as_u16());
        assert_eq!(h.class(), MessageClass::Request);
        assert_eq!(h.message_len(), raw.len());
        assert!(header(&raw[..raw.len() - 4]).is_none());
        assert!(header_prefix(&raw[..20]).is_some());
    }

    #[test]
    fn fingerprint_detects_corruption() {
        let mut raw = signed_request(false);
        assert_eq!(check_fingerprint(&raw), Some(true));
        raw[25] ^= 1;
        assert_eq!(check_fingerprint(&raw), Some(false));
        let bare =
            encode(&StunMessageBuilder::new(BINDING, MessageClass::Request).build()).unwrap();
        assert_eq!(check_fingerprint(&bare), None);
    }

    #[test]
    fn integrity_both_variants() {
        let good = long_term_key("user", "realm", "pass").unwrap();
        let bad = long_term_key("user", "realm", "wrong").unwrap();
        let decoder = MessageDecoderBuilder::default().build();
        for (sha256, kind) in [(false, Integrity::Sha1), (true, Integrity::Sha256)] {
            let raw = signed_request(sha256);
            let (msg, _) = decoder.decode(&raw).unwrap();
            assert_eq!(check_integrity(&raw, &msg, &good), Ok(kind));
            assert_eq!(
                check_integrity(&raw, &msg, &bad),
                Err(IntegrityError::Mismatch)
            );
        }
        let bare =
            encode(&StunMessageBuilder::new(BINDING, MessageClass::Request).build()).unwrap();
        let (msg, _) = decoder.decode(&bare).unwrap();
        assert_eq!(
            check_integrity(&bare, &msg, &good),
            Err(IntegrityError::Missing)
        );
    }

    #[test]
    fn error_codes_have_reasons() {
        for code in [401, 403, 437, 438, 486] {
            let attr = error_code(code).unwrap();
            assert_eq!(attr.error_code().error_code(), code);
        }
        assert_eq!(ErrorCode::get_type().as_u16(), 0x0009);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = header(&bytes);
            let _ = check_fingerprint(&bytes);
            if let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(&bytes) {
                let key = long_term_key("u", "r", "p").unwrap();
                let _ = check_integrity(&bytes, &msg, &key);
            }
        }

        #[test]
        fn header_fields_round_trip(tid in any::<[u8; 12]>()) {
            let msg = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
                .with_transaction_id(TransactionId::from(tid))
                .build();
            let raw = encode(&msg).unwrap();
            let h = header(&raw).unwrap();
            prop_assert_eq!(h.transaction_id, tid);
            prop_assert_eq!(h.class(), MessageClass::SuccessResponse);
            prop_assert_eq!(h.method(), BINDING.as_u16());
        }
    }
}
