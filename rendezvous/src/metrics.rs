//! Prometheus metrics, updated by the driver after every turn of its loop.
//!
//! The core keeps plain counters ([`crate::core::Stats`]); [`Metrics::sync`] adds what changed
//! since the last call, so the exported values are live without the core knowing about
//! Prometheus.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use supernode_proto::signal::NatBehaviour;

use crate::core::{ConnectOutcome, Core, DropReason, MappingClass, Stats};

/// Label of a drop counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: &'static str,
}

/// Label of the connect outcome counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// How it ended.
    pub outcome: &'static str,
}

/// Label of the NAT class counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    /// The class.
    pub class: &'static str,
}

/// Labels of the NAT report counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NatLabel {
    /// Mapping behaviour.
    pub mapping: &'static str,
    /// Filtering behaviour.
    pub filtering: &'static str,
}

/// Label of the relay load gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayLabel {
    /// The relay id.
    pub relay: String,
}

/// Every metric of a rendezvous node.
#[derive(Debug, Default)]
pub struct Metrics {
    registered_peers: Gauge,
    registrations: Counter,
    expiries: Counter,
    connects: Family<OutcomeLabel, Counter>,
    punches: Counter,
    nat_mapping: Family<ClassLabel, Counter>,
    nat_reported: Family<NatLabel, Counter>,
    relays: Gauge,
    relay_load: Family<RelayLabel, Gauge>,
    announcements: Counter,
    bindings: Counter,
    bindings_changed: Counter,
    received: Counter,
    sent: Counter,
    dropped: Family<ReasonLabel, Counter>,
    /// Drops decided by the driver itself (send errors, full connection queues).
    pub driver_dropped: Family<ReasonLabel, Counter>,
    /// Open TCP connections.
    pub tcp_connections: Gauge,
    /// The core's counters at the last sync.
    last: std::sync::Mutex<Stats>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> std::sync::Arc<Self> {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("rendezvous");
        r.register(
            "registered_peers",
            "Peers registered now",
            m.registered_peers.clone(),
        );
        r.register(
            "registrations",
            "Successful registrations",
            m.registrations.clone(),
        );
        r.register(
            "expiries",
            "Peers removed for silence or a closed connection",
            m.expiries.clone(),
        );
        r.register(
            "connect_requests",
            "Connect requests by outcome",
            m.connects.clone(),
        );
        r.register("punches", "Hole punches coordinated", m.punches.clone());
        r.register(
            "nat_mapping_observed",
            "NAT mapping behaviour seen in clients' discovery probes",
            m.nat_mapping.clone(),
        );
        r.register(
            "nat_reported",
            "NAT behaviour classes peers discovered and reported, once per change per peer",
            m.nat_reported.clone(),
        );
        r.register("relays", "Relays known and active", m.relays.clone());
        r.register(
            "relay_load_permille",
            "Relay load in thousandths of capacity",
            m.relay_load.clone(),
        );
        r.register(
            "relay_announcements",
            "Relay announcements accepted",
            m.announcements.clone(),
        );
        r.register(
            "binding_requests",
            "STUN Binding requests answered",
            m.bindings.clone(),
        );
        r.register(
            "binding_changed_origin",
            "Binding responses sent from another address (CHANGE-REQUEST)",
            m.bindings_changed.clone(),
        );
        r.register("messages_received", "Messages received", m.received.clone());
        r.register("messages_sent", "Messages sent", m.sent.clone());
        r.register(
            "dropped",
            "Messages dropped by the core, by reason",
            m.dropped.clone(),
        );
        r.register(
            "driver_dropped",
            "Messages dropped by the driver, by reason",
            m.driver_dropped.clone(),
        );
        r.register(
            "tcp_connections",
            "Open TCP connections",
            m.tcp_connections.clone(),
        );
        std::sync::Arc::new(m)
    }

    /// Counts a drop decided by the driver.
    pub fn driver_drop(&self, reason: &'static str) {
        self.driver_dropped
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Brings every metric up to date with the core.
    pub fn sync(&self, core: &Core) {
        let s = core.stats();
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let add = |c: &Counter, now: u64, before: u64| {
            c.inc_by(now.saturating_sub(before));
        };
        add(&self.registrations, s.registrations, last.registrations);
        add(&self.expiries, s.expiries, last.expiries);
        add(&self.punches, s.punches, last.punches);
        add(&self.announcements, s.announcements, last.announcements);
        add(&self.bindings, s.bindings, last.bindings);
        add(
            &self.bindings_changed,
            s.bindings_changed,
            last.bindings_changed,
        );
        add(&self.received, s.received, last.received);
        add(&self.sent, s.sent, last.sent);
        for r in DropReason::ALL {
            let (now, before) = (s.drops(r), last.drops(r));
            if now != before {
                let c = self
                    .dropped
                    .get_or_create(&ReasonLabel { reason: r.label() });
                add(&c, now, before);
            }
        }
        for o in ConnectOutcome::ALL {
            let (now, before) = (s.connects(o), last.connects(o));
            if now != before {
                let c = self
                    .connects
                    .get_or_create(&OutcomeLabel { outcome: o.label() });
                add(&c, now, before);
            }
        }
        for k in MappingClass::ALL {
            let (now, before) = (s.mappings(k), last.mappings(k));
            if now != before {
                let c = self
                    .nat_mapping
                    .get_or_create(&ClassLabel { class: k.label() });
                add(&c, now, before);
            }
        }
        for m in NatBehaviour::ALL {
            for f in NatBehaviour::ALL {
                let (now, before) = (s.nat_reports(m, f), last.nat_reports(m, f));
                if now != before {
                    let label = NatLabel {
                        mapping: m.label(),
                        filtering: f.label(),
                    };
                    add(&self.nat_reported.get_or_create(&label), now, before);
                }
            }
        }
        *last = s.clone();
        self.registered_peers
            .set(i64::try_from(core.peer_count()).unwrap_or(i64::MAX));
    }

    /// Refreshes the relay gauges (a relay that left disappears).
    pub fn sync_relays(&self, core: &Core) {
        let loads = core.relay_loads();
        self.relays
            .set(i64::try_from(loads.len()).unwrap_or(i64::MAX));
        self.relay_load.clear();
        for (relay, load) in loads {
            self.relay_load
                .get_or_create(&RelayLabel { relay })
                .set(i64::from(load));
        }
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
