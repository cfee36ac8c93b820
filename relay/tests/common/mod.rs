//! Shared helpers for the relay's integration tests: starting `supernode-relay`, a minimal
//! TURN client over UDP built from stun-rs, and tool checks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use supernode_proto::credentials::{Credentials, long_term_key};
use supernode_proto::stun::encode;
use supernode_proto::stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, Nonce, Realm, UserName,
};
use supernode_proto::stun_rs::attributes::turn::{
    ChannelNumber, RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use supernode_proto::stun_rs::methods::{ALLOCATE, CHANNEL_BIND, CREATE_PERMMISSION};
use supernode_proto::stun_rs::{
    MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder,
};

pub const SECRET: &str = "integration-secret";
pub const REALM: &str = "supernode";

/// True if `tool` is on PATH. Without it the test skips, except under `CI=true` where the
/// tool must have been installed by `.ci/run` and its absence is a failure.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true (installed by .ci/run)"
        );
        eprintln!("SKIP: {tool} not found on PATH");
    }
    found
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A `supernode-relay` process, killed on drop.
pub struct Relay {
    child: Child,
    /// UDP and TCP listening port on 127.0.0.1.
    pub port: u16,
    /// Metrics endpoint.
    pub metrics: SocketAddr,
}

impl Relay {
    /// Starts the binary on free ports with the test secret and `extra` flags (where `{port}`
    /// stands for the listening port), and waits until its metrics endpoint answers.
    pub fn start(relay_ports: (u16, u16), extra: &[&str]) -> Self {
        let port = free_port();
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_supernode-relay"));
        cmd.args(["--listen-udp", &listen, "--listen-tcp", &listen])
            .args(["--metrics", &metrics.to_string()])
            .args(["--secret", SECRET, "--realm", REALM])
            .args(["--min-port", &relay_ports.0.to_string()])
            .args(["--max-port", &relay_ports.1.to_string()])
            .args(extra.iter().map(|a| a.replace("{port}", &port.to_string())))
            .env("SUPERNODE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start supernode-relay");
        let relay = Self {
            child,
            port,
            metrics,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_get(metrics, "/healthz").is_none() {
            assert!(Instant::now() < deadline, "relay did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        relay
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The metrics text, fetched with curl when available (as an operator would) and with a
    /// plain HTTP request otherwise.
    pub fn scrape(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics);
        if let Ok(out) = Command::new("curl").args(["-sf", &url]).output() {
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
        }
        http_get(self.metrics, "/metrics").unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET; the body, or `None` if nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_owned())
}

/// The value of one sample line in a Prometheus text exposition, e.g.
/// `metric(text, "supernode_relay_relayed_packets_total{direction=\"client_to_peer\"}")`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .trim()
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

/// A TURN client over one UDP socket, just enough to drive the relay from tests.
pub struct TurnClient {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    username: String,
    password: String,
    nonce: String,
}

impl TurnClient {
    pub fn new(server: SocketAddr, user: &str) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 3600;
        let c = Credentials::rest(SECRET.as_bytes(), user, expiry);
        Self {
            sock,
            server,
            username: c.username,
            password: c.password,
            nonce: String::new(),
        }
    }

    /// Encodes a request, signed once a nonce is known.
    pub fn request(
        &self,
        method: MessageMethod,
        attrs: Vec<StunAttribute>,
        signed: bool,
    ) -> Vec<u8> {
        let mut b = StunMessageBuilder::new(method, MessageClass::Request);
        for a in attrs {
            b = b.with_attribute(a);
        }
        if signed {
            let key = long_term_key(&self.username, REALM, &self.password).expect("key");
            b = b
                .with_attribute(UserName::new(&self.username).expect("username"))
                .with_attribute(Realm::new(REALM).expect("realm"))
                .with_attribute(Nonce::new(&self.nonce).expect("nonce"))
                .with_attribute(MessageIntegrity::new(key));
        }
        encode(&b.with_attribute(Fingerprint::default()).build()).expect("encode")
    }

    /// Sends and waits for the response with the same transaction id.
    pub fn transact(&self, raw: &[u8]) -> StunMessage {
        self.sock.send_to(raw, self.server).expect("send");
        let mut buf = [0u8; 2048];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).expect("response");
            let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(&buf[..n]) else {
                continue;
            };
            if msg.transaction_id().as_bytes() == &raw[8..20] {
                return msg;
            }
        }
    }

    /// Allocates (401 challenge first) and returns the relayed address.
    pub fn allocate(&mut self) -> SocketAddr {
        let udp: StunAttribute =
            RequestedTrasport::from(supernode_proto::stun_rs::protocols::UDP).into();
        let resp = self.transact(&self.request(ALLOCATE, vec![udp.clone()], false));
        assert_eq!(error_code(&resp), Some(401));
        self.nonce = resp
            .get::<Nonce>()
            .and_then(|n| n.as_nonce().ok())
            .map(|n| n.as_str().to_owned())
            .expect("nonce in 401");
        let resp = self.transact(&self.request(ALLOCATE, vec![udp], true));
        assert_eq!(resp.class(), MessageClass::SuccessResponse, "{resp:?}");
        *resp
            .get::<XorRelayedAddress>()
            .and_then(|a| a.as_xor_relayed_address().ok())
            .expect("relayed address")
            .socket_address()
    }

    pub fn create_permission(&self, peer: SocketAddr) -> Option<u16> {
        let resp = self.transact(&self.request(
            CREATE_PERMMISSION,
            vec![XorPeerAddress::from(peer).into()],
            true,
        ));
        error_code(&resp)
    }

    pub fn channel_bind(&self, channel: u16, peer: SocketAddr) -> Option<u16> {
        let resp = self.transact(&self.request(
            CHANNEL_BIND,
            vec![
                ChannelNumber::new(channel).into(),
                XorPeerAddress::from(peer).into(),
            ],
            true,
        ));
        error_code(&resp)
    }

    pub fn send_channel(&self, channel: u16, data: &[u8]) {
        let mut out = vec![0u8; 4 + data.len()];
        supernode_proto::channel_data::ChannelData { channel, data }
            .encode(&mut out)
            .expect("encode");
        self.sock.send_to(&out, self.server).expect("send");
    }
}

pub fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .and_then(|a| a.as_error_code().ok())
        .map(|e| e.error_code().error_code())
}
