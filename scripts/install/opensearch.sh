# OpenSearch from its Maven Central artifacts (sourced by scripts/deps.sh and scripts/opensearch-node.sh):
# the server's jars in lib/ and the modules the distribution ships (those the suite needs) in
# modules/NAME/, each with a plugin-descriptor.properties (the published jars have none) and its
# security policy from scripts/opensearch/modules/. No security plugin: plain HTTP, no users.
OPENSEARCH_VERSION=${OPENSEARCH_VERSION:-2.19.6}
OPENSEARCH_HOME=${OPENSEARCH_HOME:-$CAMPUS_CACHE/opensearch-$OPENSEARCH_VERSION}
# OpenSearch refuses to run as root: as root, scripts/opensearch-node.sh runs it as this system user.
OPENSEARCH_USER=${OPENSEARCH_USER:-campus-search}

# name | Maven artifact (org.opensearch.plugin) | plugin class | extended plugins
OPENSEARCH_MODULES="
transport-netty4|transport-netty4-client|org.opensearch.transport.Netty4Plugin|
lang-painless|lang-painless|org.opensearch.painless.PainlessPlugin|
analysis-common|analysis-common|org.opensearch.analysis.common.CommonAnalysisPlugin|lang-painless
aggs-matrix-stats|aggs-matrix-stats-client|org.opensearch.search.aggregations.matrix.MatrixAggregationPlugin|
mapper-extras|mapper-extras-client|org.opensearch.index.mapper.MapperExtrasPlugin|
parent-join|parent-join-client|org.opensearch.join.ParentJoinPlugin|
percolator|percolator-client|org.opensearch.percolator.PercolatorPlugin|
reindex|reindex-client|org.opensearch.index.reindex.ReindexPlugin|
lang-mustache|lang-mustache-client|org.opensearch.script.mustache.MustachePlugin|
"

install_opensearch() {
  if [ -f "$OPENSEARCH_HOME/lib/opensearch-$OPENSEARCH_VERSION.jar" ] && [ -f "$OPENSEARCH_HOME/.complete" ]; then
    opensearch_user_access
    return 0
  fi
  command -v java >/dev/null || need_apt openjdk-17-jre-headless
  command -v mvn >/dev/null || need_apt maven
  echo "deps: OpenSearch $OPENSEARCH_VERSION (Maven Central jars into $OPENSEARCH_HOME)"
  local log=$CAMPUS_CACHE/opensearch-install.log
  rm -rf "$OPENSEARCH_HOME"; mkdir -p "$OPENSEARCH_HOME"/{lib,modules,plugins,bin}
  : >"$log"
  # opensearch_mvn PROFILE OUTDIR [-Dprop=value...]   (ten short Maven runs: C1 only starts them
  # about a third sooner)
  opensearch_mvn() {
    local profile=$1 out=$2; shift 2
    MAVEN_OPTS=${MAVEN_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC} mvn -q -B -f "$ROOT/scripts/opensearch/pom.xml" -P "$profile" -Dopensearch.version="$OPENSEARCH_VERSION" \
      -Dmaven.repo.local="$CAMPUS_CACHE/m2" "$@" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out" >>"$log" 2>&1 || {
      tail -n 30 "$log" >&2; return 1; }
  }
  opensearch_mvn server "$OPENSEARCH_HOME/lib" || return 1
  local api core
  api=$(cd "$OPENSEARCH_HOME/lib" && ls log4j-api-*.jar) core=$(cd "$OPENSEARCH_HOME/lib" && ls log4j-core-*.jar)
  if [ "${api#log4j-api-}" != "${core#log4j-core-}" ]; then
    echo "deps: OpenSearch $OPENSEARCH_VERSION uses $api: set log4j.version in scripts/opensearch/pom.xml to match (have $core)" >&2
    return 1
  fi
  local name artifact class extends dir jar
  while IFS='|' read -r name artifact class extends; do
    [ -n "$name" ] || continue
    dir=$OPENSEARCH_HOME/modules/$name
    opensearch_mvn module "$dir" -Dmodule.artifact="$artifact" || return 1
    # What the server already has stays out of the module (the distribution's layout; the plugin
    # class loader would see two copies otherwise).
    for jar in "$dir"/*.jar; do
      if [ -f "$OPENSEARCH_HOME/lib/${jar##*/}" ]; then rm "$jar"; fi
    done
    grep -q "${class//.//}.class" "$dir/$artifact-$OPENSEARCH_VERSION.jar" || {
      echo "deps: $artifact $OPENSEARCH_VERSION has no class $class (update OPENSEARCH_MODULES in $BASH_SOURCE)" >&2
      return 1; }
    cat >"$dir/plugin-descriptor.properties" <<PROPS
description=The $name module of OpenSearch (assembled from $artifact)
version=$OPENSEARCH_VERSION
name=$name
classname=$class
java.version=11
opensearch.version=$OPENSEARCH_VERSION
extended.plugins=$extends
has.native.controller=false
PROPS
    if [ -f "$ROOT/scripts/opensearch/modules/$name.policy" ]; then
      cp "$ROOT/scripts/opensearch/modules/$name.policy" "$dir/plugin-security.policy"
    fi
  done <<<"$OPENSEARCH_MODULES"
  touch "$OPENSEARCH_HOME/.complete"
  opensearch_user_access
}

# As root: the system user OpenSearch runs as, able to reach (not list) the directories above
# $OPENSEARCH_HOME (~root is usually private) and to read the home itself.
opensearch_user_access() {
  [ "$(id -u)" = 0 ] || return 0
  if ! id -u "$OPENSEARCH_USER" >/dev/null 2>&1; then
    echo "deps: system user $OPENSEARCH_USER (OpenSearch does not run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OPENSEARCH_USER"
  fi
  local probe=$OPENSEARCH_HOME/lib/opensearch-$OPENSEARCH_VERSION.jar d part
  setpriv --reuid="$OPENSEARCH_USER" --regid="$OPENSEARCH_USER" --clear-groups test -r "$probe" && return 0
  command -v setfacl >/dev/null || need_apt acl
  local parts
  IFS=/ read -r -a parts <<<"${OPENSEARCH_HOME#/}"
  d=""
  for part in "${parts[@]}"; do   # from / down
    d+=/$part
    setpriv --reuid="$OPENSEARCH_USER" --regid="$OPENSEARCH_USER" --clear-groups test -x "$d" ||
      setfacl -m "u:$OPENSEARCH_USER:x" "$d"
  done
  chmod -R a+rX "$OPENSEARCH_HOME"
  setpriv --reuid="$OPENSEARCH_USER" --regid="$OPENSEARCH_USER" --clear-groups test -r "$probe" || {
    echo "deps: user $OPENSEARCH_USER cannot read $probe" >&2; return 1; }
}
