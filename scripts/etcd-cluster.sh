#!/usr/bin/env bash
# etcd-cluster.sh - a real 3-member etcd cluster on loopback, for tests and demos of the
# coordinator's etcd log (docs/ha.md).
#
#   etcd-cluster.sh start          start 3 members, wait until the cluster is healthy
#   etcd-cluster.sh stop           stop every member and remove the run folder's data
#   etcd-cluster.sh kill N         kill -9 member N (1..3)
#   etcd-cluster.sh restart N      start member N again on its own data (after kill)
#   etcd-cluster.sh lead N         make member N the raft leader (etcdctl move-leader)
#   etcd-cluster.sh run CMD ARG..  start, run CMD with TPC_ETCD_ENDPOINTS and TPC_ETCD_RUN
#                                  set, stop when it ends (however it ends); CMD's status
#
# The run folder is $TPC_ETCD_RUN (run: a new temporary folder when unset). It holds one
# data folder per member (m1 m2 m3), their logs (mN.log), pids (mN.pid), the command
# that starts each (mN.cmd) and "endpoints": the client URLs, comma-separated. Ports are
# chosen free at start (scripts/ports.sh). Readiness: every member answers a health
# check through etcdctl, polled until a deadline ($TPC_ETCD_START_TIMEOUT s, default 30).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/ports.sh"

die() { echo "etcd-cluster: $*" >&2; exit 1; }

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

need_run() {
    [ -n "${TPC_ETCD_RUN:-}" ] || die "set TPC_ETCD_RUN to the run folder"
}

member_pid() { cat "$TPC_ETCD_RUN/m$1.pid" 2>/dev/null || true; }

alive() { local p; p=$(member_pid "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

launch() { # member number: start it from its saved command, in its own session
    local n=$1
    setsid bash -c "exec $(cat "$TPC_ETCD_RUN/m$n.cmd")" \
        >>"$TPC_ETCD_RUN/m$n.log" 2>&1 </dev/null &
    echo $! >"$TPC_ETCD_RUN/m$n.pid"
}

healthy() { # every endpoint given answers a health check
    ETCDCTL_API=3 etcdctl --endpoints "$1" --command-timeout=2s endpoint health \
        >/dev/null 2>&1
}

wait_healthy() { # endpoints
    local deadline=$((SECONDS + ${TPC_ETCD_START_TIMEOUT:-30}))
    until healthy "$1"; do
        for n in 1 2 3; do
            alive "$n" || die "member $n exited at start; see $TPC_ETCD_RUN/m$n.log"
        done
        [ $SECONDS -lt $deadline ] || die "cluster not healthy within ${TPC_ETCD_START_TIMEOUT:-30}s ($1)"
        sleep 0.1
    done
}

cmd_start() {
    need_run
    mkdir -p "$TPC_ETCD_RUN"
    local cport pport cluster="" endpoints="" token="tpc-test-$$-$RANDOM"
    for n in 1 2 3; do
        cport[n]=$(free_port)
        pport[n]=$(free_port)
        cluster+="${cluster:+,}m$n=http://127.0.0.1:${pport[n]}"
        endpoints+="${endpoints:+,}http://127.0.0.1:${cport[n]}"
    done
    for n in 1 2 3; do
        cat >"$TPC_ETCD_RUN/m$n.cmd" <<EOF
etcd --name m$n --data-dir '$TPC_ETCD_RUN/m$n' \
 --listen-client-urls http://127.0.0.1:${cport[n]} --advertise-client-urls http://127.0.0.1:${cport[n]} \
 --listen-peer-urls http://127.0.0.1:${pport[n]} --initial-advertise-peer-urls http://127.0.0.1:${pport[n]} \
 --initial-cluster $cluster --initial-cluster-token $token --initial-cluster-state new \
 --logger zap --log-outputs stderr --log-level warn
EOF
        launch "$n"
    done
    echo "$endpoints" >"$TPC_ETCD_RUN/endpoints"
    wait_healthy "$endpoints"
    echo "$endpoints"
}

cmd_stop() {
    need_run
    local pids=()
    for n in 1 2 3; do
        alive "$n" && { kill -TERM "$(member_pid "$n")"; pids+=("$(member_pid "$n")"); }
    done
    local deadline=$((SECONDS + 10))
    for p in "${pids[@]}"; do
        while kill -0 "$p" 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || { kill -KILL "$p" 2>/dev/null || true; break; }
            sleep 0.05
        done
    done
    rm -rf "$TPC_ETCD_RUN"/m[123] "$TPC_ETCD_RUN"/m[123].pid
}

member_arg() {
    case "${1:-}" in 1|2|3) ;; *) die "member number 1, 2 or 3 expected, got '${1:-}'";; esac
}

cmd_kill() {
    need_run
    member_arg "${1:-}"
    local p; p=$(member_pid "$1")
    [ -n "$p" ] || die "member $1 was never started"
    kill -KILL "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null; do sleep 0.02; done
}

is_leader() { # member number: its endpoint status says it leads
    local url; url=$(cut -d, -f"$1" "$TPC_ETCD_RUN/endpoints")
    ETCDCTL_API=3 etcdctl --endpoints "$url" --command-timeout=2s endpoint status \
        -w simple 2>/dev/null | awk -F', ' '{ print $5 }' | grep -qx true
}

cmd_lead() {
    need_run
    member_arg "${1:-}"
    local all id; all=$(cat "$TPC_ETCD_RUN/endpoints")
    local deadline=$((SECONDS + ${TPC_ETCD_START_TIMEOUT:-30}))
    until is_leader "$1"; do
        [ $SECONDS -lt $deadline ] || die "member $1 did not become the leader in time"
        id=$(ETCDCTL_API=3 etcdctl --endpoints "$all" --command-timeout=2s member list \
             -w simple 2>/dev/null | awk -F', ' -v m="m$1" '$3 == m { print $1 }')
        [ -z "$id" ] || ETCDCTL_API=3 etcdctl --endpoints "$all" --command-timeout=5s \
            move-leader "$id" >/dev/null 2>&1 || true
        is_leader "$1" || sleep 0.1
    done
}

cmd_restart() {
    need_run
    member_arg "${1:-}"
    alive "$1" && die "member $1 is running"
    sed -i 's/--initial-cluster-state new/--initial-cluster-state existing/' "$TPC_ETCD_RUN/m$1.cmd"
    launch "$1"
    local url; url=$(cut -d, -f"$1" "$TPC_ETCD_RUN/endpoints")
    local deadline=$((SECONDS + ${TPC_ETCD_START_TIMEOUT:-30}))
    until healthy "$url"; do
        alive "$1" || die "member $1 exited; see $TPC_ETCD_RUN/m$1.log"
        [ $SECONDS -lt $deadline ] || die "member $1 not healthy in time"
        sleep 0.1
    done
}

cmd_run() {
    [ $# -gt 0 ] || die "run: a command is needed"
    local own=0
    if [ -z "${TPC_ETCD_RUN:-}" ]; then
        TPC_ETCD_RUN=$(mktemp -d "${TMPDIR:-/tmp}/tpc-etcd.XXXXXX")
        own=1
    fi
    export TPC_ETCD_RUN
    # shellcheck disable=SC2064
    trap "cmd_stop; [ $own = 1 ] && rm -rf '$TPC_ETCD_RUN'" EXIT
    trap 'exit 143' TERM INT
    TPC_ETCD_ENDPOINTS=$(cmd_start)
    export TPC_ETCD_ENDPOINTS
    local rc=0
    "$@" || rc=$?
    return $rc
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    kill) shift; cmd_kill "$@" ;;
    restart) shift; cmd_restart "$@" ;;
    lead) shift; cmd_lead "$@" ;;
    run) shift; cmd_run "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
