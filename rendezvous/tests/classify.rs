//! The proto RFC 5780 classifier against the rendezvous core, through simulated NATs of every
//! RFC 4787 kind, on a virtual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use supernode_proto::discover::{Behaviour, Classifier, Report};
use supernode_rendezvous::core::{Config, Core, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Independent,
    Address,
    AddressPort,
}

/// A NAT with one public IP and configurable mapping and filtering.
struct Nat {
    public: IpAddr,
    mapping: Kind,
    filtering: Kind,
    next_port: u16,
    maps: HashMap<(SocketAddr, Option<IpAddr>, Option<u16>), u16>,
    back: HashMap<u16, SocketAddr>,
    permissions: HashSet<(u16, IpAddr, u16)>,
}

impl Nat {
    fn new(mapping: Kind, filtering: Kind) -> Self {
        Self {
            public: "198.51.100.1".parse().unwrap(),
            mapping,
            filtering,
            next_port: 40000,
            maps: HashMap::new(),
            back: HashMap::new(),
            permissions: HashSet::new(),
        }
    }

    fn outbound(&mut self, internal: SocketAddr, dest: SocketAddr) -> SocketAddr {
        let key = match self.mapping {
            Kind::Independent => (internal, None, None),
            Kind::Address => (internal, Some(dest.ip()), None),
            Kind::AddressPort => (internal, Some(dest.ip()), Some(dest.port())),
        };
        let next = &mut self.next_port;
        let port = *self.maps.entry(key).or_insert_with(|| {
            *next += 1;
            *next
        });
        self.back.insert(port, internal);
        self.permissions.insert((port, dest.ip(), dest.port()));
        SocketAddr::new(self.public, port)
    }

    fn inbound(&self, from: SocketAddr, to: SocketAddr) -> Option<SocketAddr> {
        let internal = *self.back.get(&to.port())?;
        let allowed = match self.filtering {
            Kind::Independent => true,
            Kind::Address => self
                .permissions
                .iter()
                .any(|(p, ip, _)| *p == to.port() && *ip == from.ip()),
            Kind::AddressPort => self
                .permissions
                .contains(&(to.port(), from.ip(), from.port())),
        };
        allowed.then_some(internal)
    }
}

fn run(nat: Option<Nat>, alternate_ip: bool) -> Report {
    let server: SocketAddr = "192.0.2.1:3578".parse().unwrap();
    let local: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let mut config = Config::new(server);
    config.alternate_port = Some(3579);
    config.alternate_ip = alternate_ip.then(|| "192.0.2.2".parse().unwrap());
    let t0 = Instant::now();
    let mut core = Core::new(config, t0, 0);
    let mut nat = nat;
    let mut c = Classifier::new(server, Some(local), t0);
    let mut now = t0;
    for _ in 0..1000 {
        if let Some(report) = c.report() {
            return report.clone();
        }
        while let Some((dest, bytes)) = c.poll_transmit() {
            let src = match &mut nat {
                Some(n) => n.outbound(local, dest),
                None => local,
            };
            // Sockets the server does not have swallow the datagram.
            if core.config().local_addrs().contains(&dest) {
                core.handle_datagram(now, Transport::Udp { local: dest }, src, &bytes);
            }
        }
        while let Some(t) = core.poll_transmit() {
            let Transport::Udp { local: from } = t.transport else {
                panic!("udp only");
            };
            let delivered = match &nat {
                Some(n) => n.inbound(from, t.remote),
                None => (t.remote == local).then_some(local),
            };
            if delivered.is_some() {
                c.handle_input(now, from, &t.data);
            }
        }
        if c.poll_transmit().is_none()
            && let Some(at) = c.poll_timeout()
        {
            now = now.max(at);
            c.handle_timeout(now);
        }
    }
    panic!("classifier did not finish");
}

fn behaviour(k: Kind) -> Behaviour {
    match k {
        Kind::Independent => Behaviour::EndpointIndependent,
        Kind::Address => Behaviour::AddressDependent,
        Kind::AddressPort => Behaviour::AddressAndPortDependent,
    }
}

#[test]
fn classifies_every_nat_kind_with_two_ips() {
    let kinds = [Kind::Independent, Kind::Address, Kind::AddressPort];
    for mapping in kinds {
        for filtering in kinds {
            let r = run(Some(Nat::new(mapping, filtering)), true);
            assert!(r.alternate_ip);
            assert_eq!(r.nat, Some(true));
            assert_eq!(r.mapping, behaviour(mapping), "{mapping:?}/{filtering:?}");
            assert_eq!(
                r.filtering,
                behaviour(filtering),
                "{mapping:?}/{filtering:?}"
            );
        }
    }
}

#[test]
fn single_ip_server_says_what_it_cannot_tell() {
    let r = run(Some(Nat::new(Kind::Independent, Kind::Independent)), false);
    assert!(!r.alternate_ip);
    assert_eq!(r.other_address, Some("192.0.2.1:3579".parse().unwrap()));
    assert_eq!(r.mapping, Behaviour::EndpointIndependentOrAddressDependent);
    assert_eq!(
        r.filtering,
        Behaviour::EndpointIndependentOrAddressDependent
    );
    let r = run(Some(Nat::new(Kind::AddressPort, Kind::AddressPort)), false);
    assert_eq!(r.mapping, Behaviour::AddressAndPortDependent);
    assert_eq!(r.filtering, Behaviour::AddressAndPortDependent);
}

#[test]
fn no_nat() {
    let r = run(None, true);
    assert_eq!(r.nat, Some(false));
    assert_eq!(r.mapping, Behaviour::EndpointIndependent);
    assert_eq!(r.filtering, Behaviour::EndpointIndependent);
}
