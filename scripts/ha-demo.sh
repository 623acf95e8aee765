#!/usr/bin/env bash
# ha-demo.sh - coordinator failover, short and visible (make ha-demo; docs/ha.md): a real
# 3-member etcd cluster, two tpc-coordinators of one group (--log etcd), two tpc-kv
# given both coordinator addresses, and a torture client (tpc-torture client) given both
# too. After a few seconds of load the leader is killed with kill -9; the script prints
# the takeover time (kill -> the first commit decided by the new leader, read from its
# admin API) and, once the load stopped and every decision reached the participants,
# the torture checker's verdict on what the client was told against what the sinks hold.
#
#   scripts/ha-demo.sh [BUILD_DIR]    (default: build)
#
# Environment: HA_DEMO_LEASE (default 2s), HA_DEMO_LOAD_BEFORE / HA_DEMO_LOAD_AFTER
# (seconds of load before and after the kill; default 4 and 5). Everything runs on
# 127.0.0.1 in a temporary folder, stopped and removed on exit (kept on failure).
# Exit status: 0 when the check found 0 violations and the takeover happened.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/ports.sh"
build=${1:-build}
case "$build" in -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
build=$(cd "$build" && pwd)
coord_bin=$build/coordinator/tpc-coordinator
kv_bin=$build/tools/tpc-kv
torture_bin=$build/tools/tpc-torture
for b in "$coord_bin" "$kv_bin" "$torture_bin"; do
    [ -x "$b" ] || { echo "ha-demo: $b missing; build first (make build)" >&2; exit 2; }
done
command -v etcd >/dev/null || { echo "ha-demo: etcd not installed (scripts/install-deps.sh)" >&2; exit 2; }
lease=${HA_DEMO_LEASE:-2s}
before=${HA_DEMO_LOAD_BEFORE:-4}
after=${HA_DEMO_LOAD_AFTER:-5}

dir=$(mktemp -d "${TMPDIR:-/tmp}/tpc-ha-demo.XXXXXX")
export TPC_ETCD_RUN=$dir/etcd
pids=()
ok=0
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$here/etcd-cluster.sh" stop >/dev/null 2>&1 || true
    if [ $ok = 1 ]; then rm -rf "$dir"; else echo "ha-demo: logs kept in $dir" >&2; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT
deadline() { # seconds: the whole demo is bounded
    ( sleep "$1"; echo "ha-demo: still running after $1 s; giving up" >&2; kill -TERM $$ ) &
    pids+=($!)
}
deadline 120

ms() { date +%s%3N; }
status_field() { # admin port, field: a number from GET /v1/status (empty if unreachable)
    curl -s --max-time 1 "http://127.0.0.1:$1/v1/status" |
        grep -o "\"$2\": *[0-9]*" | head -1 | grep -o '[0-9]*$' || true
}
readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/readyz" || true; }

echo "== 3 etcd members"
endpoints=$("$here/etcd-cluster.sh" start)
echo "   $endpoints"

group=demo
declare -a cport aport
start_coord() { # index
    cport[$1]=$(free_port); aport[$1]=$(free_port)
    "$coord_bin" --log etcd --etcd-endpoints "$endpoints" --group "$group" --lease "$lease" \
        --listen "127.0.0.1:${cport[$1]}" --admin "127.0.0.1:${aport[$1]}" \
        >"$dir/coord$1.log" 2>&1 &
    pids+=($!); cpid[$1]=$!
    wait_port "${aport[$1]}" 20
}
declare -a cpid
echo "== 2 coordinators of group $group (lease $lease)"
start_coord 1
until [ "$(readyz "${aport[1]}")" = 200 ]; do sleep 0.05; done
start_coord 2
coords="127.0.0.1:${cport[1]},127.0.0.1:${cport[2]}"
echo "   A 127.0.0.1:${cport[1]} (leader), B 127.0.0.1:${cport[2]} (standby: /readyz $(readyz "${aport[2]}"))"
admins="127.0.0.1:${aport[1]},127.0.0.1:${aport[2]}"
show_group() { # what an operator sees: tpcctl status with both admin addresses
    "$build/tools/tpcctl" --admin "$admins" status 2>&1 | grep -E "^group|^members|^  127" | sed 's/^/   | /' || true
}
echo "   tpcctl --admin $admins status:"
show_group

echo "== 2 tpc-kv, --coordinator $coords"
mkdir -p "$dir/outcomes" && : >"$dir/outcomes/operator.txt"
kvs=()
for i in 1 2; do
    p=$(free_port)
    refuse=(); [ $i = 2 ] && refuse=(--refuse-key refuse-me) # the client's NO-vote key
    "$kv_bin" --name "kv$i" --listen "127.0.0.1:$p" --coordinator "$coords" \
        --data "$dir/kv$i" --sink file --txn-timeout 10s --require-txn-token \
        "${refuse[@]}" >"$dir/kv$i.log" 2>&1 &
    pids+=($!); kvpid[$i]=$!
    wait_port "$p" 20
    kvs+=(--kv "127.0.0.1:$p")
done

echo "== load: tpc-torture client, --coordinator $coords"
"$torture_bin" client --id 1 --coordinator "$coords" --refuse 2 \
    --outcomes "$dir/outcomes/client1.txt" --seed "$RANDOM" --inflight 8 --timeout 3s \
    --drain 2s --staged-pct 0 "${kvs[@]}" >"$dir/client.log" 2>&1 &
client=$!
pids+=($client)
sleep "$before"
committed_a=$(status_field "${aport[1]}" committed)
echo "== kill -9 the leader A after ${before}s of load (A committed ${committed_a:-?})"
t0=$(ms)
kill -KILL "${cpid[1]}"
wait "${cpid[1]}" 2>/dev/null || true
ready_ms=""
first_ms=""
while [ -z "$first_ms" ]; do
    now=$(ms)
    [ $((now - t0)) -lt 30000 ] || { echo "ha-demo: no commit by B within 30 s" >&2; exit 1; }
    if [ -z "$ready_ms" ] && [ "$(readyz "${aport[2]}")" = 200 ]; then ready_ms=$((now - t0)); fi
    c=$(status_field "${aport[2]}" committed)
    if [ -n "$c" ] && [ "$c" -gt 0 ]; then first_ms=$((now - t0)); fi
    sleep 0.02
done
echo "   takeover: B ready ${ready_ms:-?} ms after the kill, first commit decided by B ${first_ms} ms after the kill (lease $lease)"
echo "   tpcctl --admin $admins status:"
show_group
sleep "$after"
echo "== stop the load; wait until B has delivered every decision"
kill -TERM "$client"
while kill -0 "$client" 2>/dev/null; do sleep 0.05; done
until [ "$(status_field "${aport[2]}" open_transactions)" = 0 ] &&
      [ "$(status_field "${aport[2]}" in_doubt)" = 0 ]; do sleep 0.1; done
for i in 1 2; do kill -TERM "${kvpid[$i]}"; done
for i in 1 2; do while kill -0 "${kvpid[$i]}" 2>/dev/null; do sleep 0.05; done; done
echo "   B committed $(status_field "${aport[2]}" committed), aborted $(status_field "${aport[2]}" aborted)"
echo "== check (tpc-torture check: told COMMITTED -> in every sink, ABORTED -> in none, ...)"
if "$torture_bin" check --run-dir "$dir" --participants 2 --clients 1 >"$dir/check.txt"; then
    ok=1
fi
grep -E "^transactions checked|^violations" "$dir/check.txt" | sed 's/^/   /'
[ $ok = 1 ] && echo "   0 violations; takeover ${first_ms} ms (kill -> first commit decided by the new leader)"
[ $ok = 1 ] || { echo "ha-demo: the check failed" >&2; exit 1; }
