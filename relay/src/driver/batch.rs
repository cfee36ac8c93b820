//! Batched receive: one `recvmmsg` system call reads up to [`BATCH`] datagrams.
//!
//! The loop is edge-triggered, so a socket must be read until it is empty. Reading one
//! datagram at a time costs a final `EAGAIN` call per wake-up; a batch that comes back short
//! proves the queue was empty without that extra call, and a busy socket yields many datagrams
//! per call. The system call itself is quinn-udp's safe wrapper.
//!
//! Every buffer keeps `PEER_HEADROOM` bytes free in front, so a peer's datagram can take its
//! ChannelData or Data-indication header in place.

use super::{MAX_DATAGRAM, PEER_HEADROOM};
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

/// Datagrams read per system call.
pub(super) const BATCH: usize = 32;

/// Consecutive receive errors tolerated on one socket per wake-up.
const MAX_RECV_ERRORS: usize = 64;

/// Size of one buffer: headroom, the largest datagram, and room for padding.
pub(super) const BUF_LEN: usize = PEER_HEADROOM + MAX_DATAGRAM + 4;

/// Buffers and metadata for one batch.
pub(super) struct Batch {
    /// Receive buffers; datagram `i` lands at `bufs[i][offset..]`.
    bufs: [Box<[u8]>; BATCH],
    /// Length and source of each datagram.
    meta: [RecvMeta; BATCH],
    /// quinn-udp's capability record. It is made on a throwaway socket: creating it configures
    /// the socket it is given (don't-fragment, GRO), which the relay's sockets must not get.
    state: UdpSocketState,
}

impl Batch {
    pub(super) fn new() -> io::Result<Self> {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let state = UdpSocketState::new(UdpSockRef::from(&probe))?;
        Ok(Self {
            bufs: std::array::from_fn(|_| vec![0u8; BUF_LEN].into_boxed_slice()),
            meta: std::array::from_fn(|_| RecvMeta::default()),
            state,
        })
    }

    /// Reads up to [`BATCH`] datagrams into the buffers at `offset` (0 for client sockets,
    /// `PEER_HEADROOM` for relay sockets). Returns how many arrived.
    pub(super) fn recv(&mut self, sock: &mio::net::UdpSocket, offset: usize) -> io::Result<usize> {
        // On the stack: no allocation per system call.
        let mut slices = self
            .bufs
            .each_mut()
            .map(|b| IoSliceMut::new(&mut b[offset..offset + MAX_DATAGRAM]));
        self.state
            .recv(UdpSockRef::from(sock), &mut slices, &mut self.meta)
    }

    /// Like [`Batch::recv`] for the read loop: `None` once the socket has nothing more
    /// (would block) or has failed [`MAX_RECV_ERRORS`] times this wake-up. Receive errors are
    /// ICMP reports about one peer, not the socket's failure, so the loop reads on.
    pub(super) fn recv_ready(
        &mut self,
        sock: &mio::net::UdpSocket,
        offset: usize,
        errors: &mut usize,
    ) -> Option<usize> {
        loop {
            match self.recv(sock, offset) {
                Ok(n) => return Some(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => {
                    tracing::debug!(error = %e, "receive error");
                    *errors += 1;
                    if *errors > MAX_RECV_ERRORS {
                        return None;
                    }
                }
            }
        }
    }

    /// Source and length of datagram `i`.
    pub(super) fn meta(&self, i: usize) -> (SocketAddr, usize) {
        let m = &self.meta[i];
        (m.addr, m.len)
    }

    /// The whole buffer of datagram `i`.
    pub(super) fn buf(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i]
    }
}
