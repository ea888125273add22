#!/usr/bin/env bash
# Runs one Apache Kafka node in KRaft mode (combined broker + controller) in the foreground, from
# the jars scripts/deps.sh installs. Used by scripts/servers.sh and by the tests' private brokers
# (campus_testkit::PrivateKafka), so there is one way to configure a test broker.
#   scripts/kafka-node.sh --dir DIR --port PORT --controller-port PORT
#       [--node-id N] [--voters 1@127.0.0.1:P1,2@127.0.0.1:P2,...] [--cluster-id ID]
#       [--replication N] [--set key=value]...
# The first start formats DIR/data (cluster id: --cluster-id, or a new one); later starts reuse it,
# so a stopped node comes back with its data. `exec`s java: the caller's PID is the broker's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
. "$ROOT/scripts/install/kafka.sh"
dir="" port="" cport="" node=1 voters="" cluster="" repl=1 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2 ;; --port) port=$2 ;; --controller-port) cport=$2 ;; --node-id) node=$2 ;;
    --voters) voters=$2 ;; --cluster-id) cluster=$2 ;; --replication) repl=$2 ;; --set) extra+=("$2") ;;
    *) echo "kafka-node: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$dir" ] && [ -n "$port" ] && [ -n "$cport" ] || { echo "kafka-node: --dir, --port and --controller-port are required" >&2; exit 2; }
[ -f "$KAFKA_HOME/.complete" ] || { echo "kafka-node: Kafka $KAFKA_VERSION is not installed (run scripts/deps.sh)" >&2; exit 1; }
voters=${voters:-$node@127.0.0.1:$cport}
min_isr=$(( repl > 1 ? 2 : 1 ))
mkdir -p "$dir"
{
  cat <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$repl
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$repl
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$repl
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$repl
share.coordinator.state.topic.min.isr=$min_isr
# Topics are created on purpose (the operator, the local mode, each test), never by a typo.
auto.create.topics.enable=false
# Tests join groups all the time: no 3 s wait for more members.
group.initial.rebalance.delay.ms=0
PROPS
  for kv in "${extra[@]}"; do echo "$kv"; done
} >"$dir/server.properties"
export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.yaml"
cp="$KAFKA_HOME/libs/*"
if [ ! -f "$dir/data/meta.properties" ]; then
  cluster=${cluster:-$(kafka_cluster_id)}
  java $KAFKA_LOG4J_OPTS -cp "$cp" kafka.tools.StorageTool format --ignore-formatted \
    -t "$cluster" -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; exit 1; }
fi
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
  $KAFKA_LOG4J_OPTS -cp "$cp" kafka.Kafka "$dir/server.properties"
