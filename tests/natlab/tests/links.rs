//! Link conditions: configured delay, jitter and loss show up in measurements.
//!
//! Uses `tc netem` where the kernel has it and the userspace emulator otherwise
//! (`NATLAB_LINK_EMULATION=netem|userspace` forces one).

mod common;

use std::time::Duration;
use supernode_natlab::measure::{self, ReflectorRun};
use supernode_natlab::{Lab, Link, NatKind, Public, Site, Topology, require_root};

const COUNT: usize = 20;

#[allow(clippy::unwrap_used)]
fn lab(a: Link, b: Link) -> (Lab, ReflectorRun) {
    let lab = Lab::start(
        &Topology::new()
            .public(Public::new("rv").addrs(2))
            .site(Site::new("a", NatKind::EimApdf).wan(a))
            .site(Site::new("b", NatKind::EimApdf).lan(b)),
    )
    .unwrap();
    let reflector = measure::start_reflector(&lab, "rv", &common::probe()).unwrap();
    (lab, reflector)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn delay_shows_up_in_round_trip_time() {
    if !require_root() {
        return;
    }
    let (lab, reflector) = lab(Link::delay_ms(40), Link::default());
    let to = reflector.servers.primary;
    let timeout = Duration::from_secs(1);
    let (slow, lost) = measure::rtt(&lab, "a1", &common::probe(), to, COUNT, timeout).unwrap();
    assert_eq!(lost, 0);
    let (fast, _) = measure::rtt(&lab, "b1", &common::probe(), to, COUNT, timeout).unwrap();
    let (slow_min, slow_med, fast_med) = (*slow.iter().min().unwrap(), median(slow), median(fast));
    println!("delayed: min {slow_min:?} median {slow_med:?}; undelayed median {fast_med:?}");
    // 40 ms each way on the WAN segment: at least 80 ms per round trip.
    assert!(slow_min >= Duration::from_millis(80), "{slow_min:?}");
    assert!(slow_med < Duration::from_millis(130), "{slow_med:?}");
    assert!(fast_med < Duration::from_millis(20), "{fast_med:?}");

    // The conditioned segment carries everything else unchanged: the NAT still measures as
    // configured, TCP included.
    let report = measure::classify_from(&lab, "a1", &common::probe(), reflector.servers).unwrap();
    let wrong = measure::mismatches(NatKind::EimApdf, &report);
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn jitter_spreads_and_loss_drops() {
    if !require_root() {
        return;
    }
    let (lab, reflector) = lab(Link::delay_ms(30).jitter_ms(15), Link::default().loss(30.0));
    let to = reflector.servers.primary;
    let probe = common::probe();
    let (jittery, _) = measure::rtt(&lab, "a1", &probe, to, COUNT, Duration::from_secs(1)).unwrap();
    let spread = *jittery.iter().max().unwrap() - *jittery.iter().min().unwrap();
    println!("jitter: spread {spread:?} over {} samples", jittery.len());
    assert!(spread >= Duration::from_millis(5), "{spread:?}");
    assert!(*jittery.iter().min().unwrap() >= Duration::from_millis(30));

    // 30 % each way: about half of the round trips fail (1 - 0.7²). A warm-up first, so that
    // ARP over the lossy link (retried only once a second) does not inflate the count.
    let warm = Duration::from_secs(1);
    let warmed = (0..20).any(|_| {
        let (answered, _) = measure::rtt(&lab, "b1", &probe, to, 1, warm).unwrap();
        !answered.is_empty()
    });
    assert!(warmed, "no round trip at all over a 30 % lossy link");
    let sent = 40;
    let (_, lost) = measure::rtt(&lab, "b1", &probe, to, sent, Duration::from_millis(200)).unwrap();
    println!("loss: {lost}/{sent} round trips lost");
    assert!((6..=36).contains(&lost), "{lost}/{sent}");
}
