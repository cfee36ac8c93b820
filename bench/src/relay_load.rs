//! Relayed round trips through a TURN server.
//!
//! For each allocation the bench holds a client socket and an echo peer socket. Packets go
//! client → relay (ChannelData or Send indication) → peer, which echoes them to the relayed
//! address → relay → client (ChannelData or Data indication). Each payload carries a sequence
//! number and its send time, so the client measures round-trip latency without a table.
//!
//! Closed loop (default): each allocation keeps `--window` packets in flight and sends the next
//! when one returns. Offered load (`--rate`): packets leave at a fixed total rate whatever
//! comes back, and what does not return is loss.

use crate::Target;
use crate::client::TurnClient;
use crate::report::Report;
use anyhow::Context;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use supernode_proto::channel_data::{self, ChannelData};
use supernode_proto::stun::encode;
use supernode_proto::stun_rs::attributes::turn::{Data, XorPeerAddress};
use supernode_proto::stun_rs::methods::SEND;
use supernode_proto::stun_rs::{MessageClass, StunMessageBuilder};

/// Channel every allocation binds.
const CHANNEL: u16 = 0x4000;
/// A closed-loop flow with nothing back for this long counts its packets lost and restarts.
const STALL: Duration = Duration::from_millis(500);
/// Time allowed after the run for packets still in flight.
const DRAIN: Duration = Duration::from_millis(500);
/// Round-trip samples kept at most.
const MAX_SAMPLES: usize = 2_000_000;

/// Options of the `relay` subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Allocations (each with its own client socket and echo peer).
    #[arg(long, default_value_t = 1)]
    allocations: usize,
    /// Application payload bytes per packet (at least 16).
    #[arg(long, default_value_t = 120)]
    payload: usize,
    /// Use Send/Data indications instead of channels.
    #[arg(long)]
    send_indications: bool,
    /// Packets in flight per allocation (closed loop).
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Offered load in packets per second over all allocations (open loop).
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

/// One allocation's sockets and packet template.
struct Flow {
    client: UdpSocket,
    peer: UdpSocket,
    /// The message the client sends, payload included; stamped in place.
    template: Vec<u8>,
    /// Where the payload starts in `template`.
    data_at: usize,
    /// Packets sent and not yet back (closed loop).
    outstanding: usize,
    /// Last time a packet came back.
    progress: Instant,
    /// Sequence counter.
    seq: u64,
}

pub fn run(target: &Target, args: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(args.payload >= 16, "--payload must be at least 16");
    let poll = Poll::new()?;
    let mut flows = Vec::with_capacity(args.allocations);
    let mut nonce = None;
    for i in 0..args.allocations {
        let mut c = TurnClient::new(target, &format!("bench{i}"))?;
        c.set_nonce(nonce.clone());
        c.allocate().with_context(|| format!("allocation {i}"))?;
        nonce = c.nonce();
        let peer = std::net::UdpSocket::bind(SocketAddr::new(target.server.ip(), 0))?;
        let peer_addr = peer.local_addr()?;
        let payload = vec![0xA5u8; args.payload];
        let (template, data_at) = if args.send_indications {
            c.permit(peer_addr)?;
            let raw = encode(
                &StunMessageBuilder::new(SEND, MessageClass::Indication)
                    .with_attribute(XorPeerAddress::from(peer_addr))
                    .with_attribute(Data::new(payload))
                    .build(),
            )
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let at = raw.len() - ((args.payload + 3) & !3);
            (raw, at)
        } else {
            c.channel_bind(CHANNEL, peer_addr)?;
            let mut raw = vec![0u8; 4 + args.payload];
            ChannelData {
                channel: CHANNEL,
                data: &payload,
            }
            .encode(&mut raw)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            (raw, 4)
        };
        c.sock.set_nonblocking(true)?;
        peer.set_nonblocking(true)?;
        let mut client = UdpSocket::from_std(c.sock.try_clone()?);
        client.connect(target.server)?;
        let mut peer = UdpSocket::from_std(peer);
        poll.registry()
            .register(&mut client, Token(2 * i), Interest::READABLE)?;
        poll.registry()
            .register(&mut peer, Token(2 * i + 1), Interest::READABLE)?;
        flows.push(Flow {
            client,
            peer,
            template,
            data_at,
            outstanding: 0,
            progress: Instant::now(),
            seq: 0,
        });
    }
    Ok(Driver::new(poll, flows, args).run())
}

struct Driver<'a> {
    poll: Poll,
    flows: Vec<Flow>,
    args: &'a Args,
    start: Instant,
    report: Report,
}

impl<'a> Driver<'a> {
    fn new(poll: Poll, flows: Vec<Flow>, args: &'a Args) -> Self {
        Self {
            poll,
            flows,
            args,
            start: Instant::now(),
            report: Report::new("relay"),
        }
    }

    fn send(&mut self, i: usize) {
        let f = &mut self.flows[i];
        f.seq += 1;
        let ts = self.start.elapsed().as_nanos() as u64;
        f.template[f.data_at..f.data_at + 8].copy_from_slice(&ts.to_be_bytes());
        f.template[f.data_at + 8..f.data_at + 16].copy_from_slice(&f.seq.to_be_bytes());
        if f.client.send(&f.template).is_ok() {
            f.outstanding += 1;
            self.report.sent += 1;
        }
    }

    fn run(mut self) -> Report {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 65_536];
        let duration = Duration::from_secs_f64(self.args.duration);
        self.start = Instant::now();
        let end = self.start + duration;
        if self.args.rate.is_none() {
            for i in 0..self.flows.len() {
                for _ in 0..self.args.window {
                    self.send(i);
                }
            }
        }
        let mut next_flow = 0;
        loop {
            let now = Instant::now();
            if now >= end + DRAIN {
                break;
            }
            let sending = now < end;
            if let (Some(rate), true) = (self.args.rate, sending) {
                let due = (now.duration_since(self.start).as_secs_f64() * rate as f64) as u64;
                for _ in 0..due.saturating_sub(self.report.sent).min(10_000) {
                    self.send(next_flow);
                    next_flow = (next_flow + 1) % self.flows.len();
                }
            }
            let timeout = if self.args.rate.is_some() {
                Duration::from_micros(200)
            } else {
                Duration::from_millis(50)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            for ev in events.iter() {
                let i = ev.token().0 / 2;
                if ev.token().0 % 2 == 1 {
                    self.echo(i, &mut buf);
                } else {
                    self.receive(i, &mut buf, sending);
                }
            }
            if self.args.rate.is_none() && sending {
                let now = Instant::now();
                for i in 0..self.flows.len() {
                    if self.flows[i].outstanding > 0
                        && now.duration_since(self.flows[i].progress) > STALL
                    {
                        self.flows[i].outstanding = 0;
                        self.flows[i].progress = now;
                        for _ in 0..self.args.window {
                            self.send(i);
                        }
                    }
                }
            }
        }
        self.report.duration_secs = duration.as_secs_f64();
        self.report.lost = self.report.sent.saturating_sub(self.report.completed);
        self.report
    }

    /// The peer echoes everything back to where it came from (the relayed address).
    fn echo(&mut self, i: usize, buf: &mut [u8]) {
        let f = &self.flows[i];
        loop {
            match f.peer.recv_from(buf) {
                Ok((n, from)) => {
                    let _ = f.peer.send_to(&buf[..n], from);
                }
                Err(_) => return,
            }
        }
    }

    fn receive(&mut self, i: usize, buf: &mut [u8], sending: bool) {
        loop {
            let n = match self.flows[i].client.recv(buf) {
                Ok(n) => n,
                Err(_) => return,
            };
            let Some(data) = payload_of(&buf[..n]) else {
                continue;
            };
            let Some(ts) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                continue;
            };
            let sent_at = Duration::from_nanos(u64::from_be_bytes(ts));
            let rtt = self.start.elapsed().saturating_sub(sent_at);
            self.report.completed += 1;
            if self.report.rtts_us.len() < MAX_SAMPLES {
                self.report
                    .rtts_us
                    .push(rtt.as_micros().min(u128::from(u32::MAX)) as u32);
            }
            let f = &mut self.flows[i];
            f.outstanding = f.outstanding.saturating_sub(1);
            f.progress = Instant::now();
            if self.args.rate.is_none() && sending {
                self.send(i);
            }
        }
    }
}

/// The application data of a ChannelData message or Data indication.
fn payload_of(msg: &[u8]) -> Option<&[u8]> {
    if channel_data::is_channel_data(*msg.first()?) {
        return ChannelData::decode(msg).ok().map(|c| c.data);
    }
    let header = supernode_proto::stun::header(msg)?;
    if header.message_type != 0x0017 {
        return None;
    }
    let mut pos = supernode_proto::stun::HEADER_LEN;
    while pos + 4 <= msg.len() {
        let kind = u16::from_be_bytes([msg[pos], msg[pos + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[pos + 2], msg[pos + 3]]));
        let value = msg.get(pos + 4..pos + 4 + len)?;
        if kind == 0x0013 {
            return Some(value);
        }
        pos += 4 + ((len + 3) & !3);
    }
    None
}
