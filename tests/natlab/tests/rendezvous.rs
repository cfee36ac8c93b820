//! The rendezvous' RFC 5780 discovery (`supernode-rendezvous discover`), run from behind each
//! NAT kind, reports the configured mapping and filtering — and agrees with the lab's own probe.
//!
//! Needs the `supernode-rendezvous` binary: `cargo build -p supernode-rendezvous` with the same
//! target directory, or `SUPERNODE_RENDEZVOUS_BIN=/path`. Without it the test is skipped with
//! a printed reason, except under `CI=true`, where it fails.

mod common;

use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use supernode_natlab::measure::{self, REFLECTOR_PORTS};
use supernode_natlab::probe::classify::Report;
use supernode_natlab::{Lab, NatKind, Node, Public, Site, Topology, require_root, table};

/// Port of the rendezvous' primary address (the reflector holds 3478/3479).
const RV_PORT: u16 = 3578;
/// Port of its RFC 5780 alternate address.
const RV_ALT_PORT: u16 = 3579;
/// How long the rendezvous may take to answer its first Binding.
const START_TIMEOUT: Duration = Duration::from_secs(10);

fn rendezvous_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SUPERNODE_RENDEZVOUS_BIN") {
        return Some(PathBuf::from(p));
    }
    let probe = common::probe();
    let bin = probe.parent()?.join("supernode-rendezvous");
    bin.is_file().then_some(bin)
}

/// Runs `supernode-rendezvous discover --json` on `node`.
#[allow(clippy::unwrap_used)]
fn discover(node: &Node, bin: &str, server: &str) -> Value {
    let out = node
        .run(
            &[bin, "discover", "--server", server, "--json"],
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(
        out.status.success(),
        "discover on {}: {}",
        node.name(),
        out.stderr_text()
    );
    serde_json::from_str(&out.stdout_text()).unwrap()
}

#[test]
fn discovery_from_behind_each_nat_reports_the_configured_behaviour() {
    if !require_root() {
        return;
    }
    let Some(bin) = rendezvous_bin() else {
        // tests/run-all.sh builds every binary first, so under CI a missing one is a failure.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no supernode-rendezvous binary next to natlab-probe under CI=true"
        );
        eprintln!(
            "skipping rendezvous discovery test: no supernode-rendezvous binary next to \
             natlab-probe (run `cargo build -p supernode-rendezvous` first)"
        );
        return;
    };
    let bin = bin.to_str().unwrap().to_owned();
    let mut topology = Topology::new().public(Public::new("rv").addrs(2));
    for kind in NatKind::ALL {
        topology = topology.site(Site::new(&kind.name().replace('-', ""), kind));
    }
    let lab = Lab::start(&topology).unwrap();
    let rv = lab.node("rv");
    let [a, b] = rv.addrs() else {
        panic!("rv has two addresses")
    };
    let server = format!("{a}:{RV_PORT}");
    let _rendezvous = rv
        .spawn(&[
            bin.as_str(),
            "run",
            "--listen",
            &server,
            "--alternate-ip",
            &b.to_string(),
            "--alternate-port",
            &RV_ALT_PORT.to_string(),
            "--no-tcp",
            "--metrics",
            "127.0.0.1:9578",
        ])
        .unwrap();
    let reflector = measure::start_reflector(&lab, "rv", &common::probe()).unwrap();
    assert_eq!(reflector.servers.primary.port(), REFLECTOR_PORTS[0]);

    // Ready when a public host gets a mapped address back.
    let public_host = lab.node(&lab.site("public").hosts()[0]);
    let deadline = Instant::now() + START_TIMEOUT;
    while discover(public_host, &bin, &server)["mapped"].is_null() {
        assert!(
            Instant::now() < deadline,
            "rendezvous did not answer within {START_TIMEOUT:?}"
        );
    }

    let results: Vec<(NatKind, Value, Report)> = std::thread::scope(|scope| {
        let handles: Vec<_> = lab
            .sites()
            .iter()
            .map(|site| {
                let (bin, server, servers) = (&bin, &server, reflector.servers);
                let lab = &lab;
                scope.spawn(move || {
                    let host = lab.node(&site.hosts()[0]);
                    let report = discover(host, bin, server);
                    let probe = measure::classify_from(lab, host.name(), &common::probe(), servers)
                        .unwrap();
                    (site.kind(), report, probe)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut markdown = String::from(
        "| NAT kind | discovery: mapping | discovery: filtering | NAT | UDP blocked | agrees with configuration and probe |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut wrong = Vec::new();
    for (kind, report, probe) in &results {
        let e = kind.expected();
        let mapping = report["mapping"].as_str().unwrap_or("?");
        let filtering = report["filtering"].as_str().unwrap_or("?");
        let blocked = report["udp_blocked"].as_bool();
        let mut problems = Vec::new();
        if blocked != Some(!e.udp) {
            problems.push(format!("udp_blocked {blocked:?}"));
        }
        if e.udp {
            let want = (e.mapping.unwrap().name(), e.filtering.unwrap().name());
            if (mapping, filtering) != want {
                problems.push(format!("expected {want:?}"));
            }
            if report["nat"].as_bool() != Some(e.translated) {
                problems.push(format!("nat {}", report["nat"]));
            }
            if report["alternate_ip"].as_bool() != Some(true) {
                problems.push("server not seen with two IPs".into());
            }
            let probed = (
                probe.mapping.map(|m| m.name()).unwrap_or("?"),
                probe.filtering.map(|f| f.name()).unwrap_or("?"),
            );
            if probed != (mapping, filtering) {
                problems.push(format!("probe measured {probed:?}"));
            }
        }
        let _ = writeln!(
            markdown,
            "| `{}` | {mapping} | {filtering} | {} | {} | {} |",
            kind.name(),
            report["nat"],
            blocked.map_or("?".into(), |b| b.to_string()),
            if problems.is_empty() {
                "yes".to_owned()
            } else {
                format!("**no**: {}", problems.join("; "))
            },
        );
        if !problems.is_empty() {
            wrong.push(format!("{}: {problems:?} report {report}", kind.name()));
        }
    }
    println!("\n{markdown}");
    table::write_doc_section(table::DISCOVERY_SECTION, &markdown).unwrap();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
