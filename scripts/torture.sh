#!/usr/bin/env bash
# The bounded CI torture: tpc-torture runs with fixed seeds (two with every kind of
# fault, one with long partitions), then one with a random seed that it prints first
# (set TPC_TORTURE_SEED to replay one), then, when PostgreSQL is installed and tpc-torture
# was built with libpq, a short one with a PostgreSQL participant (--pg, seed 1004, 30 s,
# one PostgreSQL crash at least). About five minutes in all. Every run uses the
# default workload and schedule: staged transactions with participants bounced between
# their stages, kv1's short staged-write expiry, strangers under a participant's name
# and operator heuristic decisions (add --classic for the schedule without them).
#
#   scripts/torture.sh [BUILD_DIR] [extra 'tpc-torture run' options...]
#
# BUILD_DIR defaults to build/. TPC_TORTURE_DURATION sets the length of the runs with
# every kind of fault (45s). Exits non-zero if any run found a violation; that run's
# folder is kept and the command that replays it is printed.
set -euo pipefail
BUILD=${1:-build}
[ $# -gt 0 ] && shift
BIN="$BUILD/tools/tpc-torture"
if [ ! -x "$BIN" ]; then
	echo "torture.sh: $BIN is not built (cmake --build $BUILD)" >&2
	exit 2
fi
DURATION=${TPC_TORTURE_DURATION:-45s}
RANDOM_SEED=${TPC_TORTURE_SEED:-$(( (RANDOM << 15 | RANDOM) ))}
echo "torture.sh: fixed seeds 1001 1002 1003 (partitions), random seed $RANDOM_SEED"
failed=()
run() {
	echo "== tpc-torture run $* =="
	if ! "$BIN" run --quiet --bin-dir "$BUILD" "$@"; then
		failed+=("$2")
	fi
}
run --seed 1001 --duration "$DURATION" --round 15s "$@"
run --seed 1002 --duration "$DURATION" --round 15s "$@"
run --seed 1003 --duration 30s --faults-profile partitions "$@"
run --seed "$RANDOM_SEED" --duration "$DURATION" --round 15s "$@"
if "$(dirname "$0")/pg-harness.sh" check >/dev/null 2>&1 &&
	"$BIN" pg-service --help >/dev/null 2>&1; then
	run --seed 1004 --duration 30s --round 15s --pg "$@"
else
	echo "torture.sh: no --pg run (PostgreSQL or libpq missing)"
fi
echo "torture.sh: random seed this time: $RANDOM_SEED"
if [ ${#failed[@]} -gt 0 ]; then
	echo "torture.sh: FAILED for seed(s): ${failed[*]}" >&2
	exit 1
fi
echo "torture.sh: all runs passed"
