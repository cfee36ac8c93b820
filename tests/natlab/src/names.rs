//! Unique namespace names, and removal of namespaces left behind by killed runs.
//!
//! Every lab gets the prefix `snl<pid>x<n>`: the owning process id and a per-process counter.
//! Two labs in one test binary differ by `n`; two test binaries differ by pid. Because the pid
//! is in the name, a later run can tell a leftover of a killed run (its pid no longer exists)
//! from the lab of a live parallel run (its pid does), and remove only the former.
//!
//! Only namespace names need to be unique: interfaces are created directly inside the lab's
//! namespaces (never in the root namespace), so their short names may repeat across labs.

use anyhow::Result;
use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys;

/// Leading characters of every namespace the lab creates.
pub const PREFIX: &str = "snl";

/// Where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Counter that makes prefixes unique within this process.
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Guards the once-per-process sweep of stale namespaces.
static SWEEP: Once = Once::new();

/// A fresh prefix for one lab, e.g. `snl4242x0`.
pub fn lab_prefix() -> String {
    let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}x{n}", std::process::id())
}

/// The pid encoded in a lab namespace name, if the name is one of ours.
pub fn owner_pid(netns: &str) -> Option<u32> {
    let rest = netns.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('x')?;
    pid.parse().ok()
}

/// Lists lab namespaces currently present.
pub fn lab_namespaces() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| owner_pid(n).is_some())
        .collect()
}

/// Removes lab namespaces whose owning process is gone. Runs at most once per process
/// (labs started later in the same process cannot find new leftovers of dead runs that
/// matter to them: their own prefix is fresh).
pub fn sweep_stale() {
    SWEEP.call_once(|| {
        sweep_stale_now();
    });
}

/// Removes lab namespaces whose owning process is gone, now; returns the names removed.
/// Namespaces of live processes — parallel test binaries — are left alone.
pub fn sweep_stale_now() -> Vec<String> {
    let mut removed = Vec::new();
    for netns in lab_namespaces() {
        let Some(pid) = owner_pid(&netns) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match delete_namespace(&netns) {
            Ok(()) => removed.push(netns),
            Err(e) => eprintln!("natlab: could not remove stale namespace {netns}: {e:#}"),
        }
    }
    removed
}

/// Kills the processes inside `netns` (all started by the lab that owns it) and deletes it.
pub fn delete_namespace(netns: &str) -> Result<()> {
    if let Ok(pids) = sys::run("ip", &["netns", "pids", netns]) {
        for pid in pids.split_whitespace() {
            // Best effort: the process may exit between listing and killing.
            let _ = sys::run("kill", &["-KILL", pid]);
        }
    }
    sys::run("ip", &["netns", "delete", netns]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_parse_back() {
        let a = lab_prefix();
        let b = lab_prefix();
        assert_ne!(a, b);
        assert_eq!(owner_pid(&format!("{a}-a1")), Some(std::process::id()));
        assert_eq!(owner_pid("snl12x3-rv"), Some(12));
        assert_eq!(owner_pid("snlfoo"), None);
        assert_eq!(owner_pid("docker-ns"), None);
    }
}
