#!/usr/bin/env bash
# A real Kubernetes API server for tests (envtest-style): etcd + kube-apiserver + kube-controller-manager
# v1.37.2, built from the Go module proxy (k8s.io/kubernetes and its published staging modules; etcd from
# go.etcd.io/etcd/server/v3) and cached under $CAMPUS_CACHE/kube-v$KUBE_VERSION/bin with kubectl.
#   scripts/kube.sh build        build once, cached afterwards: cold ≈23 min for apiserver, controller-manager
#                                and kubectl + ≈2 min etcd on 2 shared cores (load 6-14); warm: nothing to do
#   scripts/kube.sh build node   also kubelet, kube-scheduler, kube-proxy (the one-node cluster of
#                                scripts/cluster.sh): ≈3.5 min after `build` (shared Go build cache)
#   scripts/kube.sh start        start on 127.0.0.1:$CAMPUS_KUBE_PORT (default 6443); writes a kubeconfig
#   scripts/kube.sh stop         stop by PID
#   scripts/kube.sh env          print `export KUBECONFIG=…` and put the cached kubectl first on PATH
# No kubelet runs: Pods never start, controllers (ReplicaSets, GC, service accounts) do.
# Sourced (scripts/cluster.sh), it only defines its variables and functions (build, kube_*, and
# those of scripts/lib.sh).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # ROOT, CAMPUS_CACHE, go_env, listening, stop_group, ...
KUBE_VERSION=1.37.2
# The etcd that build/dependencies.yaml of k8s.io/kubernetes v1.37 names (3.7.0), latest patch.
ETCD_VERSION=3.7.3
BIN=$CAMPUS_CACHE/kube-v$KUBE_VERSION/bin
D=${CAMPUS_KUBE_DATA:-$ROOT/target/kube}
PORT=${CAMPUS_KUBE_PORT:-6443}
ETCD_PORT=${CAMPUS_ETCD_PORT:-2379}
KUBECONFIG_FILE=$D/kubeconfig
CONTROL_PLANE=(kube-apiserver kube-controller-manager kubectl)
NODE=(kubelet kube-scheduler kube-proxy)

have() { local b; for b in "$@"; do [ -x "$BIN/$b" ] || return 1; done; }

# build_kube BINARY...: `go install k8s.io/kubernetes/cmd/...@v…` refuses (its go.mod replaces the
# staging modules k8s.io/api, k8s.io/client-go, … by ./staging/src/…), so a throwaway module requires
# k8s.io/kubernetes and replaces each staging module by its published v0.Y.Z.
build_kube() {
  local work=$WORK/kube; mkdir -p "$work"
  local mod; mod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$mod" ] || { echo "kube: cannot download k8s.io/kubernetes@v$KUBE_VERSION" >&2; exit 1; }
  local staging=v0.${KUBE_VERSION#1.}
  {
    echo "module campus.dev/kube-build"
    grep -E '^(go|godebug) ' "$mod"
    echo "require k8s.io/kubernetes v$KUBE_VERSION"
    # Every k8s.io/… module k8s.io/kubernetes requires at v0.0.0 is a staging module.
    awk '/^replace \(/{r=1; next} r && /^\)/{r=0} r && $2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$mod" |
      while read -r m; do
        grep -qE "^[[:space:]]+$m v0\.0\.0\$" "$mod" && echo "replace $m => $m $staging"
      done
  } >"$work/go.mod"
  local major=${KUBE_VERSION%%.*} minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
  local date; date=$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"Time": "\(.*\)",$/\1/p')
  local ldflags="-s -w" p kv
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for kv in "gitVersion=v$KUBE_VERSION" "gitMajor=$major" "gitMinor=$minor" gitTreeState=clean "buildDate=$date"; do
      ldflags+=" -X $p.$kv"
    done
  done
  local pkgs=(); for b in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  mkdir -p "$BIN"
  echo "kube: go build ${*} v$KUBE_VERSION (log $CAMPUS_CACHE/kube-build.log)"
  (cd "$work" && nice go build -trimpath -ldflags "$ldflags" -o "$work/out/" "${pkgs[@]}") \
    >"$CAMPUS_CACHE/kube-build.log" 2>&1 || { tail -n 40 "$CAMPUS_CACHE/kube-build.log" >&2; exit 1; }
  for b in "$@"; do mv "$work/out/$b" "$BIN/$b"; done
}

# etcd: go.etcd.io/etcd/server/v3 is the etcd main package; it too replaces its sibling modules, so
# the same throwaway-module way.
build_etcd() {
  local work=$WORK/etcd; mkdir -p "$work"
  printf 'module campus.dev/etcd-build\ngo 1.26.0\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" >"$work/go.mod"
  echo "kube: go build etcd v$ETCD_VERSION"
  mkdir -p "$BIN"
  (cd "$work" && nice go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3) \
    >"$CAMPUS_CACHE/etcd-build.log" 2>&1 || { tail -n 40 "$CAMPUS_CACHE/etcd-build.log" >&2; exit 1; }
}

build() {
  local want=("${CONTROL_PLANE[@]}")
  [ "${1:-}" = node ] && want+=("${NODE[@]}")
  local etcd_ok=0
  # (Output captured first: `grep -q` exiting early would fail the pipe under pipefail.)
  [ -x "$BIN/etcd" ] && grep -qx "etcd Version: $ETCD_VERSION" <<<"$("$BIN/etcd" --version 2>/dev/null)" && etcd_ok=1
  if have "${want[@]}" && [ $etcd_ok = 1 ]; then
    echo "kube: cached binaries in $BIN"; return 0
  fi
  bash "$ROOT/scripts/deps.sh" kube
  go_env static || exit 1
  WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
  local missing=() b
  for b in "${want[@]}"; do have "$b" || missing+=("$b"); done
  [ ${#missing[@]} = 0 ] || build_kube "${missing[@]}"
  [ $etcd_ok = 1 ] || build_etcd
  grep -q "v$KUBE_VERSION" <<<"$("$BIN/kubectl" version --client)" || { echo "kube: $BIN/kubectl is not v$KUBE_VERSION" >&2; exit 1; }
  echo "kube: built $BIN"
}

running() { running_pidfile "$D/$1.pid"; }

# kube_sa_keys DIR: the service-account signing key pair DIR/sa.key, DIR/sa.pub (kept across restarts).
kube_sa_keys() {
  [ -f "$1/sa.key" ] || openssl genrsa -out "$1/sa.key" 2048 2>/dev/null
  openssl rsa -in "$1/sa.key" -pubout -out "$1/sa.pub" 2>/dev/null
}

# kube_token FILE: a random bearer token, made once and kept in FILE; prints it.
kube_token() {
  [ -f "$1" ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"
  cat "$1"
}

# kube_kubeconfig FILE NAME SERVER TOKEN [CA_FILE]: a kubeconfig for one token user; without CA_FILE
# the server's certificate is not verified.
kube_kubeconfig() {
  local file=$1 name=$2 server=$3 token=$4 ca=${5:-} tls="insecure-skip-tls-verify: true"
  [ -n "$ca" ] && tls="certificate-authority-data: $(base64 -w0 "$ca")"
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $server
    $tls
users:
- name: user
  user:
    token: $token
contexts:
- name: $name
  context: {cluster: $name, user: user, namespace: default}
current-context: $name
KC
}

# kube_etcd_args DATA_DIR HOST PORT: ETCD_ARGS, a one-member throwaway store (no fsync) serving
# clients on http://HOST:PORT and peers on PORT+1.
kube_etcd_args() {
  local peer=http://$2:$(($3 + 1))
  ETCD_ARGS=(--data-dir "$1" --listen-client-urls "http://$2:$3" --advertise-client-urls "http://$2:$3"
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "default=$peer"
    --unsafe-no-fsync)
}

# kube_apiserver_args ETCD_URL DIR: APISERVER_ARGS, the flags both API servers share (the
# service-account keys of kube_sa_keys DIR, RBAC, privileged pods allowed); callers add theirs.
kube_apiserver_args() {
  APISERVER_ARGS=(--etcd-servers="$1" --service-account-key-file="$2/sa.pub"
    --service-account-signing-key-file="$2/sa.key" --service-account-issuer=https://kubernetes.default.svc
    --allow-privileged=true)
}

# kube_wait_ready KUBECONFIG PIDFILE LOG: wait (30 s) for /readyz while the process of PIDFILE lives.
kube_wait_ready() {
  for _ in $(seq 1 300); do
    if "$BIN/kubectl" --kubeconfig "$1" get --raw /readyz >/dev/null 2>&1; then return 0; fi
    running_pidfile "$2" || { tail -n 30 "$3" >&2; exit 1; }
    sleep 0.1
  done
  "$BIN/kubectl" --kubeconfig "$1" get --raw /readyz >/dev/null
}

start() {
  build
  mkdir -p "$D"
  if running apiserver; then echo "kube: already running"; return 0; fi
  rm -rf "$D/etcd"
  kube_etcd_args "$D/etcd" 127.0.0.1 "$ETCD_PORT"
  setsid "$BIN/etcd" "${ETCD_ARGS[@]}" >"$D/etcd.log" 2>&1 &
  echo $! >"$D/etcd.pid"
  kube_sa_keys "$D"
  local token; token=$(kube_token "$D/token")
  echo "$token,admin,admin,system:masters" >"$D/tokens.csv"
  for _ in $(seq 1 100); do listening "$ETCD_PORT" && break; sleep 0.1; done
  kube_apiserver_args "http://127.0.0.1:$ETCD_PORT" "$D"
  setsid "$BIN/kube-apiserver" "${APISERVER_ARGS[@]}" --bind-address=127.0.0.1 \
    --secure-port="$PORT" --cert-dir="$D/certs" --token-auth-file="$D/tokens.csv" \
    --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount >"$D/apiserver.log" 2>&1 &
  echo $! >"$D/apiserver.pid"
  kube_kubeconfig "$KUBECONFIG_FILE" campus-test "https://127.0.0.1:$PORT" "$token"
  kube_wait_ready "$KUBECONFIG_FILE" "$D/apiserver.pid" "$D/apiserver.log"
  setsid "$BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --controllers='*' \
    --service-account-private-key-file="$D/sa.key" --use-service-account-credentials=false \
    --bind-address=127.0.0.1 --secure-port=0 >"$D/controller-manager.log" 2>&1 &
  echo $! >"$D/controller-manager.pid"
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null
  echo "kube: API server ready at https://127.0.0.1:$PORT (KUBECONFIG=$KUBECONFIG_FILE)"
}

stop() {
  for n in controller-manager apiserver etcd; do
    if running "$n"; then
      stop_group "$(cat "$D/$n.pid")" 10
      echo "kube: $n stopped"
    fi
    rm -f "$D/$n.pid"
  done
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
case ${1:-} in
  build) build "${2:-}" ;;
  start) start ;;
  stop) stop ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE"; echo "export PATH=$BIN:\$PATH" ;;
  *) echo "usage: $0 build [node]|start|stop|env" >&2; exit 2 ;;
esac
