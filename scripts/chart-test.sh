#!/usr/bin/env bash
# Checks of the Helm chart, the container builds and the dev-loop files; scripts/test.sh runs it after
# the cargo tests (it expects scripts/deps.sh to have run and, for `install`, the API server of
# scripts/kube.sh to be up).
#   scripts/chart-test.sh            all checks below
#   scripts/chart-test.sh static     copies current, helm lint, helm template + kubernetes-validate
#                                    --strict (1.37), wrong-typed values rejected (the skaffold/kind/
#                                    Containerfile/chart/local-mode cross-check is a cargo test:
#                                    services/contract/tests/dev_files.rs)
#   scripts/chart-test.sh install    helm install/upgrade into the API server; the operator reconciles
#                                    the sample platform
#   scripts/chart-test.sh local      scripts/local.sh up, smoke (a request to each API), the alerts' and
#                                    dashboard's metrics against every process's /metrics
#                                    (scripts/check-metrics.py; an operator runs against the API server), down
set -euo pipefail
. "$(dirname "$0")/lib.sh" # ROOT, CAMPUS_CACHE, VENV, ok/bad, stop_group, ...
cd "$ROOT"
HELM=$CAMPUS_CACHE/bin/helm
K8S_VERSION=1.37.0
# kubectl: the one scripts/kube.sh builds with the API server (same version), first on PATH.
eval "$(bash scripts/kube.sh env | grep '^export PATH=')"
CHART=helm/campus
OUT=$ROOT/target/chart-test
mkdir -p "$OUT"
checks_begin chart-test

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

  local vals f
  for vals in "" "helm/dev-values.yaml" "helm/dev-values.yaml helm/cluster-values.yaml helm/cluster-dev-values.yaml"; do
    local name=default args=()
    case $vals in *cluster-dev*) name=cluster-dev-infrastructure ;; ?*) name=everything-enabled ;; esac
    for f in $vals; do args+=(-f "$f"); done
    if "$HELM" lint --strict "$CHART" "${args[@]}" >"$OUT/lint-$name.log" 2>&1; then ok "helm lint --strict ($name values)"
    else cat "$OUT/lint-$name.log" >&2; bad "helm lint ($name values)"; fi
    if "$HELM" template campus "$CHART" --namespace campus "${args[@]}" >"$OUT/$name.yaml" 2>"$OUT/template-$name.log"; then
      if validate "$OUT/$name.yaml"; then
        ok "helm template ($name values): $(grep -c ' passed for resource ' "$OUT/$name.yaml.validate") objects valid for Kubernetes $K8S_VERSION (--strict)"
      else bad "kubernetes-validate --strict ($name values), rendered in $OUT/$name.yaml"; fi
    else cat "$OUT/template-$name.log" >&2; bad "helm template ($name values)"; fi
  done

  # The cluster's dev infrastructure (FerretDB, OpenSearch): no users in the MongoDB URL, OpenSearch's
  # settings and data path, no Kibana (it needs Elasticsearch).
  local infra
  infra=$("$VENV/bin/python" -c 'import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
sec = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-infra-credentials"))
sts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
es = sts["campus-elasticsearch"]["spec"]["template"]["spec"]["containers"][0]
mongo = sts["campus-mongodb"]["spec"]["template"]["spec"]["containers"][0]
print(base64.b64decode(sec["data"]["mongo-url"]).decode(),
      ",".join(e["name"] for e in es["env"] if e["name"].startswith(("OPENSEARCH", "xpack"))),
      es["volumeMounts"][0]["mountPath"],
      next(e["value"] for e in mongo["env"] if e["name"] == "FERRETDB_HANDLER"),
      "kibana" if any("kibana" in d["metadata"]["name"] for d in docs) else "no-kibana")' "$OUT/cluster-dev-infrastructure.yaml" 2>&1)
  [ "$infra" = "mongodb://campus-mongodb.campus.svc:27017/ OPENSEARCH_JAVA_OPTS /usr/share/opensearch/data sqlite no-kibana" ] &&
    ok "the cluster's dev infrastructure renders FerretDB and OpenSearch: $infra" || bad "cluster dev infrastructure: '$infra'"

  # The schema rejects values of the wrong type (and unknown keys) before anything renders.
  local case
  for case in "operator.replicas=two|at '/operator/replicas': got string, want integer" \
              "infrastructure.enabled=yes|at '/infrastructure/enabled': got string, want boolean" \
              "expose.nodePorts.contentApi=8081|at '/expose/nodePorts/contentApi': minimum: got 8,081, want 30,000" \
              "operator.imagee.tag=x|at '/operator': additional properties 'imagee' not allowed" \
              "infrastructure.mongodb.distribution=mongo|at '/infrastructure/mongodb/distribution': value must be one of 'mongodb', 'ferretdb'"; do
    local set=${case%%|*} want=${case#*|}
    if "$HELM" template campus "$CHART" --set "$set" >/dev/null 2>"$OUT/schema.log"; then
      bad "values.schema.json accepted --set $set"
    elif grep -qF "$want" "$OUT/schema.log"; then ok "values.schema.json rejects --set $set"
    else cat "$OUT/schema.log" >&2; bad "--set $set failed without the schema's message"; fi
  done

  # platform.extraSpec.coupon.env adds to the coupon service's env: its own database stays (a
  # replaced list would move coupon onto the content database without a word).
  local env
  env=$("$HELM" template campus "$CHART" --set platform.enabled=true --set platform.external.kafkaBrokers=k:9092 \
    --set platform.external.elasticsearchUrl=http://es:9200 --set platform.external.credentialsSecret=creds \
    --set-json 'platform.extraSpec.coupon.env=[{"name":"EXTRA","value":"1"}]' 2>&1 |
    "$VENV/bin/python" -c 'import sys, yaml
# (the platform the operator applies: in its ConfigMap)
docs = list(yaml.safe_load_all(sys.stdin))
cm = next(d for d in docs if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-operator-platform"))
p = yaml.safe_load(cm["data"]["platform.yaml"])
print(" ".join(e["name"] + "=" + e.get("value", e.get("valueFrom", {}).get("secretKeyRef", {}).get("key", "")) for e in p["spec"]["coupon"]["env"]))' 2>&1)
  [ "$env" = "MYSQL_URL=mysql-url-coupon EXTRA=1" ] && ok "platform.extraSpec.coupon.env keeps the coupon database: $env" ||
    bad "platform.extraSpec.coupon.env: coupon env '$env'"
}

KUBECTL=(kubectl)
# adopt_crds: a CRD applied outside Helm (e.g. by the operator's own tests) is adopted by the release,
# as a user would before moving to the chart.
adopt_crds() {
  local release=$1 ns=$2 f name
  for f in "$CHART"/files/crds/*.yaml; do
    [ -f "$f" ] || continue
    name=$("$VENV/bin/python" -c 'import sys,yaml; print(next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d)["metadata"]["name"])' "$f")
    if "${KUBECTL[@]}" get crd "$name" >/dev/null 2>&1; then
      "${KUBECTL[@]}" label --overwrite crd "$name" app.kubernetes.io/managed-by=Helm >/dev/null
      "${KUBECTL[@]}" annotate --overwrite crd "$name" meta.helm.sh/release-name="$release" meta.helm.sh/release-namespace="$ns" >/dev/null
    fi
  done
}

secret_data() { "${KUBECTL[@]}" -n "$1" get secret "$2" -o jsonpath='{.data}'; }

install_checks() {
  if [ -z "${KUBECONFIG:-}" ] || ! "${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1; then
    bad "install: no Kubernetes API server (start it with scripts/kube.sh start and set KUBECONFIG)"; return
  fi
  local ns=campus-chart-test release=chart-test have_crd=0
  ls "$CHART"/files/crds/*.yaml >/dev/null 2>&1 && have_crd=1
  "$HELM" uninstall "$release" -n "$ns" --no-hooks --wait >/dev/null 2>&1 || true
  "${KUBECTL[@]}" delete namespace "$ns" --wait=true --timeout=60s >/dev/null 2>&1 || true
  # Everything enabled: the CRD, the operator, the dev infrastructure, the sample platform, NodePorts.
  local args=(-n "$ns" --create-namespace -f helm/dev-values.yaml)
  [ $have_crd = 1 ] || args+=(--set platform.enabled=false)
  adopt_crds "$release" "$ns"
  if "$HELM" install "$release" "$CHART" "${args[@]}" >"$OUT/install.log" 2>&1; then
    ok "helm install (everything enabled) into the API server (Kubernetes $("${KUBECTL[@]}" version -o json 2>/dev/null | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'))"
  else cat "$OUT/install.log" >&2; bad "helm install (everything enabled)"; return; fi

  # Every object of the release exists on the server.
  "$HELM" get manifest "$release" -n "$ns" >"$OUT/installed.yaml"
  local missing
  missing=$("$VENV/bin/python" - "$OUT/installed.yaml" "$ns" <<'PY'
import subprocess, sys, yaml
objs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
missing = []
for o in objs:
    ns = o["metadata"].get("namespace")
    cmd = ["kubectl", "get", o["kind"] + "." + o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else o["kind"], o["metadata"]["name"]]
    if ns: cmd += ["-n", ns]
    if subprocess.run(cmd, capture_output=True).returncode != 0: missing.append(f"{o['kind']}/{o['metadata']['name']}")
print(len(objs), " ".join(missing))
PY
)
  if [ -z "${missing#* }" ] || [ "${missing#* }" = "$missing" ]; then ok "all ${missing%% *} objects of the release exist on the server"
  else bad "objects missing after install: ${missing#* }"; fi

  # The controller-manager turns the Deployments into ReplicaSets: the manifests are accepted as a whole.
  local rs=""
  for _ in $(seq 1 50); do
    rs=$("${KUBECTL[@]}" -n "$ns" get rs -l app.kubernetes.io/component=operator -o name 2>/dev/null)
    [ -n "$rs" ] && break; sleep 0.2
  done
  if [ -n "$rs" ]; then ok "the operator Deployment rolled out a ReplicaSet ($rs)"; else bad "no ReplicaSet for the operator Deployment"; fi

  # Generated credentials: random, 24 characters, and the same after an upgrade (lookup).
  local before after
  before=$(secret_data "$ns" "$release-campus-infra-credentials")
  if "$VENV/bin/python" -c 'import base64,json,sys; d=json.loads(sys.argv[1]); pw=[base64.b64decode(d[k]).decode() for k in d if k.endswith("password")]; sys.exit(0 if len(pw)==4 and all(len(p)==24 and p.isalnum() for p in pw) and len(set(pw))==4 else 1)' "$before"; then
    ok "the infrastructure credentials are generated (4 distinct random 24-character passwords)"
  else bad "infrastructure credentials are not 4 distinct random passwords"; fi
  if "$HELM" upgrade "$release" "$CHART" "${args[@]}" >"$OUT/upgrade.log" 2>&1; then
    after=$(secret_data "$ns" "$release-campus-infra-credentials")
    if [ "$before" = "$after" ]; then ok "helm upgrade keeps the generated credentials"; else bad "helm upgrade changed the generated credentials"; fi
  else cat "$OUT/upgrade.log" >&2; bad "helm upgrade"; fi

  if [ $have_crd = 1 ]; then
    crd_checks "$release" "$ns"
    platform_checks "$release" "$ns"
    reconcile_checks
  else
    echo "chart-test: note: crds/ has no CRD yet; the CRD and sample-platform checks wait for it"
  fi

  "$HELM" uninstall "$release" -n "$ns" --no-hooks >/dev/null 2>&1 && ok "helm uninstall (--no-hooks: no node runs the pre-delete Job here; the cluster e2e does)" || bad "helm uninstall"
  "${KUBECTL[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}

# The CRD is a template: an upgrade applies a changed CRD (Helm never upgrades crds/ files), and
# uninstall keeps it.
crd_checks() {
  local release=$1 ns=$2 crd name
  crd=$(ls "$CHART"/files/crds/*.yaml | head -n 1)
  name=$("$VENV/bin/python" -c 'import sys,yaml; print(next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d)["metadata"]["name"])' "$crd")
  if [ "$("${KUBECTL[@]}" get crd "$name" -o jsonpath='{.metadata.annotations.helm\.sh/resource-policy}')" = keep ]; then
    ok "CRD $name is installed by the chart, with helm.sh/resource-policy: keep"
  else bad "CRD $name lacks helm.sh/resource-policy: keep"; fi
  # An "older chart" whose CRD lacks a printer column; upgrading to the real chart must add it back.
  local old=$OUT/old-chart
  rm -rf "$old"; cp -r "$CHART" "$old"
  "$VENV/bin/python" - "$old/files/crds/$(basename "$crd")" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for v in docs[0]["spec"]["versions"]:
    v["additionalPrinterColumns"] = [c for c in v.get("additionalPrinterColumns", []) if c["name"] != "Age"] + [{"name": "Old", "type": "string", "jsonPath": ".spec.old"}]
yaml.safe_dump_all(docs, open(sys.argv[1], "w"))
PY
  local args=(-n "$ns" -f helm/dev-values.yaml --set platform.enabled=false)
  if "$HELM" upgrade "$release" "$old" "${args[@]}" >"$OUT/upgrade-old.log" 2>&1 &&
     "${KUBECTL[@]}" get crd "$name" -o jsonpath='{.spec.versions[0].additionalPrinterColumns[*].name}' | grep -qw Old &&
     "$HELM" upgrade "$release" "$CHART" -n "$ns" -f helm/dev-values.yaml >"$OUT/upgrade-new.log" 2>&1; then
    local cols; cols=$("${KUBECTL[@]}" get crd "$name" -o jsonpath='{.spec.versions[0].additionalPrinterColumns[*].name}')
    if ! grep -qw Old <<<"$cols" && grep -qw Age <<<"$cols"; then ok "helm upgrade brings the CRD up to date (printer columns now: $cols)"
    else bad "helm upgrade did not update the CRD (printer columns: $cols)"; fi
  else cat "$OUT"/upgrade-*.log >&2; bad "helm upgrade from a chart with an older CRD"; fi
}

# platform_manifest RELEASE NS FILE: the sample platform the operator applies (its ConfigMap).
platform_manifest() {
  "${KUBECTL[@]}" -n "$2" get configmap "$1-campus-operator-platform" -o jsonpath='{.data.platform\.yaml}' >"$3"
}

# The sample platform: the operator's ConfigMap carries it (the operator server-side applies it once
# leading; no operator pod runs on this API server, so the check applies it the same way: kubectl
# apply --server-side, field manager campus-chart); every field the chart sets is one the CRD keeps
# (the API server prunes unknown fields silently); a `helm upgrade` with a changed value changes the
# manifest and rolls the operator (its checksum/platform annotation), which applies it again.
platform_checks() {
  local release=$1 ns=$2 name file=$OUT/platform.yaml
  name=$("$VENV/bin/python" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["platform"]["name"])' "$CHART/values.yaml")
  if platform_manifest "$release" "$ns" "$file" && grep -q '^kind: CampusPlatform' "$file" &&
     "${KUBECTL[@]}" apply --server-side --field-manager campus-chart --force-conflicts -f "$file" >"$OUT/platform-apply.log" 2>&1; then
    ok "the sample CampusPlatform is in the operator's ConfigMap and the API server accepts it (server-side apply)"
  else cat "$OUT/platform-apply.log" >&2; bad "the sample CampusPlatform of the operator's ConfigMap was not accepted"; return; fi
  cp "$file" "$OUT/release.yaml"
  "${KUBECTL[@]}" -n "$ns" get campusplatform "$name" -o json >"$OUT/platform.json" 2>"$OUT/platform.err" || {
    cat "$OUT/platform.err" >&2; bad "no CampusPlatform $name on the server"; return; }
  local diff
  diff=$("$VENV/bin/python" - "$OUT/release.yaml" "$OUT/platform.json" <<'PY'
import json, sys, yaml
want = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "CampusPlatform")["spec"]
have = json.load(open(sys.argv[2]))["spec"]
def missing(w, h, path="spec"):
    if isinstance(w, dict):
        if not isinstance(h, dict): return [path]
        return [m for k, v in w.items() for m in missing(v, h.get(k), f"{path}.{k}")]
    if isinstance(w, list):
        if not isinstance(h, list) or len(h) != len(w): return [path]
        return [m for i, v in enumerate(w) for m in missing(v, h[i], f"{path}[{i}]")]
    return [] if w == h else [path]
print(" ".join(missing(want, have)))
PY
)
  if [ -z "$diff" ]; then ok "every field of the sample CampusPlatform is kept by the CRD (none pruned)"
  else bad "the API server dropped or changed these fields of the sample platform: $diff"; fi
  local sum0 sum1 replicas
  sum0=$("${KUBECTL[@]}" -n "$ns" get deploy "$release-campus-operator" -o jsonpath='{.spec.template.metadata.annotations.checksum/platform}')
  if "$HELM" upgrade "$release" "$CHART" -n "$ns" -f helm/dev-values.yaml --set platform.extraSpec.content.replicas=3 >"$OUT/upgrade-platform.log" 2>&1 &&
     platform_manifest "$release" "$ns" "$file"; then
    sum1=$("${KUBECTL[@]}" -n "$ns" get deploy "$release-campus-operator" -o jsonpath='{.spec.template.metadata.annotations.checksum/platform}')
    replicas=$("$VENV/bin/python" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["spec"]["content"]["replicas"])' "$file")
    if [ "$replicas" = 3 ] && [ -n "$sum0" ] && [ "$sum0" != "$sum1" ]; then
      ok "helm upgrade with a changed value: the operator's platform manifest has it (content.replicas 3) and the operator rolls"
    else bad "helm upgrade: manifest content.replicas '$replicas', checksum/platform '$sum0' -> '$sum1'"; fi
  else cat "$OUT/upgrade-platform.log" >&2; bad "helm upgrade with platform.extraSpec.content.replicas=3"; fi
}

# The local mode: one command brings every API and worker up; a real request to each API succeeds.
local_checks() {
  local t0=$SECONDS
  trap 'bash scripts/local.sh down >/dev/null 2>&1 || true' RETURN
  if bash scripts/local.sh up >"$OUT/local-up.log" 2>&1; then
    ok "scripts/local.sh up: $(grep -o 'all [0-9]* processes ready.*' "$OUT/local-up.log")"
  else tail -n 30 "$OUT/local-up.log" >&2; bad "scripts/local.sh up"; return; fi
  if bash scripts/local.sh smoke >"$OUT/local-smoke.log" 2>&1; then
    ok "scripts/local.sh smoke: $(grep -c 'ok ' "$OUT/local-smoke.log") requests to the content, coupon and log APIs answered as expected"
  else cat "$OUT/local-smoke.log" >&2; bad "scripts/local.sh smoke"; fi
  metrics_checks
  bash scripts/local.sh down >"$OUT/local-down.log" 2>&1
  if bash scripts/local.sh status >/dev/null 2>&1 || grep -q running <(bash scripts/local.sh status 2>/dev/null); then
    bad "scripts/local.sh down left processes running"
  else ok "scripts/local.sh down stopped every process ($((SECONDS - t0)) s for up, smoke and down)"; fi
}

# The chart's PrometheusRule and Grafana dashboard ask only for metrics (and labels) the code exports:
# checked against the /metrics of every process of the local mode (after its smoke requests) and of an
# operator run against the API server, watching a namespace of its own.
metrics_checks() {
  local rendered=$OUT/metrics.yaml op=${CARGO_TARGET_DIR:-$ROOT/target}/debug/campus-operator
  if ! "$HELM" template campus "$CHART" --namespace campus --set metrics.podMonitor.enabled=true \
      --set metrics.prometheusRule.enabled=true --set metrics.dashboard.enabled=true >"$rendered" 2>"$OUT/metrics-template.log"; then
    cat "$OUT/metrics-template.log" >&2; bad "helm template with metrics.podMonitor, prometheusRule and dashboard enabled"; return
  fi
  cargo build -q --locked -p campus-operator >"$OUT/operator-build.log" 2>&1 || { tail "$OUT/operator-build.log" >&2; bad "cargo build -p campus-operator"; return; }
  # (No leader election: it must not contend for a Lease with other operators on the API server.)
  RUST_LOG=info setsid "$op" --namespace "campus-metrics-$(date +%s)" --ops-addr 127.0.0.1:0 --leader-election false \
    >"$OUT/metrics-operator.log" 2>&1 &
  local pid=$! addr="" urls=()
  for _ in $(seq 1 100); do
    addr=$(grep -o '"addr":"[^"]*"' "$OUT/metrics-operator.log" | head -n 1 | cut -d'"' -f4 || true)
    [ -n "$addr" ] && break
    kill -0 $pid 2>/dev/null || break; sleep 0.1
  done
  [ -n "$addr" ] && urls+=("http://$addr/metrics") || { tail -n 5 "$OUT/metrics-operator.log" >&2; bad "the operator for the metrics check did not start (KUBECONFIG: ${KUBECONFIG:-unset})"; }
  # Every process of the local mode, on its port (scripts/local.sh's PROCESSES).
  local port
  for port in $(sed -n 's/^[a-z-]*|campus-[a-z]*|[^|]*|[A-Z_]*|\([0-9]*\)$/\1/p' scripts/local.sh); do urls+=("http://127.0.0.1:$port/metrics"); done
  if "$VENV/bin/python" scripts/check-metrics.py "$rendered" "${urls[@]}" >"$OUT/check-metrics.log" 2>&1; then
    ok "the PrometheusRule and the Grafana dashboard use only metrics and labels the running processes export ($(tail -n 1 "$OUT/check-metrics.log" | sed 's/check-metrics: //'), ${#urls[@]} processes)"
  else grep -E 'FAIL|passed' "$OUT/check-metrics.log" >&2; bad "the alerts or the dashboard use metrics the code does not export (scripts/check-metrics.py)"; fi
  stop_group "$pid"
  wait "$pid" 2>/dev/null || true
}

# The operator, run as a process against the API server, reconciles the chart's sample platform (pointed
# at the local servers) into the expected children; the chart's expose Services select its API pods.
reconcile_checks() {
  # A fresh namespace each run: a namespace being deleted accepts nothing new.
  local ns=campus-reconcile-$(date +%s) release=reconcile platform=reconcile op=${CARGO_TARGET_DIR:-$ROOT/target}/debug/campus-operator
  cargo build -q --locked -p campus-operator >"$OUT/operator-build.log" 2>&1 || { tail "$OUT/operator-build.log" >&2; bad "cargo build -p campus-operator"; return; }
  if ! "$op" --help 2>/dev/null | grep -- '--leader-election' >/dev/null; then
    bad "$op has no --leader-election flag: not the operator the chart deploys"; return
  fi
  eval "$(bash scripts/servers.sh env)"
  "${KUBECTL[@]}" create namespace "$ns" >/dev/null 2>&1 || true
  # Cluster-scoped objects an interrupted earlier run of this release left behind.
  "${KUBECTL[@]}" delete clusterrole,clusterrolebinding -l app.kubernetes.io/instance=$release >/dev/null 2>&1 || true
  "${KUBECTL[@]}" -n "$ns" create secret generic reconcile-credentials --dry-run=client -o yaml \
    --from-literal=mysql-url-content="$CAMPUS_TEST_MYSQL_URL/campus_reconcile_content" \
    --from-literal=mysql-url-coupon="$CAMPUS_TEST_MYSQL_URL/campus_reconcile_coupon" \
    --from-literal=mongo-url="$CAMPUS_TEST_MONGO_URL" --from-literal=redis-url="$CAMPUS_TEST_REDIS_URL" |
    "${KUBECTL[@]}" apply -f - >/dev/null || { bad "could not create the credentials Secret in $ns"; return; }
  # The operator's ServiceAccount and RBAC come from the chart (no pod runs: replicas 0); the process
  # below impersonates that ServiceAccount, so it can only do what the chart's least RBAC allows.
  if ! "$HELM" install "$release" "$CHART" -n "$ns" --set crds.install=false --set operator.replicas=0 \
      --set operator.watchNamespace="$ns" --set platform.enabled=true --set platform.name=$platform --set platform.kafkaPrefix=chart-reconcile \
      --set platform.logProcessor=Native --set expose.enabled=true --set expose.type=ClusterIP \
      --set platform.external.kafkaBrokers="$CAMPUS_TEST_KAFKA_BROKERS" \
      --set platform.external.elasticsearchUrl="$CAMPUS_TEST_ES_URL" \
      --set platform.external.credentialsSecret=reconcile-credentials >"$OUT/reconcile-install.log" 2>&1; then
    cat "$OUT/reconcile-install.log" >&2; bad "helm install of the sample platform for the operator"; return
  fi
  local sa="system:serviceaccount:$ns:$release-campus-operator"
  "$VENV/bin/python" - "$KUBECONFIG" "$OUT/operator-kubeconfig" "$sa" "$ns" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
for u in cfg["users"]:
    u["user"]["as"] = sys.argv[3]
    u["user"]["as-groups"] = ["system:serviceaccounts", f"system:serviceaccounts:{sys.argv[4]}", "system:authenticated"]
yaml.safe_dump(cfg, open(sys.argv[2], "w"))
PY
  # What the chart's RBAC grants the operator with watchNamespace set, and what it refuses.
  local role=$release-campus-operator verdicts="" want_verdicts
  for q in "create deployments -n $ns" "delete configmaps -n $ns" "update leases/$role -n $ns" \
      "bind clusterroles/$role-filebeat" "create clusterrolebindings" \
      "delete clusterroles/cluster-admin" "bind clusterroles/cluster-admin" "create clusterroles" \
      "update leases/kube-scheduler -n kube-system" "create deployments -n kube-system" \
      "create deployments -n default" "get secrets -n $ns" "list pods -n $ns"; do
    # shellcheck disable=SC2086
    verdicts+="$(KUBECONFIG=$OUT/operator-kubeconfig "${KUBECTL[@]}" auth can-i $q 2>/dev/null || true) "
  done
  want_verdicts="yes yes yes yes yes no no no no no no no no "
  if [ "$verdicts" = "$want_verdicts" ]; then
    ok "kubectl auth can-i as the operator (watchNamespace): its namespace's children, its Lease and Filebeat's role only; not cluster-admin, kube-system, other namespaces, Secrets"
  else bad "kubectl auth can-i as the operator: got '$verdicts', want '$want_verdicts'"; fi
  # The sample platform of the chart, applied by the operator itself (as in its pod: --apply-platform).
  platform_manifest "$release" "$ns" "$OUT/reconcile-platform.yaml" || { bad "no platform ConfigMap in $ns"; return; }
  KUBECONFIG=$OUT/operator-kubeconfig RUST_LOG=info setsid "$op" --namespace "$ns" \
    --lease-namespace "$ns" --lease-name "$role" --filebeat-cluster-role "$role-filebeat" \
    --apply-platform "$OUT/reconcile-platform.yaml" --ops-addr 127.0.0.1:0 >"$OUT/operator.log" 2>&1 &
  local pid=$!
  local want="$platform-content-api $platform-content-inspection $platform-content-cache $platform-content-inbox $platform-content-index $platform-coupon-api $platform-coupon-issue $platform-log-api $platform-log-index"
  local have="" missing=""
  for _ in $(seq 1 150); do
    have=$("${KUBECTL[@]}" -n "$ns" get deployments -l campus.dev/platform=$platform -o jsonpath='{.items[*].metadata.name}' 2>/dev/null)
    missing=""; for d in $want; do grep -qw "$d" <<<"$have" || missing+=" $d"; done
    [ -z "$missing" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$missing" ]; then ok "the operator, as the chart's ServiceAccount (least RBAC, leader Lease), reconciled the sample platform into its $(wc -w <<<"$want") Deployments"
  else tail -n 20 "$OUT/operator.log" >&2; bad "the operator did not create:$missing"; fi
  local objs="$OUT/reconciled.json"
  "${KUBECTL[@]}" -n "$ns" get deployments,services,daemonsets,configmaps -o json >"$objs"
  local report
  report=$("$VENV/bin/python" - "$objs" "$platform" "$release" <<'PY'
import json, sys
items = json.load(open(sys.argv[1]))["items"]
platform, release = sys.argv[2], sys.argv[3]
by = {(o["kind"], o["metadata"]["name"]): o for o in items}
out = []
# The chart's expose Services select exactly the pods of the operator's API Deployments.
for api in ("content", "coupon", "log"):
    svc = by.get(("Service", f"{release}-campus-expose-{api}-api"))
    dep = by.get(("Deployment", f"{platform}-{api}-api"))
    if not svc or not dep:
        out.append(f"FAIL expose Service or {api} API Deployment missing"); continue
    sel, labels = svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]
    ok = all(labels.get(k) == v for k, v in sel.items())
    out.append(("ok   " if ok else "FAIL ") + f"service/{svc['metadata']['name']} selects the pods of deployment/{dep['metadata']['name']}" + ("" if ok else f": {sel} vs {labels}"))
# The coupon service gets its own database through the env override of the sample platform.
for d in (f"{platform}-coupon-api", f"{platform}-coupon-issue"):
    dep = by.get(("Deployment", d))
    env = {e["name"]: e for c in dep["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])} if dep else {}
    ref = env.get("MYSQL_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    ok = ref.get("key") == "mysql-url-coupon"
    out.append(("ok   " if ok else "FAIL ") + f"deployment/{d} reads MYSQL_URL from the coupon database's key" + ("" if ok else f": {env.get('MYSQL_URL')}"))
# Nothing the operator manages is also managed by Helm (no name collisions between chart and operator).
both = [n for (k, n), o in by.items() if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "Helm"
        and any(r.get("kind") == "CampusPlatform" for r in o["metadata"].get("ownerReferences", []))]
out.append(("ok   " if not both else "FAIL ") + "no object is managed by both Helm and the operator" + (f": {both}" if both else ""))
print("\n".join(out))
PY
)
  while IFS= read -r line; do
    case $line in "ok   "*) ok "${line#ok   }" ;; *) bad "${line#FAIL }" ;; esac
  done <<<"$report"
  local status=""
  for _ in $(seq 1 50); do
    status=$("${KUBECTL[@]}" -n "$ns" get campusplatform $platform -o jsonpath='{.status.observedGeneration}' 2>/dev/null)
    [ -n "$status" ] && break; sleep 0.2
  done
  if grep -qi 'forbidden' "$OUT/operator.log"; then bad "the operator was refused something by the chart's RBAC: $(grep -i -m1 forbidden "$OUT/operator.log" | cut -c1-300)"
  else ok "the chart's RBAC refused the operator nothing"; fi
  if [ -n "$status" ]; then ok "the operator wrote the platform's status (observedGeneration $status): $("${KUBECTL[@]}" -n "$ns" get campus $platform --no-headers 2>/dev/null | tr -s ' ')"
  else bad "the operator wrote no status"; fi
  "${KUBECTL[@]}" -n "$ns" get campus >"$OUT/kubectl-get-campus.txt" 2>&1 || true
  "$HELM" uninstall "$release" -n "$ns" --no-hooks >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do "${KUBECTL[@]}" -n "$ns" get campusplatform $platform >/dev/null 2>&1 || break; sleep 0.2; done
  term_group "$pid"
  if ! wait_gone "$pid" 10; then
    kill_group "$pid"
    bad "the operator did not stop within 10 s of SIGTERM"
  else ok "the operator stopped on SIGTERM"; fi
  wait "$pid" 2>/dev/null || true
  "${KUBECTL[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}

case ${1:-all} in
  static) static_checks ;;
  install) install_checks ;;
  local) local_checks ;;
  all) static_checks; install_checks; local_checks ;;
  *) echo "usage: $0 [static|install|local|all]" >&2; exit 2 ;;
esac
checks_end
