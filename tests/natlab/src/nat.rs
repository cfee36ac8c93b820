//! NAT kinds and the nftables rulesets that realise them inside a router namespace.
//!
//! Linux conntrack already behaves like an endpoint-independent-mapping, address-and-port-
//! dependent-filtering NAT when it masquerades: it keeps the source port when it can, and only
//! lets in packets matching a tracked flow. The other kinds are built on top of that:
//!
//! - Endpoint-independent filtering: a dynamic map `mapped` remembers, for each external UDP port,
//!   the internal address and port that owns it (recorded after source NAT, from conntrack's
//!   original tuple). Inbound packets to a mapped port are DNATed back to its owner.
//! - Address-dependent filtering: the same DNAT, gated by a dynamic set `contacted` of
//!   (remote address, external port) pairs the inside has sent to.
//! - Address-and-port-dependent mapping: source NAT to a port chosen per new flow, from an
//!   incrementing counter (`numgen inc` looked up in a map of ports 20000–24095, sequential)
//!   or at random (`fully-random`).
//! - Hairpinning: packets from the LAN to the router's own public address are DNATed through
//!   `mapped` and source-NATed to the public address, so the peer sees the sender's mapping.
//!
//! The router's interfaces are always named `wan` (upstream) and `lan` (a bridge of its hosts).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::behaviour::{Filtering, Mapping, PortAllocation};

/// What sits between a site's hosts and the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// No NAT: hosts have public addresses on the internet segment.
    Public,
    /// Endpoint-independent mapping and filtering ("full cone").
    EimEif,
    /// Endpoint-independent mapping, address-dependent filtering ("restricted cone").
    EimAdf,
    /// Endpoint-independent mapping, address-and-port-dependent filtering (Linux masquerade).
    EimApdf,
    /// Address-and-port-dependent mapping with sequentially allocated ports ("symmetric").
    ApdmSequential,
    /// Address-and-port-dependent mapping with random ports ("symmetric", hard).
    ApdmRandom,
    /// A home NAT (EIM/APDF) behind a carrier-grade NAT (EIM/APDF) in 100.64.0.0/10.
    Double,
    /// A NATing firewall that drops all outbound UDP and allows only TCP to port 443.
    UdpBlocked,
}

/// Behaviour a probe from behind a [`NatKind`] must measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Whether UDP reaches the internet at all.
    pub udp: bool,
    /// Whether the mapped address differs from the host's own.
    pub translated: bool,
    /// Mapping behaviour, when UDP works.
    pub mapping: Option<Mapping>,
    /// Filtering behaviour, when UDP works.
    pub filtering: Option<Filtering>,
    /// Port allocation of a NAT, `None` without NAT or UDP.
    pub allocation: Option<PortAllocation>,
    /// IP hops (routers + 1) from the host to a public node, when UDP works.
    pub hops: Option<u8>,
    /// Whether TCP to port 443 of a public node connects.
    pub tcp_443: bool,
    /// Whether TCP to another port of a public node connects.
    pub tcp_other: bool,
}

impl NatKind {
    /// Every kind, in the order of the documentation table.
    pub const ALL: [NatKind; 8] = [
        NatKind::Public,
        NatKind::EimEif,
        NatKind::EimAdf,
        NatKind::EimApdf,
        NatKind::ApdmSequential,
        NatKind::ApdmRandom,
        NatKind::Double,
        NatKind::UdpBlocked,
    ];

    /// Short name used in namespace-free contexts: tables, test names, logs.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Public => "public",
            NatKind::EimEif => "eim-eif",
            NatKind::EimAdf => "eim-adf",
            NatKind::EimApdf => "eim-apdf",
            NatKind::ApdmSequential => "apdm-sequential",
            NatKind::ApdmRandom => "apdm-random",
            NatKind::Double => "double",
            NatKind::UdpBlocked => "udp-blocked",
        }
    }

    /// One-line description for tables.
    pub fn description(self) -> &'static str {
        match self {
            NatKind::Public => "no NAT (public host)",
            NatKind::EimEif => "full cone",
            NatKind::EimAdf => "restricted cone",
            NatKind::EimApdf => "port-restricted cone (Linux masquerade default)",
            NatKind::ApdmSequential => "symmetric, sequential ports",
            NatKind::ApdmRandom => "symmetric, random ports",
            NatKind::Double => "home NAT behind carrier-grade NAT (100.64.0.0/10)",
            NatKind::UdpBlocked => "firewall: no outbound UDP, TCP to 443 only",
        }
    }

    /// Whether hairpinning can be switched on for this kind (it needs the `mapped` map).
    pub fn supports_hairpin(self) -> bool {
        matches!(self, NatKind::EimEif | NatKind::EimAdf | NatKind::EimApdf)
    }

    /// What a probe must measure from behind this kind.
    pub fn expected(self) -> Expected {
        let nat = |filtering, allocation, hops| Expected {
            udp: true,
            translated: true,
            mapping: Some(if allocation == PortAllocation::Preserved {
                Mapping::EndpointIndependent
            } else {
                Mapping::AddressAndPortDependent
            }),
            filtering: Some(filtering),
            allocation: Some(allocation),
            hops: Some(hops),
            tcp_443: true,
            tcp_other: true,
        };
        match self {
            NatKind::Public => Expected {
                udp: true,
                translated: false,
                mapping: Some(Mapping::EndpointIndependent),
                filtering: Some(Filtering::EndpointIndependent),
                allocation: None,
                hops: Some(1),
                tcp_443: true,
                tcp_other: true,
            },
            NatKind::EimEif => nat(Filtering::EndpointIndependent, PortAllocation::Preserved, 2),
            NatKind::EimAdf => nat(Filtering::AddressDependent, PortAllocation::Preserved, 2),
            NatKind::EimApdf => nat(
                Filtering::AddressAndPortDependent,
                PortAllocation::Preserved,
                2,
            ),
            NatKind::ApdmSequential => nat(
                Filtering::AddressAndPortDependent,
                PortAllocation::Sequential,
                2,
            ),
            NatKind::ApdmRandom => nat(
                Filtering::AddressAndPortDependent,
                PortAllocation::Random,
                2,
            ),
            NatKind::Double => nat(
                Filtering::AddressAndPortDependent,
                PortAllocation::Preserved,
                3,
            ),
            NatKind::UdpBlocked => Expected {
                udp: false,
                translated: false,
                mapping: None,
                filtering: None,
                allocation: None,
                hops: None,
                tcp_443: true,
                tcp_other: false,
            },
        }
    }
}

/// Seconds a recorded mapping or contacted peer stays in the dynamic sets without traffic,
/// matching conntrack's UDP stream timeout.
const MAPPING_TIMEOUT_S: u32 = 180;

/// Most entries the dynamic sets hold; more concurrent mappings than a lab test ever makes.
const MAPPING_CAPACITY: u32 = 8192;

/// First port of the sequential allocator.
const SEQUENTIAL_BASE: u32 = 20_000;

/// Number of ports the sequential allocator cycles through.
const SEQUENTIAL_SPAN: u32 = 4096;

/// The ruleset of one router namespace.
#[derive(Debug, Clone)]
pub(crate) struct RouterRules {
    /// The kind this router realises; [`NatKind::Double`] routers are built as two
    /// [`NatKind::EimApdf`] routers, and [`NatKind::Public`] has none.
    pub kind: NatKind,
    /// The router's address on `wan`, which all inside traffic is translated to.
    pub wan_addr: Ipv4Addr,
    /// The LAN prefix, for telling hairpinned flows from inbound DNATed ones.
    pub lan_net: (Ipv4Addr, u8),
    /// Whether inside hosts reach each other through the public address.
    pub hairpin: bool,
}

impl RouterRules {
    /// Renders the nftables script (a single `ip natlab` table).
    pub fn render(&self) -> String {
        let w = self.wan_addr;
        let eim = self.kind.supports_hairpin();
        let mut s = String::from("table ip natlab {\n");
        let set_flags = format!(
            "flags dynamic,timeout; timeout {MAPPING_TIMEOUT_S}s; size {MAPPING_CAPACITY};"
        );
        if eim {
            let _ = writeln!(
                s,
                "  map mapped {{ type inet_service : ipv4_addr . inet_service; {set_flags} }}"
            );
        }
        if self.kind == NatKind::EimAdf {
            let _ = writeln!(
                s,
                "  set contacted {{ type ipv4_addr . inet_service; {set_flags} }}"
            );
        }

        s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat;\n");
        match self.kind {
            NatKind::EimEif => s.push_str(
                "    iifname \"wan\" meta l4proto udp dnat ip to udp dport map @mapped\n",
            ),
            NatKind::EimAdf => s.push_str(
                "    iifname \"wan\" ip saddr . udp dport @contacted dnat ip to udp dport map @mapped\n",
            ),
            _ => {}
        }
        if self.hairpin {
            let _ = writeln!(
                s,
                "    iifname \"lan\" ip daddr {w} meta l4proto udp dnat ip to udp dport map @mapped"
            );
        }
        s.push_str("  }\n");

        s.push_str("  chain postrouting {\n    type nat hook postrouting priority srcnat;\n");
        if self.hairpin {
            // `iifname` is not known in postrouting, so hairpinned flows are recognised by a
            // LAN source going back out of the LAN after DNAT.
            let (net, len) = self.lan_net;
            let _ = writeln!(
                s,
                "    oifname \"lan\" ip saddr {net}/{len} ct status dnat snat ip to {w}"
            );
        }
        let udp_nat = match self.kind {
            // `numgen` yields a host-order number and nft does not convert it for the port
            // (an `offset` shows up byte-swapped), so the counter indexes a map of ports.
            NatKind::ApdmSequential => {
                let ports: Vec<String> = (0..SEQUENTIAL_SPAN)
                    .map(|i| format!("{i} : {}", SEQUENTIAL_BASE + i))
                    .collect();
                format!(
                    "snat ip to {w}:numgen inc mod {SEQUENTIAL_SPAN} map {{ {} }}",
                    ports.join(", ")
                )
            }
            NatKind::ApdmRandom => format!("snat ip to {w} fully-random"),
            _ => format!("snat ip to {w}"),
        };
        let _ = writeln!(s, "    oifname \"wan\" meta l4proto udp {udp_nat}");
        let _ = writeln!(s, "    oifname \"wan\" snat ip to {w}");
        s.push_str("  }\n");

        // Runs after source NAT has rewritten the packet, so `udp sport` is the external port.
        s.push_str("  chain record {\n    type filter hook postrouting priority srcnat + 100;\n");
        if eim {
            s.push_str(
                "    oifname \"wan\" meta l4proto udp ct direction original update @mapped { udp sport : ct original ip saddr . ct original proto-src }\n",
            );
        }
        if self.kind == NatKind::EimAdf {
            s.push_str(
                "    oifname \"wan\" meta l4proto udp ct direction original update @contacted { ip daddr . udp sport }\n",
            );
        }
        s.push_str("  }\n");

        s.push_str(
            "  chain forward {\n    type filter hook forward priority filter; policy drop;\n",
        );
        s.push_str("    ct state established,related accept\n");
        if self.kind == NatKind::UdpBlocked {
            s.push_str("    iifname \"lan\" oifname \"wan\" tcp dport 443 accept\n");
        } else {
            s.push_str("    iifname \"lan\" accept\n");
        }
        s.push_str("    ct status dnat accept\n  }\n");

        s.push_str("  chain input {\n    type filter hook input priority filter; policy drop;\n");
        s.push_str("    iifname { \"lo\", \"lan\" } accept\n");
        s.push_str("    ct state established,related accept\n  }\n}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(kind: NatKind, hairpin: bool) -> String {
        RouterRules {
            kind,
            wan_addr: Ipv4Addr::new(203, 0, 113, 7),
            lan_net: (Ipv4Addr::new(10, 0, 1, 0), 24),
            hairpin,
        }
        .render()
    }

    #[test]
    fn masquerade_kind_has_no_inbound_dnat() {
        let r = rules(NatKind::EimApdf, false);
        assert!(r.contains("snat ip to 203.0.113.7\n"));
        assert!(!r.contains("iifname \"wan\" meta l4proto udp dnat"));
        assert!(r.contains("update @mapped"));
        assert!(!r.contains("iifname \"lan\" ip daddr"));
    }

    #[test]
    fn filtering_kinds_gate_dnat_differently() {
        assert!(rules(NatKind::EimEif, false).contains("iifname \"wan\" meta l4proto udp dnat"));
        let adf = rules(NatKind::EimAdf, false);
        assert!(adf.contains("ip saddr . udp dport @contacted dnat"));
        assert!(adf.contains("update @contacted"));
    }

    #[test]
    fn symmetric_kinds_pick_ports_per_flow() {
        let seq = rules(NatKind::ApdmSequential, false);
        assert!(seq.contains("numgen inc mod 4096 map { 0 : 20000, 1 : 20001,"));
        assert!(seq.contains("4095 : 24095 }"));
        assert!(rules(NatKind::ApdmRandom, false).contains("fully-random"));
        assert!(!rules(NatKind::ApdmRandom, false).contains("@mapped"));
    }

    #[test]
    fn hairpin_adds_both_translations() {
        let r = rules(NatKind::EimApdf, true);
        assert!(r.contains("iifname \"lan\" ip daddr 203.0.113.7 meta l4proto udp dnat"));
        assert!(r.contains(
            "oifname \"lan\" ip saddr 10.0.1.0/24 ct status dnat snat ip to 203.0.113.7"
        ));
    }

    #[test]
    fn firewall_only_forwards_tcp_443() {
        let r = rules(NatKind::UdpBlocked, false);
        assert!(r.contains("tcp dport 443 accept"));
        assert!(!r.contains("iifname \"lan\" accept"));
    }

    #[test]
    fn expectations_are_consistent() {
        for kind in NatKind::ALL {
            let e = kind.expected();
            assert_eq!(e.udp, e.mapping.is_some(), "{kind:?}");
            assert_eq!(e.udp, e.hops.is_some(), "{kind:?}");
            assert_eq!(e.translated, e.allocation.is_some(), "{kind:?}");
        }
    }
}
