#!/bin/sh
# Apache Kafka in KRaft mode, configured as the apache/kafka image is: every environment variable
# KAFKA_<NAME> (but the JVM's KAFKA_*_OPTS and KAFKA_VERSION) is the setting <name> of
# server.properties, lower-cased, "_" read as ".", "__" as "_" and "___" as "-"
# (KAFKA_LOG_DIRS=/x is log.dirs=/x). Without any, one combined broker + controller on :9092/:9093.
# CLUSTER_ID: the cluster id the storage is formatted with on the first start (when log.dirs holds no
# meta.properties yet); later starts reuse the storage. Exec's java: PID 1 is the broker (SIGTERM stops
# it cleanly).
set -eu
props=/tmp/server.properties
cat >"$props" <<'PROPS'
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
PROPS
env | sed -n 's/^KAFKA_\([A-Z0-9_]*\)=.*/\1/p' | while read -r var; do
  case $var in VERSION | HEAP_OPTS | OPTS | LOG4J_OPTS | JMX_OPTS | JVM_PERFORMANCE_OPTS | GC_LOG_OPTS) continue ;; esac
  key=$(echo "$var" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
  value=$(printenv "KAFKA_$var")
  # The last line of a key wins in a properties file: the default above is overridden.
  printf '%s=%s\n' "$key" "$value" >>"$props"
done
cp=/opt/kafka/libs/*
log4j="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml"
dirs=$(sed -n 's/^log\.dirs=//p' "$props" | tail -n 1)
first=${dirs%%,*}
if [ ! -f "$first/meta.properties" ]; then
  [ -n "${CLUSTER_ID:-}" ] || { echo "kafka: CLUSTER_ID is required to format $first" >&2; exit 1; }
  # shellcheck disable=SC2086
  java $log4j -cp "$cp" kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" -c "$props"
fi
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
  ${KAFKA_OPTS:-} $log4j -cp "$cp" kafka.Kafka "$props"
