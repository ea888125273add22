# Images of the dev infrastructure's real servers, built here (sourced by scripts/cluster.sh; no image
# can be pulled): the chart's `infrastructure` runs them when helm/cluster-dev-values.yaml names them.
#   localhost/campus/kafka:<v>       Apache Kafka (the suite's Maven Central jars) on Debian + its JRE 17
#   localhost/campus/mariadb:<v>     Debian's MariaDB server
#   localhost/campus/redis:<v>       Debian's Redis server
#   localhost/campus/ferretdb:<v>    FerretDB (the suite's Go build, SQLite backend) on an empty root
#   localhost/campus/opensearch:<v>  OpenSearch (the suite's Maven Central assembly) on Debian + its JRE 17
# Each Debian one starts from the debootstrap minbase of scripts/cluster.sh (image_debian) with
# Debian's packages installed by apt inside it (a chroot in a mount namespace of its own: the host's
# mounts are untouched), and an entrypoint (scripts/infra-images/) that takes the environment
# variables the upstream image takes (KAFKA_*, MARIADB_*, dotted OpenSearch settings), so the chart's
# templates are the same for both. Cached in $IMAGES/infra keyed by the server's version.
# Needs: IMAGES, ROOT, CAMPUS_CACHE, log, die, now, since (scripts/cluster.sh).
. "$ROOT/scripts/install/kafka.sh"      # KAFKA_VERSION, KAFKA_HOME, install_kafka
. "$ROOT/scripts/install/ferretdb.sh"   # FERRETDB_VERSION, FERRETDB_BIN, install_ferretdb
. "$ROOT/scripts/install/opensearch.sh" # OPENSEARCH_VERSION, OPENSEARCH_HOME, install_opensearch
INFRA_IMAGES=$IMAGES/infra
INFRA_FILES=$ROOT/scripts/infra-images

# debian_rootfs: the debootstrap minbase root as a plain tar (what image_debian made into an image).
debian_rootfs() {
  local suite; suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  DEBIAN_ROOTFS=$IMAGES/rootfs/debian-$suite-minbase.tar
  [ -f "$DEBIAN_ROOTFS" ] && return 0
  image_debian
}

# apt_version PKG: the upstream major.minor of the version apt would install and the Debian suite
# (10.11-bookworm): the image's tag (the host's suite and mirror are the image's).
apt_version() {
  local v; v=$(apt-cache policy "$1" | sed -n 's/^  Candidate: //p')
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then
    apt-get update -qq; v=$(apt-cache policy "$1" | sed -n 's/^  Candidate: //p')
  fi
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "apt knows no $1"
  v=${v#*:}; v=$(echo "$v" | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')
  [ -n "$v" ] || die "no major.minor in the version of $1"
  echo "$v-$(. /etc/os-release && echo "$VERSION_CODENAME")"
}

# debian_with DIR PKG...: the minbase root in DIR with Debian's PKGs installed (no recommends, no
# services started, apt's lists and archives removed afterwards).
debian_with() {
  local r=$1; shift
  debian_rootfs
  mkdir -p "$r"
  tar -xf "$DEBIAN_ROOTFS" -C "$r"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod 755 "$r/usr/sbin/policy-rc.d"
  # A private mount namespace (unshare's default propagation): /proc and /dev for apt's scripts.
  unshare --mount --fork sh -ec '
    r=$1; shift
    mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"
    chroot "$r" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -qq --no-install-recommends "$@"
    chroot "$r" apt-get clean' sh "$r" "$@" >"$INFRA_IMAGES/apt.log" 2>&1 ||
    { tail -n 30 "$INFRA_IMAGES/apt.log" >&2; die "apt-get install $* in the Debian root failed"; }
  rm -rf "$r/var/lib/apt/lists/"* "$r/usr/sbin/policy-rc.d" "$r/usr/share/doc" "$r/usr/share/man" \
    "$r/usr/share/locale" "$r/var/log/"*.log "$r/var/cache/debconf/"*-old
  : >"$r/etc/resolv.conf" # (the kubelet mounts the pod's own)
}

# add_user ROOT NAME UID: a user NAME (group NAME) with that id, as the upstream image has it.
add_user() {
  sed -i "/^$2:/d" "$1/etc/passwd" "$1/etc/group"
  echo "$2:x:$3:$3:$2:/nonexistent:/usr/sbin/nologin" >>"$1/etc/passwd"
  echo "$2:x:$3:" >>"$1/etc/group"
}

# infra_image NAME TAG BUILDER: $INFRA_IMAGES/NAME-TAG-<recipe hash>.tar from BUILDER ROOT (which fills ROOT and
# sets OCI_OPTS, oci-image.py's options: entrypoint, user, ...), unless it is cached.
# The cached archive's name carries a hash of this file and the entrypoints beside it, so a changed
# recipe builds anew (and replaces the older archive: every *.tar here is imported).
infra_image() {
  local name=$1 tag=$2 builder=$3 sources tar
  sources=$(cat "${BASH_SOURCE[0]}" "$INFRA_FILES"/* | sha256sum | cut -c1-12)
  tar=$INFRA_IMAGES/$name-$tag-$sources.tar
  echo "localhost/campus/$name:$tag" >"$INFRA_IMAGES/$name.name"
  [ -f "$tar" ] && return 0
  rm -f "$INFRA_IMAGES/$name-$tag".tar "$INFRA_IMAGES/$name-$tag"-*.tar
  local r t0; r=$(mktemp -d); t0=$(now)
  OCI_OPTS=()
  "$builder" "$r/root"
  python3 "$ROOT/scripts/oci-image.py" "$tar.tmp" "localhost/campus/$name:$tag" "$r/root" "${OCI_OPTS[@]}"
  mv "$tar.tmp" "$tar"
  rm -rf "$r"
  log "image localhost/campus/$name:$tag in $(since "$t0") s ($(du -m "$tar" | cut -f1) MB)"
}

build_kafka_root() {
  local r=$1
  install_kafka >&2
  debian_with "$r" openjdk-17-jre-headless
  add_user "$r" appuser 1000
  mkdir -p "$r/opt/kafka/config" "$r/var/lib/kafka/data"
  cp -r "$KAFKA_HOME/libs" "$r/opt/kafka/libs"
  cp "$ROOT/scripts/kafka/log4j2.yaml" "$r/opt/kafka/config/log4j2.yaml"
  install -m 755 "$INFRA_FILES/kafka-entrypoint.sh" "$r/opt/kafka/entrypoint.sh"
  chmod 1777 "$r/tmp"
  OCI_OPTS=(--entrypoint '["/opt/kafka/entrypoint.sh"]' --user 1000:1000 --workdir /opt/kafka --env "KAFKA_VERSION=$KAFKA_VERSION")
}

build_mariadb_root() {
  local r=$1
  debian_with "$r" mariadb-server
  add_user "$r" mysql 999
  rm -rf "$r/var/lib/mysql/"* "$r/etc/mysql/debian.cnf"
  mkdir -p "$r/docker-entrypoint-initdb.d" "$r/run/mysqld"
  install -m 755 "$INFRA_FILES/mariadb-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  OCI_OPTS=(--entrypoint '["/usr/local/bin/docker-entrypoint.sh"]' --cmd '["mariadbd"]' --user 999:999)
}

build_redis_root() {
  local r=$1
  debian_with "$r" redis-server
  add_user "$r" redis 999
  mkdir -p "$r/data"
  OCI_OPTS=(--cmd '["redis-server"]' --user 999:999 --workdir /data)
}

build_ferretdb_root() {
  local r=$1
  install_ferretdb >&2
  mkdir -p "$r/etc" "$r/state" "$r/data/db"
  mkdir -m 1777 "$r/tmp"
  cp "$FERRETDB_BIN" "$r/ferretdb"
  printf 'root:x:0:0:root:/root:/bin/false\nferretdb:x:1000:1000:ferretdb:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nferretdb:x:1000:\n' >"$r/etc/group"
  # The defaults of the MongoDB wire on every address, data in /data/db (the chart's volume).
  OCI_OPTS=(--entrypoint '["/ferretdb"]' --user 1000:1000
    --env FERRETDB_HANDLER=sqlite --env FERRETDB_SQLITE_URL=file:/data/db/ --env FERRETDB_LISTEN_ADDR=:27017
    --env FERRETDB_STATE_DIR=/tmp --env FERRETDB_TELEMETRY=disable --env FERRETDB_DEBUG_ADDR=-)
}

build_opensearch_root() {
  local r=$1
  install_opensearch >&2
  debian_with "$r" openjdk-17-jre-headless
  add_user "$r" opensearch 1000
  local h=$r/usr/share/opensearch
  mkdir -p "$h/bin" "$h/config" "$h/data" "$h/logs" "$h/plugins"
  cp -r "$OPENSEARCH_HOME/lib" "$OPENSEARCH_HOME/modules" "$h/"
  cp "$ROOT/scripts/opensearch/log4j2.properties" "$h/config/log4j2.properties"
  install -m 755 "$INFRA_FILES/opensearch-entrypoint.sh" "$h/entrypoint.sh"
  chmod 1777 "$r/tmp"
  OCI_OPTS=(--entrypoint '["/usr/share/opensearch/entrypoint.sh"]' --user 1000:0 --workdir /usr/share/opensearch
    --env "OPENSEARCH_VERSION=$OPENSEARCH_VERSION")
}

# infra_images: every image above (cached), their names in $INFRA_IMAGES/<name>.name.
infra_images() {
  mkdir -p "$INFRA_IMAGES"
  infra_image kafka "$KAFKA_VERSION" build_kafka_root
  infra_image mariadb "$(apt_version mariadb-server)" build_mariadb_root
  infra_image redis "$(apt_version redis-server)" build_redis_root
  infra_image ferretdb "$FERRETDB_VERSION" build_ferretdb_root
  infra_image opensearch "$OPENSEARCH_VERSION" build_opensearch_root
}

# infra_image_name NAME: the image infra_images built for NAME.
infra_image_name() { cat "$INFRA_IMAGES/$1.name"; }
