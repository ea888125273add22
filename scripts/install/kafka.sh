# Apache Kafka from its Maven Central artifacts (sourced by scripts/deps.sh).
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_HOME=${KAFKA_HOME:-$CAMPUS_CACHE/kafka-$KAFKA_VERSION}

install_kafka() {
  if [ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] && [ -f "$KAFKA_HOME/.complete" ]; then return 0; fi
  command -v java >/dev/null || need_apt openjdk-17-jre-headless
  command -v mvn >/dev/null || need_apt maven
  echo "deps: Apache Kafka $KAFKA_VERSION (Maven Central jars into $KAFKA_HOME)"
  rm -rf "$KAFKA_HOME"; mkdir -p "$KAFKA_HOME"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    -Dmaven.repo.local="$CAMPUS_CACHE/m2" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" >"$CAMPUS_CACHE/kafka-install.log" 2>&1 || {
    tail -n 30 "$CAMPUS_CACHE/kafka-install.log" >&2; return 1; }
  touch "$KAFKA_HOME/.complete"
}
