//! A TURN client over UDP (RFC 8656), just enough to check a deployed relay: allocate with
//! TURN REST credentials, permit a peer, and relay data both ways with Send and Data
//! indications.

use anyhow::{Context, Result, bail, ensure};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use supernode_proto::credentials::{Credentials, long_term_key};
use supernode_proto::stun::encode;
use supernode_proto::stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, Nonce, Realm, UserName,
};
use supernode_proto::stun_rs::attributes::turn::{
    Data, RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use supernode_proto::stun_rs::methods::{ALLOCATE, CREATE_PERMMISSION, DATA, SEND};
use supernode_proto::stun_rs::{
    MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder,
};

/// How long one request waits for its answer before it is sent again.
const RETRANSMIT: Duration = Duration::from_millis(500);
/// Attempts per request (UDP may lose the first datagram while ARP settles).
const ATTEMPTS: u32 = 6;

/// A TURN client on one UDP socket.
#[derive(Debug)]
pub struct Client {
    sock: UdpSocket,
    server: SocketAddr,
    realm: String,
    username: String,
    password: String,
    nonce: Option<String>,
}

impl Client {
    /// A client of `server` with REST credentials for `user` minted from `secret`.
    pub fn new(server: SocketAddr, secret: &str, realm: &str, user: &str) -> Result<Self> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_read_timeout(Some(RETRANSMIT))?;
        let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
        let c = Credentials::rest(secret.as_bytes(), user, expiry);
        Ok(Self {
            sock,
            server,
            realm: realm.to_owned(),
            username: c.username,
            password: c.password,
            nonce: None,
        })
    }

    fn request(&self, method: MessageMethod, attrs: &[StunAttribute]) -> Result<Vec<u8>> {
        let mut b = StunMessageBuilder::new(method, MessageClass::Request);
        for a in attrs {
            b = b.with_attribute(a.clone());
        }
        if let Some(nonce) = &self.nonce {
            let key = long_term_key(&self.username, &self.realm, &self.password)
                .map_err(|e| anyhow::anyhow!("key: {e:?}"))?;
            b = b
                .with_attribute(
                    UserName::new(&self.username).map_err(|e| anyhow::anyhow!("{e:?}"))?,
                )
                .with_attribute(Realm::new(&self.realm).map_err(|e| anyhow::anyhow!("{e:?}"))?)
                .with_attribute(Nonce::new(nonce).map_err(|e| anyhow::anyhow!("{e:?}"))?)
                .with_attribute(MessageIntegrity::new(key));
        }
        encode(&b.with_attribute(Fingerprint::default()).build())
            .map_err(|e| anyhow::anyhow!("encode: {e:?}"))
    }

    /// Sends `raw` until the answer with its transaction id arrives.
    fn transact(&self, raw: &[u8]) -> Result<StunMessage> {
        let mut buf = [0u8; 2048];
        for _ in 0..ATTEMPTS {
            self.sock.send_to(raw, self.server)?;
            let until = Instant::now() + RETRANSMIT;
            while Instant::now() < until {
                let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                    break;
                };
                if from != self.server || n < 20 || buf[8..20] != raw[8..20] {
                    continue;
                }
                if let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(&buf[..n]) {
                    return Ok(msg);
                }
            }
        }
        bail!("no answer from {} after {ATTEMPTS} attempts", self.server)
    }

    /// Allocates (answering the 401 challenge) and returns the relayed address.
    pub fn allocate(&mut self) -> Result<SocketAddr> {
        let udp: StunAttribute =
            RequestedTrasport::from(supernode_proto::stun_rs::protocols::UDP).into();
        let resp = self.transact(&self.request(ALLOCATE, std::slice::from_ref(&udp))?)?;
        ensure!(error_code(&resp) == Some(401), "expected 401, got {resp:?}");
        let nonce = resp
            .get::<Nonce>()
            .and_then(|n| n.as_nonce().ok())
            .map(|n| n.as_str().to_owned())
            .context("401 without NONCE")?;
        self.nonce = Some(nonce);
        let resp = self.transact(&self.request(ALLOCATE, &[udp])?)?;
        ensure!(
            resp.class() == MessageClass::SuccessResponse,
            "Allocate failed: {:?}",
            error_code(&resp)
        );
        Ok(*resp
            .get::<XorRelayedAddress>()
            .and_then(|a| a.as_xor_relayed_address().ok())
            .context("no XOR-RELAYED-ADDRESS")?
            .socket_address())
    }

    /// CreatePermission for `peer`'s IP.
    pub fn permit(&self, peer: SocketAddr) -> Result<()> {
        let resp = self
            .transact(&self.request(CREATE_PERMMISSION, &[XorPeerAddress::from(peer).into()])?)?;
        ensure!(
            resp.class() == MessageClass::SuccessResponse,
            "CreatePermission for {peer} refused: {:?}",
            error_code(&resp)
        );
        Ok(())
    }

    /// Sends `data` to `peer` through the relay (Send indication).
    pub fn send(&self, peer: SocketAddr, data: &[u8]) -> Result<()> {
        let msg = StunMessageBuilder::new(SEND, MessageClass::Indication)
            .with_attribute(XorPeerAddress::from(peer))
            .with_attribute(Data::new(data))
            .build();
        let raw = encode(&msg).map_err(|e| anyhow::anyhow!("encode: {e:?}"))?;
        self.sock.send_to(&raw, self.server)?;
        Ok(())
    }

    /// Waits up to `timeout` for a Data indication; its peer address and data.
    pub fn receive(&self, timeout: Duration) -> Result<(SocketAddr, Vec<u8>)> {
        let until = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        while Instant::now() < until {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            if from != self.server {
                continue;
            }
            let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(&buf[..n]) else {
                continue;
            };
            if msg.method() != DATA || msg.class() != MessageClass::Indication {
                continue;
            }
            let peer = msg
                .get::<XorPeerAddress>()
                .and_then(|a| a.as_xor_peer_address().ok())
                .map(|a| *a.socket_address())
                .context("Data indication without XOR-PEER-ADDRESS")?;
            let data = msg
                .get::<Data>()
                .and_then(|d| d.as_data().ok())
                .map(|d| d.as_bytes().to_vec())
                .context("Data indication without DATA")?;
            return Ok((peer, data));
        }
        bail!("no Data indication within {timeout:?}")
    }
}

/// The ERROR-CODE of a response, if any.
pub fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .and_then(|a| a.as_error_code().ok())
        .map(|e| e.error_code().error_code())
}

/// Allocates on `relay` as `user`, then relays `payload` from the client to a peer socket
/// bound on `peer_ip` and back. The relayed address the relay advertises is returned;
/// `reach` maps it to where the peer actually sends (the same address, unless the relay
/// advertises an external address that this host cannot use).
pub fn round_trip(
    relay: SocketAddr,
    secret: &str,
    user: &str,
    peer_ip: std::net::IpAddr,
    reach: impl Fn(SocketAddr) -> SocketAddr,
    payload: &[u8],
) -> Result<SocketAddr> {
    let mut client = Client::new(relay, secret, "supernode", user)?;
    let relayed = client.allocate()?;
    let target = reach(relayed);
    let peer = UdpSocket::bind((peer_ip, 0))?;
    peer.set_read_timeout(Some(Duration::from_secs(3)))?;
    let peer_addr = peer.local_addr()?;
    client.permit(peer_addr)?;
    client.send(peer_addr, payload)?;
    let mut buf = [0u8; 2048];
    let (n, from) = peer
        .recv_from(&mut buf)
        .context("peer receives no relayed data")?;
    ensure!(&buf[..n] == payload, "peer received other bytes");
    ensure!(
        from == target,
        "data came from {from}, not the relayed socket {target}"
    );
    peer.send_to(payload, target)?;
    let (from, data) = client.receive(Duration::from_secs(3))?;
    ensure!(
        from == peer_addr,
        "Data indication names {from}, not the peer {peer_addr}"
    );
    ensure!(data == payload, "client received other bytes");
    Ok(relayed)
}
