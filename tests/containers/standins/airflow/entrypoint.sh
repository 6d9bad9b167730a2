#!/usr/bin/env bash
# Entrypoint of the apache/airflow stand-in, written from the image's documented behaviour
# ("Entrypoint" page of Airflow's Docker image docs): user checks, waits, optional migrate and
# user creation, then the command.
first="${1:-}"
set -euo pipefail

fail() { printf '\nERROR! %s\n\n' "$*" >&2; exit 1; }

check_user_and_group() {
  # Arbitrary UIDs are supported only with GID 0 (OpenShift style); UID 50000 is only warned.
  if [[ "$(id -g)" == 0 ]]; then return; fi
  if [[ "$(id -u)" == 50000 ]]; then
    echo "WARNING! Run the image with GID 0 even as the airflow user (UID 50000)." >&2
    return
  fi
  fail "Run the image with GID 0; you used UID=$(id -u) GID=$(id -g)."
}

give_arbitrary_user_a_home() {
  if ! whoami >/dev/null 2>&1; then
    if [[ -w /etc/passwd ]]; then
      echo "${USER_NAME:-default}:x:$(id -u):0:${USER_NAME:-default} user:${AIRFLOW_USER_HOME_DIR}:/sbin/nologin" \
        >> /etc/passwd
    fi
    export HOME="${AIRFLOW_USER_HOME_DIR}"
  fi
}

with_retries() {
  # The image's documented connection check: CONNECTION_CHECK_MAX_COUNT tries,
  # CONNECTION_CHECK_SLEEP_TIME seconds apart (the image's contract, kept as documented).
  local left="${CONNECTION_CHECK_MAX_COUNT}" output
  until output="$("$@" 2>&1)"; do
    left=$((left - 1))
    if ((left <= 0)); then
      fail "$(printf 'Maximum number of retries (%s) reached.\nLast check result:\n$ %s\n%s' \
        "${CONNECTION_CHECK_MAX_COUNT}" "$*" "${output}")"
    fi
    printf '.'
    sleep "${CONNECTION_CHECK_SLEEP_TIME}"
  done
  echo
}

tcp_reachable() {
  # tcp_reachable URL: connect to the URL's host and port (scheme default ports as documented).
  python - "$1" <<'PY'
import socket, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
defaults = {"postgres": 5432, "mysql": 3306, "redis": 6379, "amqp": 5672, "pyamqp": 5672}
port = url.port or next((p for s, p in defaults.items() if url.scheme.startswith(s)), None)
if port is None:
    sys.exit(0)  # unknown backend: nothing to check, as the image does
socket.create_connection((url.hostname or "localhost", port), timeout=5).close()
PY
}

wait_for_broker() {
  local executor broker
  executor="$(airflow config get-value core executor 2>/dev/null || true)"
  if [[ "${executor}" == CeleryExecutor ]]; then
    broker="$(airflow config get-value celery broker_url)"
    with_retries tcp_reachable "${broker}"
  fi
}

create_www_user() {
  local password=""
  if [[ -n "${_AIRFLOW_WWW_USER_PASSWORD_CMD:-}" ]]; then
    password="$(eval "${_AIRFLOW_WWW_USER_PASSWORD_CMD}")"
  elif [[ -n "${_AIRFLOW_WWW_USER_PASSWORD:-}" ]]; then
    password="${_AIRFLOW_WWW_USER_PASSWORD}"
  fi
  unset _AIRFLOW_WWW_USER_PASSWORD_CMD _AIRFLOW_WWW_USER_PASSWORD
  if [[ -z "${password}" ]]; then
    fail "Airflow Admin password not set via _AIRFLOW_WWW_USER_PASSWORD or _AIRFLOW_WWW_USER_PASSWORD_CMD variables!"
  fi
  # `airflow users` exists only with the FAB auth manager; its failure is ignored, as documented.
  airflow users create \
    --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" \
    --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" \
    --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" \
    --email "${_AIRFLOW_WWW_USER_EMAIL:-airflowadmin@example.com}" \
    --role "${_AIRFLOW_WWW_USER_ROLE:-Admin}" \
    --password "${password}" || true
}

check_user_and_group
umask 0002
CONNECTION_CHECK_MAX_COUNT="${CONNECTION_CHECK_MAX_COUNT:-20}"
CONNECTION_CHECK_SLEEP_TIME="${CONNECTION_CHECK_SLEEP_TIME:-3}"
give_arbitrary_user_a_home

if ((CONNECTION_CHECK_MAX_COUNT > 0)); then
  with_retries airflow db check
fi
if [[ -n "${_AIRFLOW_DB_MIGRATE:-}" || -n "${_AIRFLOW_DB_UPGRADE:-}" ]]; then
  airflow db migrate || true
fi
if [[ -n "${_AIRFLOW_WWW_USER_CREATE:-}" ]]; then
  create_www_user
fi

case "${first}" in
  bash) shift; exec /bin/bash "$@" ;;
  python) shift; exec python "$@" ;;
  airflow) shift; first="${1:-}" ;;
esac
if [[ "${first}" == scheduler || "${first}" == celery ]] && ((CONNECTION_CHECK_MAX_COUNT > 0)); then
  wait_for_broker
fi
exec airflow "$@"
