//! Helpers shared by the lab's integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use supernode_natlab::measure::{self, ReflectorRun};
use supernode_natlab::probe::classify::Report;
use supernode_natlab::{Lab, NatKind, Public, Site, Topology};

/// The probe binary Cargo built for these tests.
pub fn probe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_natlab-probe"))
}

/// A lab with a two-address reflector node `rv` and one site `s` of `kind`.
pub fn lab_with(site: Site) -> (Lab, ReflectorRun) {
    let lab = Lab::start(
        &Topology::new()
            .public(Public::new("rv").addrs(2))
            .site(site),
    )
    .unwrap();
    let reflector = measure::start_reflector(&lab, "rv", &probe()).unwrap();
    (lab, reflector)
}

/// Builds a one-site lab of `kind`, probes from its host and asserts the probe measured
/// exactly what the kind promises.
pub fn assert_kind(kind: NatKind) -> Report {
    let (lab, reflector) = lab_with(Site::new("s", kind));
    let report = measure::classify_from(&lab, "s1", &probe(), reflector.servers).unwrap();
    println!("{}: {}", kind.name(), report.to_json());
    let wrong = measure::mismatches(kind, &report);
    assert!(
        wrong.is_empty(),
        "{}: {wrong:?}\nreport: {}",
        kind.name(),
        report.to_json()
    );
    if report.translated {
        let mapped = report.observations.mapped[0].unwrap();
        assert_eq!(
            mapped.ip(),
            lab.site("s").public_addr(),
            "mapped to the site's address"
        );
    }
    report
}
