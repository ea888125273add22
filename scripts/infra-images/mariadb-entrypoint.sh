#!/bin/sh
# MariaDB as the mariadb image starts it: on the first start (no database in /var/lib/mysql) the data
# directory is created, root gets MARIADB_ROOT_PASSWORD (for 'root'@'%' too), MARIADB_DATABASE is
# created, MARIADB_USER gets MARIADB_PASSWORD and every privilege on it, and the *.sql files of
# /docker-entrypoint-initdb.d run in name order — all against a server that listens on no TCP port, so
# nobody sees it half made (the readiness probe neither). Then the server, listening on 3306 of every
# address, exec'd: PID 1 is mariadbd. Runs as any user that owns /var/lib/mysql and /run/mysqld.
set -eu
[ "${1:-mariadbd}" = mariadbd ] || exec "$@"
[ $# -gt 0 ] && shift
data=/var/lib/mysql
sock=/run/mysqld/init.sock
# sql_quote S: S as the inside of a '...' SQL string.
sql_quote() { printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/''/g"; }
if [ ! -d "$data/mysql" ]; then
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is required on the first start}"
  echo "mariadb: initialising $data"
  mariadb-install-db --rpm --datadir="$data" --auth-root-authentication-method=normal --skip-test-db \
    --skip-name-resolve >/tmp/install-db.log 2>&1 || { cat /tmp/install-db.log >&2; exit 1; }
  mariadbd --datadir="$data" --skip-networking --socket="$sock" --skip-name-resolve &
  pid=$!
  i=0
  until mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "mariadb: the init server did not start" >&2; exit 1; }
    kill -0 $pid 2>/dev/null || { echo "mariadb: the init server exited" >&2; exit 1; }
    sleep 0.2
  done
  root=$(sql_quote "$MARIADB_ROOT_PASSWORD")
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host NOT IN ('localhost'));"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$root';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [ -n "${MARIADB_USER:-}" ]; then
      echo "CREATE USER '$(sql_quote "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_quote "${MARIADB_PASSWORD:-}")';"
      [ -z "${MARIADB_DATABASE:-}" ] || echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$(sql_quote "$MARIADB_USER")'@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$sock" -uroot
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -f "$f" ] || continue
    echo "mariadb: running $f"
    MYSQL_PWD=$MARIADB_ROOT_PASSWORD mariadb --socket="$sock" -uroot <"$f"
  done
  MYSQL_PWD=$MARIADB_ROOT_PASSWORD mariadb-admin --socket="$sock" -uroot shutdown
  wait $pid || true
  echo "mariadb: initialised"
fi
exec mariadbd --datadir="$data" --bind-address=0.0.0.0 --port=3306 --skip-name-resolve "$@"
