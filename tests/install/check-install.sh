#!/usr/bin/env bash
# Installs a release build of tpc into a temporary prefix and builds examples/embed
# against the installed files only (find_package(tpc), and pkg-config tpc), then runs
# it against a coordinator: a service embedding a participant commits one transaction.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tpc-install.XXXXXX")
COORD_PID=
cleanup() {
    if [ -n "$COORD_PID" ]; then { kill -9 "$COORD_PID"; wait "$COORD_PID"; } 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
PREFIX="$WORK/prefix"
LIBDIR=$(ls -d "$PREFIX"/lib*/ | head -n1)

# 1. CMake package.
cmake -S "$SRC/examples/embed" -B "$WORK/embed" -DCMAKE_PREFIX_PATH="$PREFIX" >/dev/null
cmake --build "$WORK/embed" >/dev/null
# 2. pkg-config.
PKG_CONFIG_PATH="$LIBDIR/pkgconfig" cc -o "$WORK/embed-pc" "$SRC/examples/embed/main.c" \
    $(PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --cflags --libs tpc)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PREFIX/bin/tpc-coordinator" --listen "127.0.0.1:$port" --data "$WORK/coord" \
    --admin "127.0.0.1:$aport" 2>"$WORK/coord.log" &
COORD_PID=$!
deadline=$((SECONDS + 10))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "check-install: coordinator did not start" >&2; exit 1; }
    sleep 0.05
done
for exe in "$WORK/embed/embed" "$WORK/embed-pc"; do
    # one name per state folder (D8: a name is bound to the folder that first used it)
    out=$(LD_LIBRARY_PATH="$LIBDIR" "$exe" "127.0.0.1:$port" "$WORK/data-$(basename "$exe")" \
        "embed-$(basename "$exe")")
    echo "check-install: $(basename "$exe"): $out"
    case "$out" in *COMMITTED) ;; *) echo "check-install: FAILED" >&2; exit 1 ;; esac
    # it drained its participant before exiting: no transaction is left open
    python3 - "$aport" <<'PY' || { echo "check-install: embed left a transaction open" >&2; exit 1; }
import json, sys, time, urllib.request
url = "http://127.0.0.1:%s/v1/transactions" % sys.argv[1]
deadline = time.monotonic() + 10
while json.load(urllib.request.urlopen(url))["open"] != 0:
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.05)
PY
done
echo "check-install: examples/embed built against the installed tpc and committed"
