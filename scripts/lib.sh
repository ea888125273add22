# Helpers shared by the scripts (sourced, not run). Callers set `set -euo pipefail` themselves.
#   CAMPUS_CACHE   where installs and builds are cached, outside the clone (default ~/.cache/campus)
#   ROOT           the repository root
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
CAMPUS_CACHE=${CAMPUS_CACHE:-$HOME/.cache/campus}
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

# running PIDFILE: true when the PID in PIDFILE is alive.
running_pidfile() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_group PID [SECONDS]: SIGTERM to the process group PID (each server runs under setsid), wait
# up to SECONDS (default 10) for the leader to exit, then SIGKILL the group.
stop_group() {
  local pid=$1 wait=${2:-10}
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((wait * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
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

# go_env: the Go settings every Go build of the scripts uses (module and build caches in
# $CAMPUS_CACHE; no checksum database: only the module proxy is reachable here).
go_env() {
  export GOPATH=$CAMPUS_CACHE/go GOMODCACHE=$CAMPUS_CACHE/go/mod GOCACHE=$CAMPUS_CACHE/go/build
  export GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
  command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
  command -v go >/dev/null || { echo "deps: Go is not installed (need Go >= 1.24 on PATH or in /usr/local/go)" >&2; return 1; }
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
