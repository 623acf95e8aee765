#!/usr/bin/env bash
# growth.sh - rule D9 measured: everything that grows with transactions shrinks at the
# rate it grows, so under a sustained load every LMDB file stops growing.
#
# Starts a coordinator and two tpc-kv services on free loopback ports in a fresh folder,
# drives them with tpc-bench at its peak rate (256 clients, client transaction keys on,
# a bounded key space so the stored data itself is bounded) for DURATION, and prints the
# size of every LMDB file (coordinator log, each participant's state log, each sink) and
# the entries of its growing tables once a minute. Retentions are short (1 minute) so the
# steady state is reached inside the run; the defaults (10 minutes, 24 hours) only move
# the plateau later and higher.
#
# Verdict: exit 0 when, for every file, the size at the end is no more than SLACK_PCT
# (default 5) percent above its size at the middle of the run; exit 1 otherwise.
#
# usage: scripts/growth.sh BUILD_DIR [DURATION]      (DURATION in minutes, default 10)
set -euo pipefail

BIN=${1:?usage: scripts/growth.sh BUILD_DIR [MINUTES]}
MINUTES=${2:-10}
SLACK_PCT=${SLACK_PCT:-5}
CLIENTS=${CLIENTS:-256}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tpc-growth.XXXXXX")
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "run folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

. "$(dirname "$0")/ports.sh"

CP=$(free_port); AP=$(free_port); BP=$(free_port)
"$BIN/coordinator/tpc-coordinator" --listen "127.0.0.1:$CP" --data "$WORK/coordinator" \
    --admin off --log-level ${COORD_LOG_LEVEL:-warn} --outcome-retention 1m --key-retention 1m \
    --sweep-interval 5s >"$WORK/coordinator.log" 2>&1 &
PIDS+=($!)
wait_port "$CP"
for kv in A:$AP B:$BP; do
    "$BIN/tools/tpc-kv" --name "${kv%%:*}" --listen "127.0.0.1:${kv##*:}" \
        --coordinator "127.0.0.1:$CP" --data "$WORK/${kv%%:*}" >"$WORK/${kv%%:*}.log" 2>&1 &
    PIDS+=($!)
    wait_port "${kv##*:}"
done

FILES=(coordinator/data.mdb A/state/data.mdb A/sink/data.mdb B/state/data.mdb B/sink/data.mdb)

entries() { # LMDB folder: "db=entries ..." for every named database
    mdb_stat -a "$1" 2>/dev/null | awk '/^Status of /{db=$3} /Entries:/{if (db) printf "%s=%s ", db, $2}'
}

sample() { # minute label
    local line="$1"
    for f in "${FILES[@]}"; do
        local size=0
        [ -f "$WORK/$f" ] && size=$(stat -c %s "$WORK/$f")
        line+=$(printf ' %12s' "$size")
        echo "$size" >>"$WORK/sizes.${f//\//_}"
    done
    echo "$line"
    for f in "${FILES[@]}"; do
        echo "      ${f%/data.mdb}: $(entries "$WORK/$(dirname "$f")")"
    done
}

echo "growth: $CLIENTS clients for ${MINUTES}m against a coordinator and tpc-kv A, B in $WORK"
printf '%-7s' minute; for f in "${FILES[@]}"; do printf ' %12s' "${f%/data.mdb}"; done; echo
"$BIN/tools/tpc-bench" --coordinator "127.0.0.1:$CP" --kv "127.0.0.1:$AP" --kv "127.0.0.1:$BP" \
    --clients "$CLIENTS" --duration "${MINUTES}m" --warmup 0s --key-space 64 --txn-keys \
    --no-progress --json-file "$WORK/bench.json" >"$WORK/bench.out" 2>&1 &
BENCH=$!
PIDS+=("$BENCH")
sample "0"
for ((m = 1; m <= MINUTES; m++)); do
    deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ] && kill -0 "$BENCH" 2>/dev/null; do sleep 1; done
    sample "$m"
done
wait "$BENCH" || { echo "growth: tpc-bench failed:" >&2; cat "$WORK/bench.out" >&2; exit 1; }
grep -E 'committed|throughput' "$WORK/bench.out" | head -3

fail=0
mid=$(((MINUTES + 1) / 2 + 1)) # line of the middle sample (sample 0 is line 1)
for f in "${FILES[@]}"; do
    s="$WORK/sizes.${f//\//_}"
    a=$(sed -n "${mid}p" "$s"); b=$(tail -n 1 "$s")
    if [ "$b" -gt $((a + a * SLACK_PCT / 100)) ]; then
        echo "growth: ${f%/data.mdb} still grows: $a bytes at minute $((mid - 1)), $b at the end"
        fail=1
    fi
done
[ "$fail" = 0 ] && echo "growth: every LMDB file stopped growing (end within ${SLACK_PCT}% of mid-run)"
exit "$fail"
