//! Prometheus metrics for the relay, served over HTTP.
//!
//! The core counts into plain integers ([`Stats`]); the driver calls [`Metrics::sync`] a few
//! times a second to add the increments to these Prometheus counters and set the gauges. The
//! HTTP endpoint renders the registry in the OpenMetrics text format, so values move while an
//! allocation is still open.

use crate::server::stats::{AllocResult, AuthFailure, Direction, Drop, QuotaKind, Stats};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// A single label named `result`, `reason`, `kind`, `direction` or `transport`.
macro_rules! label_set {
    ($name:ident, $field:ident) => {
        /// Label set for one family.
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        pub struct $name {
            /// The label value.
            pub $field: &'static str,
        }
    };
}
label_set!(ResultLabel, result);
label_set!(ReasonLabel, reason);
label_set!(KindLabel, kind);
label_set!(DirectionLabel, direction);
label_set!(TransportLabel, transport);

/// Gauges the driver reads from the core and from its own tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Allocations that exist.
    pub allocations: usize,
    /// Active permissions.
    pub permissions: usize,
    /// Active channels.
    pub channels: usize,
    /// Open TCP/TLS client connections.
    pub connections: usize,
}

/// Every relay metric. Cloning shares the underlying values.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    allocations_active: Gauge,
    permissions_active: Gauge,
    channels_active: Gauge,
    connections_active: Gauge,
    allocations: Family<ResultLabel, Counter>,
    allocations_closed: Counter,
    auth_failures: Family<ReasonLabel, Counter>,
    dropped: Family<ReasonLabel, Counter>,
    quota_rejections: Family<KindLabel, Counter>,
    rate_limited: Counter,
    packets: Family<DirectionLabel, Counter>,
    bytes: Family<DirectionLabel, Counter>,
    binding_requests: Counter,
    connections: Family<TransportLabel, Counter>,
    connections_refused: Counter,
    send_failures: Counter,
    announcements: Family<ResultLabel, Counter>,
    connections_closed: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them under the `supernode_relay` prefix.
    pub fn new() -> (Self, Arc<Registry>) {
        let m = Self::default();
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("supernode_relay");
        r.register(
            "allocations_active",
            "Allocations that currently exist",
            m.allocations_active.clone(),
        );
        r.register(
            "permissions_active",
            "Permissions currently installed",
            m.permissions_active.clone(),
        );
        r.register(
            "channels_active",
            "Channel bindings currently active",
            m.channels_active.clone(),
        );
        r.register(
            "connections_active",
            "Open TCP and TLS client connections",
            m.connections_active.clone(),
        );
        r.register(
            "allocations",
            "Allocate requests by result",
            m.allocations.clone(),
        );
        r.register(
            "allocations_closed",
            "Allocations that ended (expiry, refresh to zero, connection close)",
            m.allocations_closed.clone(),
        );
        r.register(
            "auth_failures",
            "Requests that failed authentication, by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "dropped_packets",
            "Packets dropped without an answer, by reason",
            m.dropped.clone(),
        );
        r.register(
            "quota_rejections",
            "Requests refused by a quota, by kind",
            m.quota_rejections.clone(),
        );
        r.register(
            "rate_limited",
            "Unauthenticated requests dropped by the per-source rate limit",
            m.rate_limited.clone(),
        );
        r.register(
            "relayed_packets",
            "Packets relayed, by direction",
            m.packets.clone(),
        );
        r.register(
            "relayed_bytes",
            "Payload bytes relayed, by direction",
            m.bytes.clone(),
        );
        r.register(
            "binding_requests",
            "STUN Binding requests answered",
            m.binding_requests.clone(),
        );
        r.register(
            "connections",
            "TCP and TLS connections accepted, by transport",
            m.connections.clone(),
        );
        r.register(
            "connections_refused",
            "TCP and TLS connections refused at the connection limit",
            m.connections_refused.clone(),
        );
        r.register(
            "send_failures",
            "Packets the kernel refused to send (buffer full, unreachable)",
            m.send_failures.clone(),
        );
        r.register(
            "connections_closed",
            "TCP and TLS connections closed, by reason (framing, tls_error and oversize are bad input)",
            m.connections_closed.clone(),
        );
        r.register(
            "announcements",
            "Relay-directory announcements answered by the rendezvous, by result",
            m.announcements.clone(),
        );
        // Make every labelled series visible from the start, at zero.
        for r in AllocResult::ALL {
            let _ = m
                .allocations
                .get_or_create(&ResultLabel { result: r.label() });
        }
        for r in AuthFailure::ALL {
            let _ = m
                .auth_failures
                .get_or_create(&ReasonLabel { reason: r.label() });
        }
        for r in Drop::ALL {
            let _ = m.dropped.get_or_create(&ReasonLabel { reason: r.label() });
        }
        for k in QuotaKind::ALL {
            let _ = m
                .quota_rejections
                .get_or_create(&KindLabel { kind: k.label() });
        }
        for d in Direction::ALL {
            let _ = m.packets.get_or_create(&DirectionLabel {
                direction: d.label(),
            });
            let _ = m.bytes.get_or_create(&DirectionLabel {
                direction: d.label(),
            });
        }
        (m, Arc::new(root))
    }

    /// Adds what the core counted since `last` and sets the gauges; updates `last`.
    pub fn sync(&self, last: &mut Stats, now: &Stats, gauges: Gauges) {
        for r in AllocResult::ALL {
            let i = *r as usize;
            self.allocations
                .get_or_create(&ResultLabel { result: r.label() })
                .inc_by(now.allocations[i] - last.allocations[i]);
        }
        for r in AuthFailure::ALL {
            let i = *r as usize;
            self.auth_failures
                .get_or_create(&ReasonLabel { reason: r.label() })
                .inc_by(now.auth_failures[i] - last.auth_failures[i]);
        }
        for r in Drop::ALL {
            let i = *r as usize;
            self.dropped
                .get_or_create(&ReasonLabel { reason: r.label() })
                .inc_by(now.drops[i] - last.drops[i]);
        }
        let rl = Drop::RateLimited as usize;
        self.rate_limited.inc_by(now.drops[rl] - last.drops[rl]);
        for k in QuotaKind::ALL {
            let i = *k as usize;
            self.quota_rejections
                .get_or_create(&KindLabel { kind: k.label() })
                .inc_by(now.quota[i] - last.quota[i]);
        }
        for d in Direction::ALL {
            let i = *d as usize;
            let label = DirectionLabel {
                direction: d.label(),
            };
            self.packets
                .get_or_create(&label)
                .inc_by(now.packets[i] - last.packets[i]);
            self.bytes
                .get_or_create(&label)
                .inc_by(now.bytes[i] - last.bytes[i]);
        }
        self.allocations_closed
            .inc_by(now.allocations_closed - last.allocations_closed);
        self.binding_requests
            .inc_by(now.binding_requests - last.binding_requests);
        self.allocations_active.set(gauges.allocations as i64);
        self.permissions_active.set(gauges.permissions as i64);
        self.channels_active.set(gauges.channels as i64);
        self.connections_active.set(gauges.connections as i64);
        *last = now.clone();
    }

    /// Counts an accepted TCP or TLS connection.
    pub fn connection_accepted(&self, tls: bool) {
        let transport = if tls { "tls" } else { "tcp" };
        self.connections
            .get_or_create(&TransportLabel { transport })
            .inc();
    }

    /// Counts a rendezvous's answer to an announcement.
    pub fn announcement(&self, acked: bool) {
        let result = if acked { "acked" } else { "refused" };
        self.announcements
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts a packet the socket would not take.
    pub fn send_failed(&self) {
        self.send_failures.inc();
    }

    /// Counts a closed TCP or TLS connection.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a connection refused at the limit.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }
}

/// Renders the registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// Serves `GET /metrics` (and `GET /healthz`) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        render(&registry),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_adds_increments_and_renders() {
        let (m, registry) = Metrics::new();
        let mut last = Stats::default();
        let mut now = Stats::default();
        now.packets[Direction::ClientToPeer as usize] = 5;
        now.bytes[Direction::ClientToPeer as usize] = 500;
        now.drops[Drop::RateLimited as usize] = 3;
        m.sync(
            &mut last,
            &now,
            Gauges {
                allocations: 2,
                ..Gauges::default()
            },
        );
        now.packets[Direction::ClientToPeer as usize] = 7;
        m.sync(
            &mut last,
            &now,
            Gauges {
                allocations: 1,
                ..Gauges::default()
            },
        );
        let text = render(&registry);
        assert!(
            text.contains("supernode_relay_relayed_packets_total{direction=\"client_to_peer\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("supernode_relay_relayed_bytes_total{direction=\"client_to_peer\"} 500")
        );
        assert!(text.contains("supernode_relay_rate_limited_total 3"));
        assert!(text.contains("supernode_relay_dropped_packets_total{reason=\"rate_limited\"} 3"));
        assert!(text.contains("supernode_relay_allocations_active 1"));
        assert!(text.contains("supernode_relay_allocations_total{result=\"ok\"} 0"));
    }
}
