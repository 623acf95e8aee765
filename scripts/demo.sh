#!/usr/bin/env bash
# make demo: a coordinator and two tpc-kv services in a temporary folder, a few
# thousand transactions that write to both (some aborted on purpose, some refused by
# a NO vote), a kill -9 of one service in the middle and its restart, then a check that
# both services hold exactly the committed writes, each once.
#
# TLS=1 (TLS=1 make demo): the same with mutual TLS everywhere. scripts/make-certs.sh
# makes a test CA and certificates (CN = coordinator, A, B, demo) in the demo folder;
# the coordinator, both services and the driver get --tls-cert/--tls-key/--tls-ca.
#
# KEEP=1 (KEEP=1 make demo) keeps the demo folder (logs, the services' stores) instead of
# removing it at the end; a failing demo keeps it anyway. TPC_DEMO_TXNS sets the number
# of transactions (default 3000).
set -euo pipefail

BUILD=${1:-build}
BIN="$(cd "$BUILD" && pwd)"
TXNS=${TPC_DEMO_TXNS:-3000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tpc-demo.XXXXXX")
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "demo folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

. "$(dirname "$0")/ports.sh"

CP=$(free_port); AP=$(free_port); BP=$(free_port)
tls() { :; } # the TLS options of certificate $1, or nothing without TLS=1
if [ "${TLS:-0}" = 1 ]; then
    bash "$(dirname "$0")/make-certs.sh" "$WORK/certs" coordinator A B demo
    tls() { echo --tls-cert "$WORK/certs/$1.crt" --tls-key "$WORK/certs/$1.key" \
                 --tls-ca "$WORK/certs/ca.crt"; }
fi
COORD="$BIN/coordinator/tpc-coordinator"
KV="$BIN/tools/tpc-kv"
DEMO="$BIN/tools/tpc-demo"

start_kv() { # name port
    # shellcheck disable=SC2046 # tls prints separate words
    "$KV" --name "$1" --listen "127.0.0.1:$2" --coordinator "127.0.0.1:$CP" \
          --data "$WORK/$1" --refuse-key refuse-me $(tls "$1") >>"$WORK/$1.log" 2>&1 &
    echo $!
}

echo "tpc demo: coordinator and two tpc-kv services (A, B) in $WORK${TLS:+ (TLS=$TLS)}"
# shellcheck disable=SC2046
"$COORD" --listen "127.0.0.1:$CP" --data "$WORK/coordinator" $(tls coordinator) \
    >"$WORK/coordinator.log" 2>&1 &
PIDS+=($!)
wait_port "$CP"
A_PID=$(start_kv A "$AP"); PIDS+=("$A_PID")
B_PID=$(start_kv B "$BP"); PIDS+=("$B_PID")
wait_port "$AP"; wait_port "$BP"

echo "  running $TXNS transactions, 16 at a time, each writing one key to A and to B;"
echo "  every 10th aborted by the client, every 7th refused by B (a NO vote)"
: >"$WORK/progress"
"$DEMO" run --coordinator "127.0.0.1:$CP" --kv "A=127.0.0.1:$AP" --kv "B=127.0.0.1:$BP" \
    --txns "$TXNS" --concurrency 16 --abort-every 10 --refuse-every 7 \
    --outcomes "$WORK/outcomes" --progress "$WORK/progress" $(tls demo) >"$WORK/run.out" 2>&1 &
RUN_PID=$!; PIDS+=("$RUN_PID")

# Halfway through, kill -9 service B and start it again on the same data.
half=$((TXNS / 2)); deadline=$((SECONDS + 60))
until [ "$(tail -n1 "$WORK/progress" 2>/dev/null || echo 0)" -ge "$half" ] 2>/dev/null; do
    kill -0 "$RUN_PID" 2>/dev/null || break
    [ $SECONDS -lt $deadline ] || { echo "demo: no progress" >&2; exit 1; }
    sleep 0.05
done
kill -9 "$B_PID"
echo "  kill -9 of B after $(tail -n1 "$WORK/progress") transactions; restarting it"
B_PID=$(start_kv B "$BP"); PIDS+=("$B_PID")
wait_port "$BP"

wait "$RUN_PID" || { cat "$WORK/run.out"; echo "demo: the driver failed" >&2; KEEP=1; exit 1; }
cat "$WORK/run.out"
rec=$(grep -o 'recovered [0-9]* prepared' "$WORK/B.log" | grep -o '[0-9]*' || echo 0)
echo "  B, restarted, found ${rec} prepared transaction(s) in its log and resolved them"

# Decisions reach the services after the client hears them: wait until neither holds a
# prepared transaction (every commit applied), then stop them and read their stores.
deadline=$((SECONDS + 60))
while :; do
    n=0
    for s in A B; do n=$((n + $("$KV" --prepared --data "$WORK/$s" | tail -n +2 | wc -l))); done
    [ "$n" -eq 0 ] && break
    [ $SECONDS -lt $deadline ] || { echo "demo: $n transactions still prepared" >&2; KEEP=1; exit 1; }
    sleep 0.1
done
kill -TERM "$A_PID" "$B_PID"; wait "$A_PID" "$B_PID" 2>/dev/null || true
"$DEMO" verify --outcomes "$WORK/outcomes" --data "A=$WORK/A" --data "B=$WORK/B" || { KEEP=1; exit 1; }
if [ "${KEEP:-0}" = 1 ]; then
    echo "  (inspect a store yourself: $KV --dump --data $WORK/A)"
else
    echo "  (KEEP=1 make demo keeps the folder, to inspect a store: tpc-kv --dump --data DIR/A)"
fi
