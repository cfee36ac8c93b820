//! Allocation-free codecs for the two TURN indications on the relay's data path.
//!
//! A Send indication (client → relay) and a Data indication (relay → client) carry one peer
//! address and one payload. The relay handles one per packet, so these bypass the general STUN
//! codec: [`parse_send`] borrows the payload from the datagram, and [`write_data_header`] builds
//! a Data indication *in front of* a payload already sitting in the caller's buffer. Both agree
//! byte for byte with what stun-rs encodes and decodes (see the tests).

use crate::stun::{self, MAGIC_COOKIE};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const XOR_PEER_ADDRESS: u16 = 0x0012;
const DATA: u16 = 0x0013;
const DONT_FRAGMENT: u16 = 0x001A;
const FINGERPRINT: u16 = 0x8028;
const SEND_INDICATION: u16 = 0x0016;
const DATA_INDICATION: u16 = 0x0017;

/// Bytes a Data indication needs in front of its payload: header, XOR-PEER-ADDRESS for IPv6
/// and the DATA attribute header. Callers reserve this much headroom.
pub const DATA_HEADROOM: usize = stun::HEADER_LEN + 4 + 20 + 4;

/// Why a datagram is not a usable Send indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not a STUN Send indication.
    #[error("not a Send indication")]
    NotSend,
    /// An attribute runs past the end of the message, or an address is malformed.
    #[error("malformed attribute")]
    Malformed,
    /// XOR-PEER-ADDRESS or DATA is missing.
    #[error("missing XOR-PEER-ADDRESS or DATA")]
    Missing,
    /// A comprehension-required attribute the relay does not know (RFC 8489 §6.3.4).
    #[error("unknown comprehension-required attribute {0:#06x}")]
    UnknownRequired(u16),
    /// FINGERPRINT present and wrong.
    #[error("bad fingerprint")]
    BadFingerprint,
}

/// The parts of a Send indication the relay acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send<'a> {
    /// Where to send the data.
    pub peer: SocketAddr,
    /// The application data.
    pub data: &'a [u8],
    /// Whether DONT-FRAGMENT was present.
    pub dont_fragment: bool,
}

/// Parses a Send indication without allocating.
pub fn parse_send(msg: &[u8]) -> Result<Send<'_>, SendError> {
    let header = stun::header(msg).ok_or(SendError::NotSend)?;
    if header.message_type != SEND_INDICATION {
        return Err(SendError::NotSend);
    }
    let mut peer = None;
    let mut data = None;
    let mut dont_fragment = false;
    let mut pos = stun::HEADER_LEN;
    while pos + 4 <= msg.len() {
        let kind = u16::from_be_bytes([msg[pos], msg[pos + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[pos + 2], msg[pos + 3]]));
        let start = pos + 4;
        let value = msg.get(start..start + len).ok_or(SendError::Malformed)?;
        match kind {
            XOR_PEER_ADDRESS if peer.is_none() => {
                peer = Some(decode_xor_address(value, &header.transaction_id)?);
            }
            DATA if data.is_none() => data = Some(value),
            DONT_FRAGMENT => dont_fragment = true,
            FINGERPRINT if stun::check_fingerprint(msg) != Some(true) => {
                return Err(SendError::BadFingerprint);
            }
            k if k < 0x8000 && k != XOR_PEER_ADDRESS && k != DATA => {
                return Err(SendError::UnknownRequired(k));
            }
            _ => {}
        }
        pos = start + ((len + 3) & !3);
    }
    Ok(Send {
        peer: peer.ok_or(SendError::Missing)?,
        data: data.ok_or(SendError::Missing)?,
        dont_fragment,
    })
}

/// Writes a Data indication around a payload that already sits in `buf` at
/// `DATA_HEADROOM..DATA_HEADROOM + data_len`, and zero padding after it.
///
/// Returns the range of `buf` that holds the finished message. `buf` must have room for up to
/// three padding bytes after the payload; `None` if it does not or the payload is too large.
pub fn write_data_header(
    buf: &mut [u8],
    data_len: usize,
    peer: SocketAddr,
    transaction_id: [u8; 12],
) -> Option<std::ops::Range<usize>> {
    let addr_len = if peer.is_ipv4() { 8 } else { 20 };
    let start = DATA_HEADROOM - (stun::HEADER_LEN + 4 + addr_len + 4);
    let padded = (data_len + 3) & !3;
    let end = DATA_HEADROOM + padded;
    if buf.len() < end {
        return None;
    }
    let body_len = u16::try_from(4 + addr_len + 4 + padded).ok()?;
    let data_len16 = u16::try_from(data_len).ok()?;
    buf[DATA_HEADROOM + data_len..end].fill(0);

    let out = &mut buf[start..DATA_HEADROOM];
    out[0..2].copy_from_slice(&DATA_INDICATION.to_be_bytes());
    out[2..4].copy_from_slice(&body_len.to_be_bytes());
    out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out[8..20].copy_from_slice(&transaction_id);
    out[20..22].copy_from_slice(&XOR_PEER_ADDRESS.to_be_bytes());
    out[22..24].copy_from_slice(&(addr_len as u16).to_be_bytes());
    encode_xor_address(&mut out[24..24 + addr_len], peer, &transaction_id);
    let d = 24 + addr_len;
    out[d..d + 2].copy_from_slice(&DATA.to_be_bytes());
    out[d + 2..d + 4].copy_from_slice(&data_len16.to_be_bytes());
    Some(start..DATA_HEADROOM + padded)
}

fn decode_xor_address(value: &[u8], tid: &[u8; 12]) -> Result<SocketAddr, SendError> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    match value {
        [_, 0x01, p0, p1, a @ ..] if a.len() == 4 => {
            let port = u16::from_be_bytes([p0 ^ cookie[0], p1 ^ cookie[1]]);
            let ip = Ipv4Addr::new(
                a[0] ^ cookie[0],
                a[1] ^ cookie[1],
                a[2] ^ cookie[2],
                a[3] ^ cookie[3],
            );
            Ok(SocketAddr::new(IpAddr::V4(ip), port))
        }
        [_, 0x02, p0, p1, a @ ..] if a.len() == 16 => {
            let port = u16::from_be_bytes([p0 ^ cookie[0], p1 ^ cookie[1]]);
            let mut octets = [0u8; 16];
            for (i, o) in octets.iter_mut().enumerate() {
                let mask = if i < 4 { cookie[i] } else { tid[i - 4] };
                *o = a[i] ^ mask;
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => Err(SendError::Malformed),
    }
}

fn encode_xor_address(out: &mut [u8], addr: SocketAddr, tid: &[u8; 12]) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    out[0] = 0;
    let port = addr.port().to_be_bytes();
    out[2] = port[0] ^ cookie[0];
    out[3] = port[1] ^ cookie[1];
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = 0x01;
            for (i, b) in ip.octets().iter().enumerate() {
                out[4 + i] = b ^ cookie[i];
            }
        }
        IpAddr::V6(ip) => {
            out[1] = 0x02;
            for (i, b) in ip.octets().iter().enumerate() {
                let mask = if i < 4 { cookie[i] } else { tid[i - 4] };
                out[4 + i] = b ^ mask;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use stun_rs::attributes::stun::Fingerprint;
    use stun_rs::attributes::turn::{Data, DontFragment, XorPeerAddress};
    use stun_rs::methods::{DATA as DATA_METHOD, SEND};
    use stun_rs::{MessageClass, MessageDecoderBuilder, StunMessageBuilder, TransactionId};

    fn addr_strategy() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
        ]
    }

    proptest! {
        #[test]
        fn send_matches_stun_rs(peer in addr_strategy(), data in proptest::collection::vec(any::<u8>(), 0..300), df: bool, fp: bool, tid: [u8; 12]) {
            let mut b = StunMessageBuilder::new(SEND, MessageClass::Indication)
                .with_transaction_id(TransactionId::from(tid))
                .with_attribute(XorPeerAddress::from(peer))
                .with_attribute(Data::new(data.clone()));
            if df { b = b.with_attribute(DontFragment::default()); }
            if fp { b = b.with_attribute(Fingerprint::default()); }
            let raw = stun::encode(&b.build()).unwrap();
            let parsed = parse_send(&raw).unwrap();
            prop_assert_eq!(parsed.peer, peer);
            prop_assert_eq!(parsed.data, &data[..]);
            prop_assert_eq!(parsed.dont_fragment, df);
        }

        #[test]
        fn data_indication_decodes_with_stun_rs(peer in addr_strategy(), data in proptest::collection::vec(any::<u8>(), 0..300), tid: [u8; 12]) {
            let mut buf = vec![0xAAu8; DATA_HEADROOM + data.len() + 3];
            buf[DATA_HEADROOM..DATA_HEADROOM + data.len()].copy_from_slice(&data);
            let range = write_data_header(&mut buf, data.len(), peer, tid).unwrap();
            let msg = &buf[range];
            let (decoded, n) = MessageDecoderBuilder::default().build().decode(msg).unwrap();
            prop_assert_eq!(n, msg.len());
            prop_assert_eq!(decoded.method(), DATA_METHOD);
            prop_assert_eq!(decoded.class(), MessageClass::Indication);
            let got_peer = *decoded.get::<XorPeerAddress>().unwrap().as_xor_peer_address().unwrap().socket_address();
            prop_assert_eq!(got_peer, peer);
            let got = decoded.get::<Data>().unwrap().as_data().unwrap().as_bytes().to_vec();
            prop_assert_eq!(got, data);
        }

        #[test]
        fn parse_send_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_send(&bytes);
        }
    }

    #[test]
    fn rejects_broken_send() {
        let raw = stun::encode(
            &StunMessageBuilder::new(SEND, MessageClass::Indication)
                .with_attribute(XorPeerAddress::from(SocketAddr::from(([192, 0, 2, 1], 9))))
                .with_attribute(Fingerprint::default())
                .build(),
        )
        .unwrap();
        assert_eq!(parse_send(&raw), Err(SendError::Missing));
        let mut corrupted = raw.clone();
        corrupted[26] ^= 0xff;
        assert_eq!(parse_send(&corrupted), Err(SendError::BadFingerprint));
        let mut short = [0u8; 4];
        short[1] = 0x16;
        assert_eq!(parse_send(&short), Err(SendError::NotSend));
        let mut buf = [0u8; DATA_HEADROOM + 2];
        assert!(
            write_data_header(&mut buf, 4, SocketAddr::from(([1, 2, 3, 4], 5)), [0; 12]).is_none()
        );
    }
}
