//! The compact binary encoding of signalling payloads.
//!
//! Big-endian integers, length-prefixed byte strings and lists, and socket addresses as
//! `family (4|6) · address · port`. Every read is bounds-checked and every list has a maximum
//! length, so decoding hostile bytes costs at most [`super::MAX_PAYLOAD_LEN`] of work and memory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::DecodeError;

/// Appends encoded fields to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// A string of at most 255 bytes, truncated at a character boundary if longer; callers
    /// validate lengths before encoding so truncation never happens for well-formed values.
    pub(crate) fn str(&mut self, v: &str) {
        let mut end = v.len().min(usize::from(u8::MAX));
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.u8(end as u8);
        self.bytes(&v.as_bytes()[..end]);
    }

    pub(crate) fn addr(&mut self, addr: SocketAddr) {
        match addr.ip() {
            IpAddr::V4(ip) => {
                self.u8(4);
                self.bytes(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.u8(6);
                self.bytes(&ip.octets());
            }
        }
        self.u16(addr.port());
    }
}

/// Reads fields from a payload, failing on truncation instead of panicking.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue("bool")),
        }
    }

    pub(crate) fn str(&mut self, max: usize) -> Result<String, DecodeError> {
        let len = usize::from(self.u8()?);
        if len > max {
            return Err(DecodeError::TooLong("string"));
        }
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadValue("utf-8"))
    }

    /// Reads a list count and checks it against `max` before anything is allocated.
    pub(crate) fn count(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = usize::from(self.u8()?);
        if n > max {
            return Err(DecodeError::TooLong(what));
        }
        Ok(n)
    }

    pub(crate) fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return Err(DecodeError::BadValue("address family")),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    /// Fails unless every byte was consumed: trailing garbage is a malformed message.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut w = Writer::default();
        w.u8(1);
        w.u16(0x1234);
        w.u32(7);
        w.u64(u64::MAX);
        w.str("héllo");
        w.addr("192.0.2.1:3478".parse().unwrap());
        w.addr("[2001:db8::1]:9".parse().unwrap());
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 0x1234);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert_eq!(r.str(16).unwrap(), "héllo");
        assert_eq!(r.addr().unwrap(), "192.0.2.1:3478".parse().unwrap());
        assert_eq!(r.addr().unwrap(), "[2001:db8::1]:9".parse().unwrap());
        r.finish().unwrap();
    }

    #[test]
    fn long_strings_truncate_on_char_boundary() {
        let long = "é".repeat(200);
        let mut w = Writer::default();
        w.str(&long);
        let s = Reader::new(&w.buf).str(255).unwrap();
        assert_eq!(s.len(), 254);
    }

    #[test]
    fn truncation_and_bounds_are_errors() {
        assert_eq!(Reader::new(&[0]).u16(), Err(DecodeError::Truncated));
        assert_eq!(
            Reader::new(&[5]).addr(),
            Err(DecodeError::BadValue("address family"))
        );
        assert_eq!(
            Reader::new(&[3, b'a', b'b', b'c']).str(2),
            Err(DecodeError::TooLong("string"))
        );
        assert_eq!(
            Reader::new(&[9]).count(8, "list"),
            Err(DecodeError::TooLong("list"))
        );
        assert_eq!(Reader::new(&[1]).finish(), Err(DecodeError::TrailingBytes));
    }
}
