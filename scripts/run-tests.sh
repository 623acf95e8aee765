#!/usr/bin/env bash
# Runs every test: the unit and multi-process integration tests of the sanitizer build
# (ctest), the install check (a release build installed with DESTDIR and into a
# temporary prefix: the unit's paths, man pages, tpc.proto, sd_notify READY=1, and
# examples/embed built against it and run without LD_LIBRARY_PATH; the Debian package
# is checked apart, by scripts/deb-check.sh), and the bounded torture (scripts/torture.sh: fixed
# seeds plus one random seed, printed), and the libFuzzer harnesses of fuzz/ for
# TPC_FUZZ_SECONDS each (default 60; 0 skips them) in a clang build (build-fuzz/).
# Exits non-zero on any failure.
set -euo pipefail
ASAN_BUILD=${1:-build-asan}
RELEASE_BUILD=${2:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$ASAN_BUILD" && ctest --output-on-failure --timeout 600 -j2)

bash "$ROOT/tests/install/check-install.sh" "$(cd "$RELEASE_BUILD" && pwd)"

# The bounded torture on the release build: fixed seeds, then a random one it prints.
TPC_TORTURE_DURATION=${TPC_TORTURE_DURATION:-20s} bash "$ROOT/scripts/torture.sh" "$(cd "$RELEASE_BUILD" && pwd)"

# The fuzz harnesses, each for TPC_FUZZ_SECONDS on the seed corpus kept in fuzz/corpus/.
FUZZ_SECONDS=${TPC_FUZZ_SECONDS:-60}
if [ "$FUZZ_SECONDS" != 0 ]; then
    bash "$ROOT/scripts/fuzz.sh" --build "${TPC_FUZZ_BUILD:-$ROOT/build-fuzz}" "$FUZZ_SECONDS"
fi
