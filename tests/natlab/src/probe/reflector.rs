//! The reflector: answers probe requests with the source address it saw.
//!
//! One thread per UDP socket (2 addresses × 2 ports) and one per TCP listener. A request is
//! answered from the socket it asks for; requests for a socket that does not exist (a reflector
//! with one address asked to change it) are dropped and counted, as is anything malformed.
//! TCP listeners write one JSON line (`{"seen":…}`) and close, which is enough to tell whether a
//! firewall lets a TCP port through.

use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::wire::{MAX_DATAGRAM, Request, Response};

/// Where a reflector listens.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// One or two addresses (index 0 is primary).
    pub ips: Vec<Ipv4Addr>,
    /// One or two UDP ports (index 0 is primary).
    pub ports: Vec<u16>,
    /// TCP ports, on the primary address.
    pub tcp_ports: Vec<u16>,
}

/// Counters of what the reflector did, shared by its threads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered.
    pub answered: AtomicU64,
    /// Datagrams dropped as malformed.
    pub malformed: AtomicU64,
    /// Requests dropped because the asked-for socket does not exist.
    pub unservable: AtomicU64,
}

/// The bound sockets, indexed `[ip][port]`.
type Grid = Vec<Vec<UdpSocket>>;

/// A reflector whose sockets are bound and ready.
#[derive(Debug)]
pub struct Reflector {
    /// UDP sockets, `[ip][port]`.
    grid: Arc<Grid>,
    /// TCP listeners.
    tcp: Vec<TcpListener>,
    /// Counters.
    stats: Arc<Stats>,
}

impl Reflector {
    /// Binds every socket of `config`.
    pub fn bind(config: &Config) -> Result<Reflector> {
        let mut grid = Vec::new();
        for ip in &config.ips {
            let mut row = Vec::new();
            for port in &config.ports {
                let addr = SocketAddrV4::new(*ip, *port);
                row.push(UdpSocket::bind(addr).with_context(|| format!("binding udp {addr}"))?);
            }
            grid.push(row);
        }
        let primary = config
            .ips
            .first()
            .copied()
            .context("reflector needs an address")?;
        let tcp = config
            .tcp_ports
            .iter()
            .map(|p| {
                let addr = SocketAddrV4::new(primary, *p);
                TcpListener::bind(addr).with_context(|| format!("binding tcp {addr}"))
            })
            .collect::<Result<_>>()?;
        Ok(Reflector {
            grid: Arc::new(grid),
            tcp,
            stats: Arc::default(),
        })
    }

    /// Wraps one already-bound socket (the echo server of the hairpin test).
    pub fn single(socket: UdpSocket) -> Reflector {
        Reflector {
            grid: Arc::new(vec![vec![socket]]),
            tcp: Vec::new(),
            stats: Arc::default(),
        }
    }

    /// The UDP addresses being served.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.grid
            .iter()
            .flatten()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves until the process ends (UDP and TCP threads run forever).
    pub fn serve(self) -> Result<()> {
        let mut threads = Vec::new();
        for (i, row) in self.grid.iter().enumerate() {
            for j in 0..row.len() {
                let grid = Arc::clone(&self.grid);
                let stats = Arc::clone(&self.stats);
                threads.push(std::thread::spawn(move || serve_udp(&grid, i, j, &stats)));
            }
        }
        for listener in self.tcp {
            threads.push(std::thread::spawn(move || serve_tcp(&listener)));
        }
        for t in threads {
            let _ = t.join();
        }
        Ok(())
    }
}

/// Answers requests arriving on socket `[i][j]`.
fn serve_udp(grid: &Grid, i: usize, j: usize, stats: &Stats) {
    let socket = &grid[i][j];
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    loop {
        let Ok((n, src)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(req) = Request::decode(&buf[..n]) else {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let ri = if req.change_ip { i ^ 1 } else { i };
        let rj = if req.change_port { j ^ 1 } else { j };
        let Some(out) = grid.get(ri).and_then(|row| row.get(rj)) else {
            stats.unservable.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok(from) = out.local_addr() else { continue };
        let resp = Response {
            id: req.id,
            seen: src,
            from,
        };
        if out.send_to(&resp.encode(), src).is_ok() {
            stats.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Tells each TCP client its source address and hangs up.
fn serve_tcp(listener: &TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        if let Ok(peer) = conn.peer_addr() {
            let _ = writeln!(conn, "{}", json!({"seen": peer.to_string()}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_from_the_requested_socket_on_loopback() {
        let config = Config {
            ips: vec![Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2)],
            ports: vec![0, 0],
            tcp_ports: vec![],
        };
        let reflector = Reflector::bind(&config).unwrap();
        let addrs = reflector.udp_addrs();
        let stats = reflector.stats();
        std::thread::spawn(move || reflector.serve());

        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let req = Request {
            id: 5,
            change_ip: true,
            change_port: false,
        };
        client.send_to(&req.encode(), addrs[0]).unwrap();
        let mut buf = [0u8; 600];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        let resp = Response::decode(&buf[..n]).unwrap();
        assert_eq!(resp.id, 5);
        assert_eq!(resp.seen, client.local_addr().unwrap());
        assert_eq!(from, addrs[2], "answer must come from the other address");
        assert_eq!(resp.from, addrs[2]);

        client.send_to(b"garbage", addrs[0]).unwrap();
        client.send_to(&req.encode(), addrs[0]).unwrap();
        client.recv_from(&mut buf).unwrap();
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
    }
}
