#!/usr/bin/env bash
# Installs the Debian packages tpc needs to build, test and demo, when any is missing.
# Safe to run repeatedly: it does nothing when everything is already installed.
#   --bench   also what `make bench` needs (gnuplot for the plots, perf to count system
#             calls, git for the baseline worktree);
#   --lesson  also what `make lesson` needs to draw its plot (gnuplot);
#             `make` and `make test` do not need them.
set -euo pipefail

PKGS=(build-essential cmake pkg-config
      libevent-dev liblmdb-dev lmdb-utils libprotobuf-c-dev protobuf-c-compiler
      libcmocka-dev libjansson-dev libinih-dev
      libssl-dev   # OpenSSL 3 for TLS (libevent_openssl comes with libevent-dev)
      openssl      # scripts/make-certs.sh makes the test CA and certificates
      prometheus   # its promtool checks GET /metrics in tests/integration/test_admin.c
      python3      # scripts/demo.sh and the install check pick free ports with it
      clang libclang-rt-14-dev  # the libFuzzer harnesses (make fuzz; make test runs them)
      procps psmisc
      libsystemd-dev  # sd_notify: the systemd unit is Type=notify (packaging/)
      help2man        # man pages from each program's --help, made at build time
      etcd-server etcd-client  # the etcd log's tests run a real 3-member cluster (scripts/etcd-cluster.sh)
      postgresql-15 libpq-dev  # the PostgreSQL participant (libpq) and its tests (scripts/pg-harness.sh)
      curl)  # make ha-demo and make bench-etcd ask the coordinators' admin API
[ "${1:-}" = --bench ] && PKGS+=(gnuplot-nox)
[ "${1:-}" = --lesson ] && PKGS+=(gnuplot-nox)
[ "${1:-}" = --bench ] && PKGS+=(linux-perf git)  # tpc-bench --syscalls; the baseline worktree

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
