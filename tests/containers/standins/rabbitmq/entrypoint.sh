#!/usr/bin/env bash
# Entrypoint of the rabbitmq stand-in: turn the documented RABBITMQ_DEFAULT_* variables into
# server configuration, then run the real server binary (not Debian's /usr/sbin wrapper, which
# ignores SIGTERM) in the foreground as user `rabbitmq`.
set -euo pipefail

if [[ "${1:-}" != rabbitmq-server ]]; then
  exec "$@"
fi

if [[ "$(id -u)" == 0 ]]; then
  defaults=/etc/rabbitmq/conf.d/20-default-user.conf
  : > "$defaults"
  if [[ -n "${RABBITMQ_DEFAULT_USER:-}" ]]; then
    echo "default_user = ${RABBITMQ_DEFAULT_USER}" >> "$defaults"
  fi
  if [[ -n "${RABBITMQ_DEFAULT_PASS:-}" ]]; then
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS}" >> "$defaults"
  fi
  if [[ -n "${RABBITMQ_DEFAULT_VHOST:-}" ]]; then
    echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST}" >> "$defaults"
  fi
  chown rabbitmq:rabbitmq "$defaults"
  # A fresh named volume is owned by root.
  mkdir -p /var/lib/rabbitmq
  chown rabbitmq:rabbitmq /var/lib/rabbitmq
  exec gosu rabbitmq "${BASH_SOURCE[0]}" "$@"
fi

shift
exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
