#!/bin/bash
# Health check of the supernode image: asks the running node's metrics endpoint over HTTP
# with bash's /dev/tcp (the slim image has no curl). The relay answers /healthz; the
# rendezvous serves /metrics. SUPERNODE_HEALTH_ADDR overrides the address when the metrics
# listener was moved (the default is the port the entrypoint configures).
set -euo pipefail

case "$(tr '\0' ' ' </proc/1/cmdline)" in
  *supernode-rendezvous*) addr="${SUPERNODE_HEALTH_ADDR:-127.0.0.1:9578}" path=/metrics ;;
  *) addr="${SUPERNODE_HEALTH_ADDR:-127.0.0.1:9641}" path=/healthz ;;
esac

exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$path" >&3
read -r -t 2 status <&3
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
  *) echo "unhealthy: ${status:-no answer}" >&2; exit 1 ;;
esac
