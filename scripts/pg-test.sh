#!/usr/bin/env bash
# scripts/pg-test.sh: a throwaway loopback PostgreSQL cluster for the integration tests.
#
#   pg-test.sh start DIR     initdb (first time), a free port on 127.0.0.1, server started,
#                            roles created, DIR/env written
#   pg-test.sh stop DIR      stops it; succeeds when nothing runs
#   pg-test.sh restart DIR   stop, then start again on the SAME port (also starts a stopped
#                            one), for "server restarted under the pool" tests
#
# Exit status: 0 ok, 1 error, 2 usage, 77 PostgreSQL is not installed (ctest: skipped).
#
# What the tests may rely on:
#   - user postgres, trust authentication, database postgres
#   - role tenant_b, password "tenant-b-Secr3t" (scram-sha-256 over TCP), owns database
#     tenant_b; its idle_session_timeout is set to 1 s in database "idle_db" only
#     (ALTER ROLE ... IN DATABASE), which it may connect to
#   - max_connections 20 (superuser_reserved_connections 3: 17 slots for tenant_b), or
#     $PG_TEST_MAX_CONNECTIONS when set (the fleet test runs a larger server),
#     listen on 127.0.0.1 only, fsync off, unix socket in DIR
#
# DIR/env: PG_PORT, PG_DIR, PG_BIN lines (KEY=VALUE, no quotes). When run as root the
# server runs as the postgres system user (PostgreSQL refuses root), so DIR is chowned.
set -euo pipefail
usage() { echo "usage: $0 start|stop|restart DIR" >&2; exit 2; }
[[ $# -eq 2 && -n "$2" ]] || usage
cmd=$1
dir=$2
case "$cmd" in start | stop | restart) ;; *) usage ;; esac

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    [[ "$cmd" == stop ]] && exit 0
    echo "pg-test: PostgreSQL is not installed (scripts/install-deps.sh)" >&2
    exit 77
fi
as_pg() { if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

running() { [[ -f "$dir/data/postmaster.pid" ]] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

stop() {
    if running; then
        as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
}

# A free port: ask the kernel for one (bind to 0), then the server binds it for real.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

start() {
    mkdir -p "$dir"
    [[ "$(id -u)" == 0 ]] && chown postgres "$dir"
    local port fresh=0
    if [[ -f "$dir/env" ]]; then
        port=$(sed -n 's/^PG_PORT=//p' "$dir/env")
    else
        port=$(free_port)
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=trust \
            --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
        # Host rules: tenant_b must give its password, postgres is trusted.
        cat >"$dir/data/pg_hba.conf" <<HBA
local all postgres trust
local all all scram-sha-256
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
HBA
        fresh=1
    fi
    if ! running; then
        as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 -o \
            "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=${PG_TEST_MAX_CONNECTIONS:-20} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c password_encryption=scram-sha-256" \
            start >/dev/null || { tail -n 20 "$dir/log" >&2; exit 1; }
    fi
    if [[ $fresh == 1 ]]; then
        as_pg "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE ROLE tenant_b LOGIN PASSWORD 'tenant-b-Secr3t';
CREATE DATABASE tenant_b OWNER tenant_b;
CREATE DATABASE idle_db;
GRANT CONNECT, TEMP ON DATABASE idle_db TO tenant_b;
ALTER ROLE tenant_b IN DATABASE idle_db SET idle_session_timeout = '1s';
SQL
    fi
    printf 'PG_PORT=%s\nPG_DIR=%s\nPG_BIN=%s\n' "$port" "$dir" "$bin" >"$dir/env"
}

case "$cmd" in
stop) [[ -d "$dir/data" ]] && stop; exit 0 ;;
start) start ;;
restart) stop; start ;;
esac
