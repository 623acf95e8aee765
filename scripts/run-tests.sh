#!/usr/bin/env bash
# Runs every test: the unit and multi-process integration tests of the sanitizer build
# (ctest), the install check (a release build installed into a temporary prefix, and
# examples/embed built against it), and the bounded torture (scripts/torture.sh: fixed
# seeds plus one random seed, printed). Exits non-zero on any failure.
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
