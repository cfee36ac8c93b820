//! The measuring side of the probe.
//!
//! Every test uses its own UDP socket where a previous packet could have opened the filter it
//! is about to measure: the mapping test talks to all four reflector endpoints from one socket;
//! each filtering test starts from a fresh socket that has only sent to the primary endpoint.
//! Every wait is bounded ([`ATTEMPTS`] × [`ATTEMPT_TIMEOUT`]), so a probe against a NAT that
//! drops everything still finishes in a few seconds.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::classify::{Observations, Report, classify};
use super::wire::{MAX_DATAGRAM, Request, Response};

/// Sends per transaction before giving up.
pub const ATTEMPTS: u32 = 3;
/// Wait for an answer after each send.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);
/// Highest TTL the hop test tries.
pub const MAX_HOPS: u8 = 5;
/// How long a TCP connect may take before the port counts as blocked.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(1);

/// Transaction ids; unique within the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The reflector's two RFC 5780-style endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Servers {
    /// Primary address and port.
    pub primary: SocketAddrV4,
    /// Alternate address and port (both differ from the primary).
    pub alternate: SocketAddrV4,
}

impl Servers {
    /// The four endpoints in [`Observations::mapped`] order: primary, same address other
    /// port, other address same port, other address other port.
    pub fn endpoints(&self) -> [SocketAddr; 4] {
        let (p, a) = (self.primary, self.alternate);
        [
            SocketAddr::V4(p),
            SocketAddr::V4(SocketAddrV4::new(*p.ip(), a.port())),
            SocketAddr::V4(SocketAddrV4::new(*a.ip(), p.port())),
            SocketAddr::V4(a),
        ]
    }
}

/// A fresh UDP socket on an ephemeral port.
pub fn fresh_socket() -> Result<UdpSocket> {
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("binding a udp socket")
}

/// Sends a request to `to` and waits for its answer, from whichever address it comes,
/// retrying up to [`ATTEMPTS`] times.
pub fn transact(
    socket: &UdpSocket,
    to: SocketAddr,
    change_ip: bool,
    change_port: bool,
) -> Result<Option<Response>> {
    let request = Request {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        change_ip,
        change_port,
    };
    for _ in 0..ATTEMPTS {
        if let Some(resp) = attempt(socket, to, request, ATTEMPT_TIMEOUT)? {
            return Ok(Some(resp));
        }
    }
    Ok(None)
}

/// Sends `request` once and waits up to `timeout` for the answer with its id.
fn attempt(
    socket: &UdpSocket,
    to: SocketAddr,
    request: Request,
    timeout: Duration,
) -> Result<Option<Response>> {
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    socket
        .send_to(&request.encode(), to)
        .context("sending a probe request")?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                if let Some(resp) = Response::decode(&buf[..n]).filter(|r| r.id == request.id) {
                    return Ok(Some(resp));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e).context("receiving a probe answer"),
        }
    }
}

/// Runs the whole measurement: mapping, filtering, hops and the given TCP ports.
pub fn measure(servers: Servers, tcp_ports: &[u16]) -> Result<Report> {
    let mut obs = Observations::default();
    let socket = fresh_socket()?;
    obs.local = Some(local_addr(&socket, servers)?);
    for (slot, to) in obs.mapped.iter_mut().zip(servers.endpoints()) {
        *slot = transact(&socket, to, false, false)?.map(|r| r.seen);
        if slot.is_none() {
            // No UDP at all (or a broken reflector): further UDP tests would only time out.
            break;
        }
    }
    if obs.mapped[0].is_some() {
        let primary = SocketAddr::V4(servers.primary);
        obs.other_address_reached = transact(&fresh_socket()?, primary, true, true)?.is_some();
        obs.other_port_reached = transact(&fresh_socket()?, primary, false, true)?.is_some();
        obs.hops = hops(primary)?;
    }
    obs.tcp = tcp_ports
        .iter()
        .map(|p| {
            (
                *p,
                tcp_connects(SocketAddrV4::new(*servers.primary.ip(), *p)),
            )
        })
        .collect();
    Ok(classify(obs))
}

/// The socket's local address as routed towards the reflector (its bound address is 0.0.0.0).
fn local_addr(socket: &UdpSocket, servers: Servers) -> Result<SocketAddr> {
    let port = socket.local_addr()?.port();
    // A connected scratch socket reveals which source address the kernel picks.
    let scratch = fresh_socket()?;
    scratch.connect(servers.primary)?;
    Ok(SocketAddr::new(scratch.local_addr()?.ip(), port))
}

/// The smallest TTL with which a request to `to` is answered: 1 on the same segment, one more
/// per router (NAT) in between.
pub fn hops(to: SocketAddr) -> Result<Option<u8>> {
    for ttl in 1..=MAX_HOPS {
        let socket = fresh_socket()?;
        socket.set_ttl(u32::from(ttl))?;
        if transact(&socket, to, false, false)?.is_some() {
            return Ok(Some(ttl));
        }
    }
    Ok(None)
}

/// Whether a TCP connection to `to` is established (and the reflector's line arrives).
pub fn tcp_connects(to: SocketAddrV4) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&SocketAddr::V4(to), TCP_TIMEOUT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(TCP_TIMEOUT));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.contains("seen")
}

/// Round-trip times of up to `count` sequential single-shot requests to `to`, and how many
/// got no answer within `timeout` (lost).
pub fn rtts(to: SocketAddr, count: usize, timeout: Duration) -> Result<(Vec<Duration>, usize)> {
    let socket = fresh_socket()?;
    let mut rtts = Vec::with_capacity(count);
    let mut lost = 0;
    for _ in 0..count {
        let request = Request {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            change_ip: false,
            change_port: false,
        };
        let start = Instant::now();
        match attempt(&socket, to, request, timeout)? {
            Some(_) => rtts.push(start.elapsed()),
            None => lost += 1,
        }
    }
    Ok((rtts, lost))
}
