#!/usr/bin/env bash
# Idempotent: start Debian's PostgreSQL and RabbitMQ on loopback for the integration tier, with a
# `sandbox` login (password `sandbox`) that may create databases and vhosts. `stop` stops both.
set -euo pipefail
pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
case "${1:-start}" in
start)
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start 2>/dev/null || true
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 && break; sleep 0.1; done
  pg_isready -h 127.0.0.1
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='sandbox'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE sandbox LOGIN SUPERUSER PASSWORD 'sandbox'\""
  # `-detached` returns before the node registers with epmd, and `await_startup` fails at once on
  # an unregistered node: start only when no broker VM runs, then poll `ping` (90 s) before waiting.
  pgrep -u rabbitmq -f 'beam.*-s rabbit' >/dev/null || rabbitmq-server -detached
  timeout 90 bash -c 'until rabbitmqctl -q ping >/dev/null 2>&1; do sleep 0.5; done' || {
    echo "RabbitMQ did not start within 90 s; its log ends with:" >&2
    tail -n 20 /var/log/rabbitmq/rabbit@"$(hostname -s)".log >&2 || true
    exit 1
  }
  rabbitmqctl -q await_startup
  rabbitmqctl -q list_users | grep -q '^sandbox' || {
    rabbitmqctl -q add_user sandbox sandbox
    rabbitmqctl -q set_user_tags sandbox administrator
    rabbitmqctl -q set_permissions -p / sandbox '.*' '.*' '.*'
  }
  ;;
stop)
  rabbitmqctl -q shutdown 2>/dev/null || true
  pkill -f epmd 2>/dev/null || true
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main stop 2>/dev/null || true
  ;;
esac
