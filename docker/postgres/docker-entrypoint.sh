#!/bin/bash
# The entrypoint of the PostgreSQL image built from Debian's packages (tools/node/build.sh):
# the subset of the official postgres image's docker-entrypoint.sh the chart relies on, so
# that the chart runs this image or the upstream one unchanged:
#   POSTGRES_USER (postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, POSTGRES_DB
#   (POSTGRES_USER), POSTGRES_INITDB_ARGS, PGDATA; on an empty PGDATA: initdb, then every
#   /docker-entrypoint-initdb.d/*.sh (run when executable, sourced otherwise) and *.sql
#   against a server listening on its Unix socket only; then postgres on all addresses,
#   with password (scram-sha-256) authentication for TCP clients.
set -Eeuo pipefail

if [ "${1:0:1}" = - ] || [ $# -eq 0 ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA POSTGRES_USER POSTGRES_DB
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD="$(<"$POSTGRES_PASSWORD_FILE")"
fi
export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-}"

mkdir -p "$PGDATA"
chmod 00700 "$PGDATA" 2>/dev/null || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo "error: the database is uninitialized and no superuser password is set:" \
      "set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2
    exit 1
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as upstream's
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  # The init scripts talk to a server no one else can reach: Unix socket only.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql PGPORT=5432
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --dbname postgres --set db="$POSTGRES_DB" \
      <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" -f "$f" ;;
      *) [ -e "$f" ] && echo "ignoring $f" ;;
    esac
  done
  unset PGUSER PGHOST PGPORT
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@" -c listen_addresses='*'
