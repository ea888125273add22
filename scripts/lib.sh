# shellcheck shell=bash
# Helpers shared by the scripts (sourced, not run: `. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`).
# Callers set `set -euo pipefail` themselves. Sourcing it twice is harmless.
#   ROOT           the repository root
#   CAMPUS_CACHE   where installs and builds are cached, outside the clone (default ~/.cache/campus)
#   VENV           the Python virtualenv of scripts/deps.sh
# shellcheck disable=SC2034 # (ROOT and VENV are the callers')
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAMPUS_CACHE=${CAMPUS_CACHE:-$HOME/.cache/campus}
# shellcheck disable=SC2034
VENV=$CAMPUS_CACHE/venv

# listening PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# kafka_cluster_id: a new KRaft cluster id (URL-safe base64 of 16 random bytes, no padding) that
# does not start with '-', which kafka-storage's argument parser would take for an option (Kafka's
# own Uuid.randomUuid() avoids it for the same reason).
kafka_cluster_id() {
  local id=-
  while [[ $id == -* ]]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); done
  echo "$id"
}

# running_pidfile PIDFILE: true when the PID in PIDFILE is alive.
running_pidfile() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Process groups: each server and service runs under setsid, so its PID is its group's.
# term_group PID: SIGTERM to the process group PID (to PID alone when it leads no group).
term_group() { kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || true; }
# kill_group PID: SIGKILL to the process group PID.
kill_group() { kill -KILL -- "-$1" 2>/dev/null || true; }
# wait_gone PID [SECONDS]: wait up to SECONDS (default 10) for PID to exit; false if it still runs.
wait_gone() {
  local _
  for _ in $(seq 1 $((${2:-10} * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  ! kill -0 "$1" 2>/dev/null
}
# stop_group PID [SECONDS]: SIGTERM to the group, up to SECONDS (default 10) for the leader to exit,
# then SIGKILL the group (and up to 5 s for the leader to go). To stop several at once: term_group
# each, then wait_gone and kill_group each.
stop_group() {
  term_group "$1"
  wait_gone "$1" "${2:-10}" || true
  kill_group "$1"
  wait_gone "$1" 5 || true
}

# Checks that count: checks_begin NAME [FD] starts a tally; `ok WHAT` and `bad WHAT` print
# "NAME: ok   WHAT" / "NAME: FAIL WHAT" (failures on FD, default 2: stderr) and count;
# checks_end prints "NAME: N passed, M failed" and is false when a check failed.
checks_begin() { CHECKS=$1 CHECKS_FAIL_FD=${2:-2} PASSED=0 FAILED=0; }
ok() { PASSED=$((PASSED + 1)); echo "$CHECKS: ok   $*"; }
bad() { FAILED=$((FAILED + 1)); echo "$CHECKS: FAIL $*" >&"$CHECKS_FAIL_FD"; }
checks_end() {
  echo "$CHECKS: $PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}

# need_apt PKG...: apt-get install the packages that are not installed yet (one apt run).
need_apt() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "deps: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# go_env [static]: the Go settings every Go build of the scripts uses (module and build caches in
# $CAMPUS_CACHE; no checksum database: only the module proxy is reachable here; no toolchain
# download), the toolchain's directory first on PATH. `static`: CGO_ENABLED=0, static binaries (the
# Kubernetes, etcd and CoreDNS builds). False, saying so, without a Go toolchain.
go_env() {
  local go; go=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$go" ] || { echo "go: no Go toolchain on PATH or in /usr/local/go (scripts/deps.sh kube says which Go is needed)" >&2; return 1; }
  PATH=$(dirname "$go"):$PATH
  export PATH GOPATH=$CAMPUS_CACHE/go GOMODCACHE=$CAMPUS_CACHE/go/mod GOCACHE=$CAMPUS_CACHE/go/build \
    GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
  if [ "${1:-}" = static ]; then export CGO_ENABLED=0; fi
}

# go_build_module MODULE VERSION PACKAGE OUT LOG [LDFLAGS]: builds PACKAGE of MODULE@vVERSION from
# the Go module proxy into OUT. Not `go install …@version`: a module whose go.mod has replace (or
# exclude) directives is refused by it, and those directives only count in the main module — so a
# throwaway main module requires MODULE and copies them. LDFLAGS may name the module's version
# fields; @HASH@ and @TIME@ in it become the tag's commit and time from the proxy. Pure Go, trimmed.
go_build_module() {
  local mod=$1 version=$2 pkg=$3 out=$4 log=$5 ldflags=${6:-} info gomod work
  go_env || return 1
  info=$(cd "$CAMPUS_CACHE" && go list -m -json "$mod@v$version") || true
  field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$info" | head -n 1; }
  gomod=$(field GoMod)
  [ -f "$gomod" ] || { echo "deps: cannot download $mod@v$version from the Go module proxy" >&2; return 1; }
  ldflags=${ldflags//@HASH@/$(field Hash)}; ldflags=${ldflags//@TIME@/$(field Time)}
  work=$(mktemp -d "$CAMPUS_CACHE/go-build.XXXXXX")
  {
    echo "module campus.dev/go-build"
    grep -E '^go ' "$gomod"
    echo "require $mod v$version"
    # `replace (…)` blocks and single `replace`/`exclude` lines, comments dropped.
    awk '/^(replace|exclude) \(/ {blk = $1; next} blk && /^\)/ {blk = ""; next}
         blk {sub(/\/\/.*/, ""); print blk " " $0; next}
         /^(replace|exclude) / {sub(/\/\/.*/, ""); print}' "$gomod"
  } >"$work/go.mod"
  mkdir -p "$(dirname "$out")"
  (cd "$work" && CGO_ENABLED=0 nice go build -trimpath -buildvcs=false -ldflags "-s -w $ldflags" \
    -o "$out.tmp" "$pkg") >"$log" 2>&1 || { tail -n 30 "$log" >&2; rm -rf "$work"; return 1; }
  rm -rf "$work"
  mv "$out.tmp" "$out"
}
