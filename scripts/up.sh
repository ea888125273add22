#!/usr/bin/env bash
# One command to a running Campus, the way this machine allows:
#   scripts/up.sh          kind + skaffold when Docker (a running engine), kind, helm and skaffold are
#                          all present; otherwise the local mode (scripts/local.sh: local servers and
#                          every Campus process, no containers). It says which, and why.
#   scripts/up.sh down     stops what `up` started (the kind cluster is kept; `kind delete cluster
#                          --name campus` removes it)
#   CAMPUS_MODE=local|kind scripts/up.sh   choose instead of detecting
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CLUSTER=campus

why_not_kind() {
  local missing=()
  for t in docker kind helm skaffold kubectl; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  if [ ${#missing[@]} -gt 0 ]; then echo "not installed: ${missing[*]}"; return; fi
  docker info >/dev/null 2>&1 || { echo "the docker command is there but no Docker engine answers"; return; }
  echo ""
}

mode=${CAMPUS_MODE:-}
reason=""
if [ -z "$mode" ]; then
  reason=$(why_not_kind)
  if [ -z "$reason" ]; then mode=kind; reason="Docker, kind, helm, skaffold and kubectl are present"
  else mode=local; fi
fi

case ${1:-up} in
  up)
    if [ "$mode" = kind ]; then
      echo "up: kind mode ($reason): cluster '$CLUSTER' from kind-config.yaml, then skaffold run"
      kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --config kind-config.yaml
      kubectl config use-context "kind-$CLUSTER" >/dev/null
      skaffold run
      echo "up: APIs on http://127.0.0.1:8081 (content), :8082 (coupon), :8083 (log), Kibana http://127.0.0.1:5601"
      echo "up: watch it come up with: kubectl -n campus get campus,pods"
    else
      echo "up: local mode (${reason:-chosen with CAMPUS_MODE=local}): local servers and every Campus process, no containers"
      bash scripts/local.sh up
    fi ;;
  down)
    if [ "$mode" = kind ]; then skaffold delete; else bash scripts/local.sh down; fi ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
