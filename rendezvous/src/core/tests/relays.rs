//! The relay directory end to end: an announcer registers, a peer gets relays and credentials.

use std::time::Duration;

use supernode_proto::credentials::{RestUsername, rest_password};
use supernode_proto::signal::announce::{self, Announcer};
use supernode_proto::signal::client::Event as ClientEvent;
use supernode_proto::signal::message::Load;
use supernode_proto::signal::{ErrorCode, RelayAddr, RelayTransport};

use super::sim::{Sim, config, server};
use crate::core::{DropReason, Event, Transport};

fn announcer(secret: &[u8], sim: &Sim, id: &str) -> Announcer {
    announce::Announcer::new(
        announce::Config {
            relay_id: id.into(),
            secret: secret.to_vec(),
            addrs: vec![RelayAddr {
                transport: RelayTransport::Udp,
                addr: "192.0.2.50:3478".parse().unwrap(),
            }],
            interval: Duration::from_secs(10),
            rto: Duration::from_millis(500),
        },
        sim.now,
        1_700_000_000_000,
    )
}

fn exchange(sim: &mut Sim, a: &mut Announcer) {
    a.handle_timeout(sim.now);
    let relay_addr = "192.0.2.50:40000".parse().unwrap();
    while let Some(bytes) = a.poll_transmit() {
        sim.core.handle_datagram(
            sim.now,
            Transport::Udp { local: server() },
            relay_addr,
            &bytes,
        );
    }
    while let Some(t) = sim.core.poll_transmit() {
        assert_eq!(t.remote, relay_addr);
        assert!(a.handle_input(sim.now, &t.data));
    }
}

#[test]
fn relays_register_and_peers_get_credentials() {
    let mut sim = Sim::new(config());
    let mut good = announcer(b"relay-secret", &sim, "relay-1");
    good.set_load(Load {
        allocations: 10,
        capacity: 100,
        bandwidth_bps: 0,
    });
    exchange(&mut sim, &mut good);
    assert_eq!(
        good.poll_event(),
        Some(announce::Event::Acked {
            seq: 1_700_000_000_000
        })
    );
    assert_eq!(
        sim.core.poll_event(),
        Some(Event::RelayJoined {
            id: "relay-1".into()
        })
    );
    assert_eq!(sim.core.relay_loads(), [("relay-1".to_string(), 100)]);

    let mut bad = announcer(b"wrong", &sim, "evil");
    exchange(&mut sim, &mut bad);
    assert_eq!(
        bad.poll_event(),
        Some(announce::Event::Refused(ErrorCode::BadMac))
    );
    assert_eq!(sim.core.stats().drops(DropReason::BadRelayMac), 1);
    assert_eq!(sim.core.relay_loads().len(), 1);

    let p = sim.add_peer(1, "198.51.100.1:40000", 10);
    sim.register_all();
    let now = sim.now;
    sim.peers[p].client.request_relays(now, vec![]).unwrap();
    sim.run_for(Duration::from_millis(100));
    let id = sim.peers[p].client.peer_id();
    let (username, password, relays) = sim.peers[p]
        .events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Relays {
                username,
                password,
                relays,
                ..
            } => Some((username.clone(), password.clone(), relays.clone())),
            _ => None,
        })
        .expect("relays answer");
    let parsed = RestUsername::parse(&username).unwrap();
    assert_eq!(parsed.user, id.to_string());
    assert_eq!(parsed.expiry_unix, 1_700_000_000 + 1 + 3600);
    assert_eq!(password, rest_password(b"relay-secret", &username));
    assert_eq!(relays.len(), 1);
    assert_eq!(relays[0].id, "relay-1");

    // A silent relay leaves the answers.
    sim.run_for(Duration::from_secs(31));
    assert!(sim.core.relay_loads().is_empty());
}
