#!/usr/bin/env bash
# Entrypoint of the postgres stand-in: first-start initialisation as the official image documents
# it (user, password, database, init scripts), then the server in the foreground as `postgres`.
set -euo pipefail

if [[ "${1:-}" == -* ]]; then
  set -- postgres "$@"          # `docker run IMAGE -c key=value` passes server options
fi
if [[ "${1:-}" != postgres ]]; then
  exec "$@"                     # any other command runs as given (psql, bash, ...)
fi

if [[ "$(id -u)" == 0 ]]; then
  # A fresh named volume is owned by root: hand it to postgres, then drop privileges.
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

initialise() {
  local user="${POSTGRES_USER:-postgres}"
  local db="${POSTGRES_DB:-$user}"
  local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [[ -z "${POSTGRES_PASSWORD:-}" && "$auth" != trust ]]; then
    echo "error: database is uninitialized and superuser password is not specified." >&2
    echo "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)." >&2
    exit 1
  fi
  local pwfile
  pwfile="$(mktemp)"
  printf '%s' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list by contract
  initdb --username="$user" --pwfile="$pwfile" -D "$PGDATA" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

  # A private server (socket only) for the set-up, as the official image does.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$user" --dbname postgres)
  if [[ "$db" != postgres ]]; then
    "${psql[@]}" --set db="$db" <<< 'CREATE DATABASE :"db";'
  fi
  local script
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh) echo "running $script"; . "$script" ;;
      *.sql) echo "running $script"; "${psql[@]}" --dbname "$db" -f "$script" ;;
      *.sql.gz) echo "running $script"; gunzip -c "$script" | "${psql[@]}" --dbname "$db" ;;
      *) if [[ -e "$script" ]]; then echo "ignoring $script"; fi ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  initialise
else
  echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
fi
exec "$@"
