#!/usr/bin/env bash
# The local mode: the whole platform on one machine without Docker or Kubernetes.
#   scripts/local.sh up       install what is missing, start the local servers (scripts/servers.sh),
#                             build the binaries, create the topics, start every API and worker,
#                             wait until each answers /readyz, print the endpoints
#   scripts/local.sh down     stop every Campus process by PID (and the servers, if `up` started them)
#   scripts/local.sh status   which processes run and answer /readyz
#   scripts/local.sh smoke    one real request to each API (after `up`)
#   scripts/local.sh readme   every curl example of README.md, each must answer 2xx (after `up`)
#   scripts/local.sh reset    forget the local mode's data (after `down`): its MySQL databases, Kafka
#                             topics and groups, Redis keys, MongoDB database, indices; the next `up`
#                             starts from empty (the README's examples use the first ids)
#   scripts/local.sh logs [NAME]   follow target/local/NAME.log (all when no NAME)
#   scripts/local.sh cpu [SECONDS] [--max PCT]   idle CPU (a benchmark): the share of one core each
#                             Campus process, Filebeat and each server used over SECONDS (default 60)
#                             with no traffic, from the scheduler's run time of every thread
#                             (/proc/PID/task/*/schedstat, exact, not sampled ticks); with --max, fails
#                             when a Campus process or Filebeat used PCT % or more
# A real Filebeat (scripts/install/filebeat.sh) tails the APIs' output files and ships their access
# lines to the topic local.access-log, which `campus-log worker index` indexes: /logs/search and
# /logs/stats show the local traffic. Its config comes from `campus-log filebeat-config` (the same
# schema the operator renders the DaemonSet's from), its registry is target/local/filebeat/.
# PIDs and logs live in target/local/. Names are prefixed (Kafka `local.`, Redis `local:`, MySQL
# databases `campus_local_*`, indices `local-*`) so the local mode never touches the tests' data.
# No OpenAI key is needed: without OPENAI_API_KEY the inspector applies its offline policy.
set -euo pipefail
. "$(dirname "$0")/lib.sh" # ROOT, CAMPUS_CACHE, VENV, listening, running_pidfile, term_group, ...
cd "$ROOT"
D=$ROOT/target/local
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
READY_TIMEOUT=${CAMPUS_LOCAL_READY_TIMEOUT:-120}
PREFIX=local

# name | binary | sub-command | address variable | port
PROCESSES="
content-api|campus-content|api|HTTP_ADDR|8081
coupon-api|campus-coupon|api|HTTP_ADDR|8082
log-api|campus-log|api|HTTP_ADDR|8083
content-inspect|campus-content|worker inspect|OPS_ADDR|9091
content-cache|campus-content|worker cache|OPS_ADDR|9093
content-inbox|campus-content|worker inbox|OPS_ADDR|9094
content-index|campus-content|worker index|OPS_ADDR|9095
coupon-issue|campus-coupon|worker issue|OPS_ADDR|9096
log-index|campus-log|worker index|OPS_ADDR|9097
"
# Filebeat's monitoring endpoint (it answers / when it runs).
FILEBEAT_PORT=5066
# (9092 is Kafka's port.) Logical topics and their partitions, created before the workers start.
TOPICS="post.original:3 post.inspected:3 coupon.request:6 access-log:3"

eval "$(bash scripts/servers.sh env)"
. scripts/install/filebeat.sh
export KAFKA_BROKERS=$CAMPUS_TEST_KAFKA_BROKERS
export KAFKA_PREFIX=$PREFIX
export REDIS_URL=$CAMPUS_TEST_REDIS_URL
export REDIS_KEY_PREFIX=$PREFIX:
export MONGO_URL=$CAMPUS_TEST_MONGO_URL
export MONGO_DATABASE=campus_$PREFIX
export ELASTICSEARCH_URL=$CAMPUS_TEST_ES_URL
export ES_INDEX_ALIAS=$PREFIX-posts
export ES_INDEX_NAME=$PREFIX-posts-v1
export LOG_INDEX_PREFIX=$PREFIX-access-log
export RUST_LOG=${RUST_LOG:-info}
# The coupon API's admin listener (/admin/*); only campus-coupon reads it.
export ADMIN_ADDR=127.0.0.1:8092
# Metrics fresh within seconds on a dev machine: the consumers' lag (campus_consumer_lag) and the
# coupon API's drift gauges (campus_coupon_events_drifted, campus_coupon_event_*).
export KAFKA_LAG_INTERVAL_MS=${KAFKA_LAG_INTERVAL_MS:-2000}
export COUPON_DRIFT_INTERVAL_SECS=${COUPON_DRIFT_INTERVAL_SECS:-5}
MYSQL_BASE=$CAMPUS_TEST_MYSQL_URL
mysql_url_of() { # each service has its own database (each runs its own migrations)
  case $1 in
    campus-content) echo "$MYSQL_BASE/campus_${PREFIX}_content" ;;
    campus-coupon) echo "$MYSQL_BASE/campus_${PREFIX}_coupon" ;;
  esac
}

running() { running_pidfile "$D/$1.pid"; }
each() { echo "$PROCESSES" | grep -v '^$'; }
binaries() { each | cut -d'|' -f2 | sort -u; }

# Fails clearly when a binary or one of its sub-commands does not exist yet.
check_commands() {
  local missing=()
  while IFS='|' read -r name bin sub _ _; do
    if ! [ -x "$BIN/$bin" ]; then missing+=("$bin (no binary)"); continue; fi
    local words=($sub) help
    if [ ${#words[@]} -eq 2 ]; then help=$("$BIN/$bin" "${words[0]}" --help 2>&1 || true)
    else help=$("$BIN/$bin" --help 2>&1 || true); fi
    if ! grep -qE "^  ${words[-1]}( |$)" <<<"$help"; then missing+=("$bin $sub"); fi
  done < <(each)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "local: these commands do not exist in the workspace yet, so the local mode cannot start:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    return 1
  fi
}

create_databases() {
  local db
  for db in "campus_${PREFIX}_content" "campus_${PREFIX}_coupon"; do
    mariadb --protocol=tcp -h127.0.0.1 -P"${MYSQL_BASE##*:}" -uroot -e "CREATE DATABASE IF NOT EXISTS \`$db\`"
  done
}

create_topics() {
  "$VENV/bin/python" - "$KAFKA_BROKERS" "$PREFIX" $TOPICS <<'PY'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
brokers, prefix, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
admin = KafkaAdminClient(bootstrap_servers=brokers, client_id="campus-local")
have = set(admin.list_topics())
want = [NewTopic(f"{prefix}.{s.split(':')[0]}", int(s.split(':')[1]), 1) for s in specs]
new = [t for t in want if t.name not in have]
if new:
    admin.create_topics(new)
print("local: topics " + ", ".join(t.name for t in want) + (f" ({len(new)} created)" if new else " (present)"))
PY
}

start_one() {
  local name=$1 bin=$2 sub=$3 var=$4 port=$5
  if running "$name"; then return 0; fi
  if listening "$port"; then echo "local: port $port for $name is taken by another process" >&2; return 1; fi
  local url; url=$(mysql_url_of "$bin")
  # shellcheck disable=SC2086
  env "$var=127.0.0.1:$port" ${url:+MYSQL_URL=$url} setsid "$BIN/$bin" $sub >"$D/$name.log" 2>&1 &
  echo $! >"$D/$name.pid"
}

# Filebeat on the output files of the APIs (the access lines are on their stdout).
start_filebeat() {
  if running filebeat; then return 0; fi
  if listening "$FILEBEAT_PORT"; then echo "local: port $FILEBEAT_PORT for filebeat is taken by another process" >&2; return 1; fi
  local paths=() name
  for name in $(each | grep -- '-api|' | cut -d'|' -f1); do paths+=(--path "$D/$name.log"); done
  "$BIN/campus-log" filebeat-config --kafka-brokers "$KAFKA_BROKERS" --kafka-prefix "$PREFIX" \
    "${paths[@]}" --filebeat-http-addr "127.0.0.1:$FILEBEAT_PORT" >"$D/filebeat.yml"
  local home=$D/filebeat
  mkdir -p "$home/data" "$home/logs"
  setsid "$FILEBEAT_BIN" -e -c "$D/filebeat.yml" --path.home "$home" --path.config "$home" \
    --path.data "$home/data" --path.logs "$home/logs" --strict.perms=false >"$D/filebeat.log" 2>&1 &
  echo $! >"$D/filebeat.pid"
}

filebeat_ready() { curl -fs -o /dev/null --max-time 3 "http://127.0.0.1:$FILEBEAT_PORT/"; }

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) pending
  while :; do
    pending=()
    if ! running filebeat; then
      echo "local: filebeat exited; last lines of $D/filebeat.log:" >&2; tail -n 15 "$D/filebeat.log" >&2; return 1
    fi
    filebeat_ready || pending+=(filebeat)
    while IFS='|' read -r name _ _ _ port; do
      if ! running "$name"; then
        echo "local: $name exited; last lines of $D/$name.log:" >&2; tail -n 15 "$D/$name.log" >&2; return 1
      fi
      curl -fs -o /dev/null --max-time 3 "http://127.0.0.1:$port/readyz" || pending+=("$name")
    done < <(each)
    [ ${#pending[@]} -eq 0 ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      echo "local: not ready after ${READY_TIMEOUT} s: ${pending[*]}" >&2
      for n in "${pending[@]}"; do echo "--- $n" >&2; tail -n 5 "$D/$n.log" >&2; done
      return 1
    fi
    sleep 0.5
  done
}

endpoints() {
  cat <<TXT
Campus is running locally (logs: target/local/*.log, stop: scripts/local.sh down)
  content API   http://127.0.0.1:8081   Swagger UI http://127.0.0.1:8081/swagger-ui/
  coupon API    http://127.0.0.1:8082   Swagger UI http://127.0.0.1:8082/swagger-ui/
    coupon admin  http://127.0.0.1:8092   (/admin/coupon-events, /admin/reconcile, /admin/dlq)
  log API       http://127.0.0.1:8083   Swagger UI http://127.0.0.1:8083/swagger-ui/
  workers (ops: /healthz /readyz /metrics)
    content inspect :9091  cache :9093  inbox :9094  index :9095   coupon issue :9096   log index :9097
  Filebeat $FILEBEAT_VERSION  target/local/{content,coupon,log}-api.log -> $PREFIX.access-log  (monitoring http://127.0.0.1:$FILEBEAT_PORT/stats)
  servers: Kafka $KAFKA_BROKERS (topics $PREFIX.*), MySQL ${MYSQL_BASE#mysql://}, Redis ${REDIS_URL#redis://},
           MongoDB ${MONGO_URL#mongodb://}, Elasticsearch ${ELASTICSEARCH_URL#http://}  (no Kibana in the local mode)
TXT
}

up() {
  local t0; t0=$(date +%s.%N)
  mkdir -p "$D"
  bash scripts/deps.sh >/dev/null
  if ! bash scripts/servers.sh status >/dev/null 2>&1; then
    # Remember which servers this command started, so `down` stops only those.
    { bash scripts/servers.sh status 2>/dev/null || true; } | awk -F: '/stopped/ {print $1}' >"$D/servers-started"
    bash scripts/servers.sh start
  fi
  echo "local: cargo build $(binaries | sed 's/^/-p /' | tr '\n' ' ')"
  # shellcheck disable=SC2046
  cargo build --locked $(binaries | sed 's/^/-p /') 2>&1 | grep -E '^(error|warning: unused)|Finished' || true
  check_commands
  local t1; t1=$(date +%s.%N)
  create_databases
  create_topics
  while IFS='|' read -r name bin sub var port; do start_one "$name" "$bin" "$sub" "$var" "$port"; done < <(each | grep -- '-api|')
  while IFS='|' read -r name bin sub var port; do start_one "$name" "$bin" "$sub" "$var" "$port"; done < <(each | grep -v -- '-api|')
  start_filebeat
  wait_ready
  local t2; t2=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$(each | wc -l)" \
    'BEGIN { printf "local: all %d processes ready in %.1f s after the build (%.1f s in all), Filebeat with them\n", n, c - b, c - a }'

  endpoints
}

down() {
  local n
  # All at once: SIGTERM to every group first, then up to 10 s for each, then SIGKILL.
  for n in filebeat $(each | cut -d'|' -f1); do
    if running "$n"; then term_group "$(cat "$D/$n.pid")"; fi
  done
  for n in filebeat $(each | cut -d'|' -f1); do
    if [ -f "$D/$n.pid" ]; then
      local pid; pid=$(cat "$D/$n.pid")
      wait_gone "$pid" 10 || true
      kill_group "$pid"
      rm -f "$D/$n.pid"
      echo "local: $n stopped"
    fi
  done
  # The next `up` starts every API afresh and truncates its output file: Filebeat starts over too.
  rm -rf "$D/filebeat"
  if [ -s "$D/servers-started" ]; then
    # shellcheck disable=SC2046
    bash scripts/servers.sh stop $(cat "$D/servers-started")
  fi
  rm -f "$D/servers-started"
}

status() {
  local rc=0
  while IFS='|' read -r name _ sub _ port; do
    if ! running "$name"; then printf '%-16s stopped\n' "$name"; rc=3; continue; fi
    if curl -fs -o /dev/null --max-time 3 "http://127.0.0.1:$port/readyz"; then state=ready; else state="not ready"; rc=3; fi
    printf '%-16s running (pid %s, :%s, %s)  %s\n' "$name" "$(cat "$D/$name.pid")" "$port" "$sub" "$state"
  done < <(each)
  if ! running filebeat; then printf '%-16s stopped\n' filebeat; rc=3
  elif filebeat_ready; then printf '%-16s running (pid %s, :%s, %s)  ready\n' filebeat "$(cat "$D/filebeat.pid")" "$FILEBEAT_PORT" "$(filebeat_version "$FILEBEAT_BIN")"
  else printf '%-16s running (pid %s, :%s)  not ready\n' filebeat "$(cat "$D/filebeat.pid")" "$FILEBEAT_PORT"; rc=3; fi
  return $rc
}

# expect NAME WANT_STATUS METHOD URL [BODY]: one request; prints the body on success.
expect() {
  local what=$1 want=$2 method=$3 url=$4 body=${5:-}
  local out code
  out=$(mktemp)
  code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" ${body:+-H 'content-type: application/json' -d "$body"} "$url" || true)
  if [[ " $want " == *" $code "* ]]; then
    echo "local: ok   $what: $method ${url#http://127.0.0.1} -> $code" >&2; cat "$out"; rm -f "$out"
  else
    echo "local: FAIL $what: $method ${url#http://127.0.0.1} -> $code (want $want): $(head -c 300 "$out")" >&2; rm -f "$out"; return 1
  fi
}

smoke() {
  local rc=0 now
  now=$(date -u +%s)
  # coupon API: an event, then a coupon of it.
  local event
  event=$(expect "coupon API" "201" POST http://127.0.0.1:8092/admin/coupon-events \
    "{\"name\":\"local smoke\",\"limit\":10,\"startsAt\":\"$(date -u -d @$((now - 60)) +%FT%TZ)\",\"endsAt\":\"$(date -u -d @$((now + 3600)) +%FT%TZ)\",\"couponValidSeconds\":3600}") || rc=1
  local id; id=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$event")
  if [ -n "$id" ]; then
    expect "coupon API" "200 201" POST http://127.0.0.1:8082/coupons "{\"userId\":$((now % 100000 + 1)),\"couponEventId\":$id}" >/dev/null || rc=1
  fi
  # log API: a search over the access-log indices.
  expect "log API" "200" GET "http://127.0.0.1:8083/logs/search" >/dev/null || rc=1
  # content API: a post by a seeded user (through the outbox), read back, and a search.
  local post pid
  post=$(expect "content API" "201" POST http://127.0.0.1:8081/posts \
    '{"title":"Hello from the local mode","userId":1,"content":"Campus runs locally.","categoryId":2}') || rc=1
  pid=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$post" | head -n 1)
  if [ -n "$pid" ]; then
    expect "content API" "200" GET "http://127.0.0.1:8081/posts/$pid/detail" >/dev/null || rc=1
  else rc=1; fi
  expect "content API" "200" GET "http://127.0.0.1:8081/list/search?keyword=campus" >/dev/null || rc=1
  for p in 8081 8082 8083; do
    expect "Swagger UI" "200" GET "http://127.0.0.1:$p/swagger-ui/" >/dev/null || rc=1
  done
  local rid; rid=local-smoke-$(date +%s%N)
  curl -s -o /dev/null -H "x-request-id: $rid" "http://127.0.0.1:8081/posts/1/detail"
  shipped "$rid" campus-content || rc=1
  return $rc
}

# shipped REQUEST_ID SERVICE: waits (up to 90 s) until the log API finds SERVICE's access line of
# the request with that id, which got to it through the API's output file, Filebeat, Kafka and
# `campus-log worker index`. (The log API's own searches are access lines too, with the id in their
# query strings: only a hit whose request_id is the id counts.)
shipped() {
  local id=$1 service=$2 deadline=$((SECONDS + 90)) out hit
  while [ $SECONDS -lt $deadline ]; do
    out=$(curl -fs --max-time 5 "http://127.0.0.1:8083/logs/search?q=$id&service=$service" || true)
    hit=$(jq -c --arg id "$id" 'first(.hits[]? | select(.request_id == $id)) | {service, path, status}' <<<"$out" 2>/dev/null || true)
    if [ -n "$hit" ]; then
      echo "local: ok   log API: request $id found $hit" >&2
      return 0
    fi
    sleep 1
  done
  echo "local: FAIL log API: request $id of $service not in /logs/search after 90 s (filebeat: target/local/filebeat.log)" >&2
  return 1
}

# What each curl example of the README's "Try it" block must answer, beyond a 2xx: a jq condition
# on its body (by a pattern of the command), and how long to repeat it while the answer is still on
# its way (the read models, the issue worker and the log pipeline fill after the write).
# pattern|seconds|jq condition
README_EXPECT='
XPOST localhost:8081/posts |0|.id >= 1 and .title == "Hello" and .userName == "alice" and .version == 1
localhost:8081/posts/1/detail|30|.id == 1 and .title == "Hello" and .categoryName == "Tech"
list/search?keyword=kafka|60|any(.[]; .id == 1 and .title == "Hello")
localhost:8081/list/inbox/2|60|any(.[]; .id == 1 and .userId == 1)
admin/coupon-events|0|.id == 1 and .limit == 100 and .name == "Launch"
XPOST localhost:8082/coupons|0|.userId == 42 and .couponEventId == 1 and (.couponId | length) > 0
coupons?userId=42|60|any(.coupons[]; .couponEventId == 1 and .usedAt == null)
logs/search?path=/posts|90|any(.hits[]; .method == "POST" and .path == "/posts" and .status == 201 and .service == "campus-content")
logs/stats|90|.total >= 1 and any(.status_classes[]; .class == "2xx" and .count >= 1) and any(.latency[]; .path == "/posts" and .p99 >= .p50)
'

# readme_examples: the curl commands of the README's "Try it" block, one a line (continuations joined).
readme_examples() {
  awk '/^## Try it/ {on = 1; next} on && /^```sh/ {block = 1; next} block && /^```/ {exit}
       block { if (sub(/\\$/, "")) { acc = acc $0; next } print acc $0; acc = "" }' README.md | grep '^curl '
}

# readme_expectation COMMAND: "seconds|condition" of the first README_EXPECT line whose pattern is in
# COMMAND (nothing when none is).
readme_expectation() {
  local pat s c
  while IFS='|' read -r pat s c; do
    [ -n "$pat" ] && [[ $1 == *"$pat"* ]] && { echo "$s|$c"; return 0; }
  done <<<"$README_EXPECT"
  return 0
}

# Every curl example of the README's "Try it" block, as a newcomer pastes them after `up`: each
# must answer 2xx with the body README_EXPECT says (repeated while it may still be on its way). Run
# on a fresh local mode (the examples use the first ids: post 1, event 1; `reset` forgets old data).
readme() {
  local out passed=0 failed=0 cmd code line secs cond deadline verdict
  out=$(mktemp)
  while IFS= read -r cmd; do
    line=$(readme_expectation "$cmd")
    secs=${line%%|*}; cond=${line#*|}
    deadline=$((SECONDS + ${secs:-0}))
    while :; do
      code=$(eval "$cmd -o '$out' -w '%{http_code}' --max-time 15" || true)
      verdict=ok
      if [[ $code != 2?? ]]; then verdict="status $code"
      elif [ -n "$line" ] && [ "$(jq "$cond" "$out" 2>/dev/null)" != true ]; then verdict="body is not: $cond"; fi
      # A write is sent once; a read is repeated until its answer is there.
      [ "$verdict" = ok ] || [ "${secs:-0}" = 0 ] || [ $SECONDS -ge $deadline ] || { sleep 1; continue; }
      break
    done
    if [ "$verdict" = ok ]; then
      passed=$((passed + 1)); echo "local: ok   $code $cmd${line:+  ($cond)}" >&2
    else
      failed=$((failed + 1)); echo "local: FAIL $cmd: $verdict: $(head -c 300 "$out")" >&2
    fi
  done < <(readme_examples)
  rm -f "$out"
  # Every example has its expectation (a new example needs one here).
  local unchecked
  unchecked=$(readme_examples | while IFS= read -r cmd; do [ -n "$(readme_expectation "$cmd")" ] || echo "$cmd"; done)
  if [ -n "$unchecked" ]; then failed=$((failed + 1)); echo "local: FAIL README examples without an expected answer in local.sh's README_EXPECT: $unchecked" >&2; fi
  # The log API shows the local traffic: a request of the examples' kind, found by its id.
  local id; id=local-readme-$(date +%s%N)
  curl -s -o /dev/null -H "x-request-id: $id" 'localhost:8082/coupons?userId=42'
  if shipped "$id" campus-coupon; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "readme: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

reset() {
  local n
  for n in filebeat $(each | cut -d'|' -f1); do
    running "$n" && { echo "local: $n runs: \`scripts/local.sh down\` first" >&2; return 1; }
  done
  local started=""
  if ! bash scripts/servers.sh status >/dev/null 2>&1; then
    started=$({ bash scripts/servers.sh status 2>/dev/null || true; } | awk -F: '/stopped/ {print $1}')
    bash scripts/servers.sh start >/dev/null
  fi
  local db
  for db in "campus_${PREFIX}_content" "campus_${PREFIX}_coupon"; do
    mariadb --protocol=tcp -h127.0.0.1 -P"${MYSQL_BASE##*:}" -uroot -e "DROP DATABASE IF EXISTS \`$db\`"
  done
  echo "local: MySQL databases campus_${PREFIX}_content, campus_${PREFIX}_coupon dropped"
  # Redis: the keys of the local mode's prefix (SCAN, never KEYS).
  local keys; keys=$(mktemp)
  redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_KEY_PREFIX*" >"$keys"
  xargs -r -d '\n' -n 500 redis-cli -u "$REDIS_URL" del <"$keys" >/dev/null
  echo "local: $(wc -l <"$keys") Redis keys $REDIS_KEY_PREFIX* deleted"
  rm -f "$keys"
  "$VENV/bin/python" - "$KAFKA_BROKERS" "$PREFIX" "$MONGO_URL" "$MONGO_DATABASE" <<'PY'
import sys, time
from kafka.admin import KafkaAdminClient
import pymongo
brokers, prefix, mongo_url, mongo_db = sys.argv[1:]
admin = KafkaAdminClient(bootstrap_servers=brokers, client_id="campus-local-reset")
topics = [t for t in admin.list_topics() if t.startswith(prefix + ".")]
groups = [g for g, _ in admin.list_consumer_groups() if g.startswith(prefix + ".")]
if groups:
    admin.delete_consumer_groups(groups)
if topics:
    admin.delete_topics(topics)
    # (deletion is asynchronous: `up` creates them again at once)
    for _ in range(100):
        if not set(topics) & set(admin.list_topics()):
            break
        time.sleep(0.1)
print(f"local: {len(topics)} Kafka topics and {len(groups)} consumer groups {prefix}.* deleted")
pymongo.MongoClient(mongo_url).drop_database(mongo_db)
print(f"local: MongoDB database {mongo_db} dropped")
PY
  # Indices, their aliases and the templates of the local mode's names.
  local es=$ELASTICSEARCH_URL
  curl -fsS -o /dev/null -XDELETE "$es/$PREFIX-*?expand_wildcards=all&ignore_unavailable=true"
  local t
  for t in $(curl -fsS "$es/_index_template/$PREFIX-*" 2>/dev/null | jq -r '.index_templates[]?.name'); do
    curl -fsS -o /dev/null -XDELETE "$es/_index_template/$t"
  done
  echo "local: indices and index templates $PREFIX-* deleted"
  rm -rf "$D/filebeat"
  # shellcheck disable=SC2086
  [ -z "$started" ] || bash scripts/servers.sh stop $started >/dev/null
}

# cpu_ns PID: the run time in ns of every live thread of PID (and of its children, for servers
# started through a launcher script).
cpu_ns() {
  local p all=$1
  all+=" $(pgrep -P "$1" | tr '\n' ' ')"
  for p in $all; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{s += $1} END {print s + 0}'
}

cpu() {
  local secs=60 max="" n
  while [ $# -gt 0 ]; do
    case $1 in --max) max=$2; shift 2 ;; *) secs=$1; shift ;; esac
  done
  declare -A pid before
  for n in filebeat $(each | cut -d'|' -f1); do
    running "$n" || { echo "local: $n is not running: scripts/local.sh up first" >&2; return 1; }
    pid[$n]=$(cat "$D/$n.pid")
  done
  for n in mysql redis kafka search mongo; do
    [ -f "${CAMPUS_DATA:-$ROOT/target/servers}/$n.pid" ] && pid[server:$n]=$(head -n 1 "${CAMPUS_DATA:-$ROOT/target/servers}/$n.pid")
  done
  for n in "${!pid[@]}"; do before[$n]=$(cpu_ns "${pid[$n]}"); done
  echo "local: idle CPU over $secs s (no traffic), share of one core:" >&2
  sleep "$secs"
  local rc=0 pct
  for n in filebeat $(each | cut -d'|' -f1) $(printf '%s\n' "${!pid[@]}" | grep '^server:' | sort); do
    pct=$(awk -v a="${before[$n]}" -v b="$(cpu_ns "${pid[$n]}")" -v s="$secs" 'BEGIN { printf "%.3f", 100 * (b - a) / 1e9 / s }')
    printf '  %-18s %7s %%\n' "$n" "$pct"
    if [ -n "$max" ] && [[ $n != server:* ]] && awk -v p="$pct" -v m="$max" 'BEGIN { exit !(p >= m) }'; then
      echo "local: $n used $pct % of a core idle (limit $max %)" >&2; rc=1
    fi
  done
  return $rc
}

logs() {
  if [ -n "${1:-}" ]; then tail -F "$D/$1.log"; else tail -F "$D"/*.log; fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  smoke) smoke ;;
  readme) readme ;;
  reset) reset ;;
  logs) logs "${2:-}" ;;
  cpu) shift; cpu "$@" ;;
  *) echo "usage: $0 up|down|status|smoke|readme|reset|logs [NAME]|cpu [SECONDS] [--max PCT]" >&2; exit 2 ;;
esac
