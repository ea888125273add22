# MariaDB 10.11 (Debian) as the MySQL server.          CAMPUS_MYSQL_PORT 3306
MYSQL_PORT=${CAMPUS_MYSQL_PORT:-3306}
mysql_ports() { echo "$MYSQL_PORT"; }
mysql_start() {
  if [ ! -d "$D/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$D/mysql" --auth-root-authentication-method=normal >"$D/mysql-install.log" 2>&1
  fi
  launch mysql mariadbd --no-defaults --user=root --datadir="$D/mysql" --socket="$D/mysql.sock" --port="$MYSQL_PORT" \
    --bind-address=127.0.0.1 --pid-file="$D/mysqld.pid" --skip-log-bin --max-connections=1000 \
    --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=256M
}
mysql_stop() { mariadb-admin --socket="$D/mysql.sock" -uroot shutdown 2>/dev/null; }
mysql_version() { echo "MariaDB $(mariadbd --version | sed -n 's/.*Ver \([0-9.]*\)-MariaDB.*/\1/p')"; }
mysql_env() { echo "export CAMPUS_TEST_MYSQL_URL=mysql://root@127.0.0.1:$MYSQL_PORT"; }
