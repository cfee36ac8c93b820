#!/bin/sh
# Entrypoint of the supernode image: `relay [flags]`, `rendezvous [flags]`, or any command.
#
# Inside a container the defaults of the binaries (loopback only) are useless, so this fills in
# what a container needs unless the operator already set it, by environment or mounted file:
# - without a config file: listen on all interfaces (UDP and TCP), metrics on all interfaces;
# - relay sockets bound to the container's own IP, unless SUPERNODE_RELAY_ADDRESS or the
#   file's relay.addresses says otherwise: the relay needs a concrete local address, never
#   0.0.0.0, and inside Docker that address is only known at start. `hostname -i` gives it
#   (the first one, if the container is on several networks).
# SUPERNODE_RELAY_EXTERNAL (what clients are told) is never guessed: behind Docker's NAT only
# the operator knows the host's public address. Without it clients are told the container IP,
# which is right only for clients on the same Docker network or with host networking.
set -eu

# The config file given by environment ($1) or flag (the rest), if any.
config_file() {
  file="$1"
  shift
  prev=""
  for arg in "$@"; do
    case "$arg" in
      --config=*) file="${arg#--config=}" ;;
      *) if [ "$prev" = "-c" ] || [ "$prev" = "--config" ]; then file="$arg"; fi ;;
    esac
    prev="$arg"
  done
  echo "$file"
}

# True if the relay config file "$1" sets relay.addresses itself.
file_sets_addresses() {
  [ -n "$1" ] && grep -Eq '^[[:space:]]*addresses[[:space:]]*=' "$1"
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
    config="$(config_file "${SUPERNODE_RELAY_CONFIG:-}" "$@")"
    # Listeners: a config file says where; without one, all interfaces (env still wins).
    if [ -z "$config" ]; then
      export SUPERNODE_RELAY_LISTEN_UDP="${SUPERNODE_RELAY_LISTEN_UDP:-0.0.0.0:3478}"
      export SUPERNODE_RELAY_LISTEN_TCP="${SUPERNODE_RELAY_LISTEN_TCP:-0.0.0.0:3478}"
      export SUPERNODE_RELAY_METRICS="${SUPERNODE_RELAY_METRICS:-0.0.0.0:9641}"
    fi
    # The relay address: only the container knows it, so it is filled in unless the
    # operator set it (by environment, or as relay.addresses in the file).
    if [ -z "${SUPERNODE_RELAY_ADDRESS:-}" ] && ! file_sets_addresses "$config"; then
      export SUPERNODE_RELAY_ADDRESS="$(container_ip)"
    fi
    resolve_rendezvous
    exec supernode-relay "$@"
    ;;
  rendezvous)
    if [ -z "$(config_file "${SUPERNODE_RENDEZVOUS_CONFIG:-}" "$@")" ]; then
      export SUPERNODE_RENDEZVOUS_LISTEN="${SUPERNODE_RENDEZVOUS_LISTEN:-0.0.0.0:3578}"
      export SUPERNODE_RENDEZVOUS_METRICS="${SUPERNODE_RENDEZVOUS_METRICS:-0.0.0.0:9578}"
    fi
    exec supernode-rendezvous "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
