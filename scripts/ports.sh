# ports.sh - sourced by the scripts that start servers on loopback (demo.sh, growth.sh,
# deb-check.sh):
# a free port chosen at run time, and a wait for a port to open with a deadline.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port, deadline seconds (default 10); exits 1 naming the caller on timeout
    local deadline=$((SECONDS + ${2:-10}))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "$(basename "$0" .sh): port $1 never opened" >&2; exit 1; }
        sleep 0.05
    done
}
