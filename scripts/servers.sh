#!/usr/bin/env bash
# Start, inspect and stop the real local servers the tests and the local mode use.
#   scripts/servers.sh start|status|stop|env
# Ports come from the environment (defaults below); data and PID files live in $CAMPUS_DATA
# (default target/servers). Idempotent: `start` leaves running servers alone, `stop` stops by PID.
#   MariaDB 10.11 (Debian)              CAMPUS_MYSQL_PORT   3306
#   Redis 7.0 (Debian)                  CAMPUS_REDIS_PORT   6379
#   noida-db 0.2.3: Kafka protocol      CAMPUS_KAFKA_PORT   9092
#                   Elasticsearch REST  CAMPUS_ES_PORT      9200
#   SecantusDB 0.7.0b3: MongoDB wire    CAMPUS_MONGO_PORT   27017
#   osmem-server 0.1.6: OpenSearch REST CAMPUS_OSMEM_PORT   9201  (has the `percentiles` aggregation)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAMPUS_CACHE=${CAMPUS_CACHE:-$HOME/.cache/campus}
VENV=$CAMPUS_CACHE/venv
D=${CAMPUS_DATA:-$ROOT/target/servers}
MYSQL_PORT=${CAMPUS_MYSQL_PORT:-3306}
REDIS_PORT=${CAMPUS_REDIS_PORT:-6379}
KAFKA_PORT=${CAMPUS_KAFKA_PORT:-9092}
ES_PORT=${CAMPUS_ES_PORT:-9200}
MONGO_PORT=${CAMPUS_MONGO_PORT:-27017}
OSMEM_PORT=${CAMPUS_OSMEM_PORT:-9201}
NOIDA_BIN=$VENV/lib/python3.11/site-packages/noida_db/noida-db
SERVERS="mysql redis noida mongo osmem"

port_of() {
  case $1 in
    mysql) echo "$MYSQL_PORT" ;; redis) echo "$REDIS_PORT" ;; noida) echo "$KAFKA_PORT $ES_PORT" ;;
    mongo) echo "$MONGO_PORT" ;; osmem) echo "$OSMEM_PORT" ;;
  esac
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$D/$1.pid" ] && kill -0 "$(cat "$D/$1.pid")" 2>/dev/null; }

wait_ports() {
  local name=$1; shift
  for _ in $(seq 1 300); do
    local ok=1
    for p in "$@"; do listening "$p" || ok=0; done
    [ $ok = 1 ] && return 0
    running "$name" || { echo "servers: $name exited; last log lines:" >&2; tail -n 20 "$D/$name.log" >&2; return 1; }
    sleep 0.1
  done
  echo "servers: $name did not open port(s) $* within 30 s; see $D/$name.log" >&2
  return 1
}

start_one() {
  local name=$1
  if running "$name"; then return 0; fi
  # shellcheck disable=SC2046
  for p in $(port_of "$name"); do
    if listening "$p"; then echo "servers: port $p for $name is taken by another process" >&2; return 1; fi
  done
  case $name in
    mysql)
      if [ ! -d "$D/mysql/mysql" ]; then
        mariadb-install-db --user=root --datadir="$D/mysql" --auth-root-authentication-method=normal >"$D/mysql-install.log" 2>&1
      fi
      setsid mariadbd --no-defaults --user=root --datadir="$D/mysql" --socket="$D/mysql.sock" --port="$MYSQL_PORT" \
        --bind-address=127.0.0.1 --pid-file="$D/mysqld.pid" --skip-log-bin --max-connections=1000 \
        --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=256M >"$D/mysql.log" 2>&1 &
      ;;
    redis)
      setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$D" >"$D/redis.log" 2>&1 &
      ;;
    noida)
      # Run the real binary (not the Python launcher) so the PID we keep is the server's.
      rm -rf "$D/noida"
      setsid "$NOIDA_BIN" start --data-dir "$D/noida" --only kafka,elasticsearch \
        --kafka-port "$KAFKA_PORT" --elasticsearch-port "$ES_PORT" >"$D/noida.log" 2>&1 &
      ;;
    mongo)
      setsid "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path :memory: >"$D/mongo.log" 2>&1 &
      ;;
    osmem)
      setsid "$VENV/lib/python3.11/site-packages/osmem_server/bin/osmem-server" -no-stdin-watch -addr "127.0.0.1:$OSMEM_PORT" >"$D/osmem.log" 2>&1 &
      ;;
  esac
  echo $! >"$D/$name.pid"
  # shellcheck disable=SC2046
  wait_ports "$name" $(port_of "$name")
  echo "servers: $name up (pid $(cat "$D/$name.pid"), port(s) $(port_of "$name"))"
}

stop_one() {
  local name=$1
  running "$name" || { rm -f "$D/$name.pid"; return 0; }
  local pid; pid=$(cat "$D/$name.pid")
  if [ "$name" = mysql ]; then
    mariadb-admin --socket="$D/mysql.sock" -uroot shutdown 2>/dev/null || true
  fi
  # Each server runs in its own session (setsid): stop the whole group, then wait.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$D/$name.pid"
  echo "servers: $name stopped"
}

cmd=${1:-status}; shift || true
names=${*:-$SERVERS}
mkdir -p "$D"
case $cmd in
  start) for n in $names; do start_one "$n"; done ;;
  stop) for n in $names; do stop_one "$n"; done ;;
  restart) for n in $names; do stop_one "$n"; start_one "$n"; done ;;
  status)
    rc=0
    for n in $names; do
      if running "$n"; then echo "$n: running (pid $(cat "$D/$n.pid"), port(s) $(port_of "$n"))"
      else echo "$n: stopped"; rc=3; fi
    done
    exit $rc ;;
  env)
    # The variables the tests and services read, pointing at these servers.
    cat <<ENV
export CAMPUS_TEST_MYSQL_URL=mysql://root@127.0.0.1:$MYSQL_PORT
export CAMPUS_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export CAMPUS_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export CAMPUS_TEST_ES_URL=http://127.0.0.1:$ES_PORT
export CAMPUS_TEST_MONGO_URL=mongodb://127.0.0.1:$MONGO_PORT
export CAMPUS_TEST_OSMEM_URL=http://127.0.0.1:$OSMEM_PORT
ENV
    ;;
  *) echo "usage: $0 start|stop|restart|status|env [server...]  (servers: $SERVERS)" >&2; exit 2 ;;
esac
