# FerretDB (the MongoDB-wire server, SQLite backend) built from the Go module proxy (sourced by
# scripts/deps.sh). Not `go install ...@version`: FerretDB's build/version package embeds a
# generated build/version/version.txt (a `git describe` line) and panics at start without it, so
# the module is copied out of the module cache, the file written, and cmd/ferretdb built there.
FERRETDB_VERSION=${FERRETDB_VERSION:-1.24.2}
FERRETDB_BIN=$CAMPUS_CACHE/bin/ferretdb-$FERRETDB_VERSION

# ferretdb_version BIN: the version BIN reports (`--version` prints `version: vX.Y.Z` first).
ferretdb_version() { "$1" --version 2>/dev/null | sed -n 's/^version: v//p'; }

install_ferretdb() {
  if [ -x "$FERRETDB_BIN" ] && [ "$(ferretdb_version "$FERRETDB_BIN")" = "$FERRETDB_VERSION" ]; then return 0; fi
  (build_ferretdb)   # a subshell: go_env's exports stay in it
}

build_ferretdb() {
  go_env || return 1
  local mod=github.com/FerretDB/FerretDB dir src
  mkdir -p "$CAMPUS_CACHE/bin"
  echo "deps: FerretDB $FERRETDB_VERSION (go build $mod/cmd/ferretdb from the Go module proxy)"
  dir=$(cd "$CAMPUS_CACHE" && go mod download -json "$mod@v$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -f "$dir/go.mod" ] || { echo "deps: cannot download $mod@v$FERRETDB_VERSION from the Go module proxy" >&2; return 1; }
  src=$(mktemp -d "$CAMPUS_CACHE/ferretdb-src.XXXXXX")
  cp -r "$dir/." "$src"
  chmod -R u+w "$src"
  echo "v$FERRETDB_VERSION" >"$src/build/version/version.txt"
  echo "source" >"$src/build/version/package.txt"
  # Pure Go (modernc.org/sqlite): no cgo. Non-debug build (no ferretdb_debug tag), like the releases.
  (cd "$src" && CGO_ENABLED=0 nice go build -trimpath -buildvcs=false -ldflags "-s -w" \
    -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb) || { rm -rf "$src"; return 1; }
  rm -rf "$src"
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
  [ "$(ferretdb_version "$FERRETDB_BIN")" = "$FERRETDB_VERSION" ]
}
