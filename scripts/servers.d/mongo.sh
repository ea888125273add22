# MongoDB wire: FerretDB (Go module proxy build, scripts/install/ferretdb.sh), SQLite backend, fresh
# data in $D/ferretdb on each start; no telemetry, no debug HTTP listener.   CAMPUS_MONGO_PORT 27017
. "$ROOT/scripts/install/ferretdb.sh"
MONGO_PORT=${CAMPUS_MONGO_PORT:-27017}
mongo_ports() { echo "$MONGO_PORT"; }
mongo_start() {
  [ -x "$FERRETDB_BIN" ] || { echo "servers: $FERRETDB_BIN is missing (run scripts/deps.sh)" >&2; return 1; }
  rm -rf "$D/ferretdb"
  mkdir -p "$D/ferretdb/data" "$D/ferretdb/state"
  launch mongo "$FERRETDB_BIN" --handler=sqlite --sqlite-url="file:$D/ferretdb/data/" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --state-dir="$D/ferretdb/state" --telemetry=disable \
    --debug-addr=- --log-level=warn
}
mongo_version() { echo "FerretDB $FERRETDB_VERSION (SQLite)"; }
mongo_env() { echo "export CAMPUS_TEST_MONGO_URL=mongodb://127.0.0.1:$MONGO_PORT"; }
mongo_cleanup() { rm -rf "$D/ferretdb"; }
