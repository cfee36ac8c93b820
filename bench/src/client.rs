//! A blocking TURN client for setting up allocations before the measured phase.

use crate::Target;
use anyhow::{Context, bail};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use supernode_proto::credentials::{Credentials, long_term_key};
use supernode_proto::stun::encode;
use supernode_proto::stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, Nonce, Realm, UserName,
};
use supernode_proto::stun_rs::attributes::turn::{
    ChannelNumber, LifeTime, RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use supernode_proto::stun_rs::methods::{ALLOCATE, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH};
use supernode_proto::stun_rs::{
    HMACKey, MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder,
};

/// Attempts per transaction before giving up (the server may drop under load).
const ATTEMPTS: usize = 5;
/// Old sockets a client keeps open after [`TurnClient::rebind`].
const RETIRED_SOCKETS: usize = 1024;

/// One client socket and its credentials.
pub struct TurnClient {
    /// The socket (blocking, with a read timeout).
    pub sock: UdpSocket,
    /// The server.
    pub server: SocketAddr,
    username: String,
    realm: String,
    key: HMACKey,
    nonce: Option<String>,
    /// Sockets of earlier allocations, kept open so their ports are not reused at once.
    retired: std::collections::VecDeque<UdpSocket>,
}

impl TurnClient {
    /// A client with REST credentials for `user`, on a fresh loopback socket.
    pub fn new(target: &Target, user: &str) -> anyhow::Result<Self> {
        let bind = if target.server.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        let sock = UdpSocket::bind(bind)?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 86_400;
        let creds = Credentials::rest(target.secret.as_bytes(), user, expiry);
        let key = long_term_key(&creds.username, &target.realm, &creds.password)
            .map_err(|e| anyhow::anyhow!("key: {e:?}"))?;
        Ok(Self {
            sock,
            server: target.server,
            username: creds.username,
            realm: target.realm.clone(),
            key,
            nonce: None,
            retired: std::collections::VecDeque::new(),
        })
    }

    /// Moves to a fresh socket (a new 5-tuple), keeping credentials and nonce. Some servers
    /// (coturn) refuse a new allocation on a 5-tuple whose allocation was just deleted.
    /// Recently used sockets stay open for a while (in `retired`), so the kernel does not hand
    /// out their port numbers again at once.
    pub fn rebind(&mut self) -> anyhow::Result<()> {
        let sock = UdpSocket::bind(SocketAddr::new(self.sock.local_addr()?.ip(), 0))?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        let old = std::mem::replace(&mut self.sock, sock);
        if self.retired.len() >= RETIRED_SOCKETS {
            self.retired.pop_front();
        }
        self.retired.push_back(old);
        Ok(())
    }

    /// Uses the nonce another client obtained (nonces are per source IP, and all bench clients
    /// share 127.0.0.1), saving the 401 round trip.
    pub fn set_nonce(&mut self, nonce: Option<String>) {
        self.nonce = nonce;
    }

    /// The nonce in use.
    pub fn nonce(&self) -> Option<String> {
        self.nonce.clone()
    }

    /// Encodes a request; signed when a nonce is known.
    pub fn request(
        &self,
        method: MessageMethod,
        attrs: &[StunAttribute],
    ) -> anyhow::Result<Vec<u8>> {
        let mut b = StunMessageBuilder::new(method, MessageClass::Request);
        for a in attrs {
            b = b.with_attribute(a.clone());
        }
        if let Some(nonce) = &self.nonce {
            b = b
                .with_attribute(
                    UserName::new(&self.username).map_err(|e| anyhow::anyhow!("{e:?}"))?,
                )
                .with_attribute(Realm::new(&self.realm).map_err(|e| anyhow::anyhow!("{e:?}"))?)
                .with_attribute(Nonce::new(nonce).map_err(|e| anyhow::anyhow!("{e:?}"))?)
                .with_attribute(MessageIntegrity::new(self.key.clone()));
        }
        encode(&b.with_attribute(Fingerprint::default()).build())
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    }

    /// Runs a transaction, re-signing after 401/438 and retrying on timeout.
    pub fn transact(
        &mut self,
        method: MessageMethod,
        attrs: &[StunAttribute],
    ) -> anyhow::Result<StunMessage> {
        let mut raw = self.request(method, attrs)?;
        for _ in 0..ATTEMPTS {
            // A timeout resends the same bytes: the server answers a retransmission with the
            // same response instead of treating it as a new request.
            self.sock.send_to(&raw, self.server)?;
            let Some(resp) = self.await_response(&raw[8..20])? else {
                continue;
            };
            match error_code(&resp) {
                Some(401 | 438) if resp.get::<Nonce>().is_some() => {
                    let nonce = resp
                        .get::<Nonce>()
                        .and_then(|a| a.as_nonce().ok())
                        .map(|n| n.as_str().to_owned());
                    if nonce == self.nonce {
                        bail!("credentials refused");
                    }
                    self.nonce = nonce;
                    raw = self.request(method, attrs)?;
                }
                _ => return Ok(resp),
            }
        }
        bail!("no answer from {} after {ATTEMPTS} attempts", self.server)
    }

    fn await_response(&self, tid: &[u8]) -> anyhow::Result<Option<StunMessage>> {
        let mut buf = [0u8; 2048];
        loop {
            let n = match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            if let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(&buf[..n]) {
                if msg.transaction_id().as_bytes() == tid {
                    return Ok(Some(msg));
                }
            }
        }
    }

    /// Allocates and returns the relayed address. A 437 means the server still holds an
    /// allocation on this 5-tuple (an earlier run's, on a reused port): move to another port.
    pub fn allocate(&mut self) -> anyhow::Result<SocketAddr> {
        let udp: StunAttribute =
            RequestedTrasport::from(supernode_proto::stun_rs::protocols::UDP).into();
        for _ in 0..ATTEMPTS {
            let resp = self.transact(ALLOCATE, std::slice::from_ref(&udp))?;
            if error_code(&resp) == Some(437) {
                self.rebind()?;
                continue;
            }
            return resp
                .get::<XorRelayedAddress>()
                .and_then(|a| a.as_xor_relayed_address().ok())
                .map(|a| *a.socket_address())
                .with_context(|| format!("Allocate failed: {:?}", error_code(&resp)));
        }
        bail!("Allocate failed: every port tried already has an allocation")
    }

    /// Deletes the allocation (Refresh with LIFETIME 0).
    pub fn deallocate(&mut self) -> anyhow::Result<()> {
        let resp = self.transact(REFRESH, &[LifeTime::new(0).into()])?;
        match error_code(&resp) {
            None => Ok(()),
            Some(code) => bail!("Refresh(0) failed: {code}"),
        }
    }

    /// Binds `channel` to `peer`.
    pub fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> anyhow::Result<()> {
        let attrs = [
            ChannelNumber::new(channel).into(),
            XorPeerAddress::from(peer).into(),
        ];
        match error_code(&self.transact(CHANNEL_BIND, &attrs)?) {
            None => Ok(()),
            Some(code) => bail!("ChannelBind failed: {code} (is the peer address allowed?)"),
        }
    }

    /// Installs a permission for `peer`.
    pub fn permit(&mut self, peer: SocketAddr) -> anyhow::Result<()> {
        let attrs = [XorPeerAddress::from(peer).into()];
        match error_code(&self.transact(CREATE_PERMMISSION, &attrs)?) {
            None => Ok(()),
            Some(code) => bail!("CreatePermission failed: {code} (is the peer address allowed?)"),
        }
    }
}

/// The ERROR-CODE of a response, if any.
pub fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .and_then(|a| a.as_error_code().ok())
        .map(|e| e.error_code().error_code())
}
