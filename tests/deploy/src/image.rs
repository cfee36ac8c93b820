//! Builds the project's image from `deploy/Dockerfile` on a machine without a registry.
//!
//! Users build both stages (`rust` to compile, `debian:bookworm-slim` to run). Neither base
//! can be pulled here, so the test supplies them: the runtime base is a Debian bookworm
//! minbase root filesystem from debootstrap (`tests/deploy/scripts/base-image.sh`, cached under
//! `/var/tmp`), imported with `docker import`; the binaries come from a `FROM scratch` image
//! holding what `cargo build` made on the host. The Dockerfile's `runtime` stage — the one
//! users get — is then built unchanged with `--target runtime`, `RUNTIME_IMAGE` and
//! `BINARIES` pointing at those two images.

use crate::docker::Docker;
use crate::env;
use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the debootstrap root filesystem is cached between runs.
pub const BASE_CACHE: &str = "/var/tmp/supernode-deploy";

/// The names of the images one run builds.
#[derive(Debug)]
pub struct Images {
    /// The runtime image built from `deploy/Dockerfile`.
    pub runtime: String,
}

/// Makes (or finds in the cache) the Debian root filesystem tar; `Err` says why it cannot.
pub fn base_rootfs() -> Result<PathBuf> {
    let script = env::repo_root().join("tests/deploy/scripts/base-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(BASE_CACHE)
        .output()
        .context("running base-image.sh")?;
    ensure!(
        out.status.success(),
        "base-image.sh failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    ensure!(path.is_file(), "base-image.sh printed {}", path.display());
    Ok(path)
}

/// Builds the runtime image with the host's `relay` and `rendezvous` binaries.
pub fn build(
    docker: &mut Docker,
    rootfs: &Path,
    relay: &Path,
    rendezvous: &Path,
) -> Result<Images> {
    let base = docker.name("base");
    docker.import(rootfs, &base)?;

    // The binaries image: FROM scratch, /out/<binary>, as the builder stage leaves them.
    let ctx = tempdir(&docker.name("bins"))?;
    std::fs::create_dir_all(ctx.join("out"))?;
    for b in [relay, rendezvous] {
        let name = b.file_name().context("binary name")?;
        std::fs::copy(b, ctx.join("out").join(name))
            .with_context(|| format!("copying {}", b.display()))?;
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY out/ /out/\n")?;
    let bins = docker.name("bins");
    let built = docker.build(&bins, &ctx, &[]);
    let _ = std::fs::remove_dir_all(&ctx);
    built?;

    let runtime = docker.name("supernode");
    let dockerfile = env::deploy_dir().join("Dockerfile");
    let dockerfile = dockerfile.to_str().context("Dockerfile path")?;
    docker.build(
        &runtime,
        &env::repo_root(),
        &[
            "-f",
            dockerfile,
            "--target",
            "runtime",
            "--build-arg",
            &format!("RUNTIME_IMAGE={base}"),
            "--build-arg",
            &format!("BINARIES={bins}"),
        ],
    )?;
    Ok(Images { runtime })
}

/// A fresh directory under the system's temporary directory.
pub fn tempdir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
