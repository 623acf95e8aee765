#!/usr/bin/env bash
# Builds the Debian package (`make deb`: CPack, prefix /usr, in DEB_BUILD, default
# build-deb/) and checks it: the control data names its dependencies and the conffile,
# it holds the programs, libtpc, headers, the unit, /etc/tpc/coordinator.conf, man pages
# and tpc.proto; unpacked into a throwaway root (dpkg -x), every program answers --help
# and --version, and tpc-coordinator from it starts and listens. With DEB_CHECK_INSTALL=1
# (as root) it is also installed with `dpkg -i`, run from /usr/bin, and purged again (the
# tpc system account its postinst made stays).
#   scripts/deb-check.sh            (make deb-check)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEB_BUILD=${DEB_BUILD:-build-deb}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tpc-deb.XXXXXX")
COORD_PID=
trap '[ -z "$COORD_PID" ] || { kill -9 "$COORD_PID"; wait "$COORD_PID"; } 2>/dev/null; rm -rf "$WORK"' EXIT
fail() { echo "deb-check: $*" >&2; exit 1; }
. "$ROOT/scripts/ports.sh"

deb=$(make -s -C "$ROOT" deb DEB_BUILD="$DEB_BUILD" 2>"$WORK/make.log" | tail -n1) ||
    { cat "$WORK/make.log" >&2; fail "make deb failed"; }
[ -f "$deb" ] || fail "make deb made no package ($deb)"
echo "deb-check: built $deb ($(du -k "$deb" | cut -f1) KiB)"

control=$(dpkg-deb --field "$deb")
grep -q '^Package: tpc$' <<<"$control" || fail "not the tpc package"
grep -q '^Depends: .*libevent' <<<"$control" || fail "no shared-library dependencies: $control"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -cx /etc/tpc/coordinator.conf >/dev/null ||
    fail "/etc/tpc/coordinator.conf is not a conffile"
contents=$(dpkg-deb --contents "$deb" | awk '{print $NF}')
for f in ./usr/bin/tpc-coordinator ./usr/bin/tpcctl ./usr/bin/tpc-kv ./etc/tpc/coordinator.conf \
         ./usr/lib/systemd/system/tpc-coordinator.service ./usr/include/tpc/participant.h \
         ./usr/share/tpc/tpc.proto ./usr/share/man/man1/tpc-coordinator.1; do
    grep -qx -- "$f" <<<"$contents" || fail "the package lacks $f"
done
grep -q '/libtpc\.so' <<<"$contents" || fail "the package lacks libtpc.so"

dpkg -x "$deb" "$WORK/root"
UNIT="$WORK/root/usr/lib/systemd/system/tpc-coordinator.service"
grep -qx 'ExecStart=/usr/bin/tpc-coordinator --config /etc/tpc/coordinator.conf' "$UNIT" ||
    fail "the unit does not run /usr/bin/tpc-coordinator --config /etc/tpc/coordinator.conf"
for exe in "$WORK"/root/usr/bin/*; do
    "$exe" --help >/dev/null || fail "$(basename "$exe") --help failed"
    "$exe" --version >/dev/null || fail "$(basename "$exe") --version failed"
done
echo "deb-check: unpacked: $("$WORK/root/usr/bin/tpc-coordinator" --version); every program" \
     "of $(ls "$WORK/root/usr/bin" | wc -l) answers --help and --version"

port=$(free_port)
"$WORK/root/usr/bin/tpc-coordinator" --listen "127.0.0.1:$port" --data "$WORK/data" \
    --admin off 2>"$WORK/coord.log" &
COORD_PID=$!
wait_port "$port"
echo "deb-check: the packaged tpc-coordinator listens on 127.0.0.1:$port"

if [ "${DEB_CHECK_INSTALL:-0}" = 1 ]; then
    [ "$(id -u)" = 0 ] || fail "DEB_CHECK_INSTALL=1 needs root"
    dpkg -i "$deb" >/dev/null
    /usr/bin/tpc-coordinator --version
    /usr/bin/tpcctl --help >/dev/null
    dpkg --purge tpc >/dev/null
    echo "deb-check: dpkg -i installed it, its programs ran from /usr/bin, dpkg --purge removed it"
fi
echo "deb-check: ok"
