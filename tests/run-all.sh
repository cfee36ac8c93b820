#!/usr/bin/env bash
# Runs every test of the workspace: unit, property, virtual-clock, loopback interop with
# coturn's tools, and the NAT lab (which needs root).
#
# Installs what the tests need from Debian's packages when it runs as root and something is
# missing: coturn (turnutils_uclient, turnutils_peer, turnutils_stunclient), nftables and
# iproute2 (NAT lab), curl (metrics checks), procps, debootstrap and prometheus (deploy tests,
# which also need the Docker engine the machine provides).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v turnutils_uclient >/dev/null || need+=(coturn)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v tc >/dev/null || need+=(iproute2)
command -v curl >/dev/null || need+=(curl)
command -v sysctl >/dev/null || need+=(procps)
command -v debootstrap >/dev/null || need+=(debootstrap)      # deploy: local base image
command -v promtool >/dev/null || need+=(prometheus)          # deploy: promtool, prometheus
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing test dependencies: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]}: tests that need them will skip (run as root to install)"
  fi
fi
# coturn's package starts a turnserver on 3478; the tests run their own relays, so stop it.
if command -v systemctl >/dev/null && systemctl is-active --quiet coturn 2>/dev/null; then
  systemctl stop coturn || true
fi

# Binaries first: some tests run other packages' binaries (the NAT lab runs
# supernode-rendezvous inside its namespaces), which `cargo test` alone does not build.
cargo build --workspace --bins --locked
exec cargo test --workspace --locked "$@"
