//! Isolation and cleanup: unique names, teardown on drop and on panic, stale sweeping,
//! labs side by side.

mod common;

use std::path::Path;
use std::time::Duration;
use supernode_natlab::{Lab, NatKind, Public, Site, Topology, measure, names, require_root};

fn small() -> Topology {
    Topology::new()
        .public(Public::new("rv").addrs(2))
        .site(Site::new("a", NatKind::EimApdf))
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Whether `pid` is gone or a zombie waiting to be reaped by its (test) parent.
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn drop_removes_namespaces_and_kills_processes() {
    if !require_root() {
        return;
    }
    let lab = Lab::start(&small()).unwrap();
    let namespaces = lab.namespaces();
    // internet, rv, router, host
    assert_eq!(namespaces.len(), 4, "{namespaces:?}");
    assert!(namespaces.iter().all(|n| n.starts_with(lab.prefix())));
    let sleeper = lab.host("a1").spawn(&["sleep", "300"]).unwrap();
    let pid = sleeper.pid();
    assert!(!dead(pid));
    drop(lab);
    assert!(
        namespaces.iter().all(|n| !netns_exists(n)),
        "namespaces left behind"
    );
    assert!(dead(pid), "process inside the lab survived its teardown");
    drop(sleeper);
}

#[test]
fn panic_inside_a_test_still_cleans_up() {
    if !require_root() {
        return;
    }
    let mut seen = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::start(&small()).unwrap();
        seen = lab.namespaces();
        panic!("test failure while the lab is up");
    }));
    assert!(result.is_err());
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|n| !netns_exists(n)),
        "namespaces left after panic: {seen:?}"
    );
}

#[test]
fn stale_namespaces_of_dead_runs_are_swept_live_ones_kept() {
    if !require_root() {
        return;
    }
    // A pid that certainly existed and is certainly gone: a child we started and reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let stale = format!("{}{dead_pid}x0-leftover", names::PREFIX);
    let live = format!("{}{}x999999-keep", names::PREFIX, std::process::id());
    for n in [&stale, &live] {
        let st = std::process::Command::new("ip")
            .args(["netns", "add", n])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let removed = names::sweep_stale_now();
    let stale_gone = !netns_exists(&stale);
    let live_kept = netns_exists(&live);
    names::delete_namespace(&live).unwrap();
    assert!(
        stale_gone,
        "stale namespace not swept (removed: {removed:?})"
    );
    assert!(removed.contains(&stale));
    assert!(live_kept, "a live process' namespace was swept");
}

#[test]
fn parallel_labs_with_the_same_topology_do_not_clash() {
    if !require_root() {
        return;
    }
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let (lab, reflector) = common::lab_with(Site::new("s", NatKind::EimApdf));
                let report =
                    measure::classify_from(&lab, "s1", &common::probe(), reflector.servers)
                        .unwrap();
                assert!(measure::mismatches(NatKind::EimApdf, &report).is_empty());
                lab.prefix().to_owned()
            })
        })
        .collect();
    let mut prefixes: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    prefixes.sort();
    prefixes.dedup();
    assert_eq!(prefixes.len(), 3);
}

#[test]
fn processes_run_inside_their_node_with_output_captured() {
    if !require_root() {
        return;
    }
    let lab = Lab::start(&small()).unwrap();
    let rv = lab.node("rv").addrs().to_vec();
    let out = lab
        .host("a1")
        .run(
            &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout_text().contains("10.0.1.2/24"),
        "{}",
        out.stdout_text()
    );
    let route = lab
        .host("a1")
        .run(
            &["ip", "route", "get", &rv[1].to_string()],
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(
        route.stdout_text().contains("via 10.0.1.1"),
        "{}",
        route.stdout_text()
    );
    // The public node has no route to the private LAN: NAT is the only way in.
    let back = lab
        .node("rv")
        .run(&["ip", "route", "get", "10.0.1.2"], Duration::from_secs(5))
        .unwrap();
    assert!(!back.status.success(), "{}", back.stdout_text());
    let err = lab.host("a1").run(
        &["sh", "-c", "echo oops >&2; exit 3"],
        Duration::from_secs(5),
    );
    let err = err.unwrap();
    assert_eq!(err.status.code(), Some(3));
    assert_eq!(err.stderr, ["oops"]);
}
