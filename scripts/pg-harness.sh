#!/usr/bin/env bash
# pg-harness.sh - a throwaway PostgreSQL cluster for tests, the torture runner and the
# benchmark: initdb in a folder of the caller's choosing, max_prepared_transactions > 0
# (two-phase commit on), a free port on 127.0.0.1, the unix socket in the same folder,
# readiness polled with pg_isready under a deadline. initdb refuses to run as root, so
# as root the cluster runs as an unprivileged system user (tpc-pg, made if missing) that
# owns DIR; DIR's parent folder is then made traversable by others (chmod o+x).
#
#   pg-harness.sh check             exit 0 if PostgreSQL's binaries are here, else 77
#   pg-harness.sh start DIR         make (first time) and start the cluster in DIR; print
#                                   its settings as PGHOST=.. PGPORT=.. PGUSER=..
#                                   PGDATABASE=.. lines (also kept in DIR/env)
#   pg-harness.sh stop DIR [MODE]   stop it; MODE fast (default) or immediate (a crash:
#                                   the next start runs crash recovery)
#   pg-harness.sh run DIR CMD...    start, run CMD with those variables exported, stop
#                                   at the end whatever happens (trap); CMD's status
#
# Environment: TPC_PG_BINDIR (where initdb and pg_ctl are; default: the newest
# /usr/lib/postgresql/*/bin, else PATH), TPC_PG_START_TIMEOUT (seconds, default 60),
# TPC_PG_USER (the system user when run as root, default tpc-pg).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=ports.sh
. "$HERE/ports.sh"

ME=pg-harness
DBUSER=tpc
DBNAME=tpc

die() { echo "$ME: $*" >&2; exit 1; }

find_bindir() {
    if [ -n "${TPC_PG_BINDIR:-}" ]; then echo "$TPC_PG_BINDIR"; return; fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
    echo ""
}

BINDIR=$(find_bindir)

check() {
    local b
    [ -n "$BINDIR" ] || { echo "$ME: PostgreSQL not found (no initdb; scripts/install-deps.sh installs postgresql)" >&2; exit 77; }
    for b in initdb pg_ctl pg_isready psql; do
        [ -x "$BINDIR/$b" ] || { echo "$ME: $BINDIR/$b missing" >&2; exit 77; }
    done
}

# Run a PostgreSQL program as the cluster's owner: ourselves, or the system user as root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "${TPC_PG_USER:-tpc-pg}" -- "$@"
    else
        "$@"
    fi
}

ensure_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    local u=${TPC_PG_USER:-tpc-pg}
    getent passwd "$u" >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin "$u" \
        || die "cannot create the system user $u (initdb refuses root)"
}

# As root the folder belongs to the cluster's user, and its parent must let it in.
prepare_dir() {
    local dir=$1
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown "${TPC_PG_USER:-tpc-pg}" "$dir"
        chmod o+x "$(dirname "$dir")"
        as_owner test -w "$dir" || die "$dir is not reachable by ${TPC_PG_USER:-tpc-pg} (a parent folder is closed)"
    fi
}

write_env() {
    local dir=$1 port=$2
    printf 'PGHOST=%s\nPGPORT=%s\nPGUSER=%s\nPGDATABASE=%s\n' "$dir" "$port" "$DBUSER" "$DBNAME" >"$dir/env.tmp"
    mv "$dir/env.tmp" "$dir/env"
}

wait_ready() {
    local dir=$1 port=$2 deadline=$((SECONDS + ${TPC_PG_START_TIMEOUT:-60}))
    until "$BINDIR/pg_isready" -q -h "$dir" -p "$port" -d postgres -U "$DBUSER"; do
        if [ $SECONDS -ge $deadline ]; then
            tail -n 20 "$dir/postgres.log" >&2 2>/dev/null || true
            die "PostgreSQL in $dir not ready after ${TPC_PG_START_TIMEOUT:-60} s (log: $dir/postgres.log)"
        fi
        sleep 0.1
    done
}

start() {
    local dir=$1 port
    check
    case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac
    ensure_user
    prepare_dir "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$BINDIR/initdb" -D "$dir/data" -U "$DBUSER" --auth=trust -E UTF8 \
            --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else port=$(free_port); echo "$port" >"$dir/port"; fi
    as_owner "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -W start -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_prepared_transactions=100 -c max_connections=100 -c fsync=on -c synchronous_commit=on" \
        >/dev/null 2>>"$dir/pg_ctl.log" || die "pg_ctl start failed (log: $dir/postgres.log)"
    wait_ready "$dir" "$port"
    if ! "$BINDIR/psql" -h "$dir" -p "$port" -U "$DBUSER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'" | grep -q 1; then
        "$BINDIR/psql" -h "$dir" -p "$port" -U "$DBUSER" -d postgres -qc "CREATE DATABASE $DBNAME" \
            || die "cannot create database $DBNAME"
    fi
    write_env "$dir" "$port"
    cat "$dir/env"
}

stop() {
    local dir=$1 mode=${2:-fast}
    [ -n "$BINDIR" ] || die "PostgreSQL not found"
    case "$mode" in fast|immediate|smart) ;; *) die "stop mode must be fast or immediate, not $mode" ;; esac
    [ -f "$dir/data/postmaster.pid" ] || return 0
    as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m "$mode" -w -t "${TPC_PG_START_TIMEOUT:-60}" stop >/dev/null
}

run() {
    RUN_DIR=$1; shift
    local dir=$RUN_DIR
    [ $# -gt 0 ] || die "run needs a command"
    start "$dir" >/dev/null
    trap 'stop "$RUN_DIR" fast || true' EXIT INT TERM
    set -a
    # shellcheck disable=SC1091
    . "$dir/env"
    set +a
    local rc=0
    "$@" || rc=$?
    return $rc
}

usage() { sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
    check) check ;;
    start) [ $# -eq 2 ] || die "usage: $ME start DIR"; start "$2" ;;
    stop) [ $# -ge 2 ] || die "usage: $ME stop DIR [fast|immediate]"; stop "$2" "${3:-fast}" ;;
    run) [ $# -ge 3 ] || die "usage: $ME run DIR CMD..."; d=$2; shift 2; run "$d" "$@" ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
