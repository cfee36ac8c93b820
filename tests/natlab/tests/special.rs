//! Double NAT, the UDP-blocking firewall and hairpinning, each checked by a probe that fails
//! on the wrong setup.

mod common;

use supernode_natlab::measure::{self, is_cgn_addr};
use supernode_natlab::{NatKind, Site, require_root};

#[test]
fn double_nat_is_two_translations_deep() {
    if !require_root() {
        return;
    }
    // assert_kind checks hops == 3: a single NAT answers at TTL 2, a double one needs 3.
    let report = common::assert_kind(NatKind::Double);
    let (lab, reflector) = common::lab_with(Site::new("s", NatKind::Double));
    let site = lab.site("s");
    let home_wan = lab.node(site.router().unwrap()).addr();
    assert!(
        is_cgn_addr(home_wan.into()),
        "home router WAN {home_wan} is in 100.64.0.0/10"
    );
    let cgn = lab.node(site.cgn().unwrap());
    assert_eq!(
        site.public_addr(),
        cgn.addr(),
        "the site appears as the CGN's public address"
    );

    // The home router's own traffic is translated once more by the CGN: seen from the
    // internet it comes from the CGN's address, not its 100.64/10 WAN address.
    let router = lab.node(site.router().unwrap());
    let out = router
        .run(
            &[
                common::probe().to_str().unwrap(),
                "send",
                "--to",
                &reflector.servers.primary.to_string(),
            ],
            measure::PROBE_TIMEOUT,
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    let seen: std::net::SocketAddr = v["seen"].as_str().unwrap().parse().unwrap();
    assert_eq!(seen.ip(), cgn.addr());
    assert!(report.translated);
}

#[test]
fn firewall_blocks_udp_and_allows_only_tcp_443() {
    if !require_root() {
        return;
    }
    let report = common::assert_kind(NatKind::UdpBlocked);
    assert!(!report.udp);
    assert_eq!(report.tcp(443), Some(true));
    assert_eq!(report.tcp(80), Some(false));
}

/// Two hosts behind one NAT; the second learns its mapping, the first sends to it.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn hairpin(kind: NatKind, on: bool) -> measure::Hairpin {
    let (lab, reflector) = common::lab_with(Site::new("s", kind).hosts(2).hairpin(on));
    let result = measure::hairpin(&lab, "s1", "s2", &common::probe(), reflector.servers).unwrap();
    println!("{} hairpin {on}: {result:?}", kind.name());
    assert_eq!(result.target.ip(), lab.site("s").public_addr());
    if on {
        let seen = result.seen.expect("hairpinned packet answered");
        assert_eq!(
            seen.ip(),
            lab.site("s").public_addr(),
            "the receiver sees the sender's public mapping, not its LAN address"
        );
    }
    result
}

#[test]
fn hairpin_on_reaches_the_neighbour_via_the_public_address() {
    if require_root() {
        assert!(hairpin(NatKind::EimApdf, true).reached);
        assert!(hairpin(NatKind::EimEif, true).reached);
    }
}

#[test]
fn hairpin_off_drops_traffic_to_the_own_public_address() {
    if require_root() {
        assert!(!hairpin(NatKind::EimApdf, false).reached);
    }
}
