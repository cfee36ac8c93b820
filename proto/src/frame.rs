//! Framing of STUN and ChannelData messages on a TCP or TLS byte stream (RFC 8656 §12.5).
//!
//! A stream carries STUN messages back to back with ChannelData messages, each ChannelData
//! padded to a multiple of four bytes. The first byte tells which one follows; the header tells
//! how long it is. [`next`] looks at buffered bytes and says whether a whole message is there,
//! so the reader can cut it out without copying.

use crate::{channel_data, demux, stun};

/// A complete message at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Whether it is STUN or ChannelData.
    pub kind: demux::Kind,
    /// Length of the message itself (what to hand to the decoder).
    pub len: usize,
    /// Bytes to consume from the stream: `len` plus ChannelData padding.
    pub consumed: usize,
}

/// The stream cannot be framed; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The next message is neither STUN nor ChannelData.
    #[error("stream carries a message that is neither STUN nor ChannelData (first byte {0:#04x})")]
    NotTurn(u8),
    /// A STUN header with a bad cookie, reserved bits or length.
    #[error("malformed STUN header on stream")]
    BadStunHeader,
    /// A ChannelData header with a channel number outside the valid range.
    #[error(transparent)]
    BadChannelData(channel_data::Error),
}

/// Returns the frame at the start of `buf`, `Ok(None)` if more bytes are needed.
pub fn next(buf: &[u8]) -> Result<Option<Frame>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // Servers accept the RFC 5766 channel range, wider than RFC 7983's ChannelData bytes.
    let kind = if channel_data::is_channel_data(first) {
        demux::Kind::ChannelData
    } else {
        demux::classify(buf)
    };
    match kind {
        demux::Kind::Stun => {
            if buf.len() < stun::HEADER_LEN {
                return Ok(None);
            }
            let header = stun::header_prefix(buf).ok_or(Error::BadStunHeader)?;
            let len = header.message_len();
            Ok((buf.len() >= len).then_some(Frame {
                kind: demux::Kind::Stun,
                len,
                consumed: len,
            }))
        }
        demux::Kind::ChannelData => {
            if buf.len() < channel_data::HEADER_LEN {
                return Ok(None);
            }
            let (_, data_len) = channel_data::decode_header(buf).map_err(Error::BadChannelData)?;
            let consumed = channel_data::padded_len(data_len);
            Ok((buf.len() >= consumed).then_some(Frame {
                kind: demux::Kind::ChannelData,
                len: channel_data::HEADER_LEN + data_len,
                consumed,
            }))
        }
        _ => Err(Error::NotTurn(first)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_mixed_stream() {
        let stun = crate::stun::encode(
            &stun_rs::StunMessageBuilder::new(
                stun_rs::methods::BINDING,
                stun_rs::MessageClass::Request,
            )
            .build(),
        )
        .unwrap();
        let mut stream = stun.clone();
        stream.extend_from_slice(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        stream.extend_from_slice(&stun);

        let f = next(&stream).unwrap().unwrap();
        assert_eq!((f.kind, f.len, f.consumed), (demux::Kind::Stun, 20, 20));
        let rest = &stream[f.consumed..];
        let f = next(rest).unwrap().unwrap();
        assert_eq!(
            (f.kind, f.len, f.consumed),
            (demux::Kind::ChannelData, 9, 12)
        );
        let rest = &rest[f.consumed..];
        assert_eq!(next(&rest[..10]).unwrap(), None);
        assert!(next(rest).unwrap().is_some());
        assert_eq!(next(&[]).unwrap(), None);
        assert_eq!(next(&[0x40, 0x00, 0x00, 0x05, 1]).unwrap(), None);
        assert_eq!(next(&[0xff, 0, 0, 0]), Err(Error::NotTurn(0xff)));
    }

    proptest! {
        #[test]
        fn arbitrary_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut rest: &[u8] = &bytes;
            while let Ok(Some(frame)) = next(rest) {
                prop_assert!(frame.consumed >= frame.len && frame.consumed <= rest.len());
                prop_assert!(frame.consumed > 0);
                rest = &rest[frame.consumed..];
            }
        }
    }
}
