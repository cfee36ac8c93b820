//! The tokio driver: a fixed set of sockets around one [`Core`].
//!
//! One task owns the core. It waits with `tokio::select!` on the UDP sockets (up to four, for
//! RFC 5780), on the TCP and TLS listeners, on messages from connection tasks, on the core's
//! timer and on shutdown; after each wake-up it drains the ready socket in a batch, sends what
//! the core queued and, at most every 100 ms, brings the metrics up to date. Stream connections
//! each have a small task that frames the byte stream (`driver::tcp`) and a bounded queue for
//! their replies, so a slow reader never blocks the core.

mod tcp;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::core::{self, Core, Event, Transport};
use crate::metrics::Metrics;

/// Largest datagram read; anything longer is truncated and then fails to parse.
const RECV_BUF: usize = 2048;
/// Messages from connection tasks waiting for the core.
const TCP_INBOX: usize = 1024;
/// Datagrams read from one socket per wake-up before the loop sends what the core queued.
const RECV_BATCH: usize = 64;
/// Longest time the exported metrics lag the core.
const METRICS_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

/// What the driver needs beyond the core's settings.
#[derive(Clone)]
pub struct Options {
    /// The core's settings; ports of 0 are replaced by the ports actually bound.
    pub core: core::Config,
    /// Accept TCP on the primary address.
    pub tcp: bool,
    /// Open TCP and TLS connections at most.
    pub max_tcp_connections: usize,
    /// Accept TLS on this address with this acceptor.
    pub tls: Option<(SocketAddr, tokio_rustls::TlsAcceptor)>,
}

/// A bound, not yet running, rendezvous node.
pub struct Server {
    core: Core,
    udp: Vec<(SocketAddr, UdpSocket)>,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    max_tcp_connections: usize,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Binds every socket. With port 0 the OS picks the primary and alternate ports, and the
    /// alternate IP's sockets reuse them.
    pub async fn bind(options: Options, metrics: Arc<Metrics>) -> io::Result<Self> {
        let mut config = options.core;
        let primary = UdpSocket::bind(config.primary).await?;
        config.primary = primary.local_addr()?;
        let mut udp = vec![(config.primary, primary)];
        if let Some(port) = config.alternate_port {
            let alt = UdpSocket::bind(SocketAddr::new(config.primary.ip(), port)).await?;
            config.alternate_port = Some(alt.local_addr()?.port());
            udp.push((alt.local_addr()?, alt));
        }
        for addr in config.local_addrs().into_iter().skip(udp.len()) {
            let sock = UdpSocket::bind(addr).await?;
            udp.push((sock.local_addr()?, sock));
        }
        let tcp = if options.tcp {
            Some(TcpListener::bind(config.primary).await?)
        } else {
            None
        };
        let tls = match options.tls {
            Some((addr, acceptor)) => Some((TcpListener::bind(addr).await?, acceptor)),
            None => None,
        };
        if config.alternate_port.is_some() && config.alternate_ip.is_none() {
            tracing::warn!(
                "one IP configured: RFC 5780 change-port tests only; OTHER-ADDRESS carries the \
                 primary IP so clients can tell"
            );
        }
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Ok(Self {
            core: Core::new(config, Instant::now(), unix_ms),
            udp,
            tcp,
            tls,
            max_tcp_connections: options.max_tcp_connections,
            metrics,
        })
    }

    /// The UDP addresses bound: primary first, then the RFC 5780 alternates.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|(a, _)| *a).collect()
    }

    /// The TCP address, if TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TLS address, if TLS is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Self {
            mut core,
            udp,
            tcp,
            tls,
            max_tcp_connections,
            metrics,
        } = self;
        tokio::pin!(shutdown);
        let (inbox_tx, mut inbox) = mpsc::channel(TCP_INBOX);
        let mut conns: HashMap<core::ConnId, mpsc::Sender<Vec<u8>>> = HashMap::new();
        let mut next_conn: core::ConnId = 1;
        let mut bufs = [[0u8; RECV_BUF]; 4];
        let sock = |i: usize| udp.get(i).map(|(_, s)| s);
        let mut last_relay_sync = Instant::now();
        tracing::info!(udp = ?udp.iter().map(|(a, _)| a).collect::<Vec<_>>(), tcp = ?tcp.as_ref().and_then(|l| l.local_addr().ok()), "rendezvous listening");
        let mut last_sync = Instant::now();
        // Messages received when the metrics were last synced: unsynced input sets a timer.
        let mut synced_at = 0;
        let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(core.poll_timeout()));
        tokio::pin!(timer);
        loop {
            flush(&mut core, &udp, &conns, &metrics);
            // Metrics lag the core by at most METRICS_PERIOD: cheap under load, live enough.
            let stale = core.stats().received != synced_at;
            if stale && last_sync.elapsed() >= METRICS_PERIOD {
                metrics.sync(&core);
                last_sync = Instant::now();
                synced_at = core.stats().received;
            }
            if last_relay_sync.elapsed().as_secs() >= 1 {
                metrics.sync_relays(&core);
                last_relay_sync = Instant::now();
            }
            let mut deadline = core.poll_timeout();
            if core.stats().received != synced_at {
                deadline = deadline.min(last_sync + METRICS_PERIOD);
            }
            let deadline = tokio::time::Instant::from_std(deadline);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            let [b0, b1, b2, b3] = &mut bufs;
            tokio::select! {
                () = &mut shutdown => break,
                r = recv(sock(0), b0) => on_udp(&mut core, &udp, 0, r, b0),
                r = recv(sock(1), b1) => on_udp(&mut core, &udp, 1, r, b1),
                r = recv(sock(2), b2) => on_udp(&mut core, &udp, 2, r, b2),
                r = recv(sock(3), b3) => on_udp(&mut core, &udp, 3, r, b3),
                Some(msg) = inbox.recv() => match msg {
                    tcp::Inbound::Message { conn, local, remote, data } => {
                        let transport = Transport::Tcp { conn, local };
                        core.handle_datagram(Instant::now(), transport, remote, &data);
                    }
                    tcp::Inbound::Closed { conn } => {
                        conns.remove(&conn);
                        core.handle_conn_closed(Instant::now(), conn);
                        metrics.tcp_connections.set(conns.len() as i64);
                    }
                },
                accepted = accept(tcp.as_ref()) => {
                    on_accept(accepted, None, &mut conns, &mut next_conn, max_tcp_connections, &inbox_tx, &metrics);
                }
                accepted = accept(tls.as_ref().map(|(l, _)| l)) => {
                    let acceptor = tls.as_ref().map(|(_, a)| a.clone());
                    on_accept(accepted, acceptor, &mut conns, &mut next_conn, max_tcp_connections, &inbox_tx, &metrics);
                }
                () = &mut timer => core.handle_timeout(Instant::now()),
            }
        }
        tracing::info!("rendezvous shutting down");
        Ok(())
    }
}

async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(l: Option<&TcpListener>) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Starts a task for an accepted stream connection, within the connection bound.
fn on_accept(
    accepted: io::Result<(tokio::net::TcpStream, SocketAddr)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: &mut HashMap<core::ConnId, mpsc::Sender<Vec<u8>>>,
    next_conn: &mut core::ConnId,
    max: usize,
    inbox: &mpsc::Sender<tcp::Inbound>,
    metrics: &Arc<Metrics>,
) {
    match accepted {
        Ok((stream, remote)) if conns.len() < max => {
            let conn = *next_conn;
            *next_conn += 1;
            tracing::debug!(conn, %remote, tls = tls.is_some(), "stream connection accepted");
            let tx = tcp::spawn(conn, stream, remote, tls, inbox.clone(), metrics.clone());
            conns.insert(conn, tx);
            metrics.tcp_connections.set(conns.len() as i64);
        }
        // Dropping the stream closes it at once.
        Ok(_) => metrics.driver_drop("tcp_connection_limit"),
        Err(e) => tracing::debug!(error = %e, "accept failed"),
    }
}

fn on_udp(
    core: &mut Core,
    udp: &[(SocketAddr, UdpSocket)],
    index: usize,
    result: io::Result<(usize, SocketAddr)>,
    buf: &[u8],
) {
    let Some((local, sock)) = udp.get(index) else {
        return;
    };
    let transport = Transport::Udp { local: *local };
    match result {
        Ok((n, remote)) => {
            let now = Instant::now();
            core.handle_datagram(now, transport, remote, buf.get(..n).unwrap_or_default());
            // Drain what else is queued on this socket without another trip through select!.
            let mut more = [0u8; RECV_BUF];
            for _ in 1..RECV_BATCH {
                let Ok((n, remote)) = sock.try_recv_from(&mut more) else {
                    break;
                };
                let data = more.get(..n).unwrap_or_default();
                core.handle_datagram(Instant::now(), transport, remote, data);
            }
        }
        // ICMP errors from earlier sends surface here on some platforms; nothing to do.
        Err(e) => tracing::trace!(error = %e, "udp receive error"),
    }
}

/// Sends everything the core queued and logs its events.
fn flush(
    core: &mut Core,
    udp: &[(SocketAddr, UdpSocket)],
    conns: &HashMap<core::ConnId, mpsc::Sender<Vec<u8>>>,
    metrics: &Metrics,
) {
    while let Some(t) = core.poll_transmit() {
        match t.transport {
            Transport::Udp { local } => {
                let Some((_, sock)) = udp.iter().find(|(a, _)| *a == local) else {
                    metrics.driver_drop("no_such_socket");
                    continue;
                };
                if sock.try_send_to(&t.data, t.remote).is_err() {
                    metrics.driver_drop("udp_send_error");
                }
            }
            Transport::Tcp { conn, .. } => match conns.get(&conn) {
                Some(tx) => {
                    if tx.try_send(t.data).is_err() {
                        metrics.driver_drop("tcp_queue_full");
                    }
                }
                None => metrics.driver_drop("tcp_connection_gone"),
            },
        }
    }
    while let Some(event) = core.poll_event() {
        match event {
            Event::Registered { peer, remote } => tracing::info!(%peer, %remote, "registered"),
            Event::Expired { peer } => tracing::info!(%peer, "expired"),
            Event::Connect {
                caller,
                callee,
                outcome,
            } => tracing::info!(%caller, %callee, outcome = outcome.label(), "connect"),
            Event::RelayJoined { id } => tracing::info!(relay = %id, "relay joined"),
            Event::RelayLeft { id } => tracing::info!(relay = %id, "relay left"),
        }
    }
}
