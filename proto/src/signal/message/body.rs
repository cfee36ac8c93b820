//! Field-by-field encoding of [`Message`] bodies.

use super::{
    Candidate, CandidateKind, ErrorCode, Load, MAX_CANDIDATES, MAX_LATENCIES, MAX_NAME_LEN,
    MAX_RELAY_ADDRS, MAX_RELAYS, Message, NatBehaviour, Proof, RelayAddr, RelayEntry,
    RelayTransport, error_code_from_u8,
};
use crate::identity::PeerId;
use crate::signal::codec::{Reader, Writer};
use crate::signal::{DecodeError, EncodeError};

mod tag {
    pub const REGISTER: u8 = 1;
    pub const KEEPALIVE: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const RELAYS_REQUEST: u8 = 4;
    pub const NAT_REPORT: u8 = 5;
    pub const CHALLENGE: u8 = 16;
    pub const REGISTERED: u8 = 17;
    pub const KEEPALIVE_ACK: u8 = 18;
    pub const CONNECT_ACK: u8 = 19;
    pub const RELAYS: u8 = 20;
    pub const NAT_REPORT_ACK: u8 = 21;
    pub const OFFER: u8 = 32;
    pub const ACCEPTED: u8 = 33;
    pub const REFUSED: u8 = 34;
    pub const PUNCH: u8 = 35;
    pub const ANSWER: u8 = 48;
    pub const ACK: u8 = 49;
    pub const ANNOUNCE: u8 = 64;
    pub const ANNOUNCE_ACK: u8 = 65;
    pub const ERROR: u8 = 80;
}

fn bounded<T>(list: &[T], max: usize) -> Result<u8, EncodeError> {
    if list.len() > max {
        return Err(EncodeError::TooLarge);
    }
    Ok(list.len() as u8)
}

fn name(w: &mut Writer, s: &str) -> Result<(), EncodeError> {
    if s.len() > MAX_NAME_LEN {
        return Err(EncodeError::TooLarge);
    }
    w.str(s);
    Ok(())
}

fn candidates(w: &mut Writer, list: &[Candidate]) -> Result<(), EncodeError> {
    w.u8(bounded(list, MAX_CANDIDATES)?);
    for c in list {
        w.u8(c.kind as u8);
        w.addr(c.addr);
        w.u32(c.priority);
    }
    Ok(())
}

fn relay_addrs(w: &mut Writer, list: &[RelayAddr]) -> Result<(), EncodeError> {
    w.u8(bounded(list, MAX_RELAY_ADDRS)?);
    for a in list {
        w.u8(a.transport as u8);
        w.addr(a.addr);
    }
    Ok(())
}

/// The part of an announcement the MAC covers: everything but the MAC itself.
pub(crate) fn announce_fields(
    w: &mut Writer,
    relay_id: &str,
    seq: u64,
    addrs: &[RelayAddr],
    load: &Load,
) -> Result<(), EncodeError> {
    name(w, relay_id)?;
    w.u64(seq);
    relay_addrs(w, addrs)?;
    w.u32(load.allocations);
    w.u32(load.capacity);
    w.u64(load.bandwidth_bps);
    Ok(())
}

pub(super) fn encode(m: &Message, w: &mut Writer) -> Result<(), EncodeError> {
    match m {
        Message::Register { peer, proof } => {
            w.u8(tag::REGISTER);
            w.bytes(peer.as_bytes());
            match proof {
                None => w.u8(0),
                Some(p) => {
                    w.u8(1);
                    w.bytes(&p.nonce);
                    w.u64(p.timestamp_ms);
                    w.bytes(&p.signature);
                }
            }
        }
        Message::Challenge { nonce, observed } => {
            w.u8(tag::CHALLENGE);
            w.bytes(nonce);
            w.addr(*observed);
        }
        Message::Registered {
            observed,
            session,
            keepalive_secs,
            expiry_secs,
        } => {
            w.u8(tag::REGISTERED);
            w.addr(*observed);
            w.bytes(session);
            w.u16(*keepalive_secs);
            w.u16(*expiry_secs);
        }
        Message::Keepalive { session } => {
            w.u8(tag::KEEPALIVE);
            w.bytes(session);
        }
        Message::KeepaliveAck { observed } => {
            w.u8(tag::KEEPALIVE_ACK);
            w.addr(*observed);
        }
        Message::Connect {
            session,
            target,
            candidates: c,
        } => {
            w.u8(tag::CONNECT);
            w.bytes(session);
            w.bytes(target.as_bytes());
            candidates(w, c)?;
        }
        Message::ConnectAck { connect_id } => {
            w.u8(tag::CONNECT_ACK);
            w.u64(*connect_id);
        }
        Message::RelaysRequest { session, latencies } => {
            w.u8(tag::RELAYS_REQUEST);
            w.bytes(session);
            w.u8(bounded(latencies, MAX_LATENCIES)?);
            for (addr, ms) in latencies {
                w.addr(*addr);
                w.u16(*ms);
            }
        }
        Message::Relays {
            username,
            password,
            ttl_secs,
            relays,
        } => {
            w.u8(tag::RELAYS);
            name(w, username)?;
            name(w, password)?;
            w.u32(*ttl_secs);
            w.u8(bounded(relays, MAX_RELAYS)?);
            for r in relays {
                name(w, &r.id)?;
                relay_addrs(w, &r.addrs)?;
                w.u16(r.load_permille);
            }
        }
        Message::Offer {
            connect_id,
            from,
            candidates: c,
        } => {
            w.u8(tag::OFFER);
            w.u64(*connect_id);
            w.bytes(from.as_bytes());
            candidates(w, c)?;
        }
        Message::Answer {
            session,
            connect_id,
            accept,
            candidates: c,
        } => {
            w.u8(tag::ANSWER);
            w.bytes(session);
            w.u64(*connect_id);
            w.u8(u8::from(*accept));
            candidates(w, c)?;
        }
        Message::Accepted {
            connect_id,
            from,
            candidates: c,
        } => {
            w.u8(tag::ACCEPTED);
            w.u64(*connect_id);
            w.bytes(from.as_bytes());
            candidates(w, c)?;
        }
        Message::Refused {
            connect_id,
            from,
            code,
        } => {
            w.u8(tag::REFUSED);
            w.u64(*connect_id);
            w.bytes(from.as_bytes());
            w.u8(*code as u8);
        }
        Message::Punch {
            connect_id,
            peer,
            delay_ms,
        } => {
            w.u8(tag::PUNCH);
            w.u64(*connect_id);
            w.bytes(peer.as_bytes());
            w.u16(*delay_ms);
        }
        Message::Ack {
            session,
            connect_id,
        } => {
            w.u8(tag::ACK);
            w.bytes(session);
            w.u64(*connect_id);
        }
        Message::Announce {
            relay_id,
            seq,
            addrs,
            load,
            mac,
        } => {
            w.u8(tag::ANNOUNCE);
            announce_fields(w, relay_id, *seq, addrs, load)?;
            w.bytes(mac);
        }
        Message::AnnounceAck { seq, interval_secs } => {
            w.u8(tag::ANNOUNCE_ACK);
            w.u64(*seq);
            w.u16(*interval_secs);
        }
        Message::NatReport {
            session,
            mapping,
            filtering,
        } => {
            w.u8(tag::NAT_REPORT);
            w.bytes(session);
            w.u8(*mapping as u8);
            w.u8(*filtering as u8);
        }
        Message::NatReportAck => w.u8(tag::NAT_REPORT_ACK),
        Message::Error { code } => {
            w.u8(tag::ERROR);
            w.u8(*code as u8);
        }
    }
    Ok(())
}

fn peer(r: &mut Reader<'_>) -> Result<PeerId, DecodeError> {
    PeerId::from_bytes(r.array()?).map_err(|_| DecodeError::BadValue("peer id"))
}

fn read_candidates(r: &mut Reader<'_>) -> Result<Vec<Candidate>, DecodeError> {
    let n = r.count(MAX_CANDIDATES, "candidates")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = match r.u8()? {
            0 => CandidateKind::Host,
            1 => CandidateKind::Srflx,
            2 => CandidateKind::Relay,
            3 => CandidateKind::Mapped,
            _ => return Err(DecodeError::BadValue("candidate kind")),
        };
        out.push(Candidate {
            kind,
            addr: r.addr()?,
            priority: r.u32()?,
        });
    }
    Ok(out)
}

fn read_relay_addrs(r: &mut Reader<'_>) -> Result<Vec<RelayAddr>, DecodeError> {
    let n = r.count(MAX_RELAY_ADDRS, "relay addresses")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let transport = match r.u8()? {
            0 => RelayTransport::Udp,
            1 => RelayTransport::Tcp,
            2 => RelayTransport::Tls,
            _ => return Err(DecodeError::BadValue("relay transport")),
        };
        out.push(RelayAddr {
            transport,
            addr: r.addr()?,
        });
    }
    Ok(out)
}

fn nat(r: &mut Reader<'_>) -> Result<NatBehaviour, DecodeError> {
    let v = r.u8()?;
    NatBehaviour::ALL
        .into_iter()
        .find(|b| *b as u8 == v)
        .ok_or(DecodeError::BadValue("nat behaviour"))
}

fn code(r: &mut Reader<'_>) -> Result<ErrorCode, DecodeError> {
    error_code_from_u8(r.u8()?)
}

pub(super) fn decode(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(match r.u8()? {
        tag::REGISTER => Message::Register {
            peer: peer(r)?,
            proof: match r.u8()? {
                0 => None,
                1 => Some(Proof {
                    nonce: r.array()?,
                    timestamp_ms: r.u64()?,
                    signature: r.array()?,
                }),
                _ => return Err(DecodeError::BadValue("proof flag")),
            },
        },
        tag::CHALLENGE => Message::Challenge {
            nonce: r.array()?,
            observed: r.addr()?,
        },
        tag::REGISTERED => Message::Registered {
            observed: r.addr()?,
            session: r.array()?,
            keepalive_secs: r.u16()?,
            expiry_secs: r.u16()?,
        },
        tag::KEEPALIVE => Message::Keepalive {
            session: r.array()?,
        },
        tag::KEEPALIVE_ACK => Message::KeepaliveAck {
            observed: r.addr()?,
        },
        tag::CONNECT => Message::Connect {
            session: r.array()?,
            target: peer(r)?,
            candidates: read_candidates(r)?,
        },
        tag::CONNECT_ACK => Message::ConnectAck {
            connect_id: r.u64()?,
        },
        tag::RELAYS_REQUEST => {
            let session = r.array()?;
            let n = r.count(MAX_LATENCIES, "latencies")?;
            let mut latencies = Vec::with_capacity(n);
            for _ in 0..n {
                latencies.push((r.addr()?, r.u16()?));
            }
            Message::RelaysRequest { session, latencies }
        }
        tag::RELAYS => {
            let username = r.str(MAX_NAME_LEN)?;
            let password = r.str(MAX_NAME_LEN)?;
            let ttl_secs = r.u32()?;
            let n = r.count(MAX_RELAYS, "relays")?;
            let mut relays = Vec::with_capacity(n);
            for _ in 0..n {
                relays.push(RelayEntry {
                    id: r.str(MAX_NAME_LEN)?,
                    addrs: read_relay_addrs(r)?,
                    load_permille: r.u16()?,
                });
            }
            Message::Relays {
                username,
                password,
                ttl_secs,
                relays,
            }
        }
        tag::OFFER => Message::Offer {
            connect_id: r.u64()?,
            from: peer(r)?,
            candidates: read_candidates(r)?,
        },
        tag::ANSWER => Message::Answer {
            session: r.array()?,
            connect_id: r.u64()?,
            accept: r.bool()?,
            candidates: read_candidates(r)?,
        },
        tag::ACCEPTED => Message::Accepted {
            connect_id: r.u64()?,
            from: peer(r)?,
            candidates: read_candidates(r)?,
        },
        tag::REFUSED => Message::Refused {
            connect_id: r.u64()?,
            from: peer(r)?,
            code: code(r)?,
        },
        tag::PUNCH => Message::Punch {
            connect_id: r.u64()?,
            peer: peer(r)?,
            delay_ms: r.u16()?,
        },
        tag::ACK => Message::Ack {
            session: r.array()?,
            connect_id: r.u64()?,
        },
        tag::ANNOUNCE => Message::Announce {
            relay_id: r.str(MAX_NAME_LEN)?,
            seq: r.u64()?,
            addrs: read_relay_addrs(r)?,
            load: Load {
                allocations: r.u32()?,
                capacity: r.u32()?,
                bandwidth_bps: r.u64()?,
            },
            mac: r.array()?,
        },
        tag::ANNOUNCE_ACK => Message::AnnounceAck {
            seq: r.u64()?,
            interval_secs: r.u16()?,
        },
        tag::NAT_REPORT => Message::NatReport {
            session: r.array()?,
            mapping: nat(r)?,
            filtering: nat(r)?,
        },
        tag::NAT_REPORT_ACK => Message::NatReportAck,
        tag::ERROR => Message::Error { code: code(r)? },
        _ => return Err(DecodeError::BadValue("message tag")),
    })
}

#[cfg(test)]
mod tests;
