#!/usr/bin/env bash
# make bench: the standard benchmark matrix of tpc-bench, then the report.
#
#   scripts/bench.sh [BUILD]       (BUILD: the build folder, default build)
#
# Every point spawns its own coordinator and tpc-kv services (tpc-bench --spawn) in a
# fresh folder under bench/run/ (on the repository's disk, not a possibly-tmpfs /tmp),
# calibrates write+fdatasync and the loopback round trip in that same folder, then
# measures. The matrix: clients 1, 8, 64, 256 x participants 1, 2, 3 x group commit
# on (the servers' default) and off (--group-commit 1). Then the issue's headline run
# (256 clients, 2 participants, 20 s) and the 1-client run, each repeated, and the
# memory test. Raw JSON and text go to bench/results/STAMP/; scripts/bench-report.sh
# turns them into bench/bench.png, bench/summary.json and BENCHMARKS.md.
#
# First, the issue-13 comparison ("latency near the disk"): the current code and a
# baseline commit (BASELINE, default 1706e8d; "none" skips it), built from a git
# worktree in bench/baseline/ with the same flags, run interleaved point by point by
# the same tpc-bench (--bin-dir), at 1, 10, 100 and 256 clients with 2 participants,
# each with --calibrate and --syscalls (the servers' system calls counted by perf
# stat, and their device syncs from their own counters where the build has them).
# Its figures become the first section of BENCHMARKS.md and bench/latency.png.
#
# Knobs (environment): BENCH_DURATION (5s), BENCH_WARMUP (2s), BENCH_CALIBRATE_TIME
# (1s), BENCH_CLIENTS ("1 8 64 256"), BENCH_PARTICIPANTS ("1 2 3"), BENCH_REPS (1),
# BENCH_HEADLINE_REPS (3), BENCH_HEADLINE_DURATION (20s), BENCH_MEMTEST (100000),
# BENCH_DIR (bench/run), BASELINE (1706e8d, or none), BENCH_COMPARE_CLIENTS
# ("1 10 100 256"), BENCH_COMPARE_DURATION (10s), BENCH_COMPARE_REPS (1),
# BENCH_MATRIX (1; 0 runs the comparison only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build}" && pwd)"
BENCH="$BUILD/tools/tpc-bench"
DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-2s}
CALIB=${BENCH_CALIBRATE_TIME:-1s}
CLIENTS=${BENCH_CLIENTS:-"1 8 64 256"}
PARTS=${BENCH_PARTICIPANTS:-"1 2 3"}
REPS=${BENCH_REPS:-1}
HEAD_REPS=${BENCH_HEADLINE_REPS:-3}
HEAD_DURATION=${BENCH_HEADLINE_DURATION:-20s}
MEMTEST=${BENCH_MEMTEST:-100000}
RUN_DIR=${BENCH_DIR:-$ROOT/bench/run}
BASELINE=${BASELINE:-1706e8d}
CMP_CLIENTS=${BENCH_COMPARE_CLIENTS:-"1 10 100 256"}
CMP_DURATION=${BENCH_COMPARE_DURATION:-10s}
CMP_REPS=${BENCH_COMPARE_REPS:-1}
MATRIX=${BENCH_MATRIX:-1}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/$STAMP"

[ -x "$BENCH" ] || { echo "bench: $BENCH not built (make build)" >&2; exit 1; }
mkdir -p "$OUT" "$RUN_DIR"
: >"$OUT/commands.txt"
START=$SECONDS

# run NAME ARGS...: one tpc-bench run; JSON to OUT/NAME.json, its summary to OUT/NAME.txt.
run() {
    local name=$1; shift
    # Recorded with the run folder relative to the repository, as a reader would type it.
    local cmd=(tpc-bench --spawn --dir "${RUN_DIR#"$ROOT"/}" "$@")
    echo "${cmd[*]//"$ROOT"\//}" >>"$OUT/commands.txt"
    if ! "$BENCH" --spawn --dir "$RUN_DIR" "$@" --no-progress --json-file "$OUT/$name.json" \
            >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
        echo "bench: $name failed:" >&2; cat "$OUT/$name.txt" "$OUT/$name.err" >&2
        rm -f "$OUT/$name.json"
        return 0 # one bad point is reported as missing; the rest still runs
    fi
    python3 - "$OUT/$name.json" "$name" "$((SECONDS - START))" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
r = j.get("results")
if r:
    l, cal = r["latency_us"], j.get("calibration", {}).get("fsync", {})
    print("  [%4ss] %-24s %8.0f txn/s  p50 %6.2f ms  p99 %6.2f ms  %5.1f us CPU/txn  "
          "fsync %5.0f/s  err %d" % (sys.argv[3], sys.argv[2], r["throughput"],
          l["p50"] / 1e3, l["p99"] / 1e3, j["cpu"]["us_per_txn"], cal.get("ops_per_s", 0),
          r["errors"]))
else:
    m = j["memtest"]
    print("  [%4ss] %-24s %8.0f bytes per open transaction (%d open, %d failed)" % (
          sys.argv[3], sys.argv[2], m["bytes_per_txn"], m["open_txns"], m["failed"]))
PY
}

# build_baseline REV: the baseline's servers, built from a git worktree of REV in
# bench/baseline/src into bench/baseline/build (RelWithDebInfo, like build/).
build_baseline() {
    local sha src="$ROOT/bench/baseline/src" bld="$ROOT/bench/baseline/build" launcher=()
    sha=$(git -C "$ROOT" rev-parse --verify "$1^{commit}") ||
        { echo "bench: BASELINE $1 is not a commit" >&2; return 1; }
    if [ -e "$src/.git" ]; then
        git -C "$src" checkout -q --detach "$sha"
    else
        mkdir -p "$ROOT/bench/baseline"
        git -C "$ROOT" worktree prune
        git -C "$ROOT" worktree add -q --detach "$src" "$sha"
    fi
    command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache)
    echo "bench: building the baseline $1 ($sha) in ${bld#"$ROOT"/}"
    cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPC_BUILD_TESTS=OFF \
        "${launcher[@]}" >/dev/null
    cmake --build "$bld" -j"$JOBS" --target tpc-coordinator tpc-kv >/dev/null
    echo "$1 $sha" >"$OUT/baseline.txt"
}

echo "bench: results in $OUT (run folders under $RUN_DIR)"
if [ "$BASELINE" != none ]; then
    build_baseline "$BASELINE"
fi
# The comparison, interleaved: each point runs the current code, then the baseline.
for c in $CMP_CLIENTS; do
    for rep in $(seq 1 "$CMP_REPS"); do
        run "cmp_new_c${c}_r${rep}" --calibrate --calibrate-time "$CALIB" --participants 2 \
            --clients "$c" --duration "$CMP_DURATION" --warmup "$WARMUP" --syscalls
        [ "$BASELINE" = none ] && continue
        run "cmp_base_c${c}_r${rep}" --calibrate --calibrate-time "$CALIB" --participants 2 \
            --clients "$c" --duration "$CMP_DURATION" --warmup "$WARMUP" --syscalls \
            --bin-dir "$ROOT/bench/baseline/build"
    done
done
[ "$MATRIX" = 0 ] && { bash "$ROOT/scripts/bench-report.sh" "$OUT" "$BUILD"; exit 0; }
for gc in on off; do
    gcopt=(); [ $gc = off ] && gcopt=(--group-commit 1)
    for p in $PARTS; do
        for c in $CLIENTS; do
            for rep in $(seq 1 "$REPS"); do
                run "matrix_gc-${gc}_p${p}_c${c}_r${rep}" --calibrate --calibrate-time "$CALIB" \
                    --participants "$p" --clients "$c" --duration "$DURATION" \
                    --warmup "$WARMUP" "${gcopt[@]}"
            done
        done
    done
done

# The issue's headline command, as it is written there, and its 1-client counterpart.
for rep in $(seq 1 "$HEAD_REPS"); do
    run "headline_c256_r$rep" --calibrate --participants 2 --clients 256 \
        --duration "$HEAD_DURATION"
done
for rep in $(seq 1 "$HEAD_REPS"); do
    run "headline_c1_r$rep" --calibrate --participants 2 --clients 1 --duration "$DURATION"
done

# Coordinator memory per open transaction: begun only, and joined by two participants
# (under tpc-kv's default limit of 100000 open transactions per service).
run "memtest_p0" --memtest "$MEMTEST" --participants 0
run "memtest_p2" --memtest "$((MEMTEST < 90000 ? MEMTEST : 90000))" --participants 2

echo "bench: matrix done in $((SECONDS - START)) s"
rmdir "$RUN_DIR" 2>/dev/null || true
bash "$ROOT/scripts/bench-report.sh" "$OUT" "$BUILD"
