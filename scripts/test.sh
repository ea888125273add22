#!/usr/bin/env bash
# The test command: installs what is missing, starts the real local servers and a Kubernetes API
# server, runs the whole suite, and stops everything it started.
#   scripts/test.sh                 all tests
#   scripts/test.sh -p campus-coupon   extra arguments go to the test runner
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/deps.sh kube
bash scripts/kube.sh build
started_servers=""; started_kube=0
cleanup() {
  [ $started_kube = 1 ] && bash scripts/kube.sh stop >/dev/null || true
  # shellcheck disable=SC2086
  [ -n "$started_servers" ] && bash scripts/servers.sh stop $started_servers >/dev/null || true
}
trap cleanup EXIT
if ! bash scripts/servers.sh status >/dev/null 2>&1; then
  # The servers this run starts, known before it starts them: one that fails to start (a port taken)
  # must not leave the others running.
  started_servers=$({ bash scripts/servers.sh status 2>/dev/null || true; } | awk -F: '/stopped/ {print $1}' | tr '\n' ' ')
  bash scripts/servers.sh start
fi
if ! [ -f target/kube/apiserver.pid ] || ! kill -0 "$(cat target/kube/apiserver.pid)" 2>/dev/null; then
  started_kube=1; bash scripts/kube.sh start
fi
eval "$(bash scripts/servers.sh env)"
eval "$(bash scripts/kube.sh env)"
export CAMPUS_TEST_KUBECONFIG=$KUBECONFIG
# Benchmarks are programs that print figures (`cargo bench`), not tests: they are built by clippy
# --all-targets in CI but not run here.
# The suite's output is long (servers' and services' logs); what failed is repeated at its end.
log=$(mktemp); rc=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$log" || rc=$?
else
  cargo test --workspace --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$log" || rc=$?
fi
if [ $rc != 0 ]; then
  echo "=== test.sh: the suite failed (exit $rc); the failures, without log lines:"
  grep -v '^[{[]' "$log" | grep -E -A8 'panicked at|^test .* FAILED$|^error: ' | cut -c1-400 | head -150
  rm -f "$log"; exit $rc
fi
rm -f "$log"
# The Helm chart, container and dev-loop files, the local mode (scripts/chart-test.sh says what);
# skipped when arguments select part of the cargo suite.
if [ $# -eq 0 ]; then
  bash scripts/chart-test.sh
fi
