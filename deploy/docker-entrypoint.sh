#!/bin/sh
# Entrypoint of the supernode image: `relay [flags]`, `rendezvous [flags]`, or any command.
#
# Inside a container the defaults of the binaries (loopback only) are useless, so this fills in
# what a container needs unless the operator already set it, by environment or mounted file:
# - listen on all interfaces (UDP and TCP), metrics on all interfaces;
# - relay sockets bound to the container's own IP: the relay needs a concrete local address,
#   never 0.0.0.0, and inside Docker that address is only known at start. `hostname -i` gives
#   it (the first one, if the container is on several networks).
# SUPERNODE_RELAY_EXTERNAL (what clients are told) is never guessed: behind Docker's NAT only
# the operator knows the host's public address. Without it clients are told the container IP,
# which is right only for clients on the same Docker network or with host networking.
set -eu

# A mounted config file sets its own addresses; flags and env would override it, so leave
# them alone then.
has_config() {
  [ -n "${SUPERNODE_RELAY_CONFIG:-}${SUPERNODE_RENDEZVOUS_CONFIG:-}" ] && return 0
  for arg in "$@"; do
    case "$arg" in -c|--config|--config=*) return 0 ;; esac
  done
  return 1
}

container_ip() {
  ip="$(hostname -i 2>/dev/null || true)"
  ip="${ip%% *}"
  if [ -z "$ip" ]; then
    echo "supernode-entrypoint: cannot find the container's IP; set SUPERNODE_RELAY_ADDRESS" >&2
    exit 1
  fi
  echo "$ip"
}

# The relay takes the rendezvous as IP:port; in compose it is known by service name, so a
# name is resolved here (first address) and replaced by its IP.
resolve_rendezvous() {
  target="${SUPERNODE_RELAY_RENDEZVOUS:-}"
  host="${target%:*}"
  port="${target##*:}"
  case "$host" in
    "" | *:* | "["*) return 0 ;;                           # unset or IPv6 literal
    *[!0-9.]*)
      ip="$(getent ahostsv4 "$host" 2>/dev/null || true)"
      ip="${ip%% *}"
      if [ -z "$ip" ]; then
        echo "supernode-entrypoint: cannot resolve rendezvous host '$host'" >&2
        exit 1
      fi
      export SUPERNODE_RELAY_RENDEZVOUS="$ip:$port"
      ;;
  esac
}

role="${1:-relay}"
[ "$#" -gt 0 ] && shift

case "$role" in
  relay)
    if ! has_config "$@"; then
      export SUPERNODE_RELAY_LISTEN_UDP="${SUPERNODE_RELAY_LISTEN_UDP:-0.0.0.0:3478}"
      export SUPERNODE_RELAY_LISTEN_TCP="${SUPERNODE_RELAY_LISTEN_TCP:-0.0.0.0:3478}"
      export SUPERNODE_RELAY_METRICS="${SUPERNODE_RELAY_METRICS:-0.0.0.0:9641}"
      export SUPERNODE_RELAY_ADDRESS="${SUPERNODE_RELAY_ADDRESS:-$(container_ip)}"
    fi
    resolve_rendezvous
    exec supernode-relay "$@"
    ;;
  rendezvous)
    if ! has_config "$@"; then
      export SUPERNODE_RENDEZVOUS_LISTEN="${SUPERNODE_RENDEZVOUS_LISTEN:-0.0.0.0:3578}"
      export SUPERNODE_RENDEZVOUS_METRICS="${SUPERNODE_RENDEZVOUS_METRICS:-0.0.0.0:9578}"
    fi
    exec supernode-rendezvous "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
