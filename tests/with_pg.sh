#!/bin/sh
# with_pg.sh CMD [ARG...]: runs CMD with GPOOL_TEST_PG set to the URL of a PostgreSQL server's
# "postgres" database: the one GPOOL_TEST_PG already names, or else a private cluster started
# here (initdb in a new directory, on a free port of 127.0.0.1, as the postgres account when
# run as root) and removed when CMD ends.  Without PostgreSQL the tests that need it fail: the
# line below is a TAP "Bail out!", and the exit status is 1.
set -u
if [ -n "${GPOOL_TEST_PG:-}" ]; then
    exec "$@"
fi
bail() { echo "Bail out! PostgreSQL for the tests: $*"; exit 1; }
bindir=$(pg_config --bindir 2>/dev/null)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] ||
    bail "no initdb (install Debian's postgresql: make deps, as root)"
dir=$(mktemp -d "${TMPDIR:-/tmp}/gpool-pg.XXXXXX") || bail "no temporary directory"
as_owner() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || bail "no postgres account to run the cluster as"
    chown postgres "$dir"
    as_owner() { runuser -u postgres -- "$@"; }
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$dir"
}
trap stop EXIT
trap 'exit 1' INT TERM
as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; bail "initdb failed"; }
as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >/dev/null ||
    { cat "$dir/server.log" >&2; bail "the cluster did not start"; }
GPOOL_TEST_PG="postgresql://postgres@127.0.0.1:$port/postgres"
export GPOOL_TEST_PG
"$@"
