//! Turning a [`Topology`] into namespaces, veth pairs, bridges, addresses and NAT rules.
//!
//! Layout (interface names are per namespace, so they repeat freely):
//!
//! ```text
//!   internet ns: bridge "inet" ── port pN ═veth═ eth0 of a public node (203.0.113.x)
//!                              └─ port pN ═veth═ wan of a site router (203.0.113.x)
//!   router ns:   bridge "lan" (10.0.k.1/24) ── port hN ═veth═ eth0 of a host (10.0.k.N+1)
//!   double NAT:  internet ═ wan of the CGN; CGN bridge "lan" 100.64.k.1/24 ═ wan of the home
//!                router (100.64.k.2); home router bridge "lan" 10.0.k.1/24 ═ hosts
//! ```
//!
//! Every veth is created from inside one lab namespace with its peer placed directly in
//! another, so nothing ever appears in the root namespace. Forwarding is enabled only in
//! router namespaces; IPv6 is disabled everywhere so router solicitations and DAD do not add
//! noise to measurements.

use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;

use crate::emulator::{self, Emulation};
use crate::lab::{Lab, Node, Role, SiteInfo};
use crate::link::Link;
use crate::nat::{NatKind, RouterRules};
use crate::sys;
use crate::topology::Topology;

/// The internet segment (TEST-NET-3, RFC 5737).
const INTERNET_NET: [u8; 3] = [203, 0, 113];
/// First host number handed out on the internet segment.
const FIRST_PUBLIC_HOST: u8 = 10;
/// Last host number handed out on the internet segment.
const LAST_PUBLIC_HOST: u8 = 250;

/// Sysctls of every namespace.
const COMMON_SYSCTLS: &[&str] = &[
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
];

/// Sysctls of router namespaces: forward, and do not let reverse-path filtering or ICMP
/// redirects interfere with hairpinned or asymmetric traffic.
const ROUTER_SYSCTLS: &[&str] = &[
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
];

/// Hands out internet addresses in declaration order.
struct PublicPool {
    /// Next host number.
    next: u8,
}

impl PublicPool {
    fn take(&mut self) -> Result<Ipv4Addr> {
        if self.next > LAST_PUBLIC_HOST {
            bail!("the internet segment ran out of addresses");
        }
        let [a, b, c] = INTERNET_NET;
        let addr = Ipv4Addr::new(a, b, c, self.next);
        self.next += 1;
        Ok(addr)
    }
}

/// Builds `topology` into `lab`, registering each namespace as soon as it exists so that a
/// failure halfway still tears down what was made.
pub(crate) fn build(lab: &mut Lab, topology: &Topology) -> Result<()> {
    let mut pool = PublicPool {
        next: FIRST_PUBLIC_HOST,
    };
    let internet = add_namespace(lab, "internet", Role::Internet)?;
    sys::ip_batch(
        &internet,
        &[
            "link add inet type bridge forward_delay 0 stp_state 0".into(),
            "link set inet up".into(),
        ],
    )?;
    let mut port = 0usize;
    let mut next_port = || {
        port += 1;
        format!("p{port}")
    };

    for p in &topology.publics {
        let addrs = (0..p.addrs)
            .map(|_| pool.take())
            .collect::<Result<Vec<_>>>()?;
        let netns = add_namespace(lab, &p.name, Role::Public)?;
        attach(
            lab,
            &Uplink {
                netns: &netns,
                dev: "eth0",
                upper: &internet,
                bridge: "inet",
                port: &next_port(),
                addrs: &addrs,
                gateway: None,
                link: &p.link,
            },
        )?;
        set_addrs(lab, &p.name, addrs);
    }

    for (index, site) in topology.sites.iter().enumerate() {
        let k = u8::try_from(index + 1).context("too many sites")?;
        let hosts: Vec<String> = (1..=site.hosts)
            .map(|i| format!("{}{i}", site.name))
            .collect();
        let mut info = SiteInfo {
            name: site.name.clone(),
            kind: site.kind,
            hairpin: site.hairpin,
            public_addr: Ipv4Addr::UNSPECIFIED,
            hosts: hosts.clone(),
            router: None,
            cgn: None,
        };
        if site.kind == NatKind::Public {
            for host in &hosts {
                let addr = pool.take()?;
                let netns = add_namespace(lab, host, Role::Host)?;
                attach(
                    lab,
                    &Uplink {
                        netns: &netns,
                        dev: "eth0",
                        upper: &internet,
                        bridge: "inet",
                        port: &next_port(),
                        addrs: &[addr],
                        gateway: None,
                        link: &site.wan,
                    },
                )?;
                set_addrs(lab, host, vec![addr]);
            }
            info.public_addr = lab.node(&hosts[0]).addr();
            lab.sites.push(info);
            continue;
        }

        let wan_addr = pool.take()?;
        // The router whose LAN the hosts sit on, and the address its `wan` gets.
        let (home, home_wan, home_gw) = if site.kind == NatKind::Double {
            let cgn_name = format!("{}cgn", site.name);
            let cgn = add_namespace(lab, &cgn_name, Role::Cgn)?;
            attach(
                lab,
                &Uplink {
                    netns: &cgn,
                    dev: "wan",
                    upper: &internet,
                    bridge: "inet",
                    port: &next_port(),
                    addrs: &[wan_addr],
                    gateway: None,
                    link: &site.wan,
                },
            )?;
            let cgn_lan = Ipv4Addr::new(100, 64, k, 1);
            router_lan(&cgn, cgn_lan)?;
            router_setup(
                &cgn,
                RouterRules {
                    kind: NatKind::EimApdf,
                    wan_addr,
                    lan_net: (Ipv4Addr::new(100, 64, k, 0), 24),
                    hairpin: false,
                },
            )?;
            set_addrs(lab, &cgn_name, vec![wan_addr, cgn_lan]);
            info.cgn = Some(cgn_name);
            (cgn, Ipv4Addr::new(100, 64, k, 2), Some(cgn_lan))
        } else {
            (internet.clone(), wan_addr, None)
        };
        let router_name = format!("{}router", site.name);
        let router = add_namespace(lab, &router_name, Role::Router)?;
        let (upper_bridge, upper_port) = if site.kind == NatKind::Double {
            ("lan", "c1".to_owned())
        } else {
            ("inet", next_port())
        };
        let wan_link = if site.kind == NatKind::Double {
            Link::default()
        } else {
            site.wan
        };
        attach(
            lab,
            &Uplink {
                netns: &router,
                dev: "wan",
                upper: &home,
                bridge: upper_bridge,
                port: &upper_port,
                addrs: &[home_wan],
                gateway: home_gw,
                link: &wan_link,
            },
        )?;
        let lan_addr = Ipv4Addr::new(10, 0, k, 1);
        router_lan(&router, lan_addr)?;
        let kind = if site.kind == NatKind::Double {
            NatKind::EimApdf
        } else {
            site.kind
        };
        router_setup(
            &router,
            RouterRules {
                kind,
                wan_addr: home_wan,
                lan_net: (Ipv4Addr::new(10, 0, k, 0), 24),
                hairpin: site.hairpin,
            },
        )?;
        set_addrs(lab, &router_name, vec![home_wan, lan_addr]);

        for (i, host) in hosts.iter().enumerate() {
            let n = u8::try_from(i + 2).context("too many hosts")?;
            let addr = Ipv4Addr::new(10, 0, k, n);
            let netns = add_namespace(lab, host, Role::Host)?;
            attach(
                lab,
                &Uplink {
                    netns: &netns,
                    dev: "eth0",
                    upper: &router,
                    bridge: "lan",
                    port: &format!("h{}", i + 1),
                    addrs: &[addr],
                    gateway: Some(lan_addr),
                    link: &site.lan,
                },
            )?;
            set_addrs(lab, host, vec![addr]);
        }
        info.public_addr = wan_addr;
        info.router = Some(router_name);
        lab.sites.push(info);
    }
    Ok(())
}

/// Creates the namespace for node `name`, registers it, and applies common settings.
fn add_namespace(lab: &mut Lab, name: &str, role: Role) -> Result<String> {
    let netns = lab.netns_name(name);
    sys::run("ip", &["netns", "add", &netns])?;
    lab.nodes.push(Node {
        name: name.to_owned(),
        netns: netns.clone(),
        role,
        addrs: Vec::new(),
    });
    sys::ip_batch(&netns, &["link set lo up".into()])?;
    sys::sysctl(&netns, COMMON_SYSCTLS)?;
    Ok(netns)
}

/// Records the addresses of node `name`.
fn set_addrs(lab: &mut Lab, name: &str, addrs: Vec<Ipv4Addr>) {
    if let Some(node) = lab.nodes.iter_mut().find(|n| n.name == name) {
        node.addrs = addrs;
    }
}

/// How a node's interface connects to the bridge of the namespace above it.
struct Uplink<'a> {
    /// The node's namespace.
    netns: &'a str,
    /// The node's interface (`eth0` or `wan`).
    dev: &'a str,
    /// The namespace holding the bridge.
    upper: &'a str,
    /// The bridge (`inet` or `lan`).
    bridge: &'a str,
    /// Name of the veth end on the bridge; unique within `upper`.
    port: &'a str,
    /// Addresses of `dev`, all /24.
    addrs: &'a [Ipv4Addr],
    /// Default gateway of the node, if it needs one.
    gateway: Option<Ipv4Addr>,
    /// Conditions of the segment.
    link: &'a Link,
}

/// Connects `up.dev` to the bridge above through a veth (or, for a conditioned link without
/// netem, through a userspace emulator namespace), addresses it and sets its default route.
fn attach(lab: &mut Lab, up: &Uplink<'_>) -> Result<()> {
    let emulate = !up.link.is_perfect()
        && emulator::emulation(&lab.netns_name("internet")) == Emulation::Userspace;
    if emulate {
        // node dev ═ emu0 [emulator] emu1 ═ port
        let emu_name = format!("{}-{}-{}", up.port, up.bridge, lab.nodes.len());
        let emu = add_namespace(lab, &emu_name, Role::Emulator)?;
        sys::ip_batch(
            up.netns,
            &[format!(
                "link add {} type veth peer name emu0 netns {emu}",
                up.dev
            )],
        )?;
        sys::ip_batch(
            &emu,
            &[format!(
                "link add emu1 type veth peer name {} netns {}",
                up.port, up.upper
            )],
        )?;
        sys::ip_batch(
            &emu,
            &["link set emu0 up".into(), "link set emu1 up".into()],
        )?;
        emulator::offload_off(up.netns, up.dev)?;
        emulator::offload_off(up.upper, up.port)?;
        let proc = emulator::start(&emu, "emu0", "emu1", up.link)?;
        match lab.emulators.get_mut() {
            Ok(e) => e.push(proc),
            Err(poisoned) => poisoned.into_inner().push(proc),
        }
    } else {
        sys::ip_batch(
            up.netns,
            &[format!(
                "link add {} type veth peer name {} netns {}",
                up.dev, up.port, up.upper
            )],
        )?;
    }
    sys::ip_batch(
        up.upper,
        &[
            format!("link set {} master {}", up.port, up.bridge),
            format!("link set {} up", up.port),
        ],
    )?;
    let mut cmds: Vec<String> = up
        .addrs
        .iter()
        .map(|a| format!("addr add {a}/24 dev {}", up.dev))
        .collect();
    cmds.push(format!("link set {} up", up.dev));
    if let Some(gw) = up.gateway {
        cmds.push(format!("route add default via {gw} dev {}", up.dev));
    }
    sys::ip_batch(up.netns, &cmds)?;
    if !emulate {
        up.link
            .apply(up.netns, up.dev)
            .and_then(|()| up.link.apply(up.upper, up.port))
            .with_context(|| format!("netem on {} of {}", up.dev, up.netns))?;
    }
    Ok(())
}

/// Gives a router its LAN bridge with address `addr`/24.
fn router_lan(netns: &str, addr: Ipv4Addr) -> Result<()> {
    sys::ip_batch(
        netns,
        &[
            "link add lan type bridge forward_delay 0 stp_state 0".into(),
            format!("addr add {addr}/24 dev lan"),
            "link set lan up".into(),
        ],
    )
}

/// Enables forwarding and loads the NAT rules.
fn router_setup(netns: &str, rules: RouterRules) -> Result<()> {
    sys::sysctl(netns, ROUTER_SYSCTLS)?;
    sys::nft(netns, &rules.render())
}
