//! TURN ChannelData messages (RFC 8656 §12.4).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Channel Number        |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! /                       Application Data                        /
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The relay's hot path runs through this module, so decoding borrows and encoding writes into a
//! caller's buffer: nothing here allocates.

use std::ops::RangeInclusive;

/// Size of the ChannelData header.
pub const HEADER_LEN: usize = 4;

/// Channel numbers supernode's own clients bind (RFC 8656 §12), inside the first-byte range
/// RFC 7983 gives TURN channels, so they can share a socket with DTLS and RTP.
pub const CHANNEL_RANGE: RangeInclusive<u16> = 0x4000..=0x4FFF;

/// Channel numbers a server accepts: RFC 5766 allowed up to 0x7FFF and deployed clients
/// (coturn's among them) still use that range. A relay's client-facing socket carries only STUN
/// and ChannelData, so accepting it costs nothing.
pub const ACCEPTED_RANGE: RangeInclusive<u16> = 0x4000..=0x7FFF;

/// True if `first_byte` starts a ChannelData message with a channel in [`ACCEPTED_RANGE`].
pub fn is_channel_data(first_byte: u8) -> bool {
    (0x40..=0x7F).contains(&first_byte)
}

/// Why bytes are not a ChannelData message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer than the four header bytes.
    #[error("shorter than the ChannelData header")]
    TooShort,
    /// The channel number is outside 0x4000–0x7FFF.
    #[error("channel number {0:#06x} outside 0x4000-0x7FFF")]
    BadChannel(u16),
    /// The length field claims more data than is present.
    #[error("claims {claimed} bytes of data, {available} present")]
    Truncated {
        /// Bytes the header claims.
        claimed: usize,
        /// Bytes that follow the header.
        available: usize,
    },
    /// The output buffer cannot hold the message.
    #[error("output buffer of {0} bytes too small")]
    BufferTooSmall(usize),
    /// Application data longer than a 16-bit length can say.
    #[error("{0} bytes of data do not fit a ChannelData message")]
    TooLong(usize),
}

/// A decoded ChannelData message borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// Channel number, within [`ACCEPTED_RANGE`].
    pub channel: u16,
    /// The application data, without padding.
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Decodes a ChannelData message at the start of `buf`.
    ///
    /// Bytes after the claimed length are ignored: a UDP datagram may carry padding (RFC 8656
    /// §12.5), and on a stream the framer has already cut the message out.
    pub fn decode(buf: &'a [u8]) -> Result<Self, Error> {
        let (channel, len) = decode_header(buf)?;
        let available = buf.len() - HEADER_LEN;
        if len > available {
            return Err(Error::Truncated {
                claimed: len,
                available,
            });
        }
        Ok(Self {
            channel,
            data: &buf[HEADER_LEN..HEADER_LEN + len],
        })
    }

    /// Encodes the message into `out`, returning the number of bytes written (no padding).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let total = HEADER_LEN + self.data.len();
        if out.len() < total {
            return Err(Error::BufferTooSmall(out.len()));
        }
        write_header(self.channel, self.data.len(), &mut out[..HEADER_LEN])?;
        out[HEADER_LEN..total].copy_from_slice(self.data);
        Ok(total)
    }
}

/// Reads the channel number and data length from the header, validating the channel.
pub fn decode_header(buf: &[u8]) -> Result<(u16, usize), Error> {
    let [a, b, c, d, ..] = *buf else {
        return Err(Error::TooShort);
    };
    let channel = u16::from_be_bytes([a, b]);
    if !ACCEPTED_RANGE.contains(&channel) {
        return Err(Error::BadChannel(channel));
    }
    Ok((channel, usize::from(u16::from_be_bytes([c, d]))))
}

/// Writes a ChannelData header into the first four bytes of `out`.
///
/// The relay receives peer datagrams at an offset in its buffer and writes this header in front
/// of them, so forwarding a peer's packet to a client copies nothing.
pub fn write_header(channel: u16, data_len: usize, out: &mut [u8]) -> Result<(), Error> {
    let len = u16::try_from(data_len).map_err(|_| Error::TooLong(data_len))?;
    let Some(header) = out.get_mut(..HEADER_LEN) else {
        return Err(Error::BufferTooSmall(out.len()));
    };
    header[..2].copy_from_slice(&channel.to_be_bytes());
    header[2..].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Length of a ChannelData message with `data_len` bytes of data once padded to a multiple of
/// four, as RFC 8656 §12.5 requires over TCP and TLS.
pub fn padded_len(data_len: usize) -> usize {
    (HEADER_LEN + data_len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_known_bytes() {
        let bytes = [0x40, 0x01, 0x00, 0x03, b'a', b'b', b'c', 0x00];
        let msg = ChannelData::decode(&bytes).unwrap();
        assert_eq!(msg.channel, 0x4001);
        assert_eq!(msg.data, b"abc");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(ChannelData::decode(&[0x40, 0x00]), Err(Error::TooShort));
        assert_eq!(
            ChannelData::decode(&[0x80, 0x00, 0x00, 0x00]),
            Err(Error::BadChannel(0x8000))
        );
        assert_eq!(
            ChannelData::decode(&[0x40, 0x00, 0x00, 0x05, 1, 2]),
            Err(Error::Truncated {
                claimed: 5,
                available: 2
            })
        );
        let mut small = [0u8; 5];
        let msg = ChannelData {
            channel: 0x4000,
            data: b"hello",
        };
        assert_eq!(msg.encode(&mut small), Err(Error::BufferTooSmall(5)));
    }

    #[test]
    fn padding_rounds_to_four() {
        assert_eq!(padded_len(0), 4);
        assert_eq!(padded_len(1), 8);
        assert_eq!(padded_len(4), 8);
        assert_eq!(padded_len(5), 12);
    }

    proptest! {
        #[test]
        fn round_trip(channel in ACCEPTED_RANGE, data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let msg = ChannelData { channel, data: &data };
            let mut out = vec![0u8; HEADER_LEN + data.len()];
            let n = msg.encode(&mut out).unwrap();
            prop_assert_eq!(n, out.len());
            prop_assert_eq!(ChannelData::decode(&out).unwrap(), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(msg) = ChannelData::decode(&bytes) {
                prop_assert!(ACCEPTED_RANGE.contains(&msg.channel));
                prop_assert!(is_channel_data(bytes[0]));
                prop_assert!(msg.data.len() + HEADER_LEN <= bytes.len());
            }
        }
    }
}
