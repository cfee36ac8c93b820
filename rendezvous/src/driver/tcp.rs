//! One task per TCP or TLS connection: frames STUN messages off the stream for the core and
//! writes the core's replies back.
//!
//! The stream carries STUN messages back to back (RFC 8489 §6.2.2); there is no ChannelData on
//! a rendezvous. The connection is closed when the peer sends something that is not STUN, a
//! message longer than [`MAX_FRAME`], or nothing for [`IDLE_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::core::ConnId;
use crate::metrics::Metrics;

/// Longest message accepted on a stream: a signalling message or a padded Binding request.
pub const MAX_FRAME: usize = 2048;
/// Replies queued per connection.
pub const OUTBOX: usize = 64;
/// A connection silent this long is closed (longer than any keepalive interval).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// From a connection task to the core.
#[derive(Debug)]
pub enum Inbound {
    /// One framed message.
    Message {
        /// The connection.
        conn: ConnId,
        /// Where it was accepted.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// The message.
        data: Vec<u8>,
    },
    /// The connection is gone.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the connection's task (with a TLS handshake first when `tls` is given); returns the
/// queue for its replies.
pub fn spawn(
    conn: ConnId,
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    inbox: mpsc::Sender<Inbound>,
    metrics: Arc<Metrics>,
) -> mpsc::Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel(OUTBOX);
    tokio::spawn(async move {
        let _ = stream.set_nodelay(true);
        let reason = match (stream.local_addr(), tls) {
            (Err(_), _) => None,
            (Ok(local), None) => serve(conn, stream, local, remote, &inbox, rx, &metrics).await,
            (Ok(local), Some(acceptor)) => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => serve(conn, tls, local, remote, &inbox, rx, &metrics).await,
                    Ok(Err(_)) => Some("tls_handshake_failed"),
                    Err(_) => Some("tls_handshake_timeout"),
                }
            }
        };
        tracing::debug!(conn, %remote, ?reason, "tcp connection closed");
        if let Some(reason) = reason {
            metrics.driver_drop(reason);
        }
        // The core task may be gone at shutdown; nothing to tell then.
        let _ = inbox.send(Inbound::Closed { conn }).await;
    });
    tx
}

/// Runs the connection; returns a drop reason when it ended because of bad input.
async fn serve<S: AsyncRead + AsyncWrite>(
    conn: ConnId,
    stream: S,
    local: SocketAddr,
    remote: SocketAddr,
    inbox: &mpsc::Sender<Inbound>,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    metrics: &Metrics,
) -> Option<&'static str> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = Vec::with_capacity(MAX_FRAME);
    let mut chunk = [0u8; MAX_FRAME];
    loop {
        tokio::select! {
            read = tokio::time::timeout(IDLE_TIMEOUT, reader.read(&mut chunk)) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) => return None,
                    Err(_) => return Some("tcp_idle"),
                    Ok(Ok(n)) => n,
                };
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                loop {
                    match next_frame(&buf) {
                        Ok(Some(len)) => {
                            let data: Vec<u8> = buf.drain(..len).collect();
                            let msg = Inbound::Message { conn, local, remote, data };
                            if inbox.try_send(msg).is_err() {
                                // The core is saturated; shed load rather than buffer.
                                metrics.driver_drop("tcp_inbox_full");
                            }
                        }
                        Ok(None) => break,
                        Err(reason) => return Some(reason),
                    }
                }
            }
            reply = outbox.recv() => {
                let reply = reply?;
                if writer.write_all(&reply).await.is_err() || writer.flush().await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// Length of the STUN message at the start of `buf`, `Ok(None)` if more bytes are needed, or
/// why the stream must be closed.
fn next_frame(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    match buf.first() {
        None => return Ok(None),
        Some(b) if *b > 3 => return Err("tcp_not_stun"),
        Some(_) => {}
    }
    if buf.len() < supernode_proto::stun::HEADER_LEN {
        return Ok(None);
    }
    let header = supernode_proto::stun::header_prefix(buf).ok_or("tcp_not_stun")?;
    let len = header.message_len();
    if len > MAX_FRAME {
        return Err("tcp_frame_too_large");
    }
    Ok((buf.len() >= len).then_some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_stun_and_refuses_anything_else() {
        let mut stun = vec![0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[0; 12]);
        assert_eq!(next_frame(&stun), Ok(None));
        stun.extend_from_slice(&[0, 0, 0, 0, 9]);
        assert_eq!(next_frame(&stun), Ok(Some(24)));
        assert_eq!(next_frame(b"this is not stun"), Err("tcp_not_stun"));
        // A ChannelData-looking prefix is not accepted on a rendezvous stream.
        assert_eq!(next_frame(&[0x40, 0, 0, 4]), Err("tcp_not_stun"));
        let mut bad_cookie = stun.clone();
        bad_cookie[4] = 0;
        assert_eq!(next_frame(&bad_cookie), Err("tcp_not_stun"));
        let mut huge = stun.clone();
        huge[2..4].copy_from_slice(&4096u16.to_be_bytes());
        assert_eq!(next_frame(&huge), Err("tcp_frame_too_large"));
    }
}
