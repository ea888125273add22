#!/bin/bash
# OpenSearch as the opensearchproject/opensearch image starts it: home /usr/share/opensearch, data in
# its data/ (the chart's volume), every environment variable whose name has a dot (discovery.type,
# cluster.routing.allocation.disk.threshold_enabled, ...) a setting; the heap from
# OPENSEARCH_JAVA_OPTS (default -Xms512m -Xmx512m). The distribution's JVM options (its
# SystemJvmOptions and jvm.options, as scripts/opensearch-node.sh passes them), exec'd: PID 1 is java.
# bash, not sh: dash drops variables whose names have a dot from the environment it starts with (the
# first pods-mode e2e: no discovery.type, so OpenSearch enforced its production bootstrap checks).
set -eu
home=/usr/share/opensearch
conf=/tmp/opensearch-config
mkdir -p "$conf" /tmp/opensearch-tmp
cp "$home/config/log4j2.properties" "$conf/"
{
  echo "path.data: $home/data"
  echo "path.logs: /tmp"
  echo "network.host: 0.0.0.0"
  env | grep -E '^[a-z0-9_]+(\.[a-z0-9_]+)+=' | while IFS='=' read -r key value; do echo "$key: $value"; done
} >"$conf/opensearch.yml"
# shellcheck disable=SC2086
exec java -Xss1m -XX:+UseG1GC -XX:G1ReservePercent=25 -XX:InitiatingHeapOccupancyPercent=30 \
  -XX:-OmitStackTraceInFastThrow -XX:+ShowCodeDetailsInExceptionMessages \
  -Dopensearch.networkaddress.cache.ttl=60 -Dopensearch.networkaddress.cache.negative.ttl=10 \
  -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true -Djava.locale.providers=SPI,COMPAT \
  -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
  -Dio.netty.allocator.numDirectArenas=0 -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
  -Djava.io.tmpdir=/tmp/opensearch-tmp ${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx512m} \
  -Dopensearch.path.home="$home" -Dopensearch.path.conf="$conf" \
  -Dopensearch.distribution.type=docker -Dopensearch.bundled_jdk=false \
  -cp "$home/lib/*" org.opensearch.bootstrap.OpenSearch
