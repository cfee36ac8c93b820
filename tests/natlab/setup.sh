#!/bin/sh
# Installs what the NAT lab needs on Debian/Ubuntu: iproute2 (ip, tc), nftables (nft),
# procps (sysctl, kill) and python3 (the link emulator, used only when the kernel lacks
# sch_netem). The lab itself must run as root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
set -eu
apt-get update
apt-get install -y --no-install-recommends iproute2 nftables procps python3
