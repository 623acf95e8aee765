#!/usr/bin/env bash
# test_txn_by_hand.sh - one transaction run by hand from the shell, as README shows:
# `tpcctl txn begin` (protocol port, decided from its stdin), `tpc-kv put` staging a
# write in it, `commit`, then `tpc-kv get` reads the committed value. Also: an abort
# leaves nothing, and tpcctl's operator commands on a txid the coordinator never issued
# say so (exit 3) without writing an audit entry.
# usage: test_txn_by_hand.sh TPC_COORDINATOR TPC_KV TPCCTL   (the programs' paths)
set -u
COORD=$1 KV=$2 CTL=$3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/ports.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/tpc-txn-by-hand.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$W"/*.log; do echo "== $f" >&2; tail -20 "$f" >&2; done; exit 1; }

CP=$(free_port) AP=$(free_port) KP=$(free_port)
"$COORD" --data "$W/coord" --listen "127.0.0.1:$CP" --admin "127.0.0.1:$AP" >"$W/coord.log" 2>&1 &
PIDS+=($!)
wait_port "$CP"; wait_port "$AP"
"$KV" -n kv1 -l "127.0.0.1:$KP" -C "127.0.0.1:$CP" -d "$W/kv1" --log-level warn >"$W/kv.log" 2>&1 &
PIDS+=($!)
wait_port "$KP"
export TPC_COORDINATOR=127.0.0.1:$CP TPC_KV=127.0.0.1:$KP TPC_ADMIN=127.0.0.1:$AP

# begin: the session keeps its connection and reads commit/abort from a FIFO
run_txn() { # KEY VALUE DECISION -> prints the session's stdout; exit status of the session
    local fifo=$W/in.$1 out=$W/out.$1
    mkfifo "$fifo"
    "$CTL" txn begin --key "by-hand-$1" <"$fifo" >"$out" 2>"$W/ctl.$1.log" &
    local ctl=$!
    exec 7>"$fifo"
    local deadline=$((SECONDS + 10))
    until grep -q '^token ' "$out"; do
        [ $SECONDS -lt $deadline ] || fail "tpcctl txn begin printed no token"
        sleep 0.05
    done
    local txid token
    txid=$(awk '/^txid /{print $2}' "$out") token=$(awk '/^token /{print $2}' "$out")
    "$KV" put --txid "$txid" --token "$token" "$1" "$2" >"$W/put.$1" 2>&1 \
        || fail "tpc-kv put: $(cat "$W/put.$1")"
    grep -q "staged in txn $txid" "$W/put.$1" || fail "put said: $(cat "$W/put.$1")"
    echo "$3" >&7
    exec 7>&-
    wait "$ctl"
}

run_txn k1 hello commit || fail "commit session exited $?: $(cat "$W/out.k1")"
grep -qx COMMITTED "$W/out.k1" || fail "no COMMITTED: $(cat "$W/out.k1")"
deadline=$((SECONDS + 10))
until [ "$("$KV" get k1 2>/dev/null)" = hello ]; do
    [ $SECONDS -lt $deadline ] || fail "tpc-kv get k1 never read hello: $("$KV" get k1 2>&1)"
    sleep 0.05
done

run_txn k2 bye "abort changed my mind" || fail "abort session exited $?: $(cat "$W/out.k2")"
grep -q '^ABORTED' "$W/out.k2" || fail "no ABORTED: $(cat "$W/out.k2")"
"$KV" get k2 >/dev/null 2>&1; rc=$?
[ $rc -eq 3 ] || fail "get of an aborted key exited $rc, not 3 (not found)"

# the same key again: its committed transaction is reported, nothing new starts
"$CTL" txn begin --key by-hand-k1 </dev/null >"$W/again" 2>&1 || fail "begin again: $(cat "$W/again")"
grep -q "^COMMITTED" "$W/again" || fail "begin on a committed key: $(cat "$W/again")"

# operator commands on a txid never issued: exit 3, nothing in the audit log
never=$(( (1 << 40) + 999999 ))
"$CTL" txn abort "$never" --reason test >"$W/never" 2>&1; rc=$?
[ $rc -eq 3 ] || fail "abort of a never-issued txid exited $rc: $(cat "$W/never")"
grep -q "never issued" "$W/never" || fail "abort did not say never issued: $(cat "$W/never")"
"$CTL" txn commit "$never" --reason test --force >"$W/never" 2>&1; rc=$?
[ $rc -eq 3 ] || fail "commit --force of a never-issued txid exited $rc: $(cat "$W/never")"
grep -q -- "--force" "$W/never" && fail "commit --force suggested itself: $(cat "$W/never")"
"$CTL" -o json audit >"$W/audit" 2>&1 || fail "audit: $(cat "$W/audit")"
grep -q '"reason"' "$W/audit" && fail "an audit entry was written: $(cat "$W/audit")"

# a bare number for a duration names the option
"$CTL" --timeout 10 status >"$W/bare" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q -- "--timeout 10: a duration needs a unit" "$W/bare" \
    || fail "tpcctl --timeout 10: exit $rc: $(cat "$W/bare")"
echo "ok: txn begin/put/commit/get, abort, repeated key, never-issued txid, bare duration"
