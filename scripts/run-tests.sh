#!/usr/bin/env bash
# Runs every test in a build folder: unit tests (cmocka, in parallel), then the
# multi-process integration tests. Exits non-zero on any failure.
set -euo pipefail
BUILD=${1:-build-asan}
cd "$BUILD"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure --timeout 600 -j2
