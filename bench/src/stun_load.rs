//! STUN Binding requests per second, every response decoded and checked: success class,
//! matching transaction id, and an XOR-MAPPED-ADDRESS equal to the socket's own address.

use crate::Target;
use crate::report::Report;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use supernode_proto::stun::encode;
use supernode_proto::stun_rs::attributes::stun::XorMappedAddress;
use supernode_proto::stun_rs::methods::BINDING;
use supernode_proto::stun_rs::{
    MessageClass, MessageDecoderBuilder, StunMessageBuilder, TransactionId,
};

/// A request unanswered this long is lost and replaced.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Options of the `stun` subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Client sockets.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Requests in flight per socket.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

struct Client {
    sock: UdpSocket,
    local: SocketAddr,
    /// Outstanding transaction ids with their send time, oldest first.
    pending: VecDeque<([u8; 12], Instant)>,
}

pub fn run(target: &Target, args: &Args) -> anyhow::Result<Report> {
    let mut poll = Poll::new()?;
    let mut clients = Vec::new();
    for i in 0..args.sockets {
        let bind = SocketAddr::new(target.server.ip(), 0);
        let mut sock = UdpSocket::bind(bind)?;
        sock.connect(target.server)?;
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE)?;
        let local = sock.local_addr()?;
        clients.push(Client {
            sock,
            local,
            pending: VecDeque::new(),
        });
    }
    let mut report = Report::new("stun");
    let decoder = MessageDecoderBuilder::default().build();
    let send = |c: &mut Client, report: &mut Report| {
        let tid: [u8; 12] = rand::random();
        let msg = StunMessageBuilder::new(BINDING, MessageClass::Request)
            .with_transaction_id(TransactionId::from(tid))
            .build();
        if let Ok(raw) = encode(&msg) {
            if c.sock.send(&raw).is_ok() {
                c.pending.push_back((tid, Instant::now()));
                report.sent += 1;
            }
        }
    };
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    for c in &mut clients {
        for _ in 0..args.window {
            send(c, &mut report);
        }
    }
    let mut events = Events::with_capacity(256);
    let mut buf = [0u8; 1500];
    while start.elapsed() < duration {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            while let Ok(n) = c.sock.recv(&mut buf) {
                let Ok((msg, _)) = decoder.decode(&buf[..n]) else {
                    continue;
                };
                let tid = *msg.transaction_id().as_bytes();
                let Some(pos) = c.pending.iter().position(|(t, _)| *t == tid) else {
                    continue;
                };
                let mapped = msg
                    .get::<XorMappedAddress>()
                    .and_then(|a| a.as_xor_mapped_address().ok())
                    .map(|a| *a.socket_address());
                if msg.class() != MessageClass::SuccessResponse || mapped != Some(c.local) {
                    continue;
                }
                let (_, sent_at) = c.pending.remove(pos).unwrap_or((tid, Instant::now()));
                report.completed += 1;
                if report.rtts_us.len() < 2_000_000 {
                    report
                        .rtts_us
                        .push(sent_at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
                send(c, &mut report);
            }
        }
        let now = Instant::now();
        for c in &mut clients {
            while c
                .pending
                .front()
                .is_some_and(|(_, t)| now.duration_since(*t) > TIMEOUT)
            {
                c.pending.pop_front();
                report.lost += 1;
                send(c, &mut report);
            }
        }
    }
    report.duration_secs = start.elapsed().as_secs_f64();
    Ok(report)
}
