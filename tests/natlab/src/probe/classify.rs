//! Turning raw probe observations into RFC 4787 behaviour, and the probe's JSON report.

use serde_json::{Value, json};
use std::net::SocketAddr;

use crate::behaviour::{Filtering, Mapping, PortAllocation};

/// Largest step between consecutive mapped ports still counted as sequential allocation.
pub const MAX_SEQUENTIAL_STEP: i32 = 8;

/// What the client observed, before interpretation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// The local address of the mapping-test socket.
    pub local: Option<SocketAddr>,
    /// Mapped addresses of one local socket towards the reflector's primary, same-address-
    /// other-port, other-address-same-port and other-address-other-port endpoints, in that
    /// order; `None` where no answer came.
    pub mapped: [Option<SocketAddr>; 4],
    /// Whether an answer from the other address and port reached a fresh mapping.
    pub other_address_reached: bool,
    /// Whether an answer from the same address, other port reached a fresh mapping.
    pub other_port_reached: bool,
    /// Smallest IP TTL with which a request was answered.
    pub hops: Option<u8>,
    /// TCP ports of the reflector tried, and whether each connected.
    pub tcp: Vec<(u16, bool)>,
}

/// The probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The raw observations.
    pub observations: Observations,
    /// Whether UDP to the reflector works at all.
    pub udp: bool,
    /// Whether the mapped address differs from the local one.
    pub translated: bool,
    /// Mapping behaviour, when all four mapping answers came.
    pub mapping: Option<Mapping>,
    /// Filtering behaviour, when UDP works.
    pub filtering: Option<Filtering>,
    /// Port allocation, when translated.
    pub allocation: Option<PortAllocation>,
}

/// Interprets `obs`.
pub fn classify(obs: Observations) -> Report {
    let udp = obs.mapped[0].is_some();
    let translated = udp && obs.mapped[0] != obs.local;
    let mapping = match obs.mapped {
        [Some(a), Some(b), Some(c), Some(d)] => Some(if a == b && a == c && a == d {
            Mapping::EndpointIndependent
        } else if a == b && c == d {
            Mapping::AddressDependent
        } else {
            Mapping::AddressAndPortDependent
        }),
        _ => None,
    };
    let filtering = udp.then_some(if obs.other_address_reached {
        Filtering::EndpointIndependent
    } else if obs.other_port_reached {
        Filtering::AddressDependent
    } else {
        Filtering::AddressAndPortDependent
    });
    let allocation = translated.then(|| allocation(&obs));
    Report {
        observations: obs,
        udp,
        translated,
        mapping,
        filtering,
        allocation,
    }
}

/// Port allocation from the mapping test's ports.
fn allocation(obs: &Observations) -> PortAllocation {
    let local = obs.local.map(|l| l.port());
    let mut ports: Vec<u16> = obs.mapped.iter().flatten().map(SocketAddr::port).collect();
    if ports.iter().all(|p| Some(*p) == local) {
        return PortAllocation::Preserved;
    }
    ports.dedup();
    let sequential = ports.len() > 1
        && ports
            .windows(2)
            .all(|w| (1..=MAX_SEQUENTIAL_STEP).contains(&(i32::from(w[1]) - i32::from(w[0]))));
    if sequential {
        PortAllocation::Sequential
    } else {
        PortAllocation::Random
    }
}

impl Report {
    /// The report as JSON (what `natlab-probe classify` prints).
    pub fn to_json(&self) -> Value {
        let o = &self.observations;
        let addr = |a: &Option<SocketAddr>| a.map(|a| a.to_string());
        json!({
            "local": addr(&o.local),
            "udp": self.udp,
            "translated": self.translated,
            "mapped": o.mapped.iter().map(addr).collect::<Vec<_>>(),
            "mapping": self.mapping.map(|m| m.name()),
            "filtering": self.filtering.map(|f| f.name()),
            "allocation": self.allocation.map(|p| p.name()),
            "other_address_reached": o.other_address_reached,
            "other_port_reached": o.other_port_reached,
            "hops": o.hops,
            "tcp": o.tcp.iter().map(|(p, ok)| json!({"port": p, "connected": ok})).collect::<Vec<_>>(),
        })
    }

    /// Parses [`Report::to_json`] output back.
    pub fn from_json(v: &Value) -> Option<Report> {
        let addr = |v: &Value| v.as_str().and_then(|s| s.parse().ok());
        let mapped_list = v.get("mapped")?.as_array()?;
        let mut mapped = [None; 4];
        for (slot, m) in mapped.iter_mut().zip(mapped_list) {
            *slot = addr(m);
        }
        let tcp = v
            .get("tcp")?
            .as_array()?
            .iter()
            .filter_map(|t| {
                let port = u16::try_from(t.get("port")?.as_u64()?).ok()?;
                Some((port, t.get("connected")?.as_bool()?))
            })
            .collect();
        let obs = Observations {
            local: v.get("local").and_then(addr),
            mapped,
            other_address_reached: v.get("other_address_reached")?.as_bool()?,
            other_port_reached: v.get("other_port_reached")?.as_bool()?,
            hops: v
                .get("hops")
                .and_then(Value::as_u64)
                .and_then(|h| u8::try_from(h).ok()),
            tcp,
        };
        Some(classify(obs))
    }

    /// Whether TCP to `port` connected, if it was tried.
    pub fn tcp(&self, port: u16) -> Option<bool> {
        self.observations
            .tcp
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, ok)| *ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn obs(mapped: [&str; 4]) -> Observations {
        Observations {
            local: a("10.0.1.2:5000"),
            mapped: mapped.map(a),
            ..Observations::default()
        }
    }

    #[test]
    fn mapping_kinds() {
        let r = classify(obs(["203.0.113.9:5000"; 4]));
        assert_eq!(r.mapping, Some(Mapping::EndpointIndependent));
        assert_eq!(r.allocation, Some(PortAllocation::Preserved));
        assert!(r.translated);
        assert_eq!(r.filtering, Some(Filtering::AddressAndPortDependent));

        let r = classify(obs(["1.1.1.1:7", "1.1.1.1:7", "1.1.1.1:9", "1.1.1.1:9"]));
        assert_eq!(r.mapping, Some(Mapping::AddressDependent));

        let r = classify(obs([
            "1.1.1.1:20001",
            "1.1.1.1:20002",
            "1.1.1.1:20003",
            "1.1.1.1:20004",
        ]));
        assert_eq!(r.mapping, Some(Mapping::AddressAndPortDependent));
        assert_eq!(r.allocation, Some(PortAllocation::Sequential));

        let r = classify(obs([
            "1.1.1.1:40001",
            "1.1.1.1:2002",
            "1.1.1.1:61003",
            "1.1.1.1:9004",
        ]));
        assert_eq!(r.allocation, Some(PortAllocation::Random));
    }

    #[test]
    fn no_nat_and_no_udp() {
        let mut o = obs(["10.0.1.2:5000"; 4]);
        o.other_address_reached = true;
        let r = classify(o);
        assert!(!r.translated);
        assert_eq!(r.allocation, None);
        assert_eq!(r.filtering, Some(Filtering::EndpointIndependent));

        let r = classify(Observations::default());
        assert!(!r.udp);
        assert_eq!((r.mapping, r.filtering), (None, None));
    }

    #[test]
    fn json_round_trip() {
        let mut o = obs(["1.1.1.1:7", "1.1.1.1:8", "1.1.1.1:9", "1.1.1.1:10"]);
        o.other_port_reached = true;
        o.hops = Some(3);
        o.tcp = vec![(443, true), (80, false)];
        let r = classify(o);
        let back = Report::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.tcp(80), Some(false));
        assert_eq!(back.filtering, Some(Filtering::AddressDependent));
    }
}
