#!/usr/bin/env bash
# Checks of the Helm chart, the container builds and the dev-loop files; scripts/test.sh runs it after
# the cargo tests (it expects scripts/deps.sh to have run and, for `install`, the API server of
# scripts/kube.sh to be up).
#   scripts/chart-test.sh            all checks below
#   scripts/chart-test.sh static     copies current, helm lint, helm template + kubernetes-validate
#                                    --strict (1.31), wrong-typed values rejected, skaffold/kind/
#                                    Containerfile/chart/local-mode cross-check (scripts/check-dev-files.py)
#   scripts/chart-test.sh install    helm install/upgrade into the API server; the operator reconciles
#                                    the sample platform
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CAMPUS_CACHE=${CAMPUS_CACHE:-$HOME/.cache/campus}
HELM=$CAMPUS_CACHE/bin/helm
VENV=$CAMPUS_CACHE/venv
K8S_VERSION=1.31.0
CHART=helm/campus
OUT=$ROOT/target/chart-test
mkdir -p "$OUT"
passed=0; failed=0
ok() { echo "chart-test: ok   $*"; passed=$((passed + 1)); }
bad() { echo "chart-test: FAIL $*" >&2; failed=$((failed + 1)); }

# validate FILE: every standard object passes kubernetes-validate --strict; only campus.dev kinds
# may lack a schema (custom resources are checked by the API server in `install`).
validate() {
  local file=$1 log=$1.validate
  if ! "$VENV/bin/kubernetes-validate" -k "$K8S_VERSION" --strict "$file" >"$log" 2>&1; then
    grep -v '^INFO' "$log" >&2; return 1
  fi
  if grep "Couldn't find schema" "$log" | grep -v 'api version campus.dev/' >&2; then return 1; fi
  grep -q ' passed for resource ' "$log"
}

static_checks() {
  if bash scripts/sync-chart-files.sh --check >"$OUT/sync.log" 2>&1; then ok "chart copies of crds/, operator/rbac/, services/log/kibana/ are current"
  else cat "$OUT/sync.log" >&2; bad "chart copies are stale (run scripts/sync-chart-files.sh)"; fi

  for vals in "" "helm/dev-values.yaml"; do
    local name=${vals:+everything-enabled}; name=${name:-default}
    local args=(); [ -n "$vals" ] && args=(-f "$vals")
    if "$HELM" lint --strict "$CHART" "${args[@]}" >"$OUT/lint-$name.log" 2>&1; then ok "helm lint --strict ($name values)"
    else cat "$OUT/lint-$name.log" >&2; bad "helm lint ($name values)"; fi
    if "$HELM" template campus "$CHART" --namespace campus "${args[@]}" >"$OUT/$name.yaml" 2>"$OUT/template-$name.log"; then
      if validate "$OUT/$name.yaml"; then
        ok "helm template ($name values): $(grep -c ' passed for resource ' "$OUT/$name.yaml.validate") objects valid for Kubernetes $K8S_VERSION (--strict)"
      else bad "kubernetes-validate --strict ($name values), rendered in $OUT/$name.yaml"; fi
    else cat "$OUT/template-$name.log" >&2; bad "helm template ($name values)"; fi
  done

  # The schema rejects values of the wrong type (and unknown keys) before anything renders.
  local case
  for case in "operator.replicas=two|operator.replicas: Invalid type. Expected: integer" \
              "infrastructure.enabled=yes|infrastructure.enabled: Invalid type. Expected: boolean" \
              "expose.nodePorts.contentApi=8081|expose.nodePorts.contentApi: Must be greater than or equal to 30000" \
              "operator.imagee.tag=x|Additional property imagee is not allowed"; do
    local set=${case%%|*} want=${case#*|}
    if "$HELM" template campus "$CHART" --set "$set" >/dev/null 2>"$OUT/schema.log"; then
      bad "values.schema.json accepted --set $set"
    elif grep -qF "$want" "$OUT/schema.log"; then ok "values.schema.json rejects --set $set"
    else cat "$OUT/schema.log" >&2; bad "--set $set failed without the schema's message"; fi
  done
}

dev_files_checks() {
  # skaffold.yaml, kind-config.yaml, the Containerfiles, the chart, the local mode and the code agree.
  if "$VENV/bin/python" scripts/check-dev-files.py >"$OUT/dev-files.log" 2>&1; then
    ok "skaffold.yaml, kind-config.yaml, Containerfiles, chart, local mode and code agree ($(tail -n 1 "$OUT/dev-files.log" | sed 's/check-dev-files: //'))"
  else
    grep -E 'FAIL|passed' "$OUT/dev-files.log" >&2; bad "skaffold/kind/Containerfile cross-check (scripts/check-dev-files.py)"
  fi
}

install_checks() {
  :
}

case ${1:-all} in
  static) static_checks; dev_files_checks ;;
  install) install_checks ;;
  all) static_checks; dev_files_checks; install_checks ;;
  *) echo "usage: $0 [static|install|all]" >&2; exit 2 ;;
esac
echo "chart-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
