#!/bin/sh
# Entry point of the CI cluster's PostgreSQL image (images.sh builds it from
# Debian's postgresql-15), written for what k8s/postgres relies on in the
# official image: on an empty PGDATA, initdb as the running (non-root) user
# with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, password logins over
# TCP from anywhere; then postgres in the foreground. SIGTERM or SIGINT makes
# a fast shutdown (sessions ended, checkpoint, exit 0): a smart shutdown, what
# postgres does on SIGTERM itself, would wait for the services' pooled
# connections to close, which they never do. Only dash builtins besides the
# PostgreSQL binaries: the image carries no coreutils.
set -eu
PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
# Exported: initdb finds the server binary through its own PATH lookup.
export PATH PGDATA

case "$POSTGRES_USER$POSTGRES_DB" in
  *'"'* | *"'"*) echo "entrypoint: POSTGRES_USER and POSTGRES_DB must not hold quotes" >&2; exit 1 ;;
esac

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "entrypoint: $PGDATA holds no database and POSTGRES_PASSWORD is empty" >&2
    exit 1
  fi
  umask 077
  # initdb reads the password from a file; /tmp is the container's own.
  pwfile=/tmp/.initdb-password
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C
  : >"$pwfile"
  printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  printf '%s\n' "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # Single-user mode: no server, no socket, nothing to stop afterwards.
    printf 'CREATE DATABASE "%s";\n' "$POSTGRES_DB" \
      | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "entrypoint: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi

# `postgres [options]` as the official image takes it (its CMD is postgres).
if [ "${1:-}" = postgres ]; then shift; fi
postgres -D "$PGDATA" "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || :' INT TERM
status=0
# wait returns early when a trapped signal arrives; wait again until the
# server is gone, then exit with its status.
while kill -0 "$pid" 2>/dev/null; do
  if wait "$pid"; then status=0; else status=$?; fi
done
exit "$status"
