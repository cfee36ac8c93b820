//! Link conditions without `sch_netem`: a userspace layer-2 emulator.
//!
//! Some kernels (minimal VM and container kernels) are built without netem. There the lab puts
//! an emulator namespace in the middle of a conditioned segment:
//!
//! ```text
//!   node dev ═veth═ emu0 [emulator ns: emulator.py run emu0 emu1 …] emu1 ═veth═ port (bridge)
//! ```
//!
//! The emulator (`emulator.py`, embedded in this crate, standard-library Python only) reads
//! frames from `emu0` and `emu1` with AF_PACKET sockets and re-sends them out of the other side after
//! the delay, with jitter and loss — the same per-direction semantics as netem on both ends.
//! The interfaces sending into it get their checksum and segmentation offloads turned off
//! (through the ethtool ioctl), because a captured frame must be complete to be re-sent.
//! Python is used because raw packet sockets are out of reach of safe Rust's standard library.

use anyhow::{Context, Result, ensure};
use std::sync::OnceLock;
use std::time::Duration;

use crate::link::Link;
use crate::process::Proc;
use crate::sys;

/// The emulator script.
const SCRIPT: &str = include_str!("emulator.py");

/// How long the emulator may take to open its sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How link conditions are realised on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulation {
    /// `tc qdisc … netem` on both ends of the veth.
    Netem,
    /// The userspace emulator of this module.
    Userspace,
}

/// Cached answer of [`emulation`].
static EMULATION: OnceLock<Emulation> = OnceLock::new();

/// How link conditions will be realised: `NATLAB_LINK_EMULATION=netem|userspace` forces a
/// choice; otherwise netem when the kernel has it (tried once in `probe_netns`).
pub fn emulation(probe_netns: &str) -> Emulation {
    *EMULATION.get_or_init(|| match std::env::var("NATLAB_LINK_EMULATION").as_deref() {
        Ok("netem") => Emulation::Netem,
        Ok("userspace") => Emulation::Userspace,
        _ => {
            let added = sys::tc(
                probe_netns,
                &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            );
            if added.is_ok() {
                let _ = sys::tc(probe_netns, &["qdisc", "del", "dev", "lo", "root"]);
                Emulation::Netem
            } else {
                Emulation::Userspace
            }
        }
    })
}

/// Turns off checksum and segmentation offloads of `dev` in `netns`.
pub(crate) fn offload_off(netns: &str, dev: &str) -> Result<()> {
    sys::run(
        "ip",
        &[
            "netns",
            "exec",
            netns,
            "python3",
            "-c",
            SCRIPT,
            "offload-off",
            dev,
        ],
    )
    .map(drop)
    .with_context(|| format!("turning off offloads of {dev} (is python3 installed?)"))
}

/// Starts the emulator between `a` and `b` inside `netns`; it runs until killed.
pub(crate) fn start(netns: &str, a: &str, b: &str, link: &Link) -> Result<Proc> {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", netns, "python3", "-c", SCRIPT, "run", a, b])
        .arg(link.delay.as_micros().to_string())
        .arg(link.jitter.as_micros().to_string())
        .arg(link.loss_percent.to_string());
    let mut proc = Proc::spawn(cmd, format!("link emulator in {netns}"))?;
    let line = proc.next_line(READY_TIMEOUT);
    ensure!(
        line.as_deref() == Some("ready"),
        "link emulator in {netns} did not start: {:?}",
        proc.kill().stderr
    );
    Ok(proc)
}
