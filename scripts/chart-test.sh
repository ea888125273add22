#!/usr/bin/env bash
# Checks of the Helm chart, the container builds and the dev-loop files; scripts/test.sh runs it after
# the cargo tests (it expects scripts/deps.sh to have run and, for `install`, the API server of
# scripts/kube.sh to be up).
#   scripts/chart-test.sh            all checks below
#   scripts/chart-test.sh static     copies current, helm lint, helm template + kubernetes-validate
#                                    --strict (1.37), wrong-typed values rejected, the real skaffold's
#                                    diagnose + render of skaffold.yaml for every profile against the chart
#                                    and kind-config.yaml (what skaffold cannot check -- artifacts vs
#                                    Containerfile targets, values keys, Containerfile binaries and
#                                    ports vs the contract, local-mode ports vs kind-config.yaml -- is a
#                                    cargo test: services/contract/tests/dev_files.rs),
#                                    the chart README current (helm-docs), every pod's securityContext and
#                                    resources (default and helm/openshift-values.yaml), image refs,
#                                    infrastructure.auth without lookup, platform.auth -> spec.auth,
#                                    Kafka UI, the helm test pod,
#                                    .github/workflows/release.yaml
#   scripts/chart-test.sh install    helm install/upgrade into the API server; the operator reconciles
#                                    the sample platform
#                                    (+ the helm test pod's URLs against the Services the operator made,
#                                    the chart's RBAC per watched namespace with kubectl auth can-i)
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

# platform.auth becomes the sample platform's spec.auth in mode Jwt only (mode None leaves the spec
# as it was), with the key as a Secret reference; mode Jwt without exactly one key source fails the
# render with a message naming the values.
platform_auth_checks() {
  local platform=(--set platform.enabled=true --set platform.external.kafkaBrokers=k:9092
    --set platform.external.elasticsearchUrl=http://es:9200 --set platform.external.credentialsSecret=creds)
  local spec='import json, sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-operator-platform"))
print(json.dumps(yaml.safe_load(cm["data"]["platform.yaml"])["spec"].get("auth"), sort_keys=True))'
  local none jwt jwks
  none=$("$HELM" template campus "$CHART" "${platform[@]}" 2>&1 | "$VENV/bin/python" -c "$spec" 2>&1)
  jwt=$("$HELM" template campus "$CHART" "${platform[@]}" --set platform.auth.mode=Jwt \
    --set platform.auth.secretRef.name=campus-jwt --set platform.auth.secretRef.key=hs256 \
    --set platform.auth.issuer=https://idp.example --set platform.auth.audience=campus 2>&1 | "$VENV/bin/python" -c "$spec" 2>&1)
  jwks=$("$HELM" template campus "$CHART" "${platform[@]}" --set platform.auth.mode=Jwt \
    --set platform.auth.jwksUrl=https://idp.example/jwks.json --set platform.auth.userClaim=uid 2>&1 | "$VENV/bin/python" -c "$spec" 2>&1)
  local want_jwt='{"jwt": {"audience": "campus", "issuer": "https://idp.example", "secretRef": {"key": "hs256", "name": "campus-jwt"}}, "mode": "Jwt"}'
  local want_jwks='{"jwt": {"jwksUrl": "https://idp.example/jwks.json", "userClaim": "uid"}, "mode": "Jwt"}'
  if [ "$none" = null ] && [ "$jwt" = "$want_jwt" ] && [ "$jwks" = "$want_jwks" ]; then
    ok "platform.auth: mode None leaves spec.auth out; Jwt gives spec.auth with a secretRef or a jwksUrl"
  else bad "platform.auth: spec.auth '$none' / '$jwt' / '$jwks'"; fi
  if "$HELM" template campus "$CHART" "${platform[@]}" --set platform.auth.mode=Jwt >/dev/null 2>"$OUT/auth-mode.log"; then
    bad "platform.auth.mode=Jwt without a key source rendered"
  elif grep -q "needs exactly one of platform.auth.secretRef" "$OUT/auth-mode.log"; then
    ok "platform.auth.mode=Jwt without a secretRef or jwksUrl fails the render, naming the values"
  else cat "$OUT/auth-mode.log" >&2; bad "platform.auth.mode=Jwt without a key source failed without the message"; fi
  # platform.couponRateLimits -> spec.coupon.rateLimits (beside the chart's coupon image and env);
  # a limit under 1 fails the render (values.schema.json).
  local rates='import json, sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-operator-platform"))
c = yaml.safe_load(cm["data"]["platform.yaml"])["spec"]["coupon"]
print(json.dumps(c.get("rateLimits"), sort_keys=True), bool(c.get("image")))'
  none=$("$HELM" template campus "$CHART" "${platform[@]}" 2>&1 | "$VENV/bin/python" -c "$rates" 2>&1)
  jwt=$("$HELM" template campus "$CHART" "${platform[@]}" --set-json 'platform.couponRateLimits={"perUser":2,"global":500}' 2>&1 | "$VENV/bin/python" -c "$rates" 2>&1)
  if [ "$none" = "null True" ] && [ "$jwt" = '{"global": 500, "perUser": 2} True' ] &&
     ! "$HELM" template campus "$CHART" "${platform[@]}" --set-json 'platform.couponRateLimits={"perUser":0}' >/dev/null 2>&1; then
    ok "platform.couponRateLimits: none by default, spec.coupon.rateLimits beside the coupon image when set, 0 refused"
  else bad "platform.couponRateLimits: '$none' / '$jwt' (or perUser 0 rendered)"; fi
}

# skaffold_checks: the real skaffold (scripts/install/skaffold.sh) reads skaffold.yaml and renders
# the chart as `skaffold run` deploys it, for each profile (no image is built: --digest-source=tag,
# --offline). The rendered objects are valid for Kubernetes, the Campus images are skaffold's
# artifacts with its tag, port-forwards name rendered Services and ports, and kind-config.yaml maps
# exactly the kind profile's NodePorts to the port-forward profile's local ports. (`skaffold
# diagnose` without --yaml-only asks the registry for the Containerfile's base images: not here.)
skaffold_checks() {
  . scripts/install/skaffold.sh
  local sk=$SKAFFOLD_BIN tag=ci-$$ p args
  [ -x "$sk" ] || { bad "skaffold is not installed ($sk): run scripts/deps.sh"; return 0; }
  export SKAFFOLD_UPDATE_CHECK=false
  for p in default kind port-forward; do
    args=(); [ $p = default ] || args=(-p "$p")
    if PATH=$CAMPUS_CACHE/bin:$PATH "$sk" diagnose --yaml-only "${args[@]}" >"$OUT/skaffold-$p.config.yaml" 2>"$OUT/skaffold-$p.log" &&
      PATH=$CAMPUS_CACHE/bin:$PATH "$sk" render --offline=true --digest-source=tag -t "$tag" "${args[@]}" \
        >"$OUT/skaffold-$p.yaml" 2>>"$OUT/skaffold-$p.log"; then
      if validate "$OUT/skaffold-$p.yaml"; then
        ok "skaffold $($sk version) diagnose + render ($p profile): $(grep -c ' passed for resource ' "$OUT/skaffold-$p.yaml.validate") objects valid for Kubernetes $K8S_VERSION (--strict)"
      else bad "skaffold render ($p profile): not valid, rendered in $OUT/skaffold-$p.yaml"; fi
    else tail -n 5 "$OUT/skaffold-$p.log" >&2; bad "skaffold diagnose/render ($p profile)"; fi
  done
  local out py
  py=$(cat <<'PY'
import sys, yaml
out, tag = sys.argv[1], sys.argv[2]
load = lambda f: [d for d in yaml.safe_load_all(open(f"{out}/{f}")) if d]
problems, checked = [], 0
def check(cond, what):
    global checked
    checked += 1
    if not cond: problems.append(what)
ours = {f"campus-{t}:{tag}" for t in ("operator", "content", "coupon", "log")}
rendered = {p: load(f"skaffold-{p}.yaml") for p in ("default", "kind", "port-forward")}
for p, objs in rendered.items():
    cfg = load(f"skaffold-{p}.config.yaml")[0]
    check(sorted(a["image"] for a in cfg["build"]["artifacts"]) == sorted(i.split(":")[0] for i in ours),
          f"{p}: skaffold builds the four Campus images")
    # The operator's image, and the service images of the platform it applies (its ConfigMap).
    text = "\n".join(yaml.safe_dump(o) for o in objs)
    for image in ours:
        check(image in text, f"{p}: {image} is deployed")
    services = {(o["metadata"]["name"], o["metadata"].get("namespace")): o for o in objs if o["kind"] == "Service"}
    for pf in cfg.get("portForward", []):
        svc = services.get((pf["resourceName"], pf.get("namespace", "default")))
        check(svc is not None and pf["port"] in [q["port"] for q in svc["spec"]["ports"]],
              f"{p}: port-forward service/{pf['resourceName']}:{pf['port']} is a rendered Service port")
kind = yaml.safe_load(open("kind-config.yaml"))
mappings = {m["containerPort"]: m for n in kind.get("nodes", []) for m in n.get("extraPortMappings", [])}
nodeports = {q["nodePort"]: o["metadata"]["name"] for o in rendered["kind"] if o["kind"] == "Service"
             and o["spec"].get("type") == "NodePort" for q in o["spec"]["ports"]}
check(sorted(nodeports) == sorted(mappings), f"kind-config.yaml maps exactly the kind profile's NodePorts {sorted(nodeports)} (maps {sorted(mappings)})")
forwards = {pf["resourceName"]: pf.get("localPort") for pf in load("skaffold-port-forward.config.yaml")[0].get("portForward", [])}
for port, svc in nodeports.items():
    m = mappings.get(port, {})
    check(m.get("listenAddress") == "127.0.0.1", f"kind maps NodePort {port} on 127.0.0.1 only")
    check(m.get("hostPort") == forwards.get(svc), f"service/{svc} is localhost:{m.get('hostPort')} on kind and {forwards.get(svc)} with port-forward")
if problems:
    print("; ".join(problems)); sys.exit(1)
print(f"{checked} checks")
PY
  )
  if out=$("$VENV/bin/python" -c "$py" "$OUT" "$tag" 2>&1); then ok "skaffold's rendered chart and kind-config.yaml agree: $out"
  else bad "skaffold's rendered chart and kind-config.yaml: $out"; fi
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
  fuzz_checks
  bash scripts/local.sh down >"$OUT/local-down.log" 2>&1
  if bash scripts/local.sh status >/dev/null 2>&1 || grep -q running <(bash scripts/local.sh status 2>/dev/null); then
    bad "scripts/local.sh down left processes running"
  else ok "scripts/local.sh down stopped every process ($((SECONDS - t0)) s for up, smoke and down)"; fi
  # The local mode's data goes too: whoever runs the README's path next starts from nothing (its
  # examples expect post 1 and coupon event 1).
  if bash scripts/local.sh reset >"$OUT/local-reset.log" 2>&1; then ok "scripts/local.sh reset: the local mode's data removed"
  else cat "$OUT/local-reset.log" >&2; bad "scripts/local.sh reset"; fi
}

# Property-based requests from each running API's own OpenAPI document (schemathesis; the content,
# coupon, coupon admin and log APIs of the local mode): no 5xx, no status the document does not list,
# no body that breaks its schema or content type. (Not `positive_data_acceptance`: the documents'
# schemas are looser than the APIs' validation, e.g. `size=0` is refused with 400.)
fuzz_checks() {
  local st want port name log
  # A new seed each run (it explores further over time), printed so a failure can be replayed:
  # CAMPUS_FUZZ_SEED=N scripts/chart-test.sh local.
  local seed=${CAMPUS_FUZZ_SEED:-$(( (RANDOM << 15) | RANDOM ))}
  want=$(sed -n 's/^SCHEMATHESIS_VERSION=//p' scripts/deps.sh)
  st=$CAMPUS_CACHE/schemathesis-$want/bin/st
  [ -x "$st" ] || { bad "no schemathesis $want in $CAMPUS_CACHE (scripts/deps.sh installs it)"; return; }
  for api in content:8081 coupon:8082 coupon-admin:8092 log:8083; do
    name=${api%%:*} port=${api##*:} log=$OUT/fuzz-$name.log
    # (run in $OUT: schemathesis keeps its crash cache in ./.schemathesis, never in the clone)
    if (cd "$OUT" && "$st" run "http://127.0.0.1:$port/api-docs/openapi.json" --phases examples,coverage,fuzzing \
        --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
        --max-examples 30 --seed "$seed" --warnings off) >"$log" 2>&1; then
      ok "schemathesis $want on the $name API (:$port), seed $seed: $(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$log" | tail -n 1), no 5xx, every status and body as its OpenAPI document says"
    else
      grep -vE '^\s*$' "$log" | grep -E '^_+ |^[0-9]+\. |^    [A-Z]|curl' | head -n 30 >&2
      bad "schemathesis on the $name API (:$port), seed $seed (CAMPUS_FUZZ_SEED=$seed replays it): $(grep -E 'failures? in|errors? in' "$log" | tail -n 1) (all of it: $log)"
    fi
  done
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
  # (operator.watchNamespaces left at its default: the release namespace alone.)
  if ! "$HELM" install "$release" "$CHART" -n "$ns" --set crds.install=false --set operator.replicas=0 \
      --set platform.enabled=true --set platform.name=$platform --set platform.kafkaPrefix=chart-reconcile \
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
  # What the chart's RBAC grants the operator by default (the release namespace), and what it refuses.
  local role=$release-campus-operator verdicts="" want_verdicts
  for q in "create deployments -n $ns" "delete configmaps -n $ns" "update leases/$role -n $ns" \
      "bind clusterroles/$role-filebeat" "update clusterrolebindings/$role-filebeat" "create clusterrolebindings" \
      "delete clusterroles/cluster-admin" "bind clusterroles/cluster-admin" "create clusterroles" \
      "update leases/kube-scheduler -n kube-system" "create deployments -n kube-system" \
      "create deployments -n default" "get secrets -n $ns" "list pods -n $ns"; do
    # shellcheck disable=SC2086
    verdicts+="$(KUBECONFIG=$OUT/operator-kubeconfig "${KUBECTL[@]}" auth can-i $q 2>/dev/null || true) "
  done
  want_verdicts="yes yes yes yes yes no no no no no no no no no "
  if [ "$verdicts" = "$want_verdicts" ]; then
    ok "kubectl auth can-i as the operator (default: the release namespace): its namespace's children, its Lease, the Filebeat binding's subjects only; not cluster-admin, kube-system, other namespaces, Secrets, new bindings"
  else bad "kubectl auth can-i as the operator: got '$verdicts', want '$want_verdicts'"; fi
  # The sample platform of the chart, applied by the operator itself (as in its pod: --apply-platform).
  platform_manifest "$release" "$ns" "$OUT/reconcile-platform.yaml" || { bad "no platform ConfigMap in $ns"; return; }
  KUBECONFIG=$OUT/operator-kubeconfig RUST_LOG=info setsid "$op" --namespace "$ns" \
    --lease-namespace "$ns" --lease-name "$role" --filebeat-cluster-role "$role-filebeat" \
    --filebeat-cluster-role-binding "$role-filebeat" \
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

# helm/campus/README.md is what helm-docs (the version scripts/deps.sh pins) makes of README.md.gotmpl
# and values.yaml's `# --` comments: helm-docs runs into a copy of the chart and the copies are diffed.
chart_docs_checks() {
  local hd=$CAMPUS_CACHE/bin/helm-docs want tmp=$OUT/helm-docs
  want=$(sed -n 's/^HELM_DOCS_VERSION=//p' scripts/deps.sh)
  if [ "$("$hd" --version 2>/dev/null)" != "helm-docs version $want" ]; then
    bad "no helm-docs $want in $CAMPUS_CACHE/bin (scripts/deps.sh installs it)"; return
  fi
  rm -rf "$tmp"; mkdir -p "$tmp"; cp -r "$CHART" "$tmp/"
  if ! "$hd" -c "$tmp" >"$tmp.log" 2>&1; then cat "$tmp.log" >&2; bad "helm-docs failed on a copy of the chart"; return; fi
  if diff -u "$CHART/README.md" "$tmp/$(basename "$CHART")/README.md" >"$tmp.diff" 2>&1; then
    ok "helm/campus/README.md is current (helm-docs $want from README.md.gotmpl and values.yaml)"
  else head -n 40 "$tmp.diff" >&2; bad "helm/campus/README.md is stale: run $hd -c helm"; fi
}

# Every pod of the chart (everything enabled) runs as non-root with RuntimeDefault seccomp, and every
# container drops all capabilities, cannot escalate, and has memory requests and limits, all from
# values; the Campus pods name no UID (the image's or the platform's applies), and with
# helm/openshift-values.yaml no pod names a UID, GID or fsGroup (OpenShift assigns them).
pod_security_checks() {
  local name vals report
  for name in default openshift; do
    vals=(-f helm/dev-values.yaml --set infrastructure.kafkaUi.enabled=true)
    [ $name = openshift ] && vals+=(-f helm/openshift-values.yaml)
    if ! "$HELM" template campus "$CHART" --namespace campus "${vals[@]}" >"$OUT/pods-$name.yaml" 2>"$OUT/pods-$name.log"; then
      cat "$OUT/pods-$name.log" >&2; bad "helm template ($name security values)"; continue
    fi
    validate "$OUT/pods-$name.yaml" || { bad "kubernetes-validate --strict ($name security values)"; continue; }
    report=$("$VENV/bin/python" - "$OUT/pods-$name.yaml" "$name" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
name, problems, pods = sys.argv[2], [], []
ids = ("runAsUser", "runAsGroup", "fsGroup")
for d in docs:
    spec = d.get("spec", {})
    spec = spec.get("jobTemplate", {}).get("spec", spec)
    pod = spec.get("template", {}).get("spec") if d["kind"] != "Pod" else spec
    if not pod: continue
    what = f"{d['kind']}/{d['metadata']['name']}"
    pods.append(what)
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True: problems.append(f"{what}: pod runAsNonRoot not true")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault": problems.append(f"{what}: no RuntimeDefault seccomp")
    campus = d["metadata"].get("labels", {}).get("app.kubernetes.io/component") in ("operator", "uninstall")
    named = [k for k in ids if k in psc] + [f"{c['name']}.{k}" for c in pod["containers"] for k in ids if k in (c.get("securityContext") or {})]
    if named and (name == "openshift" or campus): problems.append(f"{what}: names {named}")
    for c in pod.get("initContainers", []) + pod["containers"]:
        csc, res = c.get("securityContext") or {}, c.get("resources") or {}
        if csc.get("allowPrivilegeEscalation") is not False: problems.append(f"{what} {c['name']}: allowPrivilegeEscalation not false")
        if "ALL" not in (csc.get("capabilities") or {}).get("drop", []): problems.append(f"{what} {c['name']}: capabilities not dropped")
        if not (res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory")): problems.append(f"{what} {c['name']}: no memory request and limit")
print(f"{len(pods)} pod templates; " + ("; ".join(problems) if problems else "ok"))
PY
)
    case $report in *"; ok") ok "pod security ($name values, everything enabled): ${report%; ok}: non-root, RuntimeDefault, no capabilities, no escalation, memory bounds$([ $name = openshift ] && echo ', no UID/GID/fsGroup')" ;;
      *) bad "pod security ($name values): $report" ;; esac
  done
}

# The Campus images: the chart's registry before each repository, the appVersion as tag; the values
# files that name their own registry (the cluster's localhost/ images) keep their references;
# global.imageRegistry wins over image.registry.
image_checks() {
  local app case args want have
  app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART/Chart.yaml")
  local platform=(--set platform.enabled=true --set platform.external.kafkaBrokers=k:9092
    --set platform.external.elasticsearchUrl=http://es:9200 --set platform.external.credentialsSecret=c)
  for case in "default||ghcr.io/campus-dev/campus-%s:$app" \
              "cluster-values|-f helm/cluster-values.yaml|localhost/campus-%s:dev" \
              "global.imageRegistry|--set global.imageRegistry=registry.example.com/x/|registry.example.com/x/campus-%s:$app" \
              "image.registry empty|--set image.registry=|campus-%s:$app"; do
    IFS='|' read -r name args want <<<"$case"
    # shellcheck disable=SC2086
    have=$("$HELM" template campus "$CHART" "${platform[@]}" $args 2>&1 | "$VENV/bin/python" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
op = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator"))
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-operator-platform"))
spec = yaml.safe_load(cm["data"]["platform.yaml"])["spec"]
print(" ".join([op["spec"]["template"]["spec"]["containers"][0]["image"]] + [spec[s]["image"] for s in ("content", "coupon", "log")]))' 2>&1)
    local expect; expect=$(for i in operator content coupon log; do printf "$want " "$i"; done); expect=${expect% }
    [ "$have" = "$expect" ] && ok "images ($name): $have" || bad "images ($name): '$have', want '$expect'"
  done
}

# GitOps without `lookup` (helm template, as Argo CD renders): with the four passwords given, the
# credentials Secret renders the same every time and its URLs carry them; with
# infrastructure.auth.existingSecret the chart renders no credentials Secret and every pod and the
# sample platform read that Secret.
auth_checks() {
  local pw=(--set infrastructure.auth.mysqlRootPassword=r00t --set infrastructure.auth.mysqlPassword=campuspw
    --set infrastructure.auth.mongoRootPassword=m0ngo --set infrastructure.auth.redisPassword=red1s)
  "$HELM" template campus "$CHART" -n campus -f helm/dev-values.yaml "${pw[@]}" >"$OUT/auth-1.yaml" 2>&1 &&
    "$HELM" template campus "$CHART" -n campus -f helm/dev-values.yaml "${pw[@]}" >"$OUT/auth-2.yaml" 2>&1 &&
    "$HELM" template campus "$CHART" -n campus -f helm/dev-values.yaml --set infrastructure.auth.existingSecret=my-credentials >"$OUT/auth-existing.yaml" 2>&1 ||
    { cat "$OUT"/auth-*.yaml >&2; bad "helm template with infrastructure.auth values"; return; }
  local report
  report=$("$VENV/bin/python" - "$OUT/auth-1.yaml" "$OUT/auth-2.yaml" "$OUT/auth-existing.yaml" <<'PY'
import base64, sys, yaml
load = lambda p: [d for d in yaml.safe_load_all(open(p)) if d]
sec = lambda docs: [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-infra-credentials")]
a, b, ex = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
out = []
sa, sb = sec(a), sec(b)
data = {k: base64.b64decode(v).decode() for k, v in sa[0]["data"].items()} if sa else {}
good = sa and sa == sb and data.get("mysql-root-password") == "r00t" and "campus:campuspw@" in data.get("mysql-url-coupon", "") \
    and "root:m0ngo@" in data.get("mongo-url", "") and ":red1s@" in data.get("redis-url", "")
out.append(("ok   " if good else "FAIL ") + "given passwords: the credentials Secret renders the same twice, its URLs carry them")
refs = set()
def walk(n):
    if isinstance(n, dict):
        for k in ("secretKeyRef", "urlSecretRef"):
            if isinstance(n.get(k), dict): refs.add(n[k].get("name"))
        for v in n.values(): walk(v)
    elif isinstance(n, list):
        for v in n: walk(v)
for d in ex:
    if d["kind"] != "CustomResourceDefinition": walk(d)
    if d["kind"] == "ConfigMap" and "platform.yaml" in d.get("data", {}): walk(yaml.safe_load(d["data"]["platform.yaml"]))
good = not sec(ex) and refs == {"my-credentials"}
out.append(("ok   " if good else "FAIL ") + f"existingSecret: no credentials Secret rendered, every reference names it ({sorted(refs)})")
print("\n".join(out))
PY
)
  while IFS= read -r line; do
    case $line in "ok   "*) ok "infrastructure.auth, ${line#ok   }" ;; *) bad "infrastructure.auth, ${line#FAIL }" ;; esac
  done <<<"$report"
}

# Kafka UI (optional dev infrastructure; its upstream image cannot be pulled here, so it is rendered
# and validated, never run): a pinned image, its Service on 8989 to the container's http port, and
# the bootstrap servers are the dev Kafka's Service and port.
kafka_ui_checks() {
  local file=$OUT/kafka-ui.yaml report
  if ! "$HELM" template campus "$CHART" --namespace campus -f helm/dev-values.yaml --set infrastructure.kafkaUi.enabled=true >"$file" 2>"$file.log"; then
    cat "$file.log" >&2; bad "helm template with infrastructure.kafkaUi.enabled"; return
  fi
  validate "$file" || { bad "kubernetes-validate --strict with infrastructure.kafkaUi.enabled ($file)"; return; }
  report=$("$VENV/bin/python" - "$file" <<'PY'
import sys, yaml
docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
svc, dep, kafka = docs[("Service", "campus-kafka-ui")], docs[("Deployment", "campus-kafka-ui")], docs[("Service", "campus-kafka")]
c = dep["spec"]["template"]["spec"]["containers"][0]
env = {e["name"]: e.get("value") for e in c["env"]}
port = svc["spec"]["ports"][0]
host, _, kport = env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"].partition(":")
problems = []
if ":" not in c["image"] or c["image"].endswith(":latest"): problems.append(f"image {c['image']} not pinned")
if port["port"] != 8989 or port["targetPort"] not in ("http", 8080) or {"name": "http", "containerPort": 8080} not in c["ports"]: problems.append(f"Service port {port}")
if host != "campus-kafka.campus.svc" or int(kport) not in [p["port"] for p in kafka["spec"]["ports"]]: problems.append(f"bootstrap {host}:{kport}")
if not all(svc["spec"]["selector"].get(k) == v for k, v in dep["spec"]["template"]["metadata"]["labels"].items() if k in svc["spec"]["selector"]): problems.append("selector")
print("; ".join(problems) or f"ok {c['image']}, service/campus-kafka-ui:8989 -> http (8080), bootstrap {host}:{kport}")
PY
)
  case $report in "ok "*) ok "Kafka UI renders valid (Kubernetes $K8S_VERSION, --strict): ${report#ok }" ;; *) bad "Kafka UI: $report" ;; esac
}

# The `helm test` pod: a test hook that calls /readyz of each enabled API of the sample platform through
# the Service the operator names `<platform>-<service>-api` (port 80), never of a disabled one.
helm_test_checks() {
  local name args want have
  for name in all-apis coupon-disabled; do
    args=(-f helm/dev-values.yaml); want="content coupon log"
    [ $name = coupon-disabled ] && { args+=(--set platform.extraSpec.coupon.enabled=false); want="content log"; }
    have=$("$HELM" template campus "$CHART" -n campus "${args[@]}" --show-only templates/tests/readyz.yaml 2>&1 |
      "$VENV/bin/python" -c 'import sys, yaml
d = yaml.safe_load(sys.stdin)
c = d["spec"]["containers"][0]
env = {e["name"]: e["value"] for e in c["env"]}
ok = d["kind"] == "Pod" and d["metadata"]["annotations"].get("helm.sh/hook") == "test" and d["spec"]["restartPolicy"] == "Never"
print(("" if ok else "NOT-A-TEST-HOOK ") + env["URLS"])' 2>&1)
    local expect=""; for a in $want; do expect+="http://campus-$a-api.campus.svc:80/readyz "; done; expect=${expect% }
    [ "$have" = "$expect" ] && ok "helm test pod ($name): calls $(wc -w <<<"$have") APIs' /readyz through their Services (test hook)" ||
      bad "helm test pod ($name): '$have', want '$expect'"
  done
}

# (install) The test pod's URLs name Services the operator really creates for the platform, on their
# port, selecting the API's pods: checked against what reconcile_checks' operator made ($OUT/reconciled.json).
helm_test_service_checks() {
  [ "$OUT/reconciled.json" -nt "$OUT/install.log" ] || { bad "helm test pod vs the operator's Services: no $OUT/reconciled.json from this run (reconcile_checks did not run)"; return; }
  local ns report
  ns=$("$VENV/bin/python" -c 'import json,sys; print(next(o["metadata"]["namespace"] for o in json.load(open(sys.argv[1]))["items"]))' "$OUT/reconciled.json")
  "$HELM" template reconcile "$CHART" -n "$ns" --set platform.enabled=true --set platform.name=reconcile \
    --set platform.logProcessor=Native --set platform.external.kafkaBrokers=k:9092 \
    --set platform.external.elasticsearchUrl=http://es:9200 --set platform.external.credentialsSecret=c \
    --show-only templates/tests/readyz.yaml >"$OUT/test-pod.yaml" 2>&1 || { cat "$OUT/test-pod.yaml" >&2; bad "helm template of the test pod"; return; }
  report=$("$VENV/bin/python" - "$OUT/test-pod.yaml" "$OUT/reconciled.json" <<'PY'
import json, sys, yaml
from urllib.parse import urlparse
pod = yaml.safe_load(open(sys.argv[1]))
items = json.load(open(sys.argv[2]))["items"]
by = {(o["kind"], o["metadata"]["name"]): o for o in items}
urls = next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "URLS").split()
out = []
for u in urls:
    p = urlparse(u)
    name, ns = p.hostname.split(".")[:2]
    svc, dep = by.get(("Service", name)), by.get(("Deployment", name))
    ports = [x["port"] for x in svc["spec"]["ports"]] if svc else []
    sel_ok = bool(svc and dep) and all(dep["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())
    good = svc is not None and ns == svc["metadata"]["namespace"] and p.port in ports and sel_ok and p.path == "/readyz"
    out.append(("ok   " if good else "FAIL ") + f"{u} -> service/{name} port {p.port} (has {ports}), selects deployment/{name}'s pods: {sel_ok}")
print("\n".join(out))
PY
)
  while IFS= read -r line; do
    case $line in "ok   "*) ok "helm test pod: ${line#ok   }" ;; *) bad "helm test pod: ${line#FAIL }" ;; esac
  done <<<"$report"
}

# .github/workflows/release.yaml (it cannot run here): valid YAML, triggered by v* tags, builds every
# target of docker/Containerfile that scripts/images.sh packs, and the values.yaml line it rewrites
# (the default image.registry) is there exactly once, with the chart's image.registry default.
release_workflow_checks() {
  local wf=.github/workflows/release.yaml report
  report=$("$VENV/bin/python" - "$wf" "$CHART/values.yaml" <<'PY' 2>&1
import re, sys, yaml
wf = yaml.safe_load(open(sys.argv[1]))
values_text = open(sys.argv[2]).read()
on = wf.get("on", wf.get(True))
steps = [s for j in wf["jobs"].values() for s in j["steps"]]
targets = sorted(s["with"]["target"] for s in steps if s.get("uses", "").startswith("docker/build-push-action"))
images = sorted(open("scripts/images.sh").read().split('IMAGES="', 1)[1].split('"', 1)[0].split())
stages = sorted(set(re.findall(r"^FROM runtime AS (\w+)", open("docker/Containerfile").read(), re.M)))
line = "  registry: ghcr.io/campus-dev"
problems = []
if on != {"push": {"tags": ["v*"]}}: problems.append(f"trigger {on}")
if not (targets == images == stages): problems.append(f"targets {targets}, images.sh {images}, Containerfile {stages}")
if values_text.split("\n").count(line) != 1 or yaml.safe_load(values_text)["image"]["registry"] != "ghcr.io/campus-dev": problems.append("values.yaml's image.registry line")
if not any("helm push" in s.get("run", "") and "oci://" in s.get("run", "") for s in steps): problems.append("no helm push to oci://")
print("; ".join(problems) or "ok " + " ".join(targets))
PY
)
  case $report in "ok "*) ok "release workflow: valid YAML, v* tags, builds and pushes ${report#ok }, packages and pushes the chart (OCI)" ;;
    *) bad "release workflow: $report" ;; esac
}

# (install) Every pod template of the chart (everything enabled, Kafka UI, the uninstall hook, the test
# pod) passes the API server's Pod Security admission at `restricted` (server-side dry run into a
# namespace that enforces it: a violating Pod is refused, a violating workload warned about).
psa_checks() {
  if [ -z "${KUBECONFIG:-}" ] || ! "${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1; then bad "pod security admission: no API server"; return; fi
  local ns=campus-chart-psa file=$OUT/psa.yaml
  "${KUBECTL[@]}" delete namespace "$ns" --wait=true --timeout=60s >/dev/null 2>&1 || true
  "${KUBECTL[@]}" create namespace "$ns" >/dev/null &&
    "${KUBECTL[@]}" label namespace "$ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null ||
    { bad "pod security admission: cannot create namespace $ns"; return; }
  if ! "$HELM" template psa "$CHART" -n "$ns" -f helm/dev-values.yaml --set infrastructure.kafkaUi.enabled=true \
      --set crds.install=false >"$file" 2>"$file.log"; then cat "$file.log" >&2; bad "helm template for the pod security admission check"; return; fi
  local rc=0 pods
  "${KUBECTL[@]}" -n "$ns" apply --dry-run=server -f "$file" >"$file.out" 2>&1 || rc=$?
  pods=$(grep -cE '^kind: (Deployment|StatefulSet|Job|Pod)$' "$file")
  if [ $rc = 0 ] && ! grep -qi 'PodSecurity' "$file.out"; then
    ok "pod security admission (restricted) accepts every pod of the chart ($pods workloads and pods, everything enabled, server-side dry run)"
  else grep -i 'PodSecurity\|error' "$file.out" | head -n 5 >&2; bad "pod security admission (restricted) refuses or warns (see $file.out)"; fi
  "${KUBECTL[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}

# The chart's imagePullSecrets reach the sample platform (its spec.template.imagePullSecrets, in the
# ConfigMap the operator applies and in the platform rendered without the operator; a
# platform.extraSpec.template merges over it; none without pull secrets), and the operator gets the
# chart's image registry (IMAGE_REGISTRY) for platforms that name no image.
platform_pull_secret_checks() {
  local platform=(--set platform.enabled=true --set platform.external.kafkaBrokers=k:9092
    --set platform.external.elasticsearchUrl=http://es:9200 --set platform.external.credentialsSecret=c)
  local case name args want registry have
  for case in "pull secrets|--set-json imagePullSecrets=[{\"name\":\"regcred\"}]|regcred -|ghcr.io/campus-dev" \
              "pull secrets, extraSpec.template|--set-json imagePullSecrets=[{\"name\":\"regcred\"}] --set-json platform.extraSpec={\"template\":{\"nodeSelector\":{\"zone\":\"a\"}}}|regcred zone=a|ghcr.io/campus-dev" \
              "pull secrets, no operator|--set-json imagePullSecrets=[{\"name\":\"regcred\"}] --set operator.enabled=false|regcred -|-" \
              "no pull secrets, global.imageRegistry|--set global.imageRegistry=registry.example.com/x/|- -|registry.example.com/x" \
              "no pull secrets, image.registry empty|--set image.registry=|- -|"; do
    IFS='|' read -r name args want registry <<<"$case"
    # shellcheck disable=SC2086
    have=$("$HELM" template campus "$CHART" "${platform[@]}" $args 2>&1 | "$VENV/bin/python" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-operator-platform")]
spec = yaml.safe_load(cm[0]["data"]["platform.yaml"])["spec"] if cm else next(d for d in docs if d["kind"] == "CampusPlatform")["spec"]
t = spec.get("template", {})
ops = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")]
env = {e["name"]: e.get("value") for e in ops[0]["spec"]["template"]["spec"]["containers"][0]["env"]} if ops else {}
print(",".join(s["name"] for s in t.get("imagePullSecrets", [])) or "-",
      ",".join(f"{k}={v}" for k, v in t.get("nodeSelector", {}).items()) or "-",
      env.get("IMAGE_REGISTRY", "-") if ops else "-", sep="|")' 2>&1)
    local expect="${want% *}|${want#* }|$registry"
    [ "$have" = "$expect" ] && ok "sample platform ($name): pull secrets ${want% *}, IMAGE_REGISTRY '${registry}'" ||
      bad "sample platform ($name): have '$have', want '$expect'"
  done
}

# (install) The chart's RBAC asked with `kubectl auth can-i` as the operator's ServiceAccount, for the
# namespaces it is given: operator.watchNamespaces (two namespaces, none of them the default) gets the
# namespaced rights in exactly those, operator.filebeatNamespaces Filebeat's objects alone; never
# cluster-admin, a kube-system Lease, kube-system, another ClusterRoleBinding than the Filebeat one.
# Then watchNamespaces ["*"]: the documented trade-off, kube-system included.
rbac_checks() {
  if [ -z "${KUBECONFIG:-}" ] || ! "${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1; then bad "RBAC checks: no API server"; return; fi
  local ns=campus-chart-rbac release=rbac-test n
  local other=$ns-other logs=$ns-logs role=$release-campus-operator
  local as="system:serviceaccount:$ns:$role"
  "$HELM" uninstall "$release" -n "$ns" --no-hooks >/dev/null 2>&1 || true
  for n in "$ns" "$other" "$logs"; do
    "${KUBECTL[@]}" delete namespace "$n" --wait=true --timeout=60s >/dev/null 2>&1 || true
    "${KUBECTL[@]}" create namespace "$n" >/dev/null || { bad "RBAC checks: cannot create namespace $n"; return; }
  done
  local base=(-n "$ns" --set crds.install=false --set operator.replicas=0 --set platform.enabled=false --set tests.enabled=false)
  if ! "$HELM" install "$release" "$CHART" "${base[@]}" --set-json "operator.watchNamespaces=[\"$ns\",\"$other\"]" \
      --set-json "operator.filebeatNamespaces=[\"$logs\"]" >"$OUT/rbac-install.log" 2>&1; then
    cat "$OUT/rbac-install.log" >&2; bad "RBAC checks: helm install with watchNamespaces and filebeatNamespaces"; return
  fi
  local q verdicts="" want=""
  # "verdict|question": what the operator needs, then what it must never have.
  local cases=("yes|create deployments -n $ns" "yes|delete services -n $other" "yes|watch campusplatforms -n $other"
    "yes|patch daemonsets -n $logs" "yes|delete configmaps -n $logs" "yes|update leases/$role -n $ns"
    "yes|update clusterrolebindings/$role-filebeat" "yes|bind clusterroles/$role-filebeat"
    "no|create deployments -n $logs" "no|create deployments -n default" "no|create deployments -n kube-system"
    "no|delete clusterroles/cluster-admin" "no|bind clusterroles/cluster-admin" "no|create clusterroles"
    "no|update leases/kube-scheduler -n kube-system" "no|update leases/$role -n kube-system" "no|create leases -n kube-system"
    "no|delete clusterrolebindings/cluster-admin" "no|update clusterrolebindings/cluster-admin"
    "no|delete clusterrolebindings/$role-cluster" "no|create clusterrolebindings" "no|get secrets -n $ns")
  for q in "${cases[@]}"; do
    want+="${q%%|*} "
    # shellcheck disable=SC2086
    verdicts+="$("${KUBECTL[@]}" auth can-i --as="$as" ${q#*|} 2>/dev/null || true) "
  done
  if [ "$verdicts" = "$want" ]; then
    ok "kubectl auth can-i as the operator (watchNamespaces [$ns, $other], filebeatNamespaces [$logs]): ${#cases[@]} answers as intended (no cluster-admin, kube-system Lease or Deployment, other ClusterRoleBinding, Secret)"
  else
    local i=0 diff=""
    for q in "${cases[@]}"; do
      i=$((i + 1)); local got; got=$(cut -d' ' -f$i <<<"$verdicts")
      [ "$got" = "${q%%|*}" ] || diff+=" [${q#*|}: $got]"
    done
    bad "kubectl auth can-i as the operator: unexpected$diff"
  fi
  # watchNamespaces ["*"]: the namespaced rights in every namespace (the trade-off values.yaml names).
  local wide
  if "$HELM" upgrade "$release" "$CHART" "${base[@]}" --set-json 'operator.watchNamespaces=["*"]' >"$OUT/rbac-upgrade.log" 2>&1; then
    wide="$("${KUBECTL[@]}" auth can-i --as="$as" create deployments -n kube-system 2>/dev/null || true) $("${KUBECTL[@]}" auth can-i --as="$as" delete clusterroles/cluster-admin 2>/dev/null || true)"
    [ "$wide" = "yes no" ] && ok "watchNamespaces [\"*\"]: the namespaced rights cluster-wide (kube-system too, as documented), still no cluster-admin" ||
      bad "watchNamespaces [\"*\"]: can-i create deployments -n kube-system, delete clusterroles/cluster-admin: '$wide'"
    local env; env=$("${KUBECTL[@]}" -n "$ns" get deploy "$role" -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="WATCH_NAMESPACES")].value}')
    [ "$env" = "*" ] && ok "the operator Deployment gets WATCH_NAMESPACES=*" || bad "WATCH_NAMESPACES of the operator: '$env'"
  else cat "$OUT/rbac-upgrade.log" >&2; bad "helm upgrade with watchNamespaces [\"*\"]"; fi
  "$HELM" uninstall "$release" -n "$ns" --no-hooks >/dev/null 2>&1 || true
  for n in "$ns" "$other" "$logs"; do "${KUBECTL[@]}" delete namespace "$n" --wait=false >/dev/null 2>&1 || true; done
}

case ${1:-all} in
  static) static_checks; platform_auth_checks; skaffold_checks; chart_docs_checks; pod_security_checks; image_checks; auth_checks; kafka_ui_checks; helm_test_checks; release_workflow_checks; platform_pull_secret_checks ;;
  install) install_checks; helm_test_service_checks; psa_checks; rbac_checks ;;
  local) local_checks ;;
  all) static_checks; platform_auth_checks; skaffold_checks; chart_docs_checks; pod_security_checks; image_checks; auth_checks; kafka_ui_checks; helm_test_checks; release_workflow_checks; platform_pull_secret_checks; install_checks; helm_test_service_checks; psa_checks; rbac_checks; local_checks ;;
  *) echo "usage: $0 [static|install|local|all]" >&2; exit 2 ;;
esac
checks_end
