//! Deciding whether this process may build a lab.
//!
//! The lab creates network namespaces, veth pairs, bridges and netfilter rules, which needs
//! CAP_SYS_ADMIN (namespaces, the mounts `ip netns` makes) and CAP_NET_ADMIN (everything else).
//! A developer without them should see lab tests skip with a reason; CI, which is set up to
//! run them, must fail instead of silently skipping.

use std::fs;

/// Bit of CAP_NET_ADMIN in the capability sets of `/proc/self/status`.
const CAP_NET_ADMIN: u32 = 12;
/// Bit of CAP_SYS_ADMIN in the capability sets of `/proc/self/status`.
const CAP_SYS_ADMIN: u32 = 21;

/// Why the lab cannot run here, or `None` when it can.
pub fn missing_privilege() -> Option<String> {
    let status = match fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return Some(format!("cannot read /proc/self/status: {e}")),
    };
    let Some(effective) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Some("no CapEff line in /proc/self/status".into());
    };
    for (bit, name) in [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ] {
        if effective & (1 << bit) == 0 {
            return Some(format!("{name} is missing (run the lab tests as root)"));
        }
    }
    for tool in ["ip", "nft"] {
        if !on_path(tool) {
            return Some(format!(
                "`{tool}` is not installed (see tests/natlab/setup.sh)"
            ));
        }
    }
    None
}

/// Whether `tool` is an executable somewhere on `PATH`.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Whether this run is CI, where a lab test that cannot run is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Gate for lab tests: returns `true` when the lab can run.
///
/// Without privilege it prints the reason and returns `false` so the test can return early —
/// unless `CI=true`, where it panics, because CI is expected to run the lab.
pub fn require_root() -> bool {
    match missing_privilege() {
        None => true,
        Some(reason) if in_ci() => panic!("NAT lab cannot run under CI=true: {reason}"),
        Some(reason) => {
            eprintln!("skipping NAT lab test: {reason}");
            false
        }
    }
}
