#!/usr/bin/env bash
# Copies the files the Helm chart takes from the rest of the repository into helm/campus/files/
# (a chart can only read files inside its own folder), or checks that the copies are current.
#   scripts/sync-chart-files.sh           copy
#   scripts/sync-chart-files.sh --check   exit 1 when a copy differs from its source (CI)
# What is copied (source -> chart):
#   crds/*.yaml                  -> files/crds/    the CampusPlatform CRD (templated, so upgrades apply it)
#   operator/rbac/*.yaml         -> files/rbac/    the operator's least RBAC (its ClusterRole/Role rules)
#   services/log/kibana/*.ndjson -> files/kibana/  saved objects imported by the Kibana Job
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHART=$ROOT/helm/campus
check=0; [ "${1:-}" = --check ] && check=1
rc=0

# sync SRC_DIR PATTERN DEST_DIR: DEST holds exactly the SRC files matching PATTERN.
sync() {
  local src=$1 pattern=$2 dest=$3
  local files=()
  if [ -d "$src" ]; then
    while IFS= read -r f; do files+=("$f"); done < <(cd "$src" && find . -maxdepth 1 -name "$pattern" -type f | sort)
  fi
  if [ ${#files[@]} -eq 0 ]; then
    if [ "$src" = "$ROOT/operator/rbac" ]; then
      # Until the operator ships its RBAC, the chart keeps its baseline rules.
      echo "sync-chart-files: ${src#"$ROOT"/}/ has no $pattern yet; ${dest#"$ROOT"/}/ keeps its baseline" >&2
      return 0
    fi
  fi
  if [ $check = 1 ]; then
    local want have
    want=$(for f in "${files[@]}"; do basename "$f"; done | sort)
    have=$( [ -d "$dest" ] && cd "$dest" && find . -maxdepth 1 -type f ! -name .gitkeep -printf '%f\n' | sort)
    if [ "$want" != "$have" ]; then
      echo "sync-chart-files: ${dest#"$ROOT"/}/ holds [$(echo $have)] but ${src#"$ROOT"/}/ has [$(echo $want)]" >&2
      rc=1; return 0
    fi
    for f in "${files[@]}"; do
      if ! cmp -s "$src/$f" "$dest/$f"; then
        echo "sync-chart-files: ${dest#"$ROOT"/}/${f#./} differs from ${src#"$ROOT"/}/${f#./}" >&2
        rc=1
      fi
    done
  else
    mkdir -p "$dest"
    find "$dest" -maxdepth 1 -type f ! -name .gitkeep -delete
    for f in "${files[@]}"; do cp "$src/$f" "$dest/$f"; done
    [ ${#files[@]} -gt 0 ] || touch "$dest/.gitkeep"
    echo "sync-chart-files: ${src#"$ROOT"/}/$pattern -> ${dest#"$ROOT"/}/ (${#files[@]} file(s))"
  fi
}

sync "$ROOT/crds" '*.yaml' "$CHART/files/crds"
sync "$ROOT/operator/rbac" '*.yaml' "$CHART/files/rbac"
sync "$ROOT/services/log/kibana" '*.ndjson' "$CHART/files/kibana"
if [ $check = 1 ]; then
  if [ $rc = 0 ]; then echo "sync-chart-files: the chart's copies are current"
  else echo "sync-chart-files: run scripts/sync-chart-files.sh and commit the result" >&2; fi
fi
exit $rc
