#!/usr/bin/env bash
# Runs supernode-relay and coturn's turnserver side by side on this machine and prints a
# markdown table of medians and ratios (ours / coturn).
#
#   bench/compare.sh [ROUNDS] [SECONDS]      default: 5 rounds of 5-second runs
#
# Each server is pinned to CPU 0 and the load generator to CPU 1 (taskset). Servers alternate
# within every round; round 0 is a warm-up and is discarded. Rates per server CPU-second use
# the server's utime+stime from /proc over each run. Needs: coturn (Debian package), taskset
# (util-linux), python3. Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
SECS=${2:-5}
SECRET=bench-secret
PORT=3700
OUT=$(mktemp -d)
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

command -v turnserver >/dev/null || { echo "turnserver not found: apt-get install coturn" >&2; exit 1; }
cargo build --release -q -p supernode-relay -p supernode-bench
BENCH=target/release/supernode-bench
ulimit -n "$(ulimit -Hn)"

start_server() {
  case "$1" in
    supernode)
      taskset -c 0 target/release/supernode-relay \
        --listen-udp 127.0.0.1:$PORT --listen-tcp 127.0.0.1:$PORT --relay-address 127.0.0.1 \
        --secret $SECRET --realm supernode --allow-peer 127.0.0.0/8 --no-metrics \
        --total-quota 100000 --user-quota 100000 --unauth-rate 1000000 --unauth-burst 1000000 \
        --log error &
      ;;
    coturn)
      taskset -c 0 turnserver -n --listening-ip 127.0.0.1 --listening-port $PORT \
        --relay-ip 127.0.0.1 --use-auth-secret --static-auth-secret $SECRET --realm supernode \
        --allow-loopback-peers --no-cli --no-tls --no-dtls --no-stdout-log \
        --log-file "$OUT/coturn.log" --pidfile "$OUT/coturn.pid" &
      ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 50); do
    if "$BENCH" --server 127.0.0.1:$PORT stun --duration 0.2 --sockets 1 --window 1 >/dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  echo "$1 did not start" >&2; exit 1
}

stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
}

run() { # server round name args...
  local server=$1 round=$2 name=$3; shift 3
  taskset -c 1 "$BENCH" --server 127.0.0.1:$PORT --secret $SECRET --server-pid "$SERVER_PID" \
    --label "$server" "$@" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); r['round']=$round; r['name']='$name'; print(json.dumps(r))" \
    >> "$OUT/results.jsonl"
}

FIXED_RATE=""
for round in $(seq 0 "$ROUNDS"); do
  for server in coturn supernode; do
    start_server $server
    run $server "$round" "relay-1" relay --allocations 1 --window 4 --duration "$SECS"
    run $server "$round" "relay-50" relay --allocations 50 --window 2 --duration "$SECS"
    run $server "$round" "stun" stun --duration "$SECS"
    run $server "$round" "allocate" allocate --duration "$SECS"
    if [ -z "$FIXED_RATE" ] && [ $server = coturn ]; then
      # 40 % of coturn's closed-loop single-allocation capacity, for the latency comparison.
      FIXED_RATE=$(python3 -c "
import json
rows=[json.loads(l) for l in open('$OUT/results.jsonl')]
r=[x for x in rows if x['label']=='coturn' and x['name']=='relay-1'][-1]
print(int(r['rate']*0.4))")
    fi
    run $server "$round" "latency@fixed" relay --allocations 10 --rate "$FIXED_RATE" --duration "$SECS"
    stop_server
    start_server $server
    run $server "$round" "memory" hold --allocations 10000 --settle-secs 2
    stop_server
  done
done

python3 - "$OUT/results.jsonl" "$FIXED_RATE" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fixed = sys.argv[2]
rows = [r for r in rows if r["round"] > 0]          # round 0 is the warm-up
def med(name, label, key):
    v = [r[key] for r in rows if r["name"] == name and r["label"] == label and r.get(key) is not None]
    return statistics.median(v) if v else None
lines = [
    ("relay-1",       "per_server_cpu_sec", "round trips / server CPU-s, 1 allocation, 120 B ChannelData", True),
    ("relay-1",       "rate",               "round trips / s delivered, 1 allocation", True),
    ("relay-50",      "per_server_cpu_sec", "round trips / server CPU-s, 50 allocations", True),
    ("relay-50",      "rate",               "round trips / s delivered, 50 allocations", True),
    ("stun",          "per_server_cpu_sec", "Binding transactions / server CPU-s", True),
    ("stun",          "rate",               "Binding transactions / s delivered", True),
    ("allocate",      "rate",               "authenticated allocations / s", True),
    ("allocate",      "per_server_cpu_sec", "authenticated allocations / server CPU-s", True),
    ("memory",        "kib_per_allocation", "KiB RSS per allocation at 10k allocations", False),
    ("memory",        "rss_before_kib",     "idle RSS, KiB", False),
    ("latency@fixed", "rtt_p50_us",         f"p50 round trip at {fixed} pkt/s offered, us", False),
    ("latency@fixed", "rtt_p99_us",         f"p99 round trip at {fixed} pkt/s offered, us", False),
    ("latency@fixed", "lost",               f"lost packets at {fixed} pkt/s offered", False),
]
print("| measure | supernode | coturn | ratio ours/coturn |")
print("|---|---:|---:|---:|")
for name, key, title, higher in lines:
    a, b = med(name, "supernode", key), med(name, "coturn", key)
    fmt = lambda x: "n/a" if x is None else (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}")
    ratio = f"{a / b:.2f}" if a is not None and b not in (None, 0) else "n/a"
    print(f"| {title} | {fmt(a)} | {fmt(b)} | {ratio} |")
print()
print(f"{len(set(r['round'] for r in rows))} measured rounds; medians; higher is better except memory and latency.")
PY
