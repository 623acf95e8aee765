#!/usr/bin/env bash
# Installs a release build of tpc into a temporary prefix and builds examples/embed
# against the installed files only (find_package(tpc), and pkg-config tpc), then runs
# it against a coordinator: a service embedding a participant commits one transaction.
# Both builds run without LD_LIBRARY_PATH (tpc.pc puts a non-system libdir in the run
# path). Also: a DESTDIR install of the configured prefix holds the unit reading
# /etc/tpc (for /usr and /usr/local), coordinator.conf there, a man page for every
# installed program and tpc.proto, and passes systemd-analyze verify; a coordinator
# built with libsystemd sends READY=1.
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

# 0. The configured prefix, staged with DESTDIR as `make install DESTDIR=...` does.
CONF_PREFIX=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
DESTDIR="$WORK/root" cmake --install "$BUILD" >/dev/null
STAGE="$WORK/root$CONF_PREFIX"
case "$CONF_PREFIX" in /usr|/usr/local) ETC=/etc/tpc ;; *) ETC=$CONF_PREFIX/etc/tpc ;; esac
fail() { echo "check-install: $*" >&2; exit 1; }
[ -f "$WORK/root$ETC/coordinator.conf" ] || fail "no $ETC/coordinator.conf under DESTDIR"
UNIT=$(find "$WORK/root" -name tpc-coordinator.service | head -n1)
[ -n "$UNIT" ] || fail "no tpc-coordinator.service installed"
grep -q -- "^ExecStart=$CONF_PREFIX/bin/tpc-coordinator --config $ETC/coordinator.conf\$" "$UNIT" ||
    fail "the unit does not run $CONF_PREFIX/bin/tpc-coordinator --config $ETC/coordinator.conf"
if ldd "$STAGE/bin/tpc-coordinator" | grep -c libsystemd >/dev/null; then # (-q: SIGPIPE)
    SYSTEMD=1
    grep -q '^Type=notify$' "$UNIT" || fail "built with libsystemd, but the unit is not Type=notify"
fi
if command -v systemd-analyze >/dev/null; then # the unit, its programs at the staged paths
    mkdir -p "$WORK/unit"
    sed "s#$CONF_PREFIX/#$STAGE/#g" "$UNIT" >"$WORK/unit/tpc-coordinator.service"
    systemd-analyze verify "$WORK/unit/tpc-coordinator.service" || fail "systemd-analyze verify"
fi
[ -n "${SYSTEMD:-}" ] || ! pkg-config --exists libsystemd ||
    fail "libsystemd is installed, but tpc-coordinator was built without it"
[ -f "$STAGE/share/tpc/tpc.proto" ] || fail "tpc.proto not installed in share/tpc"
if command -v help2man >/dev/null; then
    for exe in "$STAGE"/bin/*; do
        [ -s "$STAGE/share/man/man1/$(basename "$exe").1" ] ||
            fail "no man page for $(basename "$exe")"
    done
fi
echo "check-install: DESTDIR install of $CONF_PREFIX: unit reads $ETC, $(ls "$STAGE/share/man/man1" 2>/dev/null | wc -l) man pages, tpc.proto"

cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
PREFIX="$WORK/prefix"
LIBDIR=$(ls -d "$PREFIX"/lib*/ | head -n1)
[ -f "$PREFIX/etc/tpc/coordinator.conf" ] || fail "a private prefix's config is not in PREFIX/etc/tpc"

# 1. CMake package.
cmake -S "$SRC/examples/embed" -B "$WORK/embed" -DCMAKE_PREFIX_PATH="$PREFIX" >/dev/null
cmake --build "$WORK/embed" >/dev/null
# 2. pkg-config.
PKG_CONFIG_PATH="$LIBDIR/pkgconfig" cc -o "$WORK/embed-pc" "$SRC/examples/embed/main.c" \
    $(PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --cflags --libs tpc)
# tpc.pc must not pull in libpq (only tpc-pg.pc, for services that include tpc/pg.h).
! PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --print-requires tpc | grep -c libpq >/dev/null ||
    fail "tpc.pc requires libpq: every service would need libpq-dev"
if [ -f "$LIBDIR/pkgconfig/tpc-pg.pc" ]; then
    PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --cflags tpc-pg | grep -c postgresql >/dev/null ||
        fail "tpc-pg.pc does not give libpq's headers"
fi

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
    out=$(env -u LD_LIBRARY_PATH "$exe" "127.0.0.1:$port" "$WORK/data-$(basename "$exe")" \
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

# systemd readiness: with NOTIFY_SOCKET set, a coordinator built with libsystemd sends
# READY=1 once it is recovered and listening (what Type=notify waits for).
if [ -n "${SYSTEMD:-}" ]; then
    kill "$COORD_PID" && wait "$COORD_PID" 2>/dev/null || true
    COORD_PID=
    ready=$(python3 - "$PREFIX/bin/tpc-coordinator" "$WORK" <<'PY'
import os, socket, subprocess, sys
exe, work = sys.argv[1:]
path = os.path.join(work, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(20)
l = socket.socket(); l.bind(("127.0.0.1", 0)); port = l.getsockname()[1]; l.close()
p = subprocess.Popen([exe, "--listen", f"127.0.0.1:{port}", "--data", os.path.join(work, "coord2"),
                      "--admin", "off"], env=dict(os.environ, NOTIFY_SOCKET=path),
                     stderr=subprocess.DEVNULL)
try:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", " "))
finally:
    p.terminate(); p.wait()
PY
)
    case "$ready" in *READY=1*) echo "check-install: sd_notify: $ready" ;;
        *) fail "no READY=1 on NOTIFY_SOCKET (got: $ready)" ;; esac
fi
