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
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "deps: pip install ${pkgs[*]}"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${pkgs[@]}"
fi
echo "deps: ready (venv $VENV)"
