//! The test environment: repository paths, node binaries, tools and the skip rule.

use anyhow::{Context, Result, bail, ensure};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `deploy/` in the repository.
pub fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// True when running under CI (`CI=true`), where nothing may skip.
pub fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Reports a test that cannot run here: prints the reason and returns, or panics under CI.
/// Written to the process's stderr directly, which the test harness does not capture, so the
/// reason shows in a normal `cargo test` run.
pub fn skip(reason: &str) {
    assert!(!under_ci(), "cannot run under CI=true: {reason}");
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// True if `tool` is on PATH.
pub fn has_tool(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True if running as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes `tool` available, installing Debian `package` when missing and running as root.
/// `Err` says why it is not available.
pub fn ensure_tool(tool: &str, package: &str) -> Result<()> {
    if has_tool(tool) {
        return Ok(());
    }
    ensure!(
        is_root(),
        "{tool} not found (apt-get install {package}, as root)"
    );
    eprintln!("installing {package} for {tool}");
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .context("apt-get")?;
        ensure!(status.success(), "apt-get {args:?} failed");
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "--no-install-recommends", package])?;
    ensure!(
        has_tool(tool),
        "{tool} still missing after installing {package}"
    );
    Ok(())
}

/// The relay and rendezvous binaries, built (in the profile this test was built with) into the
/// target directory this test runs from. `SUPERNODE_BIN_DIR` overrides the search.
pub fn node_binaries() -> Result<(PathBuf, PathBuf)> {
    let dir = match std::env::var_os("SUPERNODE_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => build_node_binaries()?,
    };
    let relay = dir.join("supernode-relay");
    let rendezvous = dir.join("supernode-rendezvous");
    for b in [&relay, &rendezvous] {
        ensure!(b.is_file(), "{} not found", b.display());
    }
    Ok((relay, rendezvous))
}

/// Runs `cargo build` for both node packages into this test's target directory (a no-op when
/// `cargo test --workspace` already built them) and returns the profile directory.
fn build_node_binaries() -> Result<PathBuf> {
    // Test executables live in <target>/<profile>/deps.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable outside a target directory")?
        .to_path_buf();
    let target_dir = profile_dir.parent().context("no target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("profile name")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args([
            "build",
            "--locked",
            "-p",
            "supernode-relay",
            "-p",
            "supernode-rendezvous",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of the node binaries failed");
    }
    Ok(profile_dir)
}
