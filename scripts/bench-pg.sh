#!/usr/bin/env bash
# bench-pg.sh - the PostgreSQL participant's cost beside PostgreSQL alone, same machine,
# same run: a throwaway PostgreSQL (scripts/pg-harness.sh, synchronous_commit on), a
# tpc-coordinator and examples/pg-ledger. THREADS closed-loop clients move 1 between
# random accounts for SECONDS, first as plain PostgreSQL transactions (BEGIN; two UPDATEs
# and an INSERT; COMMIT), then the same statements through tpc (PREPARE TRANSACTION and
# COMMIT PREPARED underneath, the coordinator's forced decision between). Prints a
# markdown table: throughput, p50/p99 latency, and CPU per committed transaction summed
# over every process involved (PostgreSQL's, the coordinator, pg-ledger).
#
#   scripts/bench-pg.sh [--seconds S] [--threads T] [--accounts N] [--build DIR]
#
# Defaults: 10 s, 4 threads, 1000 accounts, build (a RelWithDebInfo build tree).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=ports.sh
. "$HERE/ports.sh"

SECONDS_RUN=10 THREADS=4 ACCOUNTS=1000 BUILD="$ROOT/build"
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_RUN=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --accounts) ACCOUNTS=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-pg: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
COORD="$BUILD/coordinator/tpc-coordinator" LEDGER="$BUILD/tools/pg-ledger"
for b in "$COORD" "$LEDGER"; do
    [ -x "$b" ] || { echo "bench-pg: $b missing (cmake --build $BUILD --target tpc-coordinator pg-ledger)" >&2; exit 1; }
done
"$HERE/pg-harness.sh" check

RUN=$(mktemp -d "${TMPDIR:-/tmp}/tpc-bench-pg.XXXXXX")
COORD_PID="" LEDGER_PID=""
cleanup() {
    [ -n "$LEDGER_PID" ] && kill "$LEDGER_PID" 2>/dev/null || true
    [ -n "$COORD_PID" ] && kill "$COORD_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    "$HERE/pg-harness.sh" stop "$RUN/pg" fast >/dev/null 2>&1 || true
    rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

"$HERE/pg-harness.sh" start "$RUN/pg" >/dev/null
set -a; . "$RUN/pg/env"; set +a
PORT=$(free_port)
"$COORD" --data "$RUN/coord" --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$(free_port)" 2>"$RUN/coord.log" &
COORD_PID=$!
wait_port "$PORT" 30

coproc LEDGER_P { exec "$LEDGER" -c "127.0.0.1:$PORT" -s "$RUN/state" -a "$ACCOUNTS" -b 1000000 2>"$RUN/ledger.log"; }
LEDGER_PID=$LEDGER_P_PID
read -r -t 60 line <&"${LEDGER_P[0]}" || { echo "bench-pg: pg-ledger did not start" >&2; cat "$RUN/ledger.log" >&2; exit 1; }

# CPU ticks of every process involved: the postmaster with its reaped children (backends
# that ended), its live children, the coordinator and pg-ledger (utime + stime).
cpu_all() {
    local pm total=0 pid
    pm=$(head -n 1 "$RUN/pg/data/postmaster.pid")
    total=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
    for pid in $(pgrep -P "$pm") "$COORD_PID" "$LEDGER_PID"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

run_mode() { # direct(0|1) label
    local before after line
    before=$(cpu_all)
    echo "bench $SECONDS_RUN $THREADS $1" >&"${LEDGER_P[1]}"
    while read -r -t $((SECONDS_RUN + 120)) line <&"${LEDGER_P[0]}"; do
        case "$line" in bench*) break ;; esac
    done
    after=$(cpu_all)
    [ -n "${BENCH_PG_DEBUG:-}" ] && echo "cpu ticks $before -> $after" >&2
    case "$line" in "bench error"*|"") echo "bench-pg: $line" >&2; exit 1 ;; esac
    local committed tps p50 p99
    committed=$(sed -n 's/.*committed=\([0-9]*\).*/\1/p' <<<"$line")
    tps=$(sed -n 's/.*tps=\([0-9.]*\).*/\1/p' <<<"$line")
    p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
    p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
    awk -v l="$2" -v c="$committed" -v t="$tps" -v a="$p50" -v b="$p99" -v d=$((after - before)) -v hz="$HZ" \
        'BEGIN { printf "| %s | %d | %.0f | %.2f | %.2f | %.3f |\n", l, c, t, a, b, c ? d * 1000 / hz / c : 0 }'
}

echo "PostgreSQL $(psql -tAc 'SHOW server_version') on $(nproc) cores; $THREADS clients, $SECONDS_RUN s each, $ACCOUNTS accounts, synchronous_commit on"
echo
echo "| mode | committed | txn/s | p50 ms | p99 ms | CPU ms/txn |"
echo "| --- | --- | --- | --- | --- | --- |"
run_mode 1 "PostgreSQL alone (BEGIN ... COMMIT)"
run_mode 0 "through tpc (PREPARE TRANSACTION, COMMIT PREPARED)"
