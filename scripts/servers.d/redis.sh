# Redis 7.0 (Debian), no persistence.                  CAMPUS_REDIS_PORT 6379
REDIS_PORT=${CAMPUS_REDIS_PORT:-6379}
redis_ports() { echo "$REDIS_PORT"; }
redis_start() { launch redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$D"; }
redis_version() { echo "Redis $(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')"; }
redis_env() { echo "export CAMPUS_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"; }
