# Apache Kafka (Maven Central jars, scripts/install/kafka.sh), KRaft, combined broker+controller.
#   CAMPUS_KAFKA_PORT 9092 (brokers) — one node, or three with `--kafka-cluster` (9092, 9093, 9094;
#   controllers on 19092…). Each node is scripts/kafka-node.sh; data in $D/kafka/NODE.
. "$ROOT/scripts/install/kafka.sh"
KAFKA_PORT=${CAMPUS_KAFKA_PORT:-9092}
KAFKA_WANT_NODES=${KAFKA_WANT_NODES:-1}   # servers.sh sets 3 for --kafka-cluster
# How many nodes: what was started while it runs, else what is asked for.
kafka_nodes() { if [ -f "$D/kafka.pid" ]; then cat "$D/kafka.nodes" 2>/dev/null || echo 1; else echo "$KAFKA_WANT_NODES"; fi; }
kafka_ports() { local i; for i in $(seq 1 "$(kafka_nodes)"); do echo $((KAFKA_PORT + i - 1)); done; }
kafka_start() {
  echo "$KAFKA_WANT_NODES" >"$D/kafka.nodes"
  local n=$KAFKA_WANT_NODES
  local voters="" i
  for i in $(seq 1 "$n"); do voters+="${voters:+,}$i@127.0.0.1:$((KAFKA_PORT + 10000 + i - 1))"; done
  local cluster; cluster=$(kafka_cluster_id)
  rm -rf "$D/kafka"
  for i in $(seq 1 "$n"); do
    launch kafka bash "$ROOT/scripts/kafka-node.sh" --dir "$D/kafka/$i" --port $((KAFKA_PORT + i - 1)) \
      --controller-port $((KAFKA_PORT + 10000 + i - 1)) --node-id "$i" --voters "$voters" \
      --cluster-id "$cluster" --replication "$n"
  done
}
# The ports open before the broker has registered with the controller: wait for metadata.
kafka_ready() {
  for _ in $(seq 1 600); do
    grep -q "Kafka Server started" "$D/kafka.log" 2>/dev/null &&
      [ "$(grep -c 'Kafka Server started' "$D/kafka.log")" -ge "$(kafka_nodes)" ] && return 0
    sleep 0.1
  done
  echo "servers: kafka did not finish starting; see $D/kafka.log" >&2; return 1
}
kafka_version() {
  local v; v=$(sed -n 's/.*Kafka version: \([^ ]*\) .*/\1/p' "$D/kafka.log" 2>/dev/null | head -n 1)
  local n; n=$(kafka_nodes)
  echo "Apache Kafka ${v:-$KAFKA_VERSION} (KRaft$([ "$n" -gt 1 ] && echo ", $n brokers"))"
}
kafka_env() { echo "export CAMPUS_TEST_KAFKA_BROKERS=$(addresses kafka)"; }
