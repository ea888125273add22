#!/usr/bin/env bash
# A real Kubernetes API server for tests (envtest-style): etcd + kube-apiserver + kube-controller-manager
# v1.20.2, built from Debian bookworm's `kubernetes` source package and cached under $CAMPUS_CACHE.
#   scripts/kube.sh build    build once (≈5–10 min cold on 2 cores), cached afterwards
#   scripts/kube.sh start    start on 127.0.0.1:$CAMPUS_KUBE_PORT (default 6443); writes a kubeconfig
#   scripts/kube.sh stop     stop by PID
#   scripts/kube.sh env      print `export KUBECONFIG=…`
# No kubelet runs: Pods never start, controllers (ReplicaSets, GC, service accounts) do.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAMPUS_CACHE=${CAMPUS_CACHE:-$HOME/.cache/campus}
KUBE_VERSION=1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
BIN=$CAMPUS_CACHE/kube-v$KUBE_VERSION/bin
D=${CAMPUS_KUBE_DATA:-$ROOT/target/kube}
PORT=${CAMPUS_KUBE_PORT:-6443}
ETCD_PORT=${CAMPUS_ETCD_PORT:-2379}
KUBECONFIG_FILE=$D/kubeconfig

build() {
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    echo "kube: cached binaries in $BIN"; return 0
  fi
  bash "$ROOT/scripts/deps.sh" kube
  if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    cat >/etc/apt/sources.list.d/campus-deb-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
  local work=$CAMPUS_CACHE/kube-src
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  apt-get source --download-only "kubernetes=$DEB_VERSION" >/dev/null
  tar xzf kubernetes_*.orig.tar.gz
  cd kubernetes-$KUBE_VERSION
  # The vendored reflect2 1.0.1 crashes ("fatal error: fault") on the first custom-resource create
  # under Go >= 1.18; Debian's 1.0.2 works.
  rm -rf vendor/github.com/modern-go/reflect2
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
  rm -f vendor/github.com/modern-go/reflect2/go.mod
  export CGO_ENABLED=0 GOPROXY=off GOFLAGS= KUBE_GIT_VERSION=v$KUBE_VERSION KUBE_GIT_TREE_STATE=clean \
    KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 GOCACHE=$CAMPUS_CACHE/go-build
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$CAMPUS_CACHE/kube-build.log" 2>&1 || {
    tail -n 40 "$CAMPUS_CACHE/kube-build.log" >&2; exit 1; }
  mkdir -p "$BIN"
  cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$BIN/"
  cd / && rm -rf "$work"
  echo "kube: built $BIN"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$D/$1.pid" ] && kill -0 "$(cat "$D/$1.pid")" 2>/dev/null; }

start() {
  build
  mkdir -p "$D"
  if running apiserver; then echo "kube: already running"; return 0; fi
  rm -rf "$D/etcd"
  setsid etcd --data-dir "$D/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    >"$D/etcd.log" 2>&1 &
  echo $! >"$D/etcd.pid"
  [ -f "$D/sa.key" ] || openssl genrsa -out "$D/sa.key" 2048 2>/dev/null
  openssl rsa -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null
  [ -f "$D/token" ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/token"
  local token; token=$(cat "$D/token")
  echo "$token,admin,admin,system:masters" >"$D/tokens.csv"
  for _ in $(seq 1 100); do listening "$ETCD_PORT" && break; sleep 0.1; done
  setsid "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 \
    --secure-port="$PORT" --cert-dir="$D/certs" --token-auth-file="$D/tokens.csv" \
    --authorization-mode=RBAC --service-account-key-file="$D/sa.pub" \
    --service-account-signing-key-file="$D/sa.key" --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount >"$D/apiserver.log" 2>&1 &
  echo $! >"$D/apiserver.pid"
  cat >"$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
clusters:
- name: campus-test
  cluster:
    server: https://127.0.0.1:$PORT
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: campus-test
  context: {cluster: campus-test, user: admin, namespace: default}
current-context: campus-test
KC
  for _ in $(seq 1 300); do
    if kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1; then break; fi
    running apiserver || { tail -n 30 "$D/apiserver.log" >&2; exit 1; }
    sleep 0.1
  done
  setsid "$BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --controllers='*' \
    --service-account-private-key-file="$D/sa.key" --use-service-account-credentials=false \
    --bind-address=127.0.0.1 --secure-port=0 --port=0 >"$D/controller-manager.log" 2>&1 &
  echo $! >"$D/controller-manager.pid"
  kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null
  echo "kube: API server ready at https://127.0.0.1:$PORT (KUBECONFIG=$KUBECONFIG_FILE)"
}

stop() {
  for n in controller-manager apiserver etcd; do
    if running "$n"; then
      local pid; pid=$(cat "$D/$n.pid")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "kube: $n stopped"
    fi
    rm -f "$D/$n.pid"
  done
}

case ${1:-} in
  build) build ;;
  start) start ;;
  stop) stop ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  *) echo "usage: $0 build|start|stop|env" >&2; exit 2 ;;
esac
