#!/usr/bin/env bash
# test_house_style.sh - every program's command line follows docs/cli.md: --help exits
# 0 with a Usage line and an "Exit status:" section (0, 1 and 2), --version prints
# "PROG VERSION" (the project's version), an unknown option and a missing value get
# the one wording and exit 2, and a duration without a unit names its option.
# usage: test_house_style.sh VERSION PROGRAM_PATH...
set -u
VERSION=$1; shift
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# a duration option of each program, for the bare-number check
dur_opt() {
    case $1 in
        tpc-coordinator) echo "--txn-timeout" ;; tpcctl) echo "--timeout" ;;
        tpc-kv) echo "--txn-timeout" ;; tpc-bench) echo "--duration" ;;
        tpc-faultproxy) echo "--delay" ;; *) echo "" ;;
    esac
}
# the words before options (a subcommand), for programs that need one
sub() { case $1 in tpc-torture) echo run ;; tpc-demo) echo run ;; *) echo "" ;; esac; }

for bin in "$@"; do
    p=$(basename "$bin")
    out=$("$bin" --help 2>&1); rc=$?
    [ $rc -eq 0 ] || fail "$p --help exited $rc"
    grep -q '^Usage: ' <<<"$out" || fail "$p --help has no Usage line"
    grep -q '^Exit status:$' <<<"$out" || fail "$p --help has no 'Exit status:' section"
    for code in 0 1 2; do
        grep -q "^  $code  " <<<"$out" || fail "$p --help does not say what exit status $code means"
    done
    # the first line after the usage block says what the program is, in a sentence
    first=$(awk 'seen && NF { print; exit } !NF { seen = 1 }' <<<"$out")
    awk '/^[A-Z]/ && NF >= 4 { ok = 1 } END { exit !ok }' <<<"$first" \
        || fail "$p --help has no description under its usage: '$first'"

    out=$("$bin" --version 2>&1); rc=$?
    [ $rc -eq 0 ] && [ "$out" = "$p $VERSION" ] || fail "$p --version: exit $rc, '$out' (want '$p $VERSION')"

    s=$(sub "$p")
    out=$("$bin" $s --no-such-option 2>&1); rc=$?
    [ $rc -eq 2 ] || fail "$p --no-such-option exited $rc"
    [ "$(head -1 <<<"$out")" = "$p: unknown option '--no-such-option'" ] \
        || fail "$p unknown option wording: $(head -1 <<<"$out")"
    grep -qx "Try '$p --help'." <<<"$out" || fail "$p: no Try line after an unknown option"

    d=$(dur_opt "$p")
    [ -n "$d" ] || continue
    out=$("$bin" $s "$d" 60 2>&1); rc=$?
    [ $rc -eq 2 ] || fail "$p $d 60 exited $rc"
    grep -q -- "$d 60: a duration needs a unit" <<<"$out" || fail "$p $d 60 said: $out"
    out=$("$bin" $s "$d" 2>&1); rc=$?
    grep -q -- "option '$d' needs a value" <<<"$out" || fail "$p $d (no value) said: $out"
done
[ $fails -eq 0 ] || exit 1
echo "ok: $# programs follow the house style"
