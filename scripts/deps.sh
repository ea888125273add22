#!/usr/bin/env bash
# Install everything the test suite needs on a clean Debian 12 machine. Idempotent; what is slow to
# get (jars, Go builds) is cached in $CAMPUS_CACHE (default ~/.cache/campus), keyed by version.
#   scripts/deps.sh            backing servers + build tools
#   scripts/deps.sh kube       also the test Kubernetes API server's toolchain (see scripts/kube.sh)
#   scripts/deps.sh cluster    also what the one-node cluster of scripts/cluster.sh runs and builds
#                              with (Debian's containerd, runc, CNI plugins, iptables, podman, ...)
# One file per component in scripts/install/ (install_NAME).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
for f in "$ROOT"/scripts/install/*.sh; do . "$f"; done
KUBE_VALIDATE_VERSION=1.37.0
KAFKA_PYTHON_VERSION=2.2.15   # the local mode (scripts/local.sh) creates its topics with it
PYMONGO_VERSION=4.20.1        # `scripts/local.sh reset` drops the local mode's MongoDB database
# helm, built from the Go module proxy (see install_helm below).
HELM_VERSION=3.22.0
# helm-docs: helm/campus/README.md from values.yaml's comments (chart-test checks it is current).
HELM_DOCS_VERSION=1.14.2
# schemathesis: property-based requests from each API's OpenAPI document (chart-test's fuzz check),
# in a venv of its own ($CAMPUS_CACHE/schemathesis-VERSION: its pins stay apart from the others').
SCHEMATHESIS_VERSION=4.32.5

apt_pkgs=(mariadb-server redis-server cmake jq curl openjdk-17-jre-headless maven)
case ${1:-} in kube | cluster) apt_pkgs+=(openssl) ;; esac
# scripts/cluster.sh: the node's runtime (containerd 1.6, runc, the bridge/host-local/loopback/portmap
# CNI plugins), kube-proxy's iptables and conntrack, nft for the host snapshot, socat for the host's
# servers, gcc for the pause image, podman for the Campus images (scripts/images.sh).
[ "${1:-}" = cluster ] && apt_pkgs+=(containerd runc containernetworking-plugins iptables conntrack nftables
  socat gcc libc6-dev podman buildah)
need_apt "${apt_pkgs[@]}"

# Go: helm and (scripts/kube.sh) Kubernetes and etcd are built from the Go module proxy. Debian's
# golang-go is far too old; these machines have Go in /usr/local/go. The go line of the go.mod of each
# module built is the minimum.
GO=$(command -v go || echo /usr/local/go/bin/go)
# go_build_env: lib.sh's static go_env for `go install MODULE@VERSION` and `go mod download`, with
# no GOFLAGS.
go_build_env() { go_env static && export GOFLAGS=; }
# need_go MODULE@VERSION: fail unless $GO is at least the Go version that module's go.mod requires.
need_go() {
  if ! [ -x "$GO" ]; then
    echo "deps: no Go toolchain (not on PATH, not /usr/local/go/bin/go): $1 is built from the Go module" \
      "proxy; install Go from https://go.dev/dl/ into /usr/local/go" >&2
    exit 1
  fi
  local mod want have
  mod=$(cd "$CAMPUS_CACHE" && go_build_env && "$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$mod" ] || { echo "deps: cannot download $1 from the Go module proxy" >&2; exit 1; }
  want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$mod")
  have=$("$GO" env GOVERSION); have=${have#go}; have=${have%%[!0-9.]*}
  if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" != "$want" ]; then
    echo "deps: $GO is Go $have but $1 needs Go >= $want (its go.mod); install a newer Go into /usr/local/go" >&2
    exit 1
  fi
}

mkdir -p "$CAMPUS_CACHE"
if [ "${1:-}" = kube ] || [ "${1:-}" = cluster ]; then
  need_go "k8s.io/kubernetes@v$(sed -n 's/^KUBE_VERSION=//p' "$ROOT/scripts/kube.sh")"
  need_go "go.etcd.io/etcd/server/v3@v$(sed -n 's/^ETCD_VERSION=//p' "$ROOT/scripts/kube.sh")"
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
want() { "$VENV/bin/pip" show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null; }
pkgs=()
want kubernetes-validate "$KUBE_VALIDATE_VERSION" || pkgs+=("kubernetes-validate==$KUBE_VALIDATE_VERSION")
want kafka-python "$KAFKA_PYTHON_VERSION" || pkgs+=("kafka-python==$KAFKA_PYTHON_VERSION")
want pymongo "$PYMONGO_VERSION" || pkgs+=("pymongo==$PYMONGO_VERSION")
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "deps: pip install ${pkgs[*]}"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${pkgs[@]}"
fi

st_venv=$CAMPUS_CACHE/schemathesis-$SCHEMATHESIS_VERSION
if ! "$st_venv/bin/st" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  echo "deps: pip install schemathesis==$SCHEMATHESIS_VERSION (venv $st_venv)"
  rm -rf "$st_venv" && python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

install_kafka
install_ferretdb
install_opensearch
install_filebeat
install_skaffold

# helm: `go install` of helm.sh/helm/v3/cmd/helm (its go.mod has no replace directives), with the
# ldflags of helm's Makefile so `helm version` and .Capabilities.KubeVersion are the real ones.
install_helm() {
  local bin=$CAMPUS_CACHE/bin/helm
  if [ -x "$bin" ] && [ "$("$bin" version --template '{{.Version}}' 2>/dev/null)" = "v$HELM_VERSION" ]; then
    return 0
  fi
  need_go "helm.sh/helm/v3@v$HELM_VERSION"
  echo "deps: helm v$HELM_VERSION (go install helm.sh/helm/v3/cmd/helm from the Go module proxy)"
  go_build_env
  local client minor x=helm.sh/helm/v3
  client=$(cd "$CAMPUS_CACHE" && "$GO" mod download -json "$x@v$HELM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  client=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$client/go.mod")
  local ldflags="-s -w -X $x/internal/version.version=v$HELM_VERSION -X $x/internal/version.gitTreeState=clean"
  for minor in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X $x/$minor.k8sVersionMajor=1 -X $x/$minor.k8sVersionMinor=$client"
  done
  mkdir -p "$CAMPUS_CACHE/bin"
  GOBIN=$CAMPUS_CACHE/bin nice "$GO" install -trimpath -ldflags "$ldflags" "$x/cmd/helm@v$HELM_VERSION" \
    >"$CAMPUS_CACHE/helm-build.log" 2>&1 || { tail -n 30 "$CAMPUS_CACHE/helm-build.log" >&2; exit 1; }
  [ "$("$bin" version --template '{{.Version}}')" = "v$HELM_VERSION" ]
}
install_helm
install_helm_docs() {
  local bin=$CAMPUS_CACHE/bin/helm-docs m=github.com/norwoodj/helm-docs
  [ "$("$bin" --version 2>/dev/null)" = "helm-docs version $HELM_DOCS_VERSION" ] && return 0
  need_go "$m@v$HELM_DOCS_VERSION"
  echo "deps: helm-docs v$HELM_DOCS_VERSION (go install $m/cmd/helm-docs from the Go module proxy)"
  go_build_env
  GOBIN=$CAMPUS_CACHE/bin nice "$GO" install -trimpath -ldflags "-s -w -X main.version=$HELM_DOCS_VERSION" \
    "$m/cmd/helm-docs@v$HELM_DOCS_VERSION" >"$CAMPUS_CACHE/helm-docs-build.log" 2>&1 ||
    { tail -n 30 "$CAMPUS_CACHE/helm-docs-build.log" >&2; exit 1; }
}
install_helm_docs
echo "deps: ready (venv $VENV, tools $CAMPUS_CACHE/bin)"
