# OpenSearch 2.19 (Maven Central jars, scripts/install/opensearch.sh), one node, plain HTTP: the
# Elasticsearch REST API of the suite.   CAMPUS_ES_PORT 9200 (HTTP); its transport port is the first
# free one of CAMPUS_ES_TRANSPORT_PORTS (9300-9400). The node is scripts/opensearch-node.sh; data in
# $D/search (fresh at every start).
. "$ROOT/scripts/install/opensearch.sh"
ES_PORT=${CAMPUS_ES_PORT:-9200}
ES_TRANSPORT_PORTS=${CAMPUS_ES_TRANSPORT_PORTS:-9300-9400}
search_ports() { echo "$ES_PORT"; }
search_start() {
  rm -rf "$D/search"
  launch search bash "$ROOT/scripts/opensearch-node.sh" --dir "$D/search" --http-port "$ES_PORT" \
    --transport-port "$ES_TRANSPORT_PORTS"
}
# The HTTP port opens before the node has elected itself and recovered its state. Then one index
# created and deleted: a fresh node's first index takes several times as long as the next ones.
search_ready() {
  local base=http://127.0.0.1:$ES_PORT
  curl -sf --max-time 60 "$base/_cluster/health?wait_for_status=yellow&timeout=60s" >/dev/null ||
    { echo "servers: search is not healthy; see $D/search.log" >&2; return 1; }
  curl -sf --max-time 60 -X PUT "$base/campus-warm-up" -H 'content-type: application/json' \
    -d '{"mappings": {"properties": {"t": {"type": "text"}, "k": {"type": "keyword"}, "n": {"type": "long"}}}}' >/dev/null &&
    curl -sf --max-time 60 -X DELETE "$base/campus-warm-up" >/dev/null ||
    { echo "servers: search does not create indices; see $D/search.log" >&2; return 1; }
}
search_version() {
  local v
  v=$(curl -sf --max-time 5 "http://127.0.0.1:$ES_PORT/" | jq -r '"\(.version.distribution // "elasticsearch") \(.version.number)"' 2>/dev/null) || v=""
  case $v in
    opensearch\ *) echo "OpenSearch ${v#opensearch }" ;;
    "") echo "OpenSearch $OPENSEARCH_VERSION (not answering)" ;;
    *) echo "$v" ;;
  esac
}
search_env() { echo "export CAMPUS_TEST_ES_URL=http://127.0.0.1:$ES_PORT"; }
