#!/bin/bash
# Makes a Debian bookworm root filesystem (debootstrap --variant=minbase, the same package set
# as debian:bookworm-slim) as a tar file for `docker import`, for machines that cannot pull
# images. Cached: prints the path of the tar, building it only when it is missing.
#
#   base-image.sh [CACHE_DIR]      (default /var/tmp/supernode-deploy)
#
# Installs debootstrap from Debian's packages when it is missing and this runs as root.
set -euo pipefail

cache="${1:-/var/tmp/supernode-deploy}"
tar_file="$cache/bookworm-minbase.tar"
mirror="${SUPERNODE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$cache"

# One builder at a time; a second caller waits and then finds the tar.
exec 9>"$cache/.lock"
flock 9
if [ -s "$tar_file" ]; then
  echo "$tar_file"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "debootstrap is missing (apt-get install debootstrap, as root)" >&2
    exit 3
  fi
  echo "installing debootstrap" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

root="$(mktemp -d "$cache/rootfs.XXXXXX")"
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm into $root (first run only; 1-3 minutes)" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
  tail -20 "$cache/debootstrap.log" >&2
  exit 1
}
# What debian:bookworm-slim also leaves out: package lists and caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -cf "$tar_file.partial" .
mv "$tar_file.partial" "$tar_file"
echo "$tar_file"
