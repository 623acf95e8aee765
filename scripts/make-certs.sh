#!/usr/bin/env bash
# make-certs.sh DIR NAME... - a test CA and one certificate per NAME, for tpc's mutual
# TLS (the demo, the tests, a first try). Not for production: the CA key sits in DIR.
#
#   DIR/ca.crt, DIR/ca.key       the CA (made once; reused when DIR/ca.key exists)
#   DIR/NAME.crt, DIR/NAME.key   signed by it: subject CN=NAME (tpc's identity rule:
#                                a participant's name is its certificate's CN),
#                                SAN DNS:NAME, DNS:localhost, IP:127.0.0.1 (so clients
#                                that dial 127.0.0.1 or localhost can check the server)
#
# Options (before DIR): --ca-name CN  the CA's subject CN (default "tpc test CA");
#                       --days N      validity (default 825).
# EC P-256 keys, SHA-256, with the openssl command line only.
set -euo pipefail

ca_name="tpc test CA"
days=825
while [ $# -gt 0 ]; do
    case "$1" in
        --ca-name) ca_name="$2"; shift 2 ;;
        --days) days="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
done
if [ $# -lt 2 ]; then
    echo "usage: make-certs.sh [--ca-name CN] [--days N] DIR NAME..." >&2
    exit 2
fi
dir="$1"
shift
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f "$dir/ca.key" ]; then
    newkey "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" -subj "/CN=$ca_name" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.crt"
fi

for name in "$@"; do
    case "$name" in
        */*|"") echo "make-certs.sh: bad name '$name'" >&2; exit 2 ;;
    esac
    newkey "$dir/$name.key"
    ext="$(mktemp)"
    trap 'rm -f "$ext" "$dir/$name.csr"' EXIT
    printf '%s\n' "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth,clientAuth" \
        "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1" >"$ext"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -sha256 -days "$days" -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$ext" "$dir/$name.csr"
    trap - EXIT
done
chmod 644 "$dir"/*.crt
