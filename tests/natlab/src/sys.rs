//! Running the `ip`, `nft`, `sysctl` and `tc` tools that configure namespaces.
//!
//! Everything the lab changes goes through these tools, inside namespaces the lab created, so
//! the root namespace's routes and netfilter rules are never touched. Failures carry the command
//! line and its stderr, because a lab that half-builds is only debuggable with both.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program args…`, returning stdout; a non-zero exit is an error quoting stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_input(program, args, None)
}

/// Like [`run`], feeding `input` on stdin (for `ip -batch -` and `nft -f -`).
pub(crate) fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning `{program}`"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .with_context(|| format!("writing stdin of `{program}`"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            input.map(|i| format!("\ninput:\n{i}")).unwrap_or_default()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a batch of `ip` commands (one per line, without the leading `ip`) inside `netns`.
pub(crate) fn ip_batch(netns: &str, commands: &[String]) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let script = commands.join("\n") + "\n";
    run_with_input("ip", &["-n", netns, "-batch", "-"], Some(&script)).map(drop)
}

/// Loads an nftables ruleset into `netns`.
pub(crate) fn nft(netns: &str, ruleset: &str) -> Result<()> {
    run_with_input(
        "ip",
        &["netns", "exec", netns, "nft", "-f", "-"],
        Some(ruleset),
    )
    .map(drop)
}

/// Sets sysctls (`key=value`) inside `netns`.
pub(crate) fn sysctl(netns: &str, settings: &[&str]) -> Result<()> {
    let mut args = vec!["netns", "exec", netns, "sysctl", "-q", "-w"];
    args.extend_from_slice(settings);
    run("ip", &args).map(drop)
}

/// Runs a `tc` command inside `netns`.
pub(crate) fn tc(netns: &str, args: &[&str]) -> Result<()> {
    let mut full = vec!["-n", netns];
    full.extend_from_slice(args);
    run("tc", &full).map(drop)
}
