#!/usr/bin/env bash
# Start, inspect and stop the real local servers the tests and the local mode use.
#   scripts/servers.sh start|status|stop|restart|env [--kafka-cluster] [server...]
# One file per server in scripts/servers.d/ says how to start it, its ports, its product and
# version and the variables it gives the tests. Ports come from the environment (defaults in each
# file); data, logs and PID files live in $CAMPUS_DATA (default target/servers). Idempotent: `start`
# leaves running servers alone, `stop` stops by PID (each server runs in its own process group).
#   --kafka-cluster   Kafka as three brokers (replication factor 3, min.insync.replicas 2) instead
#                     of one (status, env and stop follow what was started).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
D=${CAMPUS_DATA:-$ROOT/target/servers}
SERVERS="mysql redis kafka search mongo"
for f in "$ROOT"/scripts/servers.d/*.sh; do . "$f"; done
. "$ROOT/scripts/install/filebeat.sh"

pids() { [ -f "$D/$1.pid" ] && cat "$D/$1.pid" || true; }
running() {
  local p any=0
  for p in $(pids "$1"); do kill -0 "$p" 2>/dev/null || return 1; any=1; done
  [ $any = 1 ]
}
# launch NAME CMD...: runs CMD in its own session, output to $D/NAME.log (appended), PID recorded.
launch() {
  local name=$1; shift
  setsid "$@" >>"$D/$name.log" 2>&1 </dev/null &
  echo $! >>"$D/$name.pid"
}

wait_ports() {
  local name=$1; shift
  for _ in $(seq 1 600); do
    local ok=1
    for p in "$@"; do listening "$p" || ok=0; done
    [ $ok = 1 ] && return 0
    running "$name" || { echo "servers: $name exited; last log lines:" >&2; tail -n 20 "$D/$name.log" >&2; return 1; }
    sleep 0.1
  done
  echo "servers: $name did not open port(s) $* within 60 s; see $D/$name.log" >&2
  return 1
}

start_one() {
  local name=$1
  if running "$name"; then return 0; fi
  stop_one "$name" >/dev/null   # a half-dead multi-process server
  local p
  for p in $("${name}_ports"); do
    if listening "$p"; then echo "servers: port $p for $name is taken by another process" >&2; return 1; fi
  done
  : >"$D/$name.log"
  "${name}_start"
  # shellcheck disable=SC2046
  wait_ports "$name" $("${name}_ports")
  if declare -F "${name}_ready" >/dev/null; then "${name}_ready"; fi
  echo "servers: $name up: $("${name}_version") $(addresses "$name")"
}

addresses() { local p out=(); for p in $("${1}_ports"); do out+=("127.0.0.1:$p"); done; (IFS=,; echo "${out[*]}"); }

stop_one() {
  local name=$1 p
  [ -f "$D/$name.pid" ] || return 0
  if running "$name" && declare -F "${name}_stop" >/dev/null; then "${name}_stop" || true; fi
  for p in $(pids "$name"); do stop_group "$p" 30; done
  rm -f "$D/$name.pid"
  if declare -F "${name}_cleanup" >/dev/null; then "${name}_cleanup"; fi
  echo "servers: $name stopped"
}

cmd=${1:-status}; shift || true
names=()
for a in "$@"; do
  case $a in
    --kafka-cluster) KAFKA_WANT_NODES=3 ;;
    *) names+=("$a") ;;
  esac
done
[ ${#names[@]} -gt 0 ] || read -r -a names <<<"$SERVERS"
mkdir -p "$D"
case $cmd in
  start) for n in "${names[@]}"; do start_one "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_one "$n"; done ;;
  restart) for n in "${names[@]}"; do stop_one "$n"; start_one "$n"; done ;;
  status)
    rc=0
    for n in "${names[@]}"; do
      if running "$n"; then echo "$n: $("${n}_version") $(addresses "$n") (pid $(pids "$n" | tr '\n' ' ' | sed 's/ $//'))"
      else echo "$n: stopped"; rc=3; fi
    done
    exit $rc ;;
  env)
    # The variables the tests and services read, pointing at these servers, and the Filebeat
    # binary (scripts/install/filebeat.sh) the log tests run.
    for n in "${names[@]}"; do "${n}_env"; done
    echo "export CAMPUS_TEST_FILEBEAT=$FILEBEAT_BIN" ;;
  *) echo "usage: $0 start|stop|restart|status|env [--kafka-cluster] [server...]  (servers: $SERVERS)" >&2; exit 2 ;;
esac
