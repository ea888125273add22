#!/usr/bin/env bash
# Runs one OpenSearch node (single-node discovery, plain HTTP on 127.0.0.1) in the foreground, from
# the jars scripts/deps.sh installs. Used by scripts/servers.sh and by the tests' private nodes
# (campus_testkit::PrivateSearch), so there is one way to configure a test node.
#   scripts/opensearch-node.sh --dir DIR --http-port PORT --transport-port PORT[-PORT] [--set key=value]...
# DIR holds config/ (written at every start), data/, logs/ and tmp/; the data survives a restart.
# Heap: $OPENSEARCH_HEAP (default 512m). As root it runs as the system user $OPENSEARCH_USER (OpenSearch
# refuses root), owning DIR. `exec`s java: the caller's PID is the node's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
. "$ROOT/scripts/install/opensearch.sh"
dir="" http="" transport="" extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2 ;; --http-port) http=$2 ;; --transport-port) transport=$2 ;; --set) extra+=("$2") ;;
    *) echo "opensearch-node: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$dir" ] && [ -n "$http" ] && [ -n "$transport" ] ||
  { echo "opensearch-node: --dir, --http-port and --transport-port are required" >&2; exit 2; }
[ -f "$OPENSEARCH_HOME/.complete" ] ||
  { echo "opensearch-node: OpenSearch $OPENSEARCH_VERSION is not installed (run scripts/deps.sh)" >&2; exit 1; }
mkdir -p "$dir"/{config,data,logs,tmp}
dir=$(cd "$dir" && pwd)
{
  cat <<YAML
cluster.name: campus-test
node.name: node-1
path.data: $dir/data
path.logs: $dir/logs
network.host: 127.0.0.1
http.port: $http
transport.port: $transport
discovery.type: single-node
# One node: replicas could never be assigned (indices would stay yellow).
cluster.default_number_of_replicas: 0
# Every test makes indices of its own; the default limit (1000 shards) is for production nodes.
cluster.max_shards_per_node: 100000
# A nearly full disk of a build machine must not turn the test indices read-only.
cluster.routing.allocation.disk.threshold_enabled: false
# OpenSearch 2.19.6 bug: with its "filter rewrite" of bucket aggregations on, a `range` aggregation
# on an `integer` field next to a `date_histogram` (the log API's stats) fails on a segment the
# query matches whole, with "array_index_out_of_bounds_exception: Index 0 out of bounds for
# length -3" (it compares the 4-byte points as 8-byte ones). 0 turns the rewrite off; results are
# the same, only computed the ordinary way.
search.max_aggregation_rewrite_filters: 0
YAML
  for kv in "${extra[@]}"; do echo "${kv%%=*}: ${kv#*=}"; done
} >"$dir/config/opensearch.yml"
cp "$ROOT/scripts/opensearch/log4j2.properties" "$dir/config/log4j2.properties"
as=()
if [ "$(id -u)" = 0 ]; then
  chown -R "$OPENSEARCH_USER:" "$dir"
  as=(setpriv --reuid="$OPENSEARCH_USER" --regid="$OPENSEARCH_USER" --init-groups)
fi
ulimit -n 65535 2>/dev/null || true
# The options the distribution's launcher passes (its SystemJvmOptions and jvm.options), minus the
# heap pre-touch and the heap dumps; and C1 only, which halves the start (about 10 s instead of 20
# on a busy 2-core machine) and the memory (OPENSEARCH_JAVA_OPTS=-XX:TieredStopAtLevel=4 undoes it).
# shellcheck disable=SC2086
exec "${as[@]}" java -Xms${OPENSEARCH_HEAP:-512m} -Xmx${OPENSEARCH_HEAP:-512m} -Xss1m -XX:TieredStopAtLevel=1 \
  -XX:+UseG1GC -XX:G1ReservePercent=25 -XX:InitiatingHeapOccupancyPercent=30 \
  -XX:-OmitStackTraceInFastThrow -XX:+ShowCodeDetailsInExceptionMessages \
  -Dopensearch.networkaddress.cache.ttl=60 -Dopensearch.networkaddress.cache.negative.ttl=10 \
  -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true -Djava.locale.providers=SPI,COMPAT \
  -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
  -Dio.netty.allocator.numDirectArenas=0 -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
  -Djava.io.tmpdir="$dir/tmp" ${OPENSEARCH_JAVA_OPTS:-} \
  -Dopensearch.path.home="$OPENSEARCH_HOME" -Dopensearch.path.conf="$dir/config" \
  -Dopensearch.distribution.type=tar -Dopensearch.bundled_jdk=false \
  -cp "$OPENSEARCH_HOME/lib/*" org.opensearch.bootstrap.OpenSearch
