#!/usr/bin/env bash
# Container images without Docker: builds static release binaries on the host and packs them with
# podman into the same runtime images docker/Containerfile makes (docker/Containerfile.scratch,
# FROM scratch, because no base image can be pulled here). With Docker, use docker/Containerfile
# (or `skaffold build`) instead.
#   scripts/images.sh build [--dev] [IMAGE...]   cargo build (release, static) + podman build of every
#                              image (or of the named ones: operator content coupon log), timed.
#                              --dev: the debug binaries of the test build instead ($CARGO_TARGET_DIR,
#                              no second compile of the workspace), stripped, with the shared libraries
#                              they load (glibc, libgcc_s, zlib) — what CI's cluster e2e runs; a release
#                              build takes most of an hour on two cores
#   scripts/images.sh sizes    image sizes
#   scripts/images.sh smoke    run each image with podman: --help, and the APIs against the local
#                              servers (scripts/servers.sh) until /readyz answers
# Images: localhost/campus-{operator,content,coupon,log}:$TAG (TAG default "dev").
set -euo pipefail
. "$(dirname "$0")/lib.sh" # ROOT, listening
cd "$ROOT"
TAG=${TAG:-dev}
TARGET=$(rustc -vV | sed -n 's/^host: //p')
IMAGES="operator content coupon log"
BINS="campus-operator crdgen campus-content campus-coupon campus-log"
OUT=$ROOT/target/images
DEV_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# Its own target directory: the release/static build never waits on (or invalidates) the debug builds.
export CARGO_TARGET_DIR=${CAMPUS_IMAGES_TARGET_DIR:-$OUT/cargo}

setup_podman() {
  if ! command -v podman >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman buildah runc >/dev/null
  fi
  # As root without systemd: runc, and ulimits the container can actually get.
  local conf=/etc/containers/containers.conf.d/campus.conf
  if [ ! -f "$conf" ]; then
    mkdir -p "$(dirname "$conf")"
    printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' >"$conf"
  fi
}

bins_of() { case $1 in operator) echo "campus-operator crdgen" ;; *) echo "campus-$1" ;; esac; }

build() {
  setup_podman
  mkdir -p "$OUT"
  local dev=0
  [ "${1:-}" = --dev ] && { dev=1; shift; }
  [ $# -gt 0 ] && IMAGES="$*"
  local t0 t1 t2 pkgs=() bins=() i
  for i in $IMAGES; do pkgs+=(-p "campus-$i"); bins+=($(bins_of "$i")); done
  local ctx=$OUT/context
  rm -rf "$ctx"; mkdir -p "$ctx/bin" "$ctx/root/etc/ssl/certs"
  t0=$(date +%s.%N)
  if [ $dev = 1 ]; then
    # Exactly the test build of scripts/test.sh (the same units and features: after it, nothing
    # compiles); it leaves the binaries in debug/ for the integration tests. `cargo build --bins`
    # would unify other features and recompile half the dependency tree.
    CARGO_TARGET_DIR=$DEV_TARGET_DIR cargo test --locked --workspace --lib --bins --tests --no-run
    t1=$(date +%s.%N)
    local lib
    for b in "${bins[@]}"; do
      objcopy --strip-debug "$DEV_TARGET_DIR/debug/$b" "$ctx/bin/$b"
      # Each shared library at the path the loader looks for it.
      for lib in $(ldd "$ctx/bin/$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        mkdir -p "$ctx/root$(dirname "$lib")"; cp -L "$lib" "$ctx/root$lib"
      done
    done
  else
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TARGET" "${pkgs[@]}"
    t1=$(date +%s.%N)
    for b in "${bins[@]}"; do
      cp "$CARGO_TARGET_DIR/$TARGET/release/$b" "$ctx/bin/"
      if readelf -d "$ctx/bin/$b" | grep -q '(NEEDED)'; then echo "images: $b is not static" >&2; exit 1; fi
    done
  fi
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/root/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/root/etc/group"
  for i in $IMAGES; do
    podman build -q -f docker/Containerfile.scratch --target "$i" -t "localhost/campus-$i:$TAG" "$ctx" >/dev/null
  done
  t2=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "images: cargo build %.1f s, podman build %.1f s, total %.1f s\n", b - a, c - b, c - a }' |
    tee -a "$OUT/timings.log"
  sizes
}

sizes() {
  for i in $IMAGES; do
    podman image inspect --format "campus-$i:$TAG {{.Size}}" "localhost/campus-$i:$TAG" |
      awk '{printf "images: %-22s %6.1f MB\n", $1, $2 / 1e6}'
  done
}

smoke() {
  setup_podman
  local rc=0
  for i in $IMAGES; do
    local bin=campus-$i
    if podman run --rm "localhost/campus-$i:$TAG" --help >/dev/null 2>&1; then echo "images: ok   $bin --help runs in the image (user $(podman image inspect --format '{{.Config.User}}' "localhost/campus-$i:$TAG"))"
    else echo "images: FAIL $bin --help" >&2; rc=1; fi
  done
  # The APIs, against the local servers (host network; ports 18081-18083 to stay clear of local mode).
  eval "$(bash scripts/servers.sh env)"
  local port=18080
  for i in content coupon log; do
    port=$((port + 1))
    local name=campus-smoke-$i
    podman rm -f "$name" >/dev/null 2>&1 || true
    local db=campus_images_smoke_$i
    mariadb --protocol=tcp -h127.0.0.1 -P"${CAMPUS_TEST_MYSQL_URL##*:}" -uroot -e "CREATE DATABASE IF NOT EXISTS \`$db\`"
    podman run -d --name "$name" --network host \
      -e HTTP_ADDR="127.0.0.1:$port" -e KAFKA_BROKERS="$CAMPUS_TEST_KAFKA_BROKERS" -e KAFKA_PREFIX=images-smoke \
      -e MYSQL_URL="$CAMPUS_TEST_MYSQL_URL/$db" -e REDIS_URL="$CAMPUS_TEST_REDIS_URL" \
      -e REDIS_KEY_PREFIX=images-smoke: -e MONGO_URL="$CAMPUS_TEST_MONGO_URL" -e MONGO_DATABASE=images_smoke \
      -e ELASTICSEARCH_URL="$CAMPUS_TEST_ES_URL" -e ES_INDEX_ALIAS=images-smoke-posts \
      -e LOG_INDEX_PREFIX=images-smoke-access-log -e RUST_LOG=info \
      "localhost/campus-$i:$TAG" api >/dev/null
    local ok=0
    for _ in $(seq 1 150); do
      if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ok=1; break; fi
      [ "$(podman inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || break
      sleep 0.2
    done
    if [ $ok = 1 ]; then echo "images: ok   campus-$i api answers /readyz in a container (port $port)"
    else echo "images: FAIL campus-$i api did not answer /readyz; its log:" >&2; podman logs --tail 20 "$name" >&2; rc=1; fi
    podman rm -f "$name" >/dev/null 2>&1 || true
  done
  return $rc
}

case ${1:-} in
  build) shift; build "$@" ;;
  sizes) sizes ;;
  smoke) smoke ;;
  *) echo "usage: $0 build|sizes|smoke" >&2; exit 2 ;;
esac
