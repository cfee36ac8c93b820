//! Starts a rendezvous node in-process on loopback ports chosen by the OS.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use supernode_rendezvous::config::Config;
use supernode_rendezvous::{driver, http, metrics};
use tokio::sync::oneshot;

pub struct Node {
    pub udp: Vec<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    http: tokio::task::JoinHandle<()>,
}

impl Node {
    /// A node on 127.0.0.1 (and 127.0.0.2 when `two_ips`), with `edit` applied to its config.
    pub async fn start(two_ips: bool, edit: impl FnOnce(&mut Config)) -> Node {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            alternate_port: 0,
            ..Config::default()
        };
        if two_ips {
            config.alternate_ip = Some("127.0.0.2".parse().unwrap());
        }
        edit(&mut config);
        let core = config.core([3; 32]).unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = metrics::Metrics::new(&mut registry);
        let tls = config
            .tls()
            .unwrap()
            .map(|(addr, cert, key)| (addr, driver::tls::acceptor(cert, key).unwrap()));
        let options = driver::Options {
            core,
            tcp: config.tcp,
            max_tcp_connections: config.max_tcp_connections,
            tls,
        };
        let server = driver::Server::bind(options, metrics).await.unwrap();
        let udp = server.udp_addrs();
        let tcp = server.tcp_addr();
        let tls = server.tls_addr();
        let (metrics, http) = http::serve("127.0.0.1:0".parse().unwrap(), Arc::new(registry))
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Node {
            udp,
            tcp,
            tls,
            metrics,
            stop: Some(stop),
            task,
            http,
        }
    }

    pub fn primary(&self) -> SocketAddr {
        self.udp[0]
    }

    /// The metrics page.
    pub async fn scrape(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// The value of one sample line, e.g. `rendezvous_punches_total`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let page = self.scrape().await;
        page.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until a sample reaches `want`: metrics follow the core within 100 ms.
    pub async fn wait_metric(&self, sample: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let got = self.metric(sample).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sample} is {got}, expected {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
        self.http.abort();
    }
}
