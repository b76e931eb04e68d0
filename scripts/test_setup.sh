#!/usr/bin/env bash
# What the test suite needs from the machine besides the venv: Postgres and Redis running,
# Chromium for the browser tests. Idempotent; quiet when everything is there.
set -u
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || echo "warning: could not start PostgreSQL" >&2
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || echo "warning: could not start Redis" >&2
fi
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -q && apt-get install -y -q chromium) >/dev/null 2>&1 || echo "warning: could not install chromium" >&2
fi
exit 0
