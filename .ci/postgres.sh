#!/usr/bin/env bash
# A throw-away PostgreSQL server on 127.0.0.1 for the tests (CI and local use).
#
#   .ci/postgres.sh start [DIR]   initdb into DIR (default /tmp/bnsearch-pg), start the server,
#                                 create the database; prints the URL to export as
#                                 BNSEARCH_TEST_POSTGRES_URL
#   .ci/postgres.sh stop [DIR]    stop that server (the folder stays; delete it to start clean)
#
# Port: $BNSEARCH_PG_PORT (default 54329). Uses Debian's packages (apt-get install postgresql);
# as root, the server runs as the 'postgres' user, since PostgreSQL refuses to run as root.
set -euo pipefail

cmd=${1:-start}
dir=${2:-/tmp/bnsearch-pg}
port=${BNSEARCH_PG_PORT:-54329}
db=bnsearch_test

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$bindir" ]]; then
    bindir=$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")
fi
if [[ ! -x "$bindir/pg_ctl" ]]; then
    echo "postgres.sh: PostgreSQL not found; install it with: apt-get install -y postgresql" >&2
    exit 1
fi

if [[ $(id -u) == 0 ]]; then
    as_pg() { runuser -u postgres -- "$@"; }
    owner=postgres
else
    as_pg() { "$@"; }
    owner=$(id -un)
fi

case "$cmd" in
start)
    if [[ ! -f "$dir/PG_VERSION" ]]; then
        mkdir -p "$dir"
        chown "$owner" "$dir"
        chmod 700 "$dir"
        # trust on loopback only: a test server, never reachable from outside this machine.
        as_pg "$bindir/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_pg "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        as_pg "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >/dev/null
    fi
    if ! as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
        as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    fi
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/$db"
    ;;
stop)
    as_pg "$bindir/pg_ctl" -D "$dir" -m fast stop >/dev/null
    ;;
*)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
