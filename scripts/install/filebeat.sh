# Filebeat (the log shipper of the DaemonSet, the local mode and the log tests) built from the Go
# module proxy (sourced by scripts/deps.sh and scripts/servers.sh). Not `go install ...@version`:
# github.com/elastic/beats/v7's go.mod replaces sarama, fsnotify, goja … by Elastic's forks, and
# replace directives only count in the main module, so a throwaway module requires beats and copies
# its replace (and exclude) directives. The proxy lists no versions of beats/v7; exact ones are served.
FILEBEAT_VERSION=${FILEBEAT_VERSION:-7.17.29}
FILEBEAT_BIN=$CAMPUS_CACHE/filebeat-$FILEBEAT_VERSION/filebeat

# filebeat_version BIN: the version BIN reports (`filebeat version` prints `filebeat version X.Y.Z (…)`).
filebeat_version() { "$1" version 2>/dev/null | sed -n 's/^filebeat version \([0-9.]*\) .*/\1/p'; }

install_filebeat() {
  if [ -x "$FILEBEAT_BIN" ] && [ "$(filebeat_version "$FILEBEAT_BIN")" = "$FILEBEAT_VERSION" ]; then return 0; fi
  (build_filebeat)   # a subshell: go_env's exports stay in it
}

build_filebeat() {
  go_env || return 1
  local mod=github.com/elastic/beats/v7 info gomod work log=$CAMPUS_CACHE/filebeat-build.log
  echo "deps: Filebeat $FILEBEAT_VERSION (go build $mod/filebeat from the Go module proxy, log $log)"
  info=$(cd "$CAMPUS_CACHE" && go list -m -json "$mod@v$FILEBEAT_VERSION") || true
  field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$info" | head -n 1; }
  gomod=$(field GoMod)
  [ -f "$gomod" ] || { echo "deps: cannot download $mod@v$FILEBEAT_VERSION from the Go module proxy" >&2; return 1; }
  work=$(mktemp -d "$CAMPUS_CACHE/filebeat-build.XXXXXX")
  {
    echo "module campus.dev/filebeat-build"
    grep -E '^go ' "$gomod"
    echo "require $mod v$FILEBEAT_VERSION"
    # `replace (…)` blocks and single `replace`/`exclude` lines, comments dropped.
    awk '/^(replace|exclude) \(/ {blk = $1; next} blk && /^\)/ {blk = ""; next}
         blk {sub(/\/\/.*/, ""); print blk " " $0; next}
         /^(replace|exclude) / {sub(/\/\/.*/, ""); print}' "$gomod"
  } >"$work/go.mod"
  mkdir -p "$(dirname "$FILEBEAT_BIN")"
  # Pure Go (no cgo: the journald input, which needs libsystemd, is left out); the tag's commit
  # and time as the build metadata (`filebeat version`).
  local x=$mod/libbeat/version
  (cd "$work" && CGO_ENABLED=0 nice go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X $x.commit=$(field Hash) -X $x.buildTime=$(field Time)" \
    -o "$FILEBEAT_BIN.tmp" "$mod/filebeat") >"$log" 2>&1 || {
    tail -n 30 "$log" >&2; rm -rf "$work"; return 1
  }
  rm -rf "$work"
  mv "$FILEBEAT_BIN.tmp" "$FILEBEAT_BIN"
  [ "$(filebeat_version "$FILEBEAT_BIN")" = "$FILEBEAT_VERSION" ] ||
    { echo "deps: $FILEBEAT_BIN does not report version $FILEBEAT_VERSION" >&2; return 1; }
}
