#!/usr/bin/env bash
# Runs one of Apache Kafka's own Java tools from the jars scripts/deps.sh installs, e.g.
#   scripts/kafka-tool.sh org.apache.kafka.tools.ProducerPerformance --topic t --num-records 1000 ...
#   scripts/kafka-tool.sh org.apache.kafka.tools.ConsumerPerformance --bootstrap-server ... 
# (the classes behind kafka-producer-perf-test.sh / kafka-consumer-perf-test.sh / kafka-topics.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
. "$ROOT/scripts/install/kafka.sh"
[ -f "$KAFKA_HOME/.complete" ] || { echo "kafka-tool: Kafka $KAFKA_VERSION is not installed (run scripts/deps.sh)" >&2; exit 1; }
class=$1; shift
exec java -Xmx512m -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2-tools.yaml" -cp "$KAFKA_HOME/libs/*" "$class" "$@"
