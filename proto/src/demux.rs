//! Demultiplexing of one UDP socket's datagrams by their first byte.
//!
//! RFC 7983 §7 assigns disjoint first-byte ranges to the protocols that may share a socket with
//! STUN. supernode puts STUN, TURN ChannelData and its own encrypted peer traffic on one socket;
//! the peer traffic uses the range RFC 7983 leaves to RTP/RTCP-style payloads, so classification
//! never needs more than the first byte.

/// What a datagram is, judged by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0–3: a STUN message (binding, TURN methods, signalling).
    Stun,
    /// 16–19: ZRTP.
    Zrtp,
    /// 20–63: DTLS.
    Dtls,
    /// 64–79: TURN ChannelData.
    ChannelData,
    /// 128–191: RTP/RTCP, and supernode's own peer packets.
    Rtp,
    /// Any other first byte, or an empty datagram: not ours to interpret.
    Unknown,
}

/// Classifies a datagram by its first byte (RFC 7983 §7).
pub fn classify(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(16..=19) => Kind::Zrtp,
        Some(20..=63) => Kind::Dtls,
        Some(64..=79) => Kind::ChannelData,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc7983() {
        assert_eq!(classify(&[]), Kind::Unknown);
        assert_eq!(classify(&[0x00, 0x01]), Kind::Stun);
        assert_eq!(classify(&[3]), Kind::Stun);
        assert_eq!(classify(&[4]), Kind::Unknown);
        assert_eq!(classify(&[16]), Kind::Zrtp);
        assert_eq!(classify(&[22]), Kind::Dtls);
        assert_eq!(classify(&[0x40]), Kind::ChannelData);
        assert_eq!(classify(&[0x4f]), Kind::ChannelData);
        assert_eq!(classify(&[0x50]), Kind::Unknown);
        assert_eq!(classify(&[0x80]), Kind::Rtp);
        assert_eq!(classify(&[0xbf]), Kind::Rtp);
        assert_eq!(classify(&[0xc0]), Kind::Unknown);
    }

    proptest::proptest! {
        #[test]
        fn stun_codec_agrees_with_classifier(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            // Anything the STUN header check accepts must classify as STUN.
            if crate::stun::header(&bytes).is_some() {
                proptest::prop_assert_eq!(classify(&bytes), Kind::Stun);
            }
            if crate::channel_data::ChannelData::decode(&bytes).is_ok() && bytes[0] < 0x50 {
                proptest::prop_assert_eq!(classify(&bytes), Kind::ChannelData);
            }
        }
    }
}
