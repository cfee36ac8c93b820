//! TCP and TLS client connections (RFC 8656 §3.1 and §12.5).
//!
//! A connection reads bytes into a bounded buffer, cuts STUN and ChannelData messages out of it
//! with `supernode_proto::frame`, and hands each to the core. Writes go straight to the socket
//! when it accepts them and into a bounded buffer otherwise; a connection whose peer stops
//! reading loses packets (counted), never memory.

use super::{CONN_BASE, Driver};
use crate::server::{FiveTuple, Transport};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::time::Instant;
use supernode_proto::{channel_data, frame};

/// Unprocessed input a connection may hold: one maximal message and change.
const MAX_READ_BUFFER: usize = 70_000;
/// Output a connection may queue before packets to it are dropped.
const MAX_WRITE_BUFFER: usize = 1 << 20;

/// Why a connection was closed, for `supernode_relay_connections_closed_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    /// The client closed it.
    Eof,
    /// Reset or another socket error.
    Reset,
    /// TLS handshake or record error (including plain bytes on a TLS port).
    Tls,
    /// A message larger than the read buffer allows.
    Oversize,
    /// Bytes that are neither STUN nor ChannelData.
    Framing,
    /// Writing to the client failed.
    WriteFailed,
    /// No allocation for too long.
    Idle,
}

impl Close {
    /// The metric label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Close::Eof => "eof",
            Close::Reset => "reset",
            Close::Tls => "tls_error",
            Close::Oversize => "oversize",
            Close::Framing => "framing",
            Close::WriteFailed => "write_failed",
            Close::Idle => "idle",
        }
    }
}

/// One client connection.
pub(super) struct Conn {
    /// The socket.
    stream: TcpStream,
    /// TLS state, for TLS connections.
    tls: Option<Box<rustls::ServerConnection>>,
    /// The connection's 5-tuple, its identity to the core.
    pub(super) five_tuple: FiveTuple,
    /// Bytes read and not yet framed.
    rbuf: Vec<u8>,
    /// Bytes to write once the socket is writable (plain TCP; TLS buffers inside rustls).
    wbuf: Vec<u8>,
    /// Whether WRITABLE interest is registered.
    want_write: bool,
    /// Last time the connection was seen holding an allocation (or its accept time).
    pub(super) last_allocated: Instant,
}

impl Conn {
    /// Queues a message for the client, padding ChannelData to four bytes as streams require.
    /// Returns `Ok(false)` when the message was dropped because the client is not reading.
    pub(super) fn send(
        &mut self,
        bytes: &[u8],
        registry: &Registry,
        token: Token,
    ) -> io::Result<bool> {
        let pad = if bytes
            .first()
            .is_some_and(|b| channel_data::is_channel_data(*b))
        {
            channel_data::padded_len(bytes.len() - channel_data::HEADER_LEN) - bytes.len()
        } else {
            0
        };
        if self.pending() + bytes.len() + pad > MAX_WRITE_BUFFER {
            return Ok(false);
        }
        match &mut self.tls {
            Some(tls) => {
                tls.writer().write_all(bytes)?;
                tls.writer().write_all(&[0u8; 3][..pad])?;
            }
            None => {
                self.wbuf.extend_from_slice(bytes);
                self.wbuf.extend_from_slice(&[0u8; 3][..pad]);
            }
        }
        self.flush(registry, token)?;
        Ok(true)
    }

    fn pending(&self) -> usize {
        match &self.tls {
            Some(tls) => {
                if tls.wants_write() {
                    MAX_WRITE_BUFFER / 2
                } else {
                    0
                }
            }
            None => self.wbuf.len(),
        }
    }

    /// Writes what it can; registers for writability when something is left.
    fn flush(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match &mut self.tls {
            Some(tls) => {
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            None => {
                let mut written = 0;
                while written < self.wbuf.len() {
                    match self.stream.write(&self.wbuf[written..]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                self.wbuf.drain(..written);
            }
        }
        let want = match &self.tls {
            Some(tls) => tls.wants_write(),
            None => !self.wbuf.is_empty(),
        };
        if want != self.want_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.want_write = want;
        }
        Ok(())
    }

    /// Reads what is available into `rbuf`. Returns false at end of stream.
    fn read(&mut self, scratch: &mut [u8]) -> Result<bool, Close> {
        loop {
            if self.rbuf.len() > MAX_READ_BUFFER {
                return Err(Close::Oversize);
            }
            match &mut self.tls {
                Some(tls) => {
                    match tls.read_tls(&mut self.stream) {
                        Ok(0) => return Ok(false),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                        Err(_) => return Err(Close::Reset),
                    }
                    tls.process_new_packets().map_err(|_| Close::Tls)?;
                    loop {
                        match tls.reader().read(scratch) {
                            Ok(0) => return Ok(false),
                            Ok(n) => self.rbuf.extend_from_slice(&scratch[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => return Err(Close::Tls),
                        }
                        if self.rbuf.len() > MAX_READ_BUFFER {
                            break;
                        }
                    }
                }
                None => match self.stream.read(scratch) {
                    Ok(0) => return Ok(false),
                    Ok(n) => self.rbuf.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(_) => return Err(Close::Reset),
                },
            }
        }
    }
}

impl Driver {
    pub(super) fn accept(&mut self, i: usize, now: Instant) {
        loop {
            let Some((listener, is_tls, local)) = self.tcp.get(i) else {
                return;
            };
            let (is_tls, local) = (*is_tls, *local);
            let (mut stream, client) = match listener.accept() {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    return;
                }
            };
            if self.conn_by_tuple.len() >= self.max_connections {
                self.metrics.connection_refused();
                continue;
            }
            let tls = if is_tls {
                let Some(cfg) = self.tls_config.clone() else {
                    continue;
                };
                match rustls::ServerConnection::new(cfg) {
                    Ok(c) => Some(Box::new(c)),
                    Err(_) => continue,
                }
            } else {
                None
            };
            let _ = stream.set_nodelay(true);
            let slot = self.free_conns.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if self
                .poll
                .registry()
                .register(&mut stream, Token(CONN_BASE + slot), Interest::READABLE)
                .is_err()
            {
                self.free_conns.push(slot);
                continue;
            }
            let five_tuple = FiveTuple {
                transport: if is_tls {
                    Transport::Tls
                } else {
                    Transport::Tcp
                },
                client,
                server: local,
            };
            self.conn_by_tuple.insert(five_tuple, slot);
            self.conns[slot] = Some(Conn {
                stream,
                tls,
                five_tuple,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                want_write: false,
                last_allocated: now,
            });
            self.metrics.connection_accepted(is_tls);
        }
    }

    pub(super) fn conn_ready(
        &mut self,
        slot: usize,
        readable: bool,
        writable: bool,
        now: Instant,
        buf: &mut [u8],
    ) {
        let token = Token(CONN_BASE + slot);
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if writable && conn.flush(self.poll.registry(), token).is_err() {
            return self.close_conn(slot, Close::WriteFailed);
        }
        if !readable {
            return;
        }
        let open = match conn.read(buf) {
            Ok(open) => open,
            Err(reason) => return self.close_conn(slot, reason),
        };
        // TLS handshake records may need sending even before any message arrives.
        if conn.tls.is_some() && conn.flush(self.poll.registry(), token).is_err() {
            return self.close_conn(slot, Close::WriteFailed);
        }
        let ft = conn.five_tuple;
        let mut input = std::mem::take(&mut conn.rbuf);
        let mut pos = 0;
        let mut broken = false;
        loop {
            match frame::next(&input[pos..]) {
                Ok(Some(f)) => {
                    let msg = &input[pos..pos + f.len];
                    if let Some(fwd) = self.server.handle_client(now, ft, msg) {
                        self.forward(fwd, msg);
                    }
                    self.drain_core(now);
                    pos += f.consumed;
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        input.drain(..pos);
        if broken {
            return self.close_conn(slot, Close::Framing);
        }
        if !open {
            return self.close_conn(slot, Close::Eof);
        }
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            conn.rbuf = input;
        }
    }

    pub(super) fn close_conn(&mut self, slot: usize, reason: Close) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        tracing::debug!(client = %conn.five_tuple.client, reason = reason.label(), "connection closed");
        self.metrics.connection_closed(reason.label());
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.conn_by_tuple.remove(&conn.five_tuple);
        self.free_conns.push(slot);
        self.server.handle_client_closed(conn.five_tuple);
    }
}
