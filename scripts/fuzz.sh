#!/usr/bin/env bash
# Runs each libFuzzer harness of fuzz/ for SECONDS (default 60) on its seed corpus in
# fuzz/corpus/<harness>/ (read only: new inputs go to a temporary folder), and prints the
# executions per harness. A crash leaves its input as FUZZ_BUILD/fuzz/crash-<harness>-*;
# reproduce it with `FUZZ_BUILD/fuzz/<harness> FILE` (FUZZ_TRACE=1 prints each step of
# the state machine harnesses). Exits non-zero if any harness failed.
#   scripts/fuzz.sh [--build] FUZZ_BUILD [SECONDS]
#     --build   configure and build FUZZ_BUILD first (clang, -DTPC_FUZZ=ON)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_FIRST=0
[ "${1:-}" = --build ] && { BUILD_FIRST=1; shift; }
BUILD=${1:?usage: fuzz.sh [--build] FUZZ_BUILD [SECONDS]}
SECONDS_EACH=${2:-60}
HARNESSES=(fuzz_frame fuzz_coord_txn fuzz_part_txn fuzz_coord_dispatch)

if [ $BUILD_FIRST = 1 ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
        -DTPC_FUZZ=ON -DTPC_BUILD_TESTS=OFF -DTPC_WERROR=ON >/dev/null || exit 1
    cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" --target "${HARNESSES[@]}" \
        -- --no-print-directory >/dev/null || exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
summary=""
for h in "${HARNESSES[@]}"; do
    mkdir -p "$WORK/$h"
    log="$WORK/$h.log"
    # fuzz_coord_dispatch keeps one coordinator across inputs by design, so nearly every
    # input ends with more allocated than before (reachable from the server, never a
    # leak): libFuzzer's per-input leak check would run each such input twice, a quarter
    # of the rate, for nothing. Leaks are still found: at exit the harness frees the
    # server and LeakSanitizer (ASAN_OPTIONS detect_leaks=1) checks the whole process.
    extra=()
    [ "$h" = fuzz_coord_dispatch ] && extra=(-detect_leaks=0)
    "$BUILD/fuzz/$h" "${extra[@]}" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -artifact_prefix="$BUILD/fuzz/crash-$h-" "$WORK/$h" "$ROOT/fuzz/corpus/$h" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        failed=1
        echo "fuzz: $h FAILED (exit $rc); the end of its log:" >&2
        tail -40 "$log" >&2
    fi
    summary+=$(printf '  %-16s %10s execs in %ss, %s%s' "$h" "${execs:-?}" "$SECONDS_EACH" \
        "${cov:-cov: ?}" "$([ $rc -ne 0 ] && echo ', CRASH')")$'\n'
done
printf 'fuzz summary:\n%s' "$summary"
exit $failed
