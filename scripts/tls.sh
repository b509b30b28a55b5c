#!/usr/bin/env bash
# scripts/tls.sh — test certificates made with openssl: a CA, a server certificate it signs
# (for localhost and 127.0.0.1), and a second, unrelated CA (to prove a wrong one is
# refused). Made once, kept in $AGORA_STATE_DIR/tls (default ~/.cache/agora/tls).
#
# Usage: scripts/tls.sh dir     make them if missing; print the directory, which holds
#                               ca.crt, server.crt, server.key (PKCS#8), server.pem
#                               (certificate + key) and other-ca.crt
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

TLS_DIR="$AGORA_STATE_DIR/tls"

make_certificates() {
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  local work
  work="$(mktemp -d)"
  (
    cd "$work"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Agora test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Another CA" \
      -keyout other-ca.key -out other-ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout server.key.rsa -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in server.key.rsa -out server.key
    cat server.crt server.key >server.pem
    chmod 0644 ca.crt other-ca.crt server.crt
    chmod 0600 server.key server.pem
  )
  mkdir -p "$TLS_DIR"
  mv "$work"/{ca.crt,other-ca.crt,server.crt,server.key,server.pem} "$TLS_DIR/"
  rm -rf "$work"
}

ensure_certificates() {
  [[ -s "$TLS_DIR/server.pem" ]] || make_certificates
}

case "${1:-}" in
  dir)
    with_lock "$AGORA_STATE_DIR/locks/tls.lock" ensure_certificates
    echo "$TLS_DIR"
    ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 2
    ;;
esac
