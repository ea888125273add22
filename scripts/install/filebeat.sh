# Filebeat (the log shipper of the DaemonSet, the local mode and the log tests) built from the Go
# module proxy (sourced by scripts/deps.sh and scripts/servers.sh) with lib.sh's go_build_module:
# github.com/elastic/beats/v7's go.mod replaces sarama, fsnotify, goja … by Elastic's forks. The
# proxy lists no versions of beats/v7; exact ones are served.
FILEBEAT_VERSION=${FILEBEAT_VERSION:-7.17.29}
FILEBEAT_BIN=$CAMPUS_CACHE/filebeat-$FILEBEAT_VERSION/filebeat

# filebeat_version BIN: the version BIN reports (`filebeat version` prints `filebeat version X.Y.Z (…)`).
filebeat_version() { "$1" version 2>/dev/null | sed -n 's/^filebeat version \([0-9.]*\) .*/\1/p'; }

install_filebeat() {
  if [ -x "$FILEBEAT_BIN" ] && [ "$(filebeat_version "$FILEBEAT_BIN")" = "$FILEBEAT_VERSION" ]; then return 0; fi
  (build_filebeat)   # a subshell: go_env's exports stay in it
}

build_filebeat() {
  local mod=github.com/elastic/beats/v7
  echo "deps: Filebeat $FILEBEAT_VERSION (go build $mod/filebeat from the Go module proxy, log $CAMPUS_CACHE/filebeat-build.log)"
  # Pure Go (no cgo: the journald input, which needs libsystemd, is left out); the tag's commit
  # and time as the build metadata (`filebeat version`).
  go_build_module "$mod" "$FILEBEAT_VERSION" "$mod/filebeat" "$FILEBEAT_BIN" "$CAMPUS_CACHE/filebeat-build.log" \
    "-X $mod/libbeat/version.commit=@HASH@ -X $mod/libbeat/version.buildTime=@TIME@" || return 1
  [ "$(filebeat_version "$FILEBEAT_BIN")" = "$FILEBEAT_VERSION" ] ||
    { echo "deps: $FILEBEAT_BIN does not report version $FILEBEAT_VERSION" >&2; return 1; }
}
