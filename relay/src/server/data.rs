//! Data plane: ChannelData and Send indications from clients, datagrams from peers.
//!
//! This is the per-packet path. It decodes with the allocation-free codecs in
//! `supernode_proto`, looks up the allocation by 5-tuple (client side) or by id (peer side),
//! checks permission, policy and bandwidth, and returns a [`Forward`] pointing into the
//! caller's buffer. Nothing here allocates.

use super::stats::{Direction, Drop};
use super::{AllocId, FiveTuple, Forward, PEER_HEADROOM, Server, Target};
use std::net::SocketAddr;
use std::time::Instant;
use stun_rs::MessageClass;
use supernode_proto::channel_data::{self, ChannelData};
use supernode_proto::demux::{self, Kind};
use supernode_proto::stun;
use supernode_proto::turn;

/// STUN method number of Send.
const SEND: u16 = 0x006;

impl Server {
    /// Handles one message from a client: a UDP datagram, or one message cut from a TCP/TLS
    /// stream by `supernode_proto::frame`.
    ///
    /// Returns the packet to forward to a peer, if any; control responses are queued for
    /// [`Server::poll_transmit`].
    pub fn handle_client(&mut self, now: Instant, from: FiveTuple, msg: &[u8]) -> Option<Forward> {
        let first = msg.first().copied().unwrap_or(0xff);
        if channel_data::is_channel_data(first) {
            return self.client_channel_data(now, from, msg);
        }
        match demux::classify(msg) {
            Kind::Stun => {
                let Some(header) = stun::header(msg) else {
                    self.stats.drop(Drop::Malformed);
                    return None;
                };
                match header.class() {
                    MessageClass::Request => {
                        self.handle_request(now, from, msg, header.transaction_id);
                        None
                    }
                    MessageClass::Indication if header.method() == SEND => {
                        self.client_send(now, from, msg)
                    }
                    _ => {
                        self.stats.drop(Drop::Unexpected);
                        None
                    }
                }
            }
            _ => {
                self.stats.drop(Drop::Malformed);
                None
            }
        }
    }

    fn client_channel_data(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &[u8],
    ) -> Option<Forward> {
        let Ok(cd) = ChannelData::decode(msg) else {
            self.stats.drop(Drop::Malformed);
            return None;
        };
        let Some(id) = self.by_client.get(&from).copied() else {
            self.stats.drop(Drop::NoAllocation);
            return None;
        };
        let Some(peer) = self
            .get(id)
            .and_then(|a| a.channel(cd.channel, now))
            .map(|c| c.peer)
        else {
            self.stats.drop(Drop::NoChannel);
            return None;
        };
        let start = channel_data::HEADER_LEN;
        self.forward_to_peer(now, id, peer, start..start + cd.data.len())
    }

    fn client_send(&mut self, now: Instant, from: FiveTuple, msg: &[u8]) -> Option<Forward> {
        let send = match turn::parse_send(msg) {
            Ok(send) => send,
            Err(turn::SendError::BadFingerprint) => {
                self.stats.drop(Drop::BadFingerprint);
                return None;
            }
            Err(_) => {
                self.stats.drop(Drop::Malformed);
                return None;
            }
        };
        let Some(id) = self.by_client.get(&from).copied() else {
            self.stats.drop(Drop::NoAllocation);
            return None;
        };
        if !self.policy.permits(send.peer.ip()) {
            self.stats.drop(Drop::ForbiddenPeer);
            return None;
        }
        // The payload's offset inside `msg`, computed from the borrowed slice.
        let start = send.data.as_ptr() as usize - msg.as_ptr() as usize;
        let range = start..start + send.data.len();
        self.forward_to_peer(now, id, send.peer, range)
    }

    /// Common checks for client-to-peer data.
    fn forward_to_peer(
        &mut self,
        now: Instant,
        id: AllocId,
        peer: SocketAddr,
        range: std::ops::Range<usize>,
    ) -> Option<Forward> {
        let Some(alloc) = self.get_mut(id) else {
            self.stats.drop(Drop::NoAllocation);
            return None;
        };
        if peer.is_ipv6() != alloc.relay.is_ipv6() {
            self.stats.drop(Drop::ForbiddenPeer);
            return None;
        }
        if !alloc.permits(peer.ip(), now) {
            self.stats.drop(Drop::NoPermission);
            return None;
        }
        if !self.within_bandwidth(id, range.len(), now) {
            self.stats.drop(Drop::Bandwidth);
            return None;
        }
        self.stats.relayed(Direction::ClientToPeer, range.len());
        Some(Forward {
            target: Target::Peer { alloc: id, peer },
            range,
        })
    }

    /// Handles a datagram that arrived on the relay socket of `id` from `from`.
    ///
    /// The payload must sit at `buf[PEER_HEADROOM..PEER_HEADROOM + len]`, and `buf` must have
    /// three spare bytes after it: the ChannelData header or Data indication is written into
    /// the headroom in place.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        id: AllocId,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Option<Forward> {
        let tid = self.next_tid();
        let Some(alloc) = self.get(id) else {
            self.stats.drop(Drop::NoAllocation);
            return None;
        };
        let from = SocketAddr::new(super::policy::canonical(from.ip()), from.port());
        if !alloc.permits(from.ip(), now) {
            self.stats.drop(Drop::NoPermission);
            return None;
        }
        let client = alloc.five_tuple;
        let channel = alloc.channel_for_peer(from, now);
        if !self.within_bandwidth(id, len, now) {
            self.stats.drop(Drop::Bandwidth);
            return None;
        }
        let range = match channel {
            Some(number) => {
                let start = PEER_HEADROOM - channel_data::HEADER_LEN;
                if channel_data::write_header(number, len, &mut buf[start..]).is_err() {
                    self.stats.drop(Drop::Oversize);
                    return None;
                }
                start..PEER_HEADROOM + len
            }
            None => match turn::write_data_header(buf, len, from, tid) {
                Some(range) => range,
                None => {
                    self.stats.drop(Drop::Oversize);
                    return None;
                }
            },
        };
        self.stats.relayed(Direction::PeerToClient, len);
        Some(Forward {
            target: Target::Client(client),
            range,
        })
    }

    fn within_bandwidth(&mut self, id: AllocId, bytes: usize, now: Instant) -> bool {
        let Some(bps) = self.config.bandwidth_bps else {
            return true;
        };
        let rate = bps as f64;
        match self.get_mut(id).and_then(|a| a.bandwidth.as_mut()) {
            Some(bucket) => bucket.try_take(bytes as f64, rate, rate, now),
            None => true,
        }
    }
}
